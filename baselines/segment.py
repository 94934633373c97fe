"""Segmentation of a baseline map and score normalisation for curves."""

from __future__ import annotations

import numpy as np

from irstd.errors import InputError

__all__ = ["segment", "minmax"]


def _as_map(values, name="map"):
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D map, got shape {arr.shape}")
    return arr


def segment(values, k: float) -> np.ndarray:
    """Binary detection mask ``values > mean(values) + k·std(values)``.

    The adaptive threshold of the LCM paper (Algorithm 3, eq. (4)), also used for IPI and NRAM
    target images. Non-finite pixels are ignored in the statistics and never detected.
    A constant map gives an all-False mask.

    Parameters
    ----------
    values : (H, W) array_like
        Raw map returned by :func:`~irstd.baselines.lcm`, :func:`~irstd.baselines.ipi` or
        :func:`~irstd.baselines.nram`.
    k : float
        Number of standard deviations above the mean (see ``METHODS`` for the per-method
        defaults: LCM 3, IPI 10, NRAM 3).

    Returns
    -------
    mask : (H, W) ndarray of bool

    References
    ----------
    .. [1] C. L. P. Chen et al., "A Local Contrast Method for Small Infrared Target Detection",
       IEEE TGRS 52(1):574–581, 2014 (T = mean + k·std, k usually 3 to 5).
    """
    arr = _as_map(values)
    if not np.isfinite(k):
        raise InputError(f"k: must be a finite number, got {k!r}")
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, dtype=bool)
    vals = arr[finite]
    thr = vals.mean() + k * vals.std()
    with np.errstate(invalid="ignore"):
        mask = arr > thr
    return mask & finite


def minmax(values) -> np.ndarray:
    """Scores in [0, 1] for ROC/PR curves: ``(v − min) / (max − min)``.

    A constant map (or one without finite values) gives all zeros; non-finite pixels become 0.
    This normalisation is per image and only meant for score curves; the method's own
    detection rule is :func:`segment`.

    Parameters
    ----------
    values : (H, W) array_like

    Returns
    -------
    scores : (H, W) ndarray of float64 in [0, 1]
    """
    arr = _as_map(values)
    finite = np.isfinite(arr)
    out = np.zeros(arr.shape)
    if not finite.any():
        return out
    lo = arr[finite].min()
    hi = arr[finite].max()
    if not hi > lo:
        return out
    np.divide(arr - lo, hi - lo, out=out, where=finite)
    np.clip(out, 0.0, 1.0, out=out)
    return out
