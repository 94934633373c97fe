"""Multiscale Patch-based Contrast Measure (MPCM), Wei, You & Li 2016."""

from __future__ import annotations

import numpy as np


from ._common import as_float_image, check_cell_sizes

__all__ = ["mpcm"]

#: Neighbour cells (dy, dx) in units of the cell size, in the order of the public code
#: (top-left, top, top-right, right, bottom-right, bottom, bottom-left, left): cell k and
#: cell k + 4 are opposite.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def mpcm(image, cell_sizes=(3, 5, 7, 9)) -> np.ndarray:
    """Multiscale patch-based contrast measure of a grey image (S. Moradi's ``MPCM_fun``).

    For every pixel and cell size ``l`` the window of 3×3 cells of ``l×l`` pixels centred on the
    pixel is considered. With ``m_0`` the mean of the central cell and ``m_k`` the mean of the
    neighbour cell ``k`` (k = 1..8, clockwise from the top-left), ``d_k = m_0 − m_k``; the
    contrast at scale ``l`` is ``min over the 4 opposite pairs of d_k · d_{k+4}`` and the output
    is the maximum over the scales. Cell means are box means with edge-replicated borders (MATLAB
    ``imfilter(..., 'replicate')`` on double input).

    The paper's authors published no code; benchmarks run S. Moradi's MATLAB ``MPCM_fun`` (in
    ISTD-Benchmark as ``run_MSPCM.m``), whose default behaviour this function reproduces:

    * cell sizes 3, 5, 7, 9;
    * the pair products are **not** clipped at 0 and the map is signed: a flat region scores 0,
      an edge can score negative, and a *dark* spot scores positive (two negative differences
      multiply), unlike the paper's bright-target variant which keeps only pairs where both
      differences are positive. Keep this in mind when thresholding (``mean + k·std`` of the
      signed map).
    * double-precision means: with ``uint8`` input MATLAB's ``imfilter`` would round the means to
      integers; integer input is converted to float64 first here, as ``MPCM_fun`` does with
      ``double(img)``.

    Parameters
    ----------
    image : (H, W) array_like
        Grey image (raw intensities, e.g. 0–255).
    cell_sizes : sequence of int, optional
        Side lengths ``l`` of the cells (positive odd integers); default ``(3, 5, 7, 9)``.

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The MPCM map (squared intensity units; may be negative). 0 on a constant image.
        Invariant to adding a constant; ``mpcm(a·I) = a²·mpcm(I)``.

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array or a cell size is not a positive odd integer.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import mpcm
    >>> img = np.full((40, 40), 10.0)
    >>> img[19:22, 19:22] = 100.0
    >>> c = mpcm(img)
    >>> float(c[20, 20]), float(c[0, 0])
    (8100.0, 0.0)

    References
    ----------
    .. [1] Y. Wei, X. You, H. Li, "Multiscale patch-based contrast measure for small infrared
       target detection", Pattern Recognition 58:216–226, 2016.
       doi:10.1016/j.patcog.2016.04.002
    .. [2] S. Moradi, ``MPCM_fun.m``; ISTD-Benchmark ``detector/MSPCM/run_MSPCM.m``,
       https://github.com/Linaom1214/ISTD-Benchmark
    """
    img = as_float_image(image)
    sizes = check_cell_sizes(cell_sizes)
    h, w = img.shape
    R = max(l + l // 2 for l in sizes)  # farthest neighbour-cell pixel from the centre
    padded = np.pad(img, R, mode="edge")
    out = np.full((h, w), -np.inf)
    for l in sizes:
        half = l // 2
        means = _box_means(padded, l)  # means[i, j]: cell centred at padded (i + half, j + half)
        o = R - half

        def cell(dy, dx):
            return means[o + dy * l:o + dy * l + h, o + dx * l:o + dx * l + w]

        centre = cell(0, 0)
        scale = None
        for k in range(4):
            (ay, ax), (by, bx) = NEIGHBOURS[k], NEIGHBOURS[k + 4]
            prod = (centre - cell(ay, ax)) * (centre - cell(by, bx))
            scale = prod if scale is None else np.minimum(scale, prod, out=scale)
        np.maximum(out, scale, out=out)
    return out


def _box_means(padded: np.ndarray, l: int) -> np.ndarray:
    """Means of every ``l×l`` window entirely inside ``padded`` (shape shrinks by ``l − 1``)."""
    hp, wp = padded.shape
    rows = padded[:, :wp - l + 1].copy()
    for k in range(1, l):
        rows += padded[:, k:wp - l + 1 + k]
    box = rows[:hp - l + 1].copy()
    for k in range(1, l):
        box += rows[k:hp - l + 1 + k]
    box /= l * l
    return box
