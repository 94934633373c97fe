"""Tri-Layer Local Contrast Measure (TLLCM), Han, Moradi et al. 2020."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import as_float_image

__all__ = ["tllcm"]

#: Core filter of the co-author code: the 3×3 binomial (Gaussian) kernel.
CORE_KERNEL = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
CELL = 9  #: side of the surrounding cells
TOP = 9  #: the background of a cell is the mean of its TOP largest values

# Offsets (in cells) of the 8 surrounding cells of the 27×27 window.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def tllcm(image) -> np.ndarray:
    """Tri-layer local contrast measure as the co-author code computes it (``run_TLLCM.m``).

    * core: the image filtered by the 3×3 Gaussian ``[1 2 1; 2 4 2; 1 2 1] / 16`` with
      edge-replicated borders (MATLAB ``imfilter(img, k, 'replicate')``);
    * background: the window of 27×27 pixels centred on the pixel is split into 3×3 cells of
      9×9 pixels; for each of the 8 outer cells, ``B_k`` is the mean of its 9 largest values
      (MATLAB ``ordfilt2(img, 81 − i + 1, mask)`` for i = 1..9, whose default pads with
      **zeros**, so cells reaching outside the image count zeros there);
    * output: ``core² / max_k B_k − core``, clipped at 0.

    0/0: where the core and every background are zero (black regions) the reference computes
    ``0/0 = NaN``; as in :func:`~irstd.baselines.lcm`, such pixels are 0 here, and a positive
    core on an all-zero surround is divided by ``eps · max(image)`` instead of 0 (the reference
    gives ``+Inf``), so the map is always finite.

    Departures from the paper: the paper describes a multiscale measure (several core/cell sizes,
    the maximum over the scales) with the core of the mean of the largest values of the central
    cell; the public co-author code runs this single scale with the Gaussian-filtered core, and
    that code is what benchmarks run, so it is followed here.

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with **raw, non-negative intensities** (0–255 for 8-bit data). TLLCM is
        scale-equivariant (``tllcm(a·I) = a·tllcm(I)`` for ``a > 0``) but not shift-invariant.
        Integer input is converted to float64 first.

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The TLLCM map (≥ 0, same units as the input). 0 on a constant image of at least
        10×10 pixels (on smaller ones the zero padding lowers every outer cell of some pixels).

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import tllcm
    >>> img = np.full((60, 60), 100.0)
    >>> img[29:32, 29:32] = 200.0
    >>> c = tllcm(img)
    >>> float(c[30, 30]), float(c[0, 0])
    (200.0, 0.0)

    References
    ----------
    .. [1] J. Han, S. Moradi, I. Faramarzi, C. Liu, H. Zhang, Q. Zhao, "A Local Contrast Method
       for Infrared Small-Target Detection Utilizing a Tri-Layer Window", IEEE Geosci. Remote
       Sens. Lett. 17(10):1822–1826, 2020. doi:10.1109/LGRS.2019.2954578
    .. [2] ISTD-Benchmark, ``detector/TLLCM/run_TLLCM.m``,
       https://github.com/Linaom1214/ISTD-Benchmark
    """
    img = as_float_image(image)
    h, w = img.shape
    core = ndimage.correlate(img, CORE_KERNEL, mode="nearest")
    # background: the mean of the TOP largest values of every 9×9 cell, for cell centres up to
    # one cell outside the image, on the zero-padded image
    half = CELL // 2
    zpad = np.pad(img, CELL + half)
    top = top_k_mean(zpad, CELL, TOP)  # top[i, j]: cell centred at zpad (i + half, j + half)
    o = CELL
    bmax = None
    for dy, dx in _NEIGHBOURS:
        b = top[o + dy * CELL:o + dy * CELL + h, o + dx * CELL:o + dx * CELL + w]
        bmax = b.copy() if bmax is None else np.maximum(bmax, b, out=bmax)
    # 0/0 -> 0 and x/0 -> x/eps (eps on the image's scale), as in lcm()
    peak = float(img.max())
    eps = np.finfo(np.float64).eps * peak if peak > 0 else 1.0
    np.maximum(bmax, eps, out=bmax)
    num = core * core
    out = np.divide(num, bmax, out=bmax)
    out -= core
    np.maximum(out, 0.0, out=out)
    return out


def top_k_mean(a: np.ndarray, size: int, k: int) -> np.ndarray:
    """Mean of the ``k`` largest values of every ``size×size`` window entirely inside ``a``.

    Exact order statistics, without one sort per window: the ``size`` values of every vertical
    window are sorted once by a sorting pass over shifted copies (``np.sort`` along a short
    axis), then the sorted columns of a horizontal window are merged pairwise, by doubling,
    keeping the ``k`` largest in order (the ``i``-th largest of two sorted lists ``a, b`` is
    ``max over p + q = i + 1 of min(a_{p−1}, b_{q−1})``); the last merge only needs the sum of
    the ``k`` largest, ``Σ_i max(a_i, b_{k−1−i})``. Requires ``k <= size``.

    Returns an array of shape ``(H − size + 1, W − size + 1)``. Computed by blocks of output
    rows, so that the ``k`` sorted lists of a block stay in cache.
    """
    hp, wp = a.shape
    ho = hp - size + 1
    rows = max(1, _BLOCK_ELEMENTS // (k * wp))
    if ho <= rows:
        return _top_k_mean_block(a, size, k)
    out = np.empty((ho, wp - size + 1))
    for r0 in range(0, ho, rows):
        r1 = min(ho, r0 + rows)
        out[r0:r1] = _top_k_mean_block(a[r0:r1 + size - 1], size, k)
    return out


# Elements of one (k, rows, W) list array of top_k_mean's blocks: 512 KiB of float64 (on a
# 265×331 SIRST frame, interleaved timings on a loaded 2-core machine: median 40 ms, against 63 ms
# unblocked and 54 / 43 ms for 2^15 / 2^17 elements).
_BLOCK_ELEMENTS = 1 << 16


def _top_k_mean_block(a: np.ndarray, size: int, k: int) -> np.ndarray:
    """:func:`top_k_mean` of one block of rows."""
    hp, wp = a.shape
    ho, wo = hp - size + 1, wp - size + 1
    # columns: (k, ho, wp), descending, the k largest of each vertical window
    stack = np.stack([a[i:i + ho] for i in range(size)], axis=-1)
    stack.sort(axis=-1)
    cols = np.moveaxis(stack[..., ::-1][..., :k], -1, 0)
    cols = np.ascontiguousarray(cols)
    # merge horizontally: lists[span] covers `span` adjacent columns, starting at each column
    merged, span = cols, 1
    spans = {1: cols}
    while 2 * span <= size - 1:
        width = merged.shape[2] - span
        merged = _merge_sorted(merged[:, :, :width], merged[:, :, span:span + width])
        span *= 2
        spans[span] = merged
    # cover the remaining size - span columns with the largest stored spans, then the final sum
    rest = size - span
    total = merged[:, :, :wo]
    pos = span
    parts = []
    while rest > 0:
        s = max(x for x in spans if x <= rest)
        parts.append((pos, spans[s]))
        pos += s
        rest -= s
    for i, (p, lst) in enumerate(parts):
        b = lst[:, :, p:p + wo]
        if i == len(parts) - 1:
            return _top_sum(total, b) / k
        total = _merge_sorted(total, b)
    return total.sum(axis=0) / k


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ``k`` largest of two descending lists (axis 0), descending."""
    k = a.shape[0]
    out = np.empty_like(a)
    tmp = np.empty_like(a[0])
    for i in range(k):
        # candidates: a_i (p = i + 1, q = 0), b_i (p = 0, q = i + 1), min(a_{p-1}, b_{i-p})
        c = np.maximum(a[i], b[i], out=out[i])
        for p in range(1, i + 1):
            np.minimum(a[p - 1], b[i - p], out=tmp)
            np.maximum(c, tmp, out=c)
    return out


def _top_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of the ``k`` largest of two descending lists (axis 0)."""
    k = a.shape[0]
    total = np.maximum(a[0], b[k - 1])
    for i in range(1, k):
        total += np.maximum(a[i], b[k - 1 - i])
    return total
