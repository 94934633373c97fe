"""The weights shipped with irstd (``irstd/weights/``), found by name without importing PyTorch.

``<family>_sirst.safetensors`` holds a network family's SIRST-trained weights (``cgrinet``,
``acm``, ``alcnet``, ``rdian`` ...: ``--method FAMILY``); ``cgrinet_sirst.safetensors`` is the
default detector and ``cgrinet_paper.safetensors`` the paper model when shipped. Each may have its
ONNX graph beside it (``X.onnx``, used by ``--engine onnx``).
"""

from __future__ import annotations

from pathlib import Path

from irstd.errors import InputError

__all__ = [
    "DEFAULT_WEIGHTS_NAME",
    "PACKAGED_NAMES",
    "PAPER_WEIGHTS_NAME",
    "WEIGHTS_DIR",
    "default_weights",
    "family_weights",
    "packaged_weights",
]

#: Where packaged weights live: ``irstd/weights/*.safetensors`` inside the package.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

#: The default detector (``irstd detect`` without ``--method``; ``--method cgrinet``).
DEFAULT_WEIGHTS_NAME = "cgrinet_sirst.safetensors"
#: The paper model (full ``cgrinet``, trained on a GPU, float16 storage) when packaged.
PAPER_WEIGHTS_NAME = "cgrinet_paper.safetensors"
#: Names of packaged weights accepted wherever a model file is (``--weights paper``, ``cgrinet:paper``,
#: ``--init-weights packaged``); a family name (``acm`` ...) names that family's packaged weights.
PACKAGED_NAMES = {"packaged": DEFAULT_WEIGHTS_NAME, "paper": PAPER_WEIGHTS_NAME}


def default_weights() -> Path | None:
    """The packaged default detector (``irstd/weights/cgrinet_sirst.safetensors``), or ``None``."""
    path = WEIGHTS_DIR / DEFAULT_WEIGHTS_NAME
    return path if path.is_file() else None


def family_weights(family: str) -> Path | None:
    """The packaged weights of a network family (``cgrinet``: the default detector), or ``None``."""
    if family == "cgrinet":
        return default_weights()
    path = WEIGHTS_DIR / f"{family}_sirst.safetensors"
    return path if path.is_file() else None


def packaged_weights(name: str) -> Path:
    """The packaged weights called ``name``: ``packaged``, ``paper`` or a family name (``acm`` ...).

    Raises
    ------
    InputError
        Unknown name, or weights of that name not shipped with this installation.
    """
    from irstd.models.registry import families

    if name in PACKAGED_NAMES:
        path = WEIGHTS_DIR / PACKAGED_NAMES[name]
    elif name in families():
        path = family_weights(name) or WEIGHTS_DIR / f"{name}_sirst.safetensors"
    else:
        raise InputError(f"{name}: not a packaged weights name (known: {', '.join([*PACKAGED_NAMES, *families()])})")
    if not path.is_file():
        raise InputError(f"{name}: this installation holds no {name} weights ({path}); pass a weights file instead")
    return path
