"""Input checks and work-array blocking shared by the baseline methods."""

from __future__ import annotations

import numpy as np

from irstd.errors import InputError


def as_float_image(image, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous 2-D float64 array.

    Integer inputs (e.g. ``uint8``) are converted to float *before* any arithmetic, so squares
    cannot wrap around. Raises :class:`irstd.errors.InputError` for anything that is not a
    non-empty 2-D real array with finite values.
    """
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D grey image, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: empty image of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == np.bool_):
        raise InputError(f"{name}: unsupported dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise InputError(f"{name}: image contains NaN or infinite values")
    return out


def block_rows(q: int) -> int:
    """Rows of a ``(p, q)`` float64 work array per block of a fused elementwise pass.

    IPI and NRAM apply all elementwise updates of one iteration block by block, so a block of
    each array is read from memory once per iteration instead of once per operation; 1 MiB
    per array block keeps the handful of blocks in the last-level cache.
    """
    return max(1, (1 << 17) // max(q, 1))


def check_cell_sizes(cell_sizes) -> list[int]:
    """The distinct cell sizes of a local-contrast method in increasing order; :class:`InputError`
    unless each is a positive odd integer (LCM, MPCM and their multiscale wrappers)."""
    sizes = tuple(cell_sizes)
    if not sizes:
        raise InputError("cell_sizes: at least one cell size is needed")
    for l in sizes:
        if isinstance(l, bool) or int(l) != l or l < 1 or l % 2 == 0:
            raise InputError(f"cell_sizes: {l!r} is not a positive odd integer")
    return sorted({int(l) for l in sizes})
