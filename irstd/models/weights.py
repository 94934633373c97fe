"""Model files: any irstd network as safetensors, rebuilt from its metadata.

A model file is a safetensors file whose metadata records what rebuilds the model:

``format``
    ``"irstd-model"`` (marks the file as ours).
``model``
    The registry name (``cgrinet_small``, ``acm`` ...) or the class name for a model built directly.
``architecture``
    The class (:data:`irstd.models.registry.ARCHITECTURES` key: ``CgriNet``, ``ACM`` ...); files
    written before this key existed hold CgriNet models.
``model_args``
    JSON of the model's ``model_args`` (the construction arguments).
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
from irstd.model_file import FORMAT, architecture_of, read_weights_metadata
from irstd.models.backbone import load_state

__all__ = ["save_weights", "load_model", "read_weights_metadata", "FORMAT"]

_RESERVED = ("format", "model", "architecture", "model_args", "irstd_version")

#: Largest number a model file's ``model_args`` may hold (channels, layers, ...): a larger one
#: would build a model of absurd size (``channels: 100000`` asks for tens of GB) from 1 KB of
#: metadata.
MAX_MODEL_ARG = 1 << 16


def check_model_args(value, path, key: str = "model_args") -> None:
    """Refuse a number in a file's ``model_args`` above :data:`MAX_MODEL_ARG` (one-line InputError)."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_model_args(v, path, f"{key}.{k}")
    elif isinstance(value, list):
        for v in value:
            check_model_args(v, path, key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= MAX_MODEL_ARG:
        raise InputError(f"{path}: unusable model metadata ({key} = {value!r}, at most {MAX_MODEL_ARG})")


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """Write a model's weights and construction arguments to a safetensors file, atomically.

    Parameters
    ----------
    model : SegmentationNet
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
        architecture=type(model).__name__,
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
    SegmentationNet
        The model in eval mode, with ``model_name`` set and the file's metadata in
        ``model.weights_metadata``.

    Raises
    ------
    InputError
        When the file is missing, not safetensors, not an irstd model file, or its tensors do not
        match the recorded architecture.
    """
    from irstd.models.registry import architecture_class

    path = Path(path)
    meta = read_weights_metadata(path)
    architecture = architecture_of(meta)
    try:
        args = json.loads(meta["model_args"])
        if not isinstance(args, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise InputError(f"{path}: unreadable model_args metadata ({exc})") from None
    check_model_args(args, path)
    args.update(overrides or {})
    try:
        model = architecture_class(architecture)(**args)
    except TypeError as exc:
        raise InputError(f"{path}: model arguments not understood by this irstd version ({exc})") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (ValueError, OverflowError, KeyError, RuntimeError, MemoryError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"{path}: its model metadata cannot build a model ({reason})") from None
    model.model_name = meta.get("model") if meta.get("model") != architecture else None
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read tensors ({exc})") from None
    model.new_tensors = [k for k in model.state_dict() if k not in state] if overrides else []
    if model.new_tensors:
        state = {**model.state_dict(), **state}
    load_state(model, state, path, what=f"model {meta.get('model')}" + (f" with {overrides}" if overrides else ""))
    model.weights_metadata = meta
    model.eval()
    if device is not None:
        model.to(device)
    return model


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
