"""Weighted Strengthened Local Contrast Measure (WSLCM), Han, Moradi et al. 2021."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irstd.errors import InputError

from ._common import as_float_image
from ._orderstat import largest_sums, value_codes, window_largest

__all__ = ["wslcm"]

#: Core filter of the co-author code: the 3×3 binomial (Gaussian) kernel.
CORE_KERNEL = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0

#: Neighbour cells (dy, dx) in units of the cell size (the public code's mask1..mask8).
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def wslcm(image, cell_sizes=(5, 7, 9, 11), top: int = 9, xi: float = 5.0) -> np.ndarray:
    """Weighted strengthened local contrast measure, as the co-author code computes it.

    Steps of the public code (``run_WSLCM.m``), reproduced here:

    1. ``f`` = the image median-filtered over 3×3 (MATLAB ``medfilt2``, which pads with
       **zeros**: border pixels take the median with zeros);
       ``g`` = ``f`` filtered by ``[1 2 1; 2 4 2; 1 2 1] / 16`` with replicated borders.
    2. For every cell size ``s`` the window of 3×3 cells of ``s×s`` pixels centred on the pixel
       is considered. For the centre cell (``j = 0``) and the eight neighbours (``j = 1..8``):
       ``M_j`` = mean of the ``top`` (9) largest values of ``f`` in the cell (``ordfilt2``, zero
       padding), ``m_j`` = mean of the cell (``imfilter``, **replicated** borders), and
       ``IRIL_j = M_j − m_j``.
    3. ``SLCM = max(g² / max_{j≥1} M_j − g, 0)``;
       ``WD = max(IRIL_0 − max_{j≥1} IRIL_j, 0)``;
       ``WB`` = sample standard deviation (``n − 1``) of ``IRIL_1..8``, replaced by ``xi`` where
       it is not above ``xi`` (5, in the grey levels of 8-bit data);
       ``WSLCM_s = (IRIL_0 · WD / WB) · SLCM``.
    4. The output is the maximum over the cell sizes 5, 7, 9, 11.

    The map is not clipped: where ``IRIL_0 < 0`` (possible near the borders, zero-padded order
    statistics against replicated means) and still above every ``IRIL_j``, the product is
    negative, as in the reference (not seen on real or random test images).

    0/0: where ``g`` and every ``M_j`` are zero the reference gives ``NaN`` (and ``+Inf`` for a
    positive ``g`` on an all-zero surround); as in :func:`~irstd.baselines.lcm`, ``SLCM`` is 0
    there and an all-zero surround is replaced by ``eps · max(image)``, so the map is always
    finite.

    The reference makes 324 ``ordfilt2`` calls per frame (9 ranks × 9 cells × 4 sizes; 30–40 s
    per SIRST frame in Octave); here the neighbour cells are shifts of the centre cell's map and
    all ranks come from one exact order-statistics pass per size (``baselines/_orderstat.py``):
    ~50 ms per frame on a loaded 2-core machine. Against Octave runs of ``run_WSLCM.m`` on 3
    SIRST frames the maps are identical (difference 0).

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with **raw intensities** (0–255 for 8-bit data): ``xi`` is in grey levels,
        so the map is neither scale- nor shift-invariant.
    cell_sizes : sequence of int, optional
        Cell sides ``s`` (odd, ``s² ≥ top``). Default ``(5, 7, 9, 11)``.
    top : int, optional
        Number of largest values averaged per cell (``K`` = 9 in the public code).
    xi : float, optional
        Floor of the background weight ``WB`` (5 in the public code).

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The WSLCM map (squared intensity units; ≥ 0 but for the border case above).
        0 on a constant image.

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array, or a parameter is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import wslcm
    >>> img = np.full((60, 60), 100.0)
    >>> img[29:32, 29:32] = 200.0
    >>> c = wslcm(img)
    >>> [int(i) for i in np.unravel_index(np.argmax(c), c.shape)], float(c[10, 10])
    ([30, 30], 0.0)

    References
    ----------
    .. [1] J. Han, S. Moradi, I. Faramarzi, C. Liu, H. Zhang, Q. Zhao, X. Zhang, N. Li,
       "Infrared Small Target Detection Based on the Weighted Strengthened Local Contrast
       Measure", IEEE Geosci. Remote Sens. Lett. 18(9):1670–1674, 2021.
       doi:10.1109/LGRS.2020.3004978
    .. [2] ISTD-Benchmark, ``detector/WSLCM/run_WSLCM.m`` (co-author MATLAB code),
       https://github.com/Linaom1214/ISTD-Benchmark
    """
    img = as_float_image(image)
    sizes, top, xi = _check(cell_sizes, top, xi)
    h, w = img.shape
    # 1. 3×3 median with zero padding, in the order-preserving codes of the image (and 0)
    codes, values = value_codes(np.pad(img, 1))
    med_codes = window_largest(codes, 3, 5)[4]
    f = values.take(med_codes)
    g = ndimage.correlate(f, CORE_KERNEL, mode="nearest")
    # order statistics of f with zero padding and box means with replicated borders, for cell
    # centres up to one cell outside the image
    R = max(s + s // 2 for s in sizes)
    zero = np.searchsorted(values, 0.0)  # 0 is among the values: the median input was padded
    fcodes = np.pad(med_codes, R, constant_values=zero)
    fedge = np.pad(f, R, mode="edge")
    peak = float(img.max())
    eps = np.finfo(np.float64).eps * peak if peak > 0 else 1.0
    num = g * g
    out = np.full((h, w), -np.inf)
    for s in sizes:
        half = s // 2
        tops = largest_sums(window_largest(fcodes, s, top), values, [top])[top]
        tops /= top
        means = _box_means(fedge, s)
        o = R - half  # tops[i, j], means[i, j]: cell centred at padded (i + half, j + half)

        def cell(a, dy, dx):
            return a[o + dy * s:o + dy * s + h, o + dx * s:o + dx * s + w]

        iril0 = cell(tops, 0, 0) - cell(means, 0, 0)
        background = np.full((h, w), -np.inf)
        iril = np.empty((8, h, w))
        for n, (dy, dx) in enumerate(NEIGHBOURS):
            m = cell(tops, dy, dx)
            np.maximum(background, m, out=background)
            np.subtract(m, cell(means, dy, dx), out=iril[n])
        # strengthened local contrast, 0/0 -> 0 and x/0 -> x/eps as in lcm()
        np.maximum(background, eps, out=background)
        slcm = np.divide(num, background, out=background)
        slcm -= g
        slcm[num <= 0] = 0.0
        np.maximum(slcm, 0.0, out=slcm)
        # weights: target difference WD, background dispersion WB (floored at xi)
        wd = np.maximum(iril0 - iril.max(axis=0), 0.0)
        wb = iril.std(axis=0, ddof=1)
        wb[~(wb > xi)] = xi
        weight = iril0 * wd
        weight /= wb
        weight *= slcm
        np.maximum(out, weight, out=out)
    return out


def _box_means(a: np.ndarray, s: int) -> np.ndarray:
    """Means of every ``s×s`` window entirely inside ``a`` (top-left corner indexing).

    Plain sums of shifted copies: exact for integer-valued data, so the means round exactly as
    MATLAB's ``imfilter(f, ones(s)) / s²`` does.
    """
    hp, wp = a.shape
    rows = a[:, :wp - s + 1].copy()
    for k in range(1, s):
        rows += a[:, k:wp - s + 1 + k]
    box = rows[:hp - s + 1].copy()
    for k in range(1, s):
        box += rows[k:hp - s + 1 + k]
    box /= s * s
    return box


def _check(cell_sizes, top, xi):
    sizes = tuple(cell_sizes)
    if not sizes:
        raise InputError("cell_sizes: at least one cell size is needed")
    if isinstance(top, bool) or int(top) != top or top < 1:
        raise InputError(f"top: {top!r} is not a positive integer")
    top = int(top)
    for s in sizes:
        if isinstance(s, bool) or int(s) != s or s < 1 or s % 2 == 0:
            raise InputError(f"cell_sizes: {s!r} is not a positive odd integer")
        if s * s < top:
            raise InputError(f"cell_sizes: a {s}×{s} cell has fewer than top={top} values")
    if not np.isfinite(xi) or xi <= 0:
        raise InputError(f"xi: must be a positive finite number, got {xi!r}")
    return sorted({int(s) for s in sizes}), top, float(xi)
