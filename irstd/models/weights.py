"""Weight files: CgriNet models as safetensors, and ImageNet encoder weights from a local file.

A model file is a safetensors file whose metadata records what rebuilds the model:

``format``
    ``"irstd-model"`` (marks the file as ours).
``model``
    The registry name (``cgrinet_small`` ...) or ``"CgriNet"`` for a model built directly.
``model_args``
    JSON of :attr:`CgriNet.model_args` (the construction arguments).
``irstd_version``
    The irstd version that wrote the file.

plus any caller metadata (strings; other values are stored as JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as _safetensors_bytes
from torch import nn

from irstd import __version__
from irstd.errors import InputError
from irstd.io import write_bytes
from irstd.model_file import FORMAT, read_weights_metadata
from irstd.model_file import check_file as _check_file

__all__ = ["save_weights", "load_model", "read_weights_metadata", "load_backbone_weights", "FORMAT"]

_RESERVED = ("format", "model", "model_args", "irstd_version")


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """Write a model's weights and construction arguments to a safetensors file, atomically.

    Parameters
    ----------
    model : CgriNet
        The model (any device; tensors are copied to CPU).
    path : str or path
        Output file (conventionally ``*.safetensors``). An existing file is replaced: the caller
        (the CLI) decides whether overwriting is allowed.
    metadata : dict, optional
        Extra metadata (epoch, dataset ...). Strings are stored as they are, other values as
        JSON. The keys ``format``, ``model``, ``model_args``, ``irstd_version`` are reserved.
    dtype : torch.dtype, optional
        Storage type of the floating-point tensors, e.g. ``torch.float16`` (half the file; the
        paper model's packaged file); :func:`load_model` casts them back to the model's float32.
        Recorded as ``storage_dtype``. Default: as they are.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    args = getattr(model, "model_args", None)
    if args is None:
        raise TypeError("save_weights: the model has no model_args (build it with irstd.models.create_model)")
    meta: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if key in _RESERVED:
            raise ValueError(f"save_weights: metadata key {key!r} is reserved")
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    meta.update(
        format=FORMAT,
        model=getattr(model, "model_name", None) or type(model).__name__,
        model_args=json.dumps(args),
        irstd_version=__version__,
    )
    if dtype is not None:
        meta["storage_dtype"] = str(dtype).removeprefix("torch.")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:  # the input normalisation stays float32 (two numbers, used on every pixel)
        tensors = {k: v.to(dtype) if v.is_floating_point() and not k.startswith("input_") else v for k, v in tensors.items()}
    write_bytes(path, _safetensors_bytes(tensors, metadata=meta))
    return path


def load_model(
    path: str | os.PathLike, device: str | torch.device | None = None, overrides: dict[str, Any] | None = None
) -> nn.Module:
    """Rebuild a model from a file written by :func:`save_weights`.

    Parameters
    ----------
    path : str or path
        The safetensors file.
    device : str or torch.device, optional
        Where to put the model (CPU by default).
    overrides : dict, optional
        Construction arguments that differ from the file's (fine-tuning an extended model, e.g.
        ``{"refine_head": True}``). Every tensor of the file must still fit the new model; the
        model's tensors that the file lacks keep their fresh initialisation and are listed in
        ``model.new_tensors``.

    Returns
    -------
    CgriNet
        The model in eval mode, with ``model_name`` set and the file's metadata in
        ``model.weights_metadata``.

    Raises
    ------
    InputError
        When the file is missing, not safetensors, not an irstd model file, or its tensors do not
        match the recorded architecture.
    """
    from irstd.models.cgrinet import CgriNet

    path = Path(path)
    meta = read_weights_metadata(path)
    try:
        args = json.loads(meta["model_args"])
        if not isinstance(args, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise InputError(f"{path}: unreadable model_args metadata ({exc})") from None
    args.update(overrides or {})
    try:
        model = CgriNet(**args)
    except TypeError as exc:
        raise InputError(f"{path}: model arguments not understood by this irstd version ({exc})") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    model.model_name = meta.get("model") if meta.get("model") != "CgriNet" else None
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read tensors ({exc})") from None
    model.new_tensors = [k for k in model.state_dict() if k not in state] if overrides else []
    if model.new_tensors:
        state = {**model.state_dict(), **state}
    _load_state(model, state, path, what=f"model {meta.get('model')}" + (f" with {overrides}" if overrides else ""))
    model.weights_metadata = meta
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """``load_state_dict(strict=True)`` with one-line InputErrors naming the file."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise InputError(f"{path}: weights do not match {what}: {'; '.join(parts)}")
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise InputError(
            f"{path}: weights do not match {what}: {len(wrong)} tensors with other shapes "
            f"(e.g. {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        )
    module.load_state_dict(state, strict=True)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    _check_file(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"{path}: not a safetensors file ({exc})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types; all mean "bad file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable weights file ({first})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone_weights(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Load ImageNet weights into a timm ``features_only`` encoder from a local file.

    The file holds a timm (or official Res2Net v1b) state dict with the same key names as the
    encoder, as safetensors or as a ``.pth`` (read with ``torch.load(weights_only=True)``;
    ``state_dict`` / ``model`` wrappers and a ``module.`` prefix are accepted). The classifier
    (``fc.*``) is dropped. When the encoder has another number of input channels than the file,
    the first convolution is adapted as timm does (``in_chans=1``: the RGB filters are summed).
    Nothing is downloaded.

    Raises
    ------
    InputError
        Missing, unreadable or corrupt file; keys or shapes that do not match the encoder.
    """
    from timm.models import adapt_input_conv

    path = Path(path)
    state = _read_state_dict(path)
    own = encoder.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("fc.", "head.", "classifier."))}
    for k in own:  # the official v1b files carry no BN batch counters
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    first = (getattr(encoder, "pretrained_cfg", None) or {}).get("first_conv", "conv1.0")
    key = f"{first}.weight"
    if key in state and key in own and state[key].ndim == 4 and state[key].shape[1] != own[key].shape[1]:
        try:
            state[key] = adapt_input_conv(own[key].shape[1], state[key].float()).to(state[key].dtype)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: cannot adapt the first convolution {key} ({exc})") from None
    _load_state(encoder, state, path, what=f"encoder {getattr(encoder, 'pretrained_cfg', {}).get('architecture', '')}".strip())


def main(argv: list[str] | None = None) -> int:
    """``python -m irstd.models IN OUT [--float16]``: rewrite a model file (e.g. in float16
    storage, as the packaged paper model is), keeping its metadata; never replaces OUT."""
    import argparse

    parser = argparse.ArgumentParser(description="Rewrite an irstd model file, optionally in float16 storage.")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--float16", action="store_true", help="store the floating-point tensors as float16")
    args = parser.parse_args(argv)
    if Path(args.target).exists():
        parser.exit(2, f"irstd: error: {args.target}: exists (choose another name)\n")
    model = load_model(args.source)
    meta = {k: v for k, v in model.weights_metadata.items() if k not in (*_RESERVED, "storage_dtype")}
    save_weights(model, args.target, meta, dtype=torch.float16 if args.float16 else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
