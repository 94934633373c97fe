"""MSLCM: S. Moradi's multiscale LCM code (``MS_LCM``), as benchmark tables name it."""

from __future__ import annotations

import numpy as np

from .lcm import lcm

__all__ = ["mslcm"]


def mslcm(image, cell_sizes=(3, 5, 7, 9)) -> np.ndarray:
    """Multiscale local contrast measure of S. Moradi's ``MS_LCM`` code (``MLCM_fun.m``).

    BasicIRSTD's classical table lists "MSLCM" next to MSPCM: both are the MATLAB codes of
    S. Moradi (repositories ``MS_LCM`` and ``MS_PCM``), whose READMEs name the implemented papers
    (Chen et al.'s LCM [1]_, Wei et al.'s MPCM) and ask to cite Moradi et al. 2018 [2]_.
    ``MLCM_fun`` computes exactly Chen et al.'s multiscale LCM with cell sizes 3, 5, 7, 9:
    ``max_l L_l² / max_i m_{l,i}``, ``L_l`` the maximum of the central ``l×l`` cell
    (``imdilate``), ``m_{l,i}`` the means of the eight neighbour cells (``imfilter``,
    replicated borders). So this is :func:`~irstd.baselines.lcm` under the name the benchmark
    tables use: ``mslcm(I) == lcm(I)`` exactly (checked against Octave runs of ``MLCM_fun`` on
    SIRST frames: max relative difference 2e-15). The false-alarm-aware refinements discussed in
    [2]_ are not part of the public code and are not applied.

    Borders and 0/0 as in :func:`~irstd.baselines.lcm`: edge replication; where the central
    maximum and all neighbour means are zero the reference gives ``NaN`` (here 0), and a
    positive centre on an all-zero surround is divided by ``eps · max(image)`` (reference:
    ``+Inf``).

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with **raw, non-negative intensities** (0–255 for 8-bit data).
    cell_sizes : sequence of int, optional
        Cell sides (positive odd integers); default ``(3, 5, 7, 9)`` as ``MLCM_fun``.

    Returns
    -------
    contrast : (H, W) ndarray of float64
        The contrast map (``≈ I`` on flat background, same units as the input).

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array or a cell size is not a positive odd integer.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import mslcm
    >>> img = np.full((40, 40), 100.0)
    >>> img[19:22, 19:22] = 200.0
    >>> c = mslcm(img)
    >>> float(c[20, 20]), float(c[0, 0])
    (400.0, 100.0)

    References
    ----------
    .. [1] C. L. P. Chen, H. Li, Y. Wei, T. Xia, Y. Y. Tang, "A Local Contrast Method for Small
       Infrared Target Detection", IEEE Trans. Geosci. Remote Sens. 52(1):574–581, 2014.
       doi:10.1109/TGRS.2013.2242477
    .. [2] S. Moradi, P. Moallem, M. F. Sabahi, "A false-alarm aware methodology to develop
       robust and efficient multi-scale infrared small target detection algorithm", Infrared
       Phys. Technol. 89:387–397, 2018.
    .. [3] S. Moradi, ``MS_LCM`` (``MLCM_fun.m``), https://github.com/moradisaed/MS_LCM
    """
    return lcm(image, cell_sizes=cell_sizes)
