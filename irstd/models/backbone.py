"""Encoder weights from a local file (ImageNet Res2Net for CgriNet), and strict state loading.

:func:`load_state` loads a state dict into a module with one-line errors naming the file (used
for model files too, :func:`irstd.models.load_model`); :func:`load_backbone_weights` reads timm or
official Res2Net weights (safetensors, or a ``.pth`` read with ``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from irstd.errors import InputError
from irstd.model_file import check_file as _check_file

__all__ = ["load_backbone_weights", "load_state"]


def load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
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
    load_state(encoder, state, path, what=f"encoder {getattr(encoder, 'pretrained_cfg', {}).get('architecture', '')}".strip())
