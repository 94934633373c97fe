"""What a run record says about the software that made it."""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["versions"]


def versions() -> dict[str, str | None]:
    """Versions of Python, irstd and the numerical packages (``None``: not installed).

    Read from the installed distributions' metadata, so nothing is imported.
    """
    from irstd import __version__

    out: dict[str, str | None] = {"irstd": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "torch", "timm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
