"""irstd model files (safetensors): the metadata, read without importing PyTorch.

``irstd.models`` re-exports :func:`read_weights_metadata`; this module lets ``--engine onnx`` and
``get_method`` check a weights file without loading torch and timm (~5 s at start-up).
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from irstd.errors import InputError

__all__ = ["FORMAT", "architecture_of", "read_weights_metadata"]

FORMAT = "irstd-model"


def check_file(path: Path) -> None:
    """Raise InputError unless ``path`` is an existing file."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")


def read_weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an irstd model file (raises InputError if it is not one)."""
    path = Path(path)
    check_file(path)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a safetensors file ({exc})") from None
    if meta.get("format") != FORMAT or "model_args" not in meta:
        raise InputError(f"{path}: not an irstd model file (no irstd model metadata)")
    return dict(meta)


def architecture_of(meta: dict[str, str]) -> str:
    """The architecture class name a model file holds (``CgriNet`` for files older than the key)."""
    if meta.get("architecture"):
        return meta["architecture"]
    from irstd.models.registry import MODELS

    spec = MODELS.get(meta.get("model", ""))
    return spec.architecture if spec is not None else "CgriNet"
