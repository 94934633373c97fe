"""Pixel-level building blocks: input checks, thresholding, IoU counts, precision/recall/F1.

Every function here works on one image (2-D arrays) and returns plain numbers or arrays; the
dataset-level accumulation lives in :class:`irstd.metrics.Evaluator`.
"""

from __future__ import annotations

import numpy as np

from irstd.errors import InputError
from irstd.io import mask_from_image

__all__ = [
    "EPS",
    "as_mask",
    "as_scores",
    "iou",
    "iou_counts",
    "precision_recall_f1",
    "threshold_scores",
]

#: The ε of the community code (``np.spacing(1)`` ≈ 2.22e-16), added to IoU denominators.
EPS = float(np.spacing(1))

_INT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _where(image_id) -> str:
    return "image" if image_id is None else str(image_id)


def as_scores(scores, image_id=None) -> np.ndarray:
    """Check a score map and return it as float64 values in [0, 1].

    Parameters
    ----------
    scores : (H, W) ndarray
        Floating-point scores in [0, 1] (used as is, converted exactly to float64), an 8-bit or
        16-bit integer map (``value / 255`` or ``value / 65535``), or a boolean map (0 or 1).
        Logits must go through a sigmoid first; scores of classical methods must be normalised
        (e.g. min–max) first.
    image_id : str, optional
        Named in error messages.

    Returns
    -------
    scores : (H, W) ndarray of float64 or float32
        float32 (and float16) maps stay float32 so that thresholds are compared at the map's own
        precision (see :func:`threshold_scores`); integer and boolean maps become float64.

    Raises
    ------
    irstd.errors.InputError
        Not 2-D, empty, an unsupported dtype, NaN values, or values outside [0, 1].
    """
    where = _where(image_id)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise InputError(f"{where}: score map must be 2-D (H, W), got shape {scores.shape}")
    if scores.size == 0:
        raise InputError(f"{where}: score map is empty (shape {scores.shape})")
    if scores.dtype == np.bool_:
        return scores.astype(np.float64)
    if scores.dtype in _INT_SCALE:
        return scores.astype(np.float64) / _INT_SCALE[scores.dtype]
    if not np.issubdtype(scores.dtype, np.floating):
        raise InputError(
            f"{where}: score map has dtype {scores.dtype}; expected float in [0, 1], uint8 or uint16"
        )
    scores = scores.astype(np.float64 if scores.dtype == np.float64 else np.float32)
    low, high = float(scores.min()), float(scores.max())
    if np.isnan(low) or np.isnan(high):
        raise InputError(f"{where}: score map contains NaN")
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"{where}: scores must lie in [0, 1], found [{low:.6g}, {high:.6g}] "
            "(apply a sigmoid to logits, normalise other score maps)"
        )
    return scores


def as_mask(gt, image_id=None) -> np.ndarray:
    """Binarise a ground-truth mask once, with the rule of :func:`irstd.io.read_mask`.

    Parameters
    ----------
    gt : (H, W) ndarray
        Boolean mask (used as is), or a mask image: a pixel is target when its value is above
        half the mask's full value (:func:`irstd.io.mask_full_value`): ``> 127`` for 0/255
        masks, ``> 32767`` for 16-bit 0/65535 masks, ``> 0.5`` for float masks, value 1 for 0/1
        masks.
    image_id : str, optional
        Named in error messages.

    Returns
    -------
    mask : (H, W) ndarray of bool

    Notes
    -----
    The community code binarises differently in IoU (GT ≥ 128 in the union, exactly 255 in the
    intersection) and in Pd/Fa (exactly 255); on masks whose values are only 0 and 255, as in all
    public IRSTD datasets, every rule agrees.
    """
    where = _where(image_id)
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise InputError(f"{where}: ground-truth mask must be 2-D (H, W), got shape {gt.shape}")
    if gt.dtype == np.bool_:
        return gt
    if gt.dtype.kind not in "uif":
        raise InputError(f"{where}: ground-truth mask has unsupported dtype {gt.dtype}")
    if gt.dtype.kind == "f" and np.isnan(gt).any():
        raise InputError(f"{where}: ground-truth mask contains NaN")
    return mask_from_image(gt)


def threshold_scores(scores, threshold: float = 0.5) -> np.ndarray:
    """Predicted target pixels: ``scores > threshold`` (strict), at the map's own precision.

    Parameters
    ----------
    scores : ndarray of float32 or float64
        Scores in [0, 1] (see :func:`as_scores`).
    threshold : float, optional
        τ; 0.5 on probabilities is the same prediction as 0 on logits.

    Returns
    -------
    pred : ndarray of bool

    Notes
    -----
    A float32 map is compared with ``float32(threshold)``, as PyTorch and NumPy compare a float32
    array with a Python number; a float64 map with the float64 threshold. So an 8-bit value
    ``v / 255`` equal to τ (e.g. 153/255 = 0.6) is never above τ, whether the map arrives as
    uint8, as float32 or as float64.
    """
    scores = np.asarray(scores)
    if scores.dtype != np.float32:
        scores = scores.astype(np.float64, copy=False)
    return scores > scores.dtype.type(threshold)


def iou_counts(pred, gt) -> tuple[int, int]:
    """Intersection and union pixel counts of two binary maps.

    Parameters
    ----------
    pred, gt : ndarray of bool, same shape

    Returns
    -------
    intersection, union : int
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt)) - inter
    return inter, union


def iou(intersection, union, eps: float = EPS) -> float:
    """IoU with the community's ε: ``intersection / (union + eps)``.

    Summed counts give the dataset-accumulated IoU (reported as "mIoU"); per-image counts give
    one image's IoU (averaged into nIoU). An empty union scores 0.

    Parameters
    ----------
    intersection, union : int or float
    eps : float, optional
        ``np.spacing(1)`` by default.

    Returns
    -------
    float

    References
    ----------
    .. [1] Y. Dai, Y. Wu, F. Zhou, K. Barnard, "Asymmetric Contextual Modulation for Infrared
       Small Target Detection", WACV 2021 (nIoU).
    .. [2] B. Li et al., "Dense Nested Attention Network for Infrared Small Target Detection",
       IEEE TIP 2023 (the ``mIoU`` class also used by BasicIRSTD).
    """
    return float(intersection) / (float(union) + eps)


def precision_recall_f1(tp, fp, fn) -> tuple[float, float, float]:
    """Pixel precision, recall and F1 from confusion counts.

    Parameters
    ----------
    tp, fp, fn : int
        True positives, false positives, false negatives.

    Returns
    -------
    precision, recall, f1 : float
        ``P = TP / (TP + FP)``, ``R = TP / (TP + FN)``, ``F1 = 2PR / (P + R)``. A 0/0 ratio is
        defined as 0 (scikit-learn's ``zero_division=0``): no predicted pixels gives P = 0, no
        target pixels gives R = 0, and ``P + R = 0`` gives F1 = 0. No ε is added.
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
