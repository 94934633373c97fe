"""Pixel ROC and precision–recall curves (exact, and from streaming score histograms).

Streaming rule
--------------
An :class:`~irstd.metrics.Evaluator` cannot keep every pixel score of a dataset, so it keeps two
histograms (target pixels, background pixels) over ``CURVE_BINS = 65536`` levels: a score ``s``
goes to level ``round(65535 · s)``. Every 16-bit value ``v / 65535`` and every 8-bit value
``v / 255 = 257 v / 65535`` is a level of its own (also after a float32 round trip, whose error is
far below half a level), so for 8- and 16-bit score maps the histogram curves are *exactly* the
curves over all distinct scores (the AUC and AP equal scikit-learn's ``roc_auc_score`` and
``average_precision_score`` on the raw scores, up to float64 rounding in the sums). Float maps
are quantised to the nearest level first (|Δs| ≤ 1 / 131070 ≈ 7.6e-6): their curves are the exact
curves of the quantised scores, and scores closer than one level may merge into one operating
point. The thresholded metrics (IoU, Pd, Fa, precision, recall, F1) always use the raw scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CURVE_BINS",
    "PdFaCurve",
    "PrCurve",
    "RocCurve",
    "average_precision",
    "pr_curve",
    "pr_from_histograms",
    "roc_auc",
    "roc_curve",
    "roc_from_histograms",
    "score_histograms",
    "score_levels",
]

#: Number of score levels of the streaming histograms (levels k / 65535, k = 0..65535).
CURVE_BINS = 65536


@dataclass(frozen=True)
class RocCurve:
    """Pixel-level ROC curve.

    Attributes
    ----------
    fpr, tpr : (K + 1,) ndarray of float64
        False- and true-positive rates, starting at (0, 0).
    thresholds : (K + 1,) ndarray of float64
        Point k predicts target where ``score >= thresholds[k]`` (the distinct scores in
        decreasing order; ``inf`` for the starting point), as scikit-learn's ``roc_curve``.
    auc : float
        Trapezoidal area under the curve; NaN without target or without background pixels.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


@dataclass(frozen=True)
class PrCurve:
    """Pixel-level precision–recall curve.

    Attributes
    ----------
    recall, precision : (K + 1,) ndarray of float64
        Point k predicts target where ``score >= thresholds[k]``; the last point is scikit-learn's
        end point (recall 0, precision 1).
    thresholds : (K + 1,) ndarray of float64
        Distinct scores in decreasing order, then ``inf`` for the end point.
    ap : float
        Average precision ``Σ_n (R_n − R_{n−1}) P_n``; NaN without target pixels.
    """

    recall: np.ndarray
    precision: np.ndarray
    thresholds: np.ndarray
    ap: float


@dataclass(frozen=True)
class PdFaCurve:
    """Target-level Pd–Fa curve over a threshold sweep (``score > threshold``).

    Attributes
    ----------
    thresholds : (T,) ndarray of float64
    pd : (T,) ndarray of float64
        Σ hits / Σ targets at each threshold (NaN without targets).
    fa : (T,) ndarray of float64
        Σ unmatched predicted pixels / Σ pixels at each threshold (a fraction; ×10⁶ for the
        customary unit).
    hits, false_alarm_pixels : (T,) ndarray of int64
    targets, pixels : int
    """

    thresholds: np.ndarray
    pd: np.ndarray
    fa: np.ndarray
    hits: np.ndarray
    false_alarm_pixels: np.ndarray
    targets: int
    pixels: int


def score_levels(scores, bins: int = CURVE_BINS) -> np.ndarray:
    """Histogram level of each score: ``round((bins - 1) · s)``.

    Parameters
    ----------
    scores : ndarray of float in [0, 1]
    bins : int, optional

    Returns
    -------
    ndarray of intp
    """
    return np.rint(np.asarray(scores, dtype=np.float64) * (bins - 1)).astype(np.intp)


def score_histograms(scores, gt, bins: int = CURVE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Counts of target and background pixels per score level.

    Parameters
    ----------
    scores : ndarray of float in [0, 1]
    gt : ndarray of bool, same shape
    bins : int, optional

    Returns
    -------
    positives, negatives : (bins,) ndarray of int64
    """
    levels = score_levels(scores, bins).ravel()
    gt = np.asarray(gt, dtype=bool).ravel()
    total = np.bincount(levels, minlength=bins)
    positives = np.bincount(levels[gt], minlength=bins)
    return positives.astype(np.int64), (total - positives).astype(np.int64)


def _cumulative(positives, negatives, values):
    """Cumulative TP/FP counts at each occupied level, from the highest score down."""
    occupied = np.flatnonzero((positives + negatives) > 0)[::-1]
    tps = np.cumsum(positives[occupied]).astype(np.float64)
    fps = np.cumsum(negatives[occupied]).astype(np.float64)
    return tps, fps, values[occupied]


def _roc(tps, fps, thresholds) -> RocCurve:
    tps = np.concatenate([[0.0], tps])
    fps = np.concatenate([[0.0], fps])
    thresholds = np.concatenate([[np.inf], thresholds])
    p, n = tps[-1], fps[-1]
    tpr = tps / p if p > 0 else np.full_like(tps, np.nan)
    fpr = fps / n if n > 0 else np.full_like(fps, np.nan)
    auc = roc_auc(fpr, tpr) if p > 0 and n > 0 else float("nan")
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=auc)


def _pr(tps, fps, thresholds) -> PrCurve:
    p = tps[-1] if tps.size else 0.0
    precision = tps / (tps + fps)
    recall = tps / p if p > 0 else np.full_like(tps, np.nan)
    recall = np.concatenate([recall, [0.0]])
    precision = np.concatenate([precision, [1.0]])
    thresholds = np.concatenate([thresholds, [np.inf]])
    ap = average_precision(recall[:-1], precision[:-1]) if p > 0 else float("nan")
    return PrCurve(recall=recall, precision=precision, thresholds=thresholds, ap=ap)


def _levels(bins):
    return np.arange(bins, dtype=np.float64) / (bins - 1)


def roc_from_histograms(positives, negatives) -> RocCurve:
    """ROC curve from per-level target/background counts (see :func:`score_histograms`).

    Parameters
    ----------
    positives, negatives : (bins,) ndarray of int

    Returns
    -------
    RocCurve
    """
    positives, negatives = np.asarray(positives), np.asarray(negatives)
    return _roc(*_cumulative(positives, negatives, _levels(positives.size)))


def pr_from_histograms(positives, negatives) -> PrCurve:
    """Precision–recall curve from per-level target/background counts.

    Parameters
    ----------
    positives, negatives : (bins,) ndarray of int

    Returns
    -------
    PrCurve
    """
    positives, negatives = np.asarray(positives), np.asarray(negatives)
    return _pr(*_cumulative(positives, negatives, _levels(positives.size)))


def _exact(scores, gt):
    scores = np.asarray(scores, dtype=np.float64).ravel()
    gt = np.asarray(gt, dtype=bool).ravel()
    values, inverse = np.unique(scores, return_inverse=True)
    positives = np.bincount(inverse, weights=gt, minlength=values.size).astype(np.int64)
    negatives = np.bincount(inverse, minlength=values.size) - positives
    return _cumulative(positives, negatives, values)


def roc_curve(scores, gt) -> RocCurve:
    """Exact pixel ROC curve over all distinct scores (no quantisation).

    Parameters
    ----------
    scores : ndarray of float
    gt : ndarray of bool, same shape

    Returns
    -------
    RocCurve

    References
    ----------
    .. [1] T. Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 27(8),
       2006.
    """
    return _roc(*_exact(scores, gt))


def pr_curve(scores, gt) -> PrCurve:
    """Exact pixel precision–recall curve over all distinct scores (no quantisation).

    Parameters
    ----------
    scores : ndarray of float
    gt : ndarray of bool, same shape

    Returns
    -------
    PrCurve
    """
    return _pr(*_exact(scores, gt))


def roc_auc(fpr, tpr) -> float:
    """Trapezoidal area under a ROC curve.

    Parameters
    ----------
    fpr, tpr : ndarray
        Points in increasing ``fpr`` order.

    Returns
    -------
    float
    """
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(recall, precision) -> float:
    """Average precision as scikit-learn defines it: ``Σ_n (R_n − R_{n−1}) P_n``.

    A step-wise sum, not a trapezoid (which would be optimistic for PR curves).

    Parameters
    ----------
    recall, precision : ndarray
        Operating points in order of decreasing threshold (increasing recall); ``R_0 = 0``.

    Returns
    -------
    float

    References
    ----------
    .. [1] scikit-learn, ``sklearn.metrics.average_precision_score``.
    .. [2] M. Zhu, "Recall, Precision and Average Precision", University of Waterloo, 2004.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
