"""MSPCM: S. Moradi's multiscale patch-based contrast code (``MS_PCM``), as benchmarks name it."""

from __future__ import annotations

import numpy as np

from .mpcm import mpcm

__all__ = ["mspcm"]


def mspcm(image, cell_sizes=(3, 5, 7, 9)) -> np.ndarray:
    """Multiscale patch-based contrast measure of S. Moradi's ``MS_PCM`` code (``MPCM_fun.m``).

    BasicIRSTD's classical table lists "MSPCM" next to MSLCM: both are the MATLAB codes of
    S. Moradi (repositories ``MS_PCM`` and ``MS_LCM``), whose READMEs name the implemented papers
    (Wei et al.'s MPCM [1]_, Chen et al.'s LCM) and ask to cite Moradi et al. 2018 [2]_.
    ISTD-Benchmark ships the same function as ``run_MSPCM.m``. For every cell size
    ``l ∈ {3, 5, 7, 9}``: ``d_k = m_0 − m_k`` with ``m_0`` the mean of the central ``l×l`` cell
    and ``m_k`` those of the eight neighbour cells (``imfilter``, replicated borders); the
    scale's value is ``min`` over the four opposite pairs of ``d_k · d_{k+4}``; the output is
    the maximum over the scales.

    That is the computation of :func:`~irstd.baselines.mpcm`, so this is that function under
    the name the benchmark tables use: ``mspcm(I) == mpcm(I)`` (checked against Octave runs of
    ``run_MSPCM.m`` on SIRST frames). Quirks kept from the code: the map is signed and not
    clipped (a flat region scores 0, an edge can score negative, a dark spot scores positive);
    means in double precision (the code on ``uint8`` input would round them). No division, so
    no 0/0 case. The false-alarm-aware refinements discussed in [2]_ are not part of the public
    code and are not applied.

    Parameters
    ----------
    image : (H, W) array_like
        Grey image (raw intensities, e.g. 0–255).
    cell_sizes : sequence of int, optional
        Cell sides (positive odd integers); default ``(3, 5, 7, 9)`` as ``MPCM_fun``.

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The signed contrast map (squared intensity units). 0 on a constant image.

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array or a cell size is not a positive odd integer.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import mspcm
    >>> img = np.full((40, 40), 10.0)
    >>> img[19:22, 19:22] = 100.0
    >>> c = mspcm(img)
    >>> float(c[20, 20]), float(c[0, 0])
    (8100.0, 0.0)

    References
    ----------
    .. [1] Y. Wei, X. You, H. Li, "Multiscale patch-based contrast measure for small infrared
       target detection", Pattern Recognition 58:216–226, 2016.
       doi:10.1016/j.patcog.2016.04.002
    .. [2] S. Moradi, P. Moallem, M. F. Sabahi, "A false-alarm aware methodology to develop
       robust and efficient multi-scale infrared small target detection algorithm", Infrared
       Phys. Technol. 89:387–397, 2018.
    .. [3] S. Moradi, ``MS_PCM`` (``MPCM_fun.m``); ISTD-Benchmark ``detector/MSPCM/run_MSPCM.m``,
       https://github.com/Linaom1214/ISTD-Benchmark
    """
    return mpcm(image, cell_sizes=cell_sizes)
