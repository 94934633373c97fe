"""Patch-image construction and reconstruction for IPI and NRAM.

A patch matrix ``D`` has one column per ``p×p`` patch, flattened column-major (MATLAB ``(:)``).
Two layouts are used by the authors' codes:

* ``"ipi"`` (Gao et al.): starts ``0, s, 2s, …`` while ``start <= H - p`` (same for columns); the
  last ``(H - p) mod s`` rows / ``(W - p) mod s`` columns are covered by no patch. Columns are
  ordered row-position-outer.
* ``"nram"`` (Dai's ``construct``): ``ceil((H - p)/s) + 1`` starts ``0, s, …, s·(n_r - 2), H - p``
  (a border-aligned last row/column of patches, every pixel covered). Columns are ordered
  column-position-outer.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from irstd.errors import InputError

LAYOUTS = ("ipi", "nram")
RECONSTRUCTIONS = ("median", "mean", "last")


def patch_starts(length: int, patch_size: int, step: int, layout: str) -> np.ndarray:
    """Start coordinates of the patches along one axis of length ``length``."""
    if layout == "ipi":
        return np.arange(0, length - patch_size + 1, step)
    if layout == "nram":
        count = math.ceil((length - patch_size) / step) + 1
        return np.concatenate([np.arange(0, (count - 1) * step, step)[: count - 1],
                               [length - patch_size]]).astype(np.intp)
    raise InputError(f"layout: unknown patch layout {layout!r} (expected one of {LAYOUTS})")


def check_patch_args(shape, patch_size: int, step: int, name: str = "image") -> None:
    """Raise InputError unless a ``patch_size`` patch fits and ``step`` is valid."""
    if int(patch_size) != patch_size or patch_size < 1:
        raise InputError(f"patch_size: must be a positive integer, got {patch_size!r}")
    if int(step) != step or step < 1:
        raise InputError(f"step: must be a positive integer, got {step!r}")
    h, w = shape
    if h < patch_size or w < patch_size:
        raise InputError(
            f"{name}: image of {h}×{w} pixels is smaller than one {patch_size}×{patch_size} patch "
            f"(pad it or use a smaller patch_size)")


def grid(shape, patch_size: int, step: int, layout: str):
    """Row and column starts of the patch grid for an image of ``shape``."""
    return (patch_starts(shape[0], patch_size, step, layout),
            patch_starts(shape[1], patch_size, step, layout))


def extract(image: np.ndarray, patch_size: int, step: int, layout: str):
    """Patch matrix of ``image``: ``(p*p, n_patches)`` float64, plus the row and column starts."""
    rows, cols = grid(image.shape, patch_size, step, layout)
    win = sliding_window_view(image, (patch_size, patch_size))[rows[:, None], cols[None, :]]
    # win[i, j, r, c]; column-major within the patch -> index c*p + r
    if layout == "ipi":  # column k = i*n_c + j
        d = win.transpose(3, 2, 0, 1)
    else:  # column k = j*n_r + i
        d = win.transpose(3, 2, 1, 0)
    return np.ascontiguousarray(d).reshape(patch_size * patch_size, -1), rows, cols


def _as_grid(patches: np.ndarray, n_r: int, n_c: int, p: int, layout: str) -> np.ndarray:
    """View the patch matrix as ``P[i, j, r, c]`` (grid row, grid column, row, column)."""
    if layout == "ipi":
        return patches.reshape(p, p, n_r, n_c).transpose(2, 3, 1, 0)
    return patches.reshape(p, p, n_c, n_r).transpose(3, 2, 1, 0)


def _classes(starts: np.ndarray, patch_size: int, step: int) -> np.ndarray:
    """Assign each start a class so that starts in the same class never overlap."""
    n_layers = math.ceil(patch_size / step)
    cls = np.arange(len(starts)) % n_layers
    regular = starts == np.arange(len(starts)) * step
    cls[~regular] = n_layers  # the border-aligned start gets its own class
    return cls


def reconstruct(patches, shape, patch_size: int, step: int, layout: str,
                method: str = "median") -> np.ndarray:
    """Rebuild an image from a patch matrix.

    ``method``: ``"median"`` (value of each pixel = median of every patch value covering it; even
    counts → mean of the two middle values), ``"mean"`` or ``"last"`` (the covering patch written
    last in layout order wins, i.e. the one with the largest column start and, among those, the
    largest row start — for either layout). Pixels covered by no patch are 0.
    """
    if method not in RECONSTRUCTIONS:
        raise InputError(f"reconstruction: unknown method {method!r} (expected one of "
                         f"{RECONSTRUCTIONS})")
    h, w = shape
    p = patch_size
    rows, cols = grid(shape, p, step, layout)
    P = _as_grid(np.asarray(patches, dtype=np.float64), len(rows), len(cols), p, layout)
    out = np.zeros((h, w))
    if method == "last":
        yy = np.arange(h)
        xx = np.arange(w)
        ri = np.searchsorted(rows, yy, side="right") - 1
        ci = np.searchsorted(cols, xx, side="right") - 1
        cov_y = (ri >= 0) & (yy < rows[np.maximum(ri, 0)] + p)
        cov_x = (ci >= 0) & (xx < cols[np.maximum(ci, 0)] + p)
        ri = np.maximum(ri, 0)
        ci = np.maximum(ci, 0)
        oy = np.minimum(yy - rows[ri], p - 1)
        ox = np.minimum(xx - cols[ci], p - 1)
        vals = P[ri[:, None], ci[None, :], oy[:, None], ox[None, :]]
        out[:] = vals
        out[~(cov_y[:, None] & cov_x[None, :])] = 0.0
        return out
    rcls = _classes(rows, p, step)
    ccls = _classes(cols, p, step)
    nrc, ncc = rcls.max() + 1, ccls.max() + 1
    if method == "mean":
        acc = np.zeros((h, w))
        cnt = np.zeros((h, w))
        for i, r0 in enumerate(rows):
            for j, c0 in enumerate(cols):
                acc[r0:r0 + p, c0:c0 + p] += P[i, j]
                cnt[r0:r0 + p, c0:c0 + p] += 1
        np.divide(acc, cnt, out=out, where=cnt > 0)
        return out
    # median: non-overlapping layers (one per pair of classes), NaN where a layer has no patch
    layers = np.full((h, w, nrc * ncc), np.nan)
    for i, r0 in enumerate(rows):
        for j, c0 in enumerate(cols):
            layers[r0:r0 + p, c0:c0 + p, rcls[i] * ncc + ccls[j]] = P[i, j]
    count = np.count_nonzero(~np.isnan(layers), axis=2)
    layers.sort(axis=2)  # NaN sorts last
    covered = count > 0
    lo = np.take_along_axis(layers, np.maximum((count - 1) // 2, 0)[..., None], axis=2)[..., 0]
    hi = np.take_along_axis(layers, (count // 2)[..., None], axis=2)[..., 0]
    np.multiply(lo + hi, 0.5, out=out, where=covered)
    return out


def minmax_normalise(d: np.ndarray) -> np.ndarray | None:
    """``(d - min) / (max - min)`` in place-friendly form; ``None`` for a constant matrix."""
    lo = d.min()
    hi = d.max()
    if not hi > lo:
        return None
    return (d - lo) / (hi - lo)
