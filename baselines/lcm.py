"""Local Contrast Measure (LCM), Chen et al. 2014."""

from __future__ import annotations

import numpy as np


from ._common import as_float_image, check_cell_sizes

__all__ = ["lcm"]


def lcm(image, cell_sizes=(3, 5, 7, 9)) -> np.ndarray:
    """Multiscale local contrast measure of a grey image.

    For every pixel and every cell size ``l`` the window of 3×3 cells centred on the pixel is
    considered: ``L`` is the maximum grey level of the central ``l×l`` cell, ``m_i`` the mean of
    the eight surrounding cells, and the contrast is ``C_l = L**2 / max_i m_i``
    (= ``min_i L**2 / m_i``, eq. (3) of the paper). The output is the pixel-wise maximum over the
    cell sizes (Algorithm 2). Borders are handled by edge replication, as in both reference
    implementations (MS_LCM ``imfilter(..., 'replicate')`` / ``imdilate``; the Python reference's
    ``BORDER_REPLICATE``). Where the central maximum and the neighbour means are all zero the
    references produce NaN (0/0); here such pixels are 0, and a bright centre on an all-zero
    surround is divided by ``eps * max(image)`` instead of 0, so the map is always finite.

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with **raw, non-negative intensities** (0–255 for 8-bit data, or 0–1). LCM is
        scale-equivariant, ``lcm(a * I) == a * lcm(I)``, but not shift-invariant: do not feed
        zero-mean data. Integer input is converted to float64 before squaring.
    cell_sizes : sequence of int, optional
        Side lengths ``l`` of the cells (odd). Default ``(3, 5, 7, 9)``: the scales used by every
        reference implementation.

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The contrast map ``Ĉ`` (same units as the input; ``Ĉ ≈ I`` on flat background).

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array or a cell size is not a positive odd integer.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import lcm, segment
    >>> img = np.full((40, 40), 100.0)
    >>> img[19:22, 19:22] = 200.0
    >>> c = lcm(img)
    >>> float(c[20, 20]), float(c[0, 0])
    (400.0, 100.0)
    >>> int(segment(c, 3).sum())
    121

    References
    ----------
    .. [1] C. L. P. Chen, H. Li, Y. Wei, T. Xia, Y. Y. Tang, "A Local Contrast Method for Small
       Infrared Target Detection", IEEE Trans. Geosci. Remote Sens. 52(1):574–581, 2014.
       doi:10.1109/TGRS.2013.2242477
    """
    img = as_float_image(image)
    sizes = check_cell_sizes(cell_sizes)
    h, w = img.shape
    out = np.zeros((h, w))
    # 0/0 -> 0 and x/0 -> x/eps: divide by max(m_max, eps) with eps on the image's scale
    peak = float(img.max())
    eps = np.finfo(np.float64).eps * peak if peak > 0 else 1.0
    hmax = sizes[-1] // 2
    R = sizes[-1] + hmax  # farthest neighbour-cell pixel from the centre pixel
    P = np.pad(img, R, mode="edge")  # edge replication, as imfilter 'replicate' / imdilate
    Wp = P.shape[1]
    # Row-wise sums and maxima over 2k+1 columns for k = 0..hmax, grown incrementally and kept
    # on the columns hmax..Wp-hmax-1 of P.
    cols = slice(hmax, Wp - hmax)
    hsum = P[:, cols].copy()
    hmx = hsum.copy()
    k_done = 0
    for l in sizes:
        half = l // 2
        for k in range(k_done + 1, half + 1):
            left = P[:, hmax - k:Wp - hmax - k]
            right = P[:, hmax + k:Wp - hmax + k]
            hsum += left
            hsum += right
            np.maximum(hmx, left, out=hmx)
            np.maximum(hmx, right, out=hmx)
        k_done = half
        mmax = _neighbour_mean_max(hsum, l, hmax, R, h, w)
        # central maximum over the l×l cell
        cm = hmx[R - half:R - half + h, R - hmax:R - hmax + w].copy()
        for k in range(1, l):
            np.maximum(cm, hmx[R - half + k:R - half + k + h, R - hmax:R - hmax + w], out=cm)
        num = np.multiply(cm, cm, out=cm)
        np.maximum(mmax, eps, out=mmax)
        c = np.divide(num, mmax, out=mmax, where=num > 0)
        c[num <= 0] = 0.0
        np.maximum(out, c, out=out)
    return out


def _neighbour_mean_max(hsum: np.ndarray, l: int, hmax: int, R: int, h: int, w: int) -> np.ndarray:
    """Per image pixel, the largest of the means of its eight neighbour ``l×l`` cells.

    ``hsum`` holds the row-wise sums over ``l`` columns of the image padded by ``R``, kept on
    the padded columns ``hmax..Wp-hmax-1``; the result has shape ``(h, w)``.
    """
    half = l // 2
    # column sums over 2*half+1 rows: box sums centred at padded rows hmax..Hp-hmax-1
    rows_n = hsum.shape[0] - 2 * hmax
    box = hsum[hmax - half:hmax - half + rows_n].copy()
    for k in range(1, l):
        box += hsum[hmax - half + k:hmax - half + k + rows_n]
    box /= l * l
    # box[i, j] is the mean of the l×l cell centred at padded (i + hmax, j + hmax); the
    # neighbour cell (dy, dx) of image pixel (y, x) is centred at (R + y + dy*l, ...).
    o = R - hmax
    top = box[o - l:o - l + h]
    mid = box[o:o + h]
    bot = box[o + l:o + l + h]
    mmax = np.maximum(top[:, o - l:o - l + w], top[:, o:o + w])
    for m in (top[:, o + l:o + l + w], mid[:, o - l:o - l + w], mid[:, o + l:o + l + w],
              bot[:, o - l:o - l + w], bot[:, o:o + w], bot[:, o + l:o + l + w]):
        np.maximum(mmax, m, out=mmax)
    return mmax
