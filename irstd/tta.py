"""Test-time augmentation: a map averaged over flipped (and transposed) copies of the image.

``fn`` (CgriNet's probabilities) is applied to each symmetric copy of the image, each output is
mapped back to the original orientation, and the outputs are averaged pixel by pixel:

``none``
    ``fn(image)`` once.
``flip``
    The four flips: as is, upside down, left–right, and both (a half turn); four runs.
``dihedral``
    The eight symmetries of the square: the four flips of the image and of its transpose
    (quarter turns and diagonal reflections); eight runs.

A convolutional network is not exactly invariant to these symmetries (padding to multiples of
the stride lies at the bottom and right; learned filters are not symmetric), so averaging
smooths out the orientation-dependent part of its errors. Measured gains and costs are in
``docs/detect.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irstd.errors import InputError

__all__ = ["TTA_MODES", "check_tta", "map_tta", "tta_views"]

#: Names of the test-time augmentation modes, and how many runs of the model each costs.
TTA_MODES = {"none": 1, "flip": 4, "dihedral": 8}


def check_tta(mode: str, option: str = "--tta") -> str:
    """Return ``mode`` if it names a mode of :data:`TTA_MODES`, else raise :class:`InputError`
    naming ``option`` (the command-line option that gave it)."""
    if mode not in TTA_MODES:
        raise InputError(f"{option}: expected one of {', '.join(TTA_MODES)}, got {mode!r}")
    return mode


def tta_views(mode: str) -> list[tuple[bool, bool, bool]]:
    """The symmetries of ``mode`` as ``(flip rows, flip columns, transpose)`` triples.

    A view is made by transposing first (when asked), then flipping; the identity comes first.
    """
    check_tta(mode)
    flips = [(False, False), (True, False), (False, True), (True, True)]
    if mode == "none":
        flips = flips[:1]
    transposes = (False, True) if mode == "dihedral" else (False,)
    return [(r, c, t) for t in transposes for r, c in flips]


def _view(a: np.ndarray, rows: bool, cols: bool, transpose: bool) -> np.ndarray:
    if transpose:
        a = a.T
    if rows:
        a = a[::-1]
    if cols:
        a = a[:, ::-1]
    return a


def _unview(a: np.ndarray, rows: bool, cols: bool, transpose: bool) -> np.ndarray:
    if cols:
        a = a[:, ::-1]
    if rows:
        a = a[::-1]
    if transpose:
        a = a.T
    return a


def map_tta(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, mode: str = "none") -> np.ndarray:
    """Average of ``fn`` over the symmetric views of ``image`` named by ``mode``.

    Parameters
    ----------
    fn : callable
        Maps a 2-D array to a 2-D array of the same shape; it receives C-contiguous views.
    image : (H, W) ndarray
    mode : {"none", "flip", "dihedral"}
        Which views (:data:`TTA_MODES`); ``none`` returns ``fn(image)`` unchanged.

    Returns
    -------
    ndarray
        float32 mean of the views' outputs, each mapped back to the orientation of ``image``
        (``fn``'s own output, with its dtype, for ``none``).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(6.0).reshape(2, 3)
    >>> bool(np.allclose(map_tta(lambda a: a * 2, img, "dihedral"), img * 2))
    True
    """
    views = tta_views(mode)
    if len(views) == 1:
        return fn(image)
    total = None
    for rows, cols, transpose in views:
        out = np.asarray(fn(np.ascontiguousarray(_view(image, rows, cols, transpose))), dtype=np.float64)
        out = _unview(out, rows, cols, transpose)
        total = out.copy() if total is None else total + out
    return (total / len(views)).astype(np.float32)
