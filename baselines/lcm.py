"""Local Contrast Measure (LCM), Chen et al. 2014."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irstd.errors import InputError

from ._common import as_float_image

__all__ = ["lcm"]

_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


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
    sizes = tuple(cell_sizes)
    if not sizes:
        raise InputError("cell_sizes: at least one cell size is needed")
    for l in sizes:
        if int(l) != l or l < 1 or l % 2 == 0:
            raise InputError(f"cell_sizes: {l!r} is not a positive odd integer")
    h, w = img.shape
    out = np.zeros((h, w))
    # 0/0 -> 0 and x/0 -> x/eps: divide by max(m_max, eps) with eps on the image's scale
    peak = float(img.max())
    eps = np.finfo(np.float64).eps * peak if peak > 0 else 1.0
    for l in sizes:
        l = int(l)
        half = l // 2
        # central maximum over the l x l cell, edge replication
        cmax = ndimage.maximum_filter(img, size=l, mode="nearest")
        # box means centred at every pixel of the padded image: pad by l + half so the means
        # centred at (y + dy*l, x + dx*l) exist for every pixel of the image
        pad = l + half
        padded = np.pad(img, pad, mode="edge")
        # box sum via summed-area table (exact windows of the edge-padded image)
        sat = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1))
        np.cumsum(np.cumsum(padded, axis=0), axis=1, out=sat[1:, 1:])
        # mean of the l x l window whose top-left corner is at (r, c) of `padded`
        box = (sat[l:, l:] - sat[:-l, l:] - sat[l:, :-l] + sat[:-l, :-l]) / (l * l)
        # window centred at padded (pad + y + dy*l, pad + x + dx*l) has top-left at
        # (pad + y + dy*l - half) = (l + y + dy*l)
        mmax = None
        for dy, dx in _OFFSETS:
            r0 = l + dy * l
            c0 = l + dx * l
            m = box[r0:r0 + h, c0:c0 + w]
            mmax = m.copy() if mmax is None else np.maximum(mmax, m, out=mmax)
        num = cmax * cmax
        c = np.divide(num, np.maximum(mmax, eps), out=np.zeros_like(num), where=num > 0)
        np.maximum(out, c, out=out)
    return out
