"""Multiscale Relative Local Contrast Measure (RLCM), Han et al. 2018."""

from __future__ import annotations

import numpy as np

from irstd.errors import InputError

from ._common import as_float_image
from ._orderstat import largest_sums, value_codes, window_largest

__all__ = ["rlcm"]

#: (K1, K2) per scale in the public code: the centre cell's K1 largest values against the
#: neighbour cells' K2 largest values.
SCALES = ((2, 4), (5, 9), (9, 16))

#: Neighbour cells (dy, dx) in units of the cell size.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def rlcm(image, scales=SCALES, cell: int = 9) -> np.ndarray:
    """Multiscale relative local contrast measure, as the public MATLAB code computes it.

    For every pixel the window of 3×3 cells of ``cell×cell`` pixels (27×27 by default) centred
    on it is considered. At a scale ``(K1, K2)``, ``I_0`` is the mean of the ``K1`` largest
    values of the central cell and ``I_i`` (i = 1..8) the mean of the ``K2`` largest values of
    neighbour cell ``i``; the contrast is ``I_0² / max_i I_i − I_0``, the ratio–difference form
    ``min_i (I_0 / I_i) · (I_0 − I_i)`` written with one division. The output is the maximum over
    the scales, clipped at 0.

    Behaviour of the public code (``run_RLCM.m``, the version benchmarks run), reproduced here:

    * the cells are 9×9 pixels at **every** scale; the scales differ only in ``(K1, K2)`` =
      (2, 4), (5, 9), (9, 16);
    * order statistics come from MATLAB ``ordfilt2``, whose default pads with **zeros**: cells
      reaching outside the image count zeros there. Usually the largest values of a cell are
      inside the image and this changes nothing, but where a cell has fewer than ``K`` pixels
      inside, zeros enter its mean: a flat 1-row image of value 100 scores
      ``100² / (9·100/16) − 100 ≈ 77.8`` (the 16 largest values of a horizontal neighbour cell
      are 9 pixels and 7 zeros), not 0;
    * 0/0: where the centre and every neighbour cell are zero (black regions) the reference
      gives ``NaN`` and a positive centre on an all-zero surround ``+Inf``. As in
      :func:`~irstd.baselines.lcm`, 0/0 is 0 here and the division by an all-zero surround is
      by ``eps · max(image)`` instead, so the map is always finite.

    The 248 ``ordfilt2`` calls of the reference (one per rank and cell; 20–60 s per SIRST frame
    in Octave) become one exact order-statistics pass (``baselines/_orderstat.py``; ~10 ms).
    Against Octave runs of ``run_RLCM.m`` on 6 SIRST frames the maps are identical
    (difference 0).

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with **raw, non-negative intensities** (0–255 for 8-bit data). RLCM is
        scale-equivariant (``rlcm(a·I) = a·rlcm(I)``, ``a > 0``) but not shift-invariant.
    scales : sequence of (int, int), optional
        ``(K1, K2)`` per scale, each at most ``cell²``. Default ``((2, 4), (5, 9), (9, 16))``.
    cell : int, optional
        Side of the cells (odd), 9 in the public code.

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The RLCM map (≥ 0, same units as the input). 0 on a constant image.

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array, or ``cell``/``scales`` are invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import rlcm
    >>> img = np.full((60, 60), 100.0)
    >>> img[29:32, 29:32] = 200.0
    >>> c = rlcm(img)
    >>> float(c[30, 30]), float(c[10, 10])
    (200.0, 0.0)

    References
    ----------
    .. [1] J. Han, K. Liang, B. Zhou, X. Zhu, J. Zhao, L. Zhao, "Infrared Small Target Detection
       Utilizing the Multiscale Relative Local Contrast Measure", IEEE Geosci. Remote Sens. Lett.
       15(4):612–616, 2018. doi:10.1109/LGRS.2018.2790909
    .. [2] ISTD-Benchmark, ``detector/RLCM/run_RLCM.m`` (co-author MATLAB code),
       https://github.com/Linaom1214/ISTD-Benchmark
    """
    img = as_float_image(image)
    cell, scales = _check(cell, scales)
    h, w = img.shape
    half = cell // 2
    # cell centres up to one cell outside the image, on the zero-padded image (ordfilt2)
    codes, values = value_codes(np.pad(img, cell + half))
    ks = {k for pair in scales for k in pair}
    sums = largest_sums(window_largest(codes, cell, max(ks)), values, ks)

    def cells(k, dy, dx):  # sum of the k largest values of the cell (dy, dx) of every pixel
        return sums[k][cell + dy * cell:cell + dy * cell + h, cell + dx * cell:cell + dx * cell + w]

    peak = float(img.max())
    eps = np.finfo(np.float64).eps * peak if peak > 0 else 1.0
    out = np.zeros((h, w))
    for k1, k2 in scales:
        centre = cells(k1, 0, 0) / k1
        surround = cells(k2, *NEIGHBOURS[0]).copy()
        for dy, dx in NEIGHBOURS[1:]:
            np.maximum(surround, cells(k2, dy, dx), out=surround)
        surround /= k2  # max of the means: division by k2 > 0 keeps the order
        np.maximum(surround, eps, out=surround)  # x/0 -> x/eps
        num = centre * centre
        c = np.divide(num, surround, out=surround)
        c -= centre
        c[num <= 0] = 0.0  # 0/0 -> 0
        np.maximum(out, c, out=out)
    return out


def _check(cell, scales):
    if isinstance(cell, bool) or int(cell) != cell or cell < 1 or cell % 2 == 0:
        raise InputError(f"cell: {cell!r} is not a positive odd integer")
    cell = int(cell)
    pairs = []
    try:
        for k1, k2 in scales:
            pairs.append((k1, k2))
    except (TypeError, ValueError):
        raise InputError(f"scales: expected a sequence of (K1, K2) pairs, got {scales!r}") from None
    if not pairs:
        raise InputError("scales: at least one (K1, K2) pair is needed")
    for k in (k for pair in pairs for k in pair):
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= cell * cell:
            raise InputError(f"scales: {k!r} is not an integer in 1..{cell * cell}")
    return cell, [(int(a), int(b)) for a, b in pairs]
