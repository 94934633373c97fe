"""The streaming accumulator: one :class:`Evaluator` per evaluation run."""

from __future__ import annotations

import math

import numpy as np

from irstd.errors import InputError
from irstd.metrics.curves import (
    CURVE_BINS,
    PdFaCurve,
    PrCurve,
    RocCurve,
    pr_from_histograms,
    roc_from_histograms,
    score_histograms,
)
from irstd.metrics.pixel import (
    EPS,
    as_mask,
    as_scores,
    iou,
    iou_counts,
    precision_recall_f1,
    threshold_scores,
)
from irstd.metrics.target import FA_RULES, MATCH_DISTANCE, components, match_targets

__all__ = ["DEFAULT_SWEEP", "PER_IMAGE_FIELDS", "Evaluator"]

#: Default thresholds of the Pd–Fa sweep: 0.00, 0.01, ..., 1.00 (k / 100, correctly rounded).
DEFAULT_SWEEP = np.arange(101) / 100.0

#: Columns of :attr:`Evaluator.per_image` rows, in order.
PER_IMAGE_FIELDS = (
    "id",
    "height",
    "width",
    "iou",
    "intersection",
    "union",
    "gt_pixels",
    "pred_pixels",
    "targets",
    "hits",
    "components",
    "false_alarm_pixels",
)


def _ratio(num, den) -> float:
    return float(num) / float(den) if den else float("nan")


class Evaluator:
    """Accumulate the IRSTD metrics image by image (BasicIRSTD semantics).

    Memory is constant in the number of images, apart from the optional per-image rows: the
    state is a handful of counters, two score histograms of ``CURVE_BINS`` levels and the Pd–Fa
    counters of the threshold sweep.

    Parameters
    ----------
    threshold : float, optional
        Predicted target pixels are ``scores > threshold`` (strict), 0.5 by default.
    max_distance : float, optional
        Centroid distance (pixels) below which, strictly, a predicted component detects a target.
    sweep : sequence of float or None, optional
        Thresholds of the target-level Pd–Fa curve (default 0.00..1.00 step 0.01); ``None``
        skips the curve (faster: one labelling per image instead of one per distinct mask).
    bins : int, optional
        Levels of the ROC/PR histograms (see :mod:`irstd.metrics.curves`).
    keep_per_image : bool, optional
        Keep one row per image in :attr:`per_image`.
    fa_rule : {"basicirstd", "dnanet"}, optional
        How false-alarm pixels are counted (:func:`irstd.metrics.match_targets`); ``dnanet``
        only to reproduce DNANet-protocol tables.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((16, 16), bool); gt[4:7, 4:7] = True
    >>> scores = np.where(gt, 0.9, 0.1)
    >>> ev = Evaluator()
    >>> row = ev.update(scores, gt, image_id="a")
    >>> s = ev.summary()
    >>> round(s["miou"], 6), s["pd"], s["fa"], s["targets"]
    (1.0, 1.0, 0.0, 1)

    References
    ----------
    .. [1] X. Ying et al., BasicIRSTD toolbox, https://github.com/XinyiYing/BasicIRSTD
       (``metrics.py``: ``mIoU`` and ``PD_FA``).
    .. [2] Y. Dai, Y. Wu, F. Zhou, K. Barnard, "Asymmetric Contextual Modulation for Infrared
       Small Target Detection", WACV 2021 (nIoU).
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        max_distance: float = MATCH_DISTANCE,
        sweep=DEFAULT_SWEEP,
        bins: int = CURVE_BINS,
        keep_per_image: bool = True,
        fa_rule: str = "basicirstd",
    ) -> None:
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"threshold: must lie in [0, 1], got {threshold:g}")
        if sweep is not None:
            sweep = np.asarray(sweep, dtype=np.float64).ravel()
            if sweep.size == 0 or np.isnan(sweep).any() or np.any(np.diff(sweep) <= 0):
                raise InputError("sweep: thresholds must be a non-empty increasing sequence")
        if fa_rule not in FA_RULES:
            raise InputError(f"fa_rule: expected one of {', '.join(FA_RULES)}, got {fa_rule!r}")
        if int(bins) < 2:
            raise InputError(f"bins: need at least 2 histogram levels, got {bins}")
        self.threshold = threshold
        self.max_distance = float(max_distance)
        self.sweep = sweep
        self.bins = int(bins)
        self.keep_per_image = bool(keep_per_image)
        self.fa_rule = fa_rule
        self.images = 0
        self.pixels = 0
        self.intersection = 0
        self.union = 0
        self.gt_pixels = 0
        self.pred_pixels = 0
        self.iou_sum = 0.0
        self.targets = 0
        self.hits = 0
        self.false_alarm_pixels = 0
        self.positives = np.zeros(self.bins, np.int64)
        self.negatives = np.zeros(self.bins, np.int64)
        n = 0 if sweep is None else sweep.size
        self.sweep_hits = np.zeros(n, np.int64)
        self.sweep_false_alarm_pixels = np.zeros(n, np.int64)
        self.sweep_intersection = np.zeros(n, np.int64)
        self.sweep_pred_pixels = np.zeros(n, np.int64)
        self.sweep_iou_sum = np.zeros(n, np.float64)
        self.per_image: list[dict] = []

    # -- accumulation -------------------------------------------------------------------------

    def update(self, scores, gt, image_id=None, pred=None) -> dict:
        """Add one image.

        Parameters
        ----------
        scores : (H, W) ndarray
            Scores in [0, 1] (float), or an 8/16-bit map (``value / max``); see
            :func:`irstd.metrics.as_scores`.
        gt : (H, W) ndarray
            Ground-truth mask (bool, 0/1 or 0/255; see :func:`irstd.metrics.as_mask`).
        image_id : str, optional
            Named in error messages and in the per-image row (default: the image's ordinal).
        pred : (H, W) ndarray of bool, optional
            The predicted target pixels, when a method decides by its own rule (e.g. a classical
            method's ``raw > mean + k·std``). Used instead of ``scores > threshold`` for IoU,
            nIoU, Pd, Fa, precision, recall and F1; the ROC/PR histograms and the Pd–Fa sweep
            still come from ``scores``.

        Returns
        -------
        dict
            This image's row (see :data:`PER_IMAGE_FIELDS`).

        Raises
        ------
        irstd.errors.InputError
            Size mismatch, NaN, scores outside [0, 1], not 2-D, ``pred`` not boolean or of
            another size. The evaluator is unchanged.
        """
        if image_id is None:
            image_id = f"image {self.images + 1}"
        scores = as_scores(scores, image_id)
        gt = as_mask(gt, image_id)
        if scores.shape != gt.shape:
            (h, w), (gh, gw) = scores.shape, gt.shape
            raise InputError(
                f"{image_id}: score map is {w}x{h} (WxH) but the ground-truth mask is {gw}x{gh}"
            )

        if pred is None:
            pred = threshold_scores(scores, self.threshold)
            own_rule = False
        else:
            pred = np.asarray(pred)
            if pred.dtype != np.bool_:
                raise InputError(f"{image_id}: pred must be a boolean mask, got dtype {pred.dtype}")
            if pred.shape != gt.shape:
                (h, w), (gh, gw) = pred.shape, gt.shape
                raise InputError(
                    f"{image_id}: predicted mask is {w}x{h} (WxH) but the ground-truth mask is {gw}x{gh}"
                )
            own_rule = True
        inter, union = iou_counts(pred, gt)
        pred_pixels = int(np.count_nonzero(pred))
        gt_pixels = int(np.count_nonzero(gt))
        targets = components(gt)
        match = match_targets(pred, gt, self.max_distance, gt_components=targets, fa_rule=self.fa_rule)
        positives, negatives = score_histograms(scores, gt, self.bins)
        if self.sweep is not None:
            sweep_inter, sweep_pred = self._sweep_pixels(scores, gt)
            sweep_hits, sweep_fa = self._sweep(scores, gt, targets, sweep_pred,
                                               None if own_rule else (pred_pixels, match))

        # Commit only once everything succeeded.
        self.images += 1
        self.pixels += int(gt.size)
        self.intersection += inter
        self.union += union
        self.gt_pixels += gt_pixels
        self.pred_pixels += pred_pixels
        image_iou = iou(inter, union, EPS)
        self.iou_sum += image_iou
        self.targets += match.targets
        self.hits += match.hits
        self.false_alarm_pixels += match.false_alarm_pixels
        self.positives += positives
        self.negatives += negatives
        if self.sweep is not None:
            self.sweep_hits += sweep_hits
            self.sweep_false_alarm_pixels += sweep_fa
            self.sweep_intersection += sweep_inter
            self.sweep_pred_pixels += sweep_pred
            self.sweep_iou_sum += sweep_inter / (sweep_pred + gt_pixels - sweep_inter + EPS)
        row = {
            "id": str(image_id),
            "height": int(gt.shape[0]),
            "width": int(gt.shape[1]),
            "iou": image_iou,
            "intersection": inter,
            "union": union,
            "gt_pixels": gt_pixels,
            "pred_pixels": pred_pixels,
            "targets": match.targets,
            "hits": match.hits,
            "components": match.components,
            "false_alarm_pixels": match.false_alarm_pixels,
        }
        if self.keep_per_image:
            self.per_image.append(row)
        return row

    def _sweep(self, scores, gt, targets, counts, known=None):
        """Hits and false-alarm pixels at every sweep threshold.

        The predictions are nested (a higher threshold keeps a subset), so two thresholds with
        the same number of predicted pixels (``counts``, from :meth:`_sweep_pixels`) give the
        same mask: it is made and labelled once. ``known`` is ``(pred_pixels, match)`` of the
        mask at ``self.threshold`` when already computed.
        """
        hits = np.zeros(self.sweep.size, np.int64)
        fa = np.zeros(self.sweep.size, np.int64)
        cache = {0: (0, 0)}
        if known is not None:
            pred_pixels, match = known
            cache[pred_pixels] = (match.hits, match.false_alarm_pixels)
        for k, t in enumerate(self.sweep):
            count = int(counts[k])
            if count not in cache:
                pred = threshold_scores(scores, t)
                m = match_targets(pred, gt, self.max_distance, gt_components=targets, fa_rule=self.fa_rule)
                cache[count] = (m.hits, m.false_alarm_pixels)
            hits[k], fa[k] = cache[count]
        return hits, fa

    def _sweep_pixels(self, scores, gt):
        """Intersection and predicted pixels of ``scores > t`` for every sweep threshold ``t``.

        One pass: ``searchsorted`` counts the thresholds strictly below each score, so a pixel
        is predicted at threshold ``k`` exactly when that count exceeds ``k``. The thresholds are
        taken at the map's precision, as :func:`~irstd.metrics.threshold_scores` compares them.
        """
        n = self.sweep.size
        below = np.searchsorted(self.sweep.astype(scores.dtype), scores.ravel(), side="left")
        pred = np.bincount(below, minlength=n + 1)[::-1].cumsum()[::-1][1:]
        inter = np.bincount(below[gt.ravel()], minlength=n + 1)[::-1].cumsum()[::-1][1:]
        return inter.astype(np.int64), pred.astype(np.int64)

    def merge(self, other: "Evaluator") -> "Evaluator":
        """Add another evaluator's images to this one (e.g. from a parallel worker).

        Parameters
        ----------
        other : Evaluator
            Built with the same threshold, distance, sweep and bins.

        Returns
        -------
        Evaluator
            ``self``, now covering both sets of images (per-image rows concatenated).
        """
        same_sweep = (self.sweep is None and other.sweep is None) or (
            self.sweep is not None
            and other.sweep is not None
            and np.array_equal(self.sweep, other.sweep)
        )
        if (
            self.threshold != other.threshold
            or self.max_distance != other.max_distance
            or self.bins != other.bins
            or self.fa_rule != other.fa_rule
            or not same_sweep
        ):
            raise ValueError("cannot merge evaluators with different settings")
        for name in (
            "images", "pixels", "intersection", "union", "gt_pixels", "pred_pixels", "iou_sum",
            "targets", "hits", "false_alarm_pixels",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.positives = self.positives + other.positives
        self.negatives = self.negatives + other.negatives
        for name in ("sweep_hits", "sweep_false_alarm_pixels", "sweep_intersection", "sweep_pred_pixels",
                     "sweep_iou_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.per_image.extend(other.per_image)
        return self

    # -- results -------------------------------------------------------------------------------

    def summary(self) -> dict:
        """The dataset-level metrics, as plain fractions.

        Returns
        -------
        dict
            ``miou`` (dataset-accumulated IoU), ``niou`` (mean per-image IoU), ``pd``, ``fa``
            (fraction of pixels; ×10⁶ for the customary unit), ``auc``, ``ap``, ``precision``,
            ``recall``, ``f1`` (pixel level at ``threshold``), ``threshold``, ``images``,
            ``targets``, ``hits``, ``pixels``, ``false_alarm_pixels``, ``tp``, ``fp``, ``fn``.
            Undefined ratios (no image, no target) are NaN.
        """
        tp = self.intersection
        fp = self.pred_pixels - self.intersection
        fn = self.gt_pixels - self.intersection
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        roc, pr = self.roc(), self.pr()
        return {
            "miou": iou(self.intersection, self.union, EPS) if self.images else float("nan"),
            "niou": _ratio(self.iou_sum, self.images),
            "pd": _ratio(self.hits, self.targets),
            "fa": _ratio(self.false_alarm_pixels, self.pixels),
            "auc": roc.auc,
            "ap": pr.ap,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "threshold": self.threshold,
            "images": self.images,
            "targets": self.targets,
            "hits": self.hits,
            "pixels": self.pixels,
            "false_alarm_pixels": self.false_alarm_pixels,
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }

    def best_threshold(self) -> dict | None:
        """The metrics at the sweep threshold with the highest dataset IoU (oracle protocol).

        Dai et al.'s protocol for saliency maps of classical methods: normalise the maps, sweep
        thresholds and report the best one's metrics. The threshold is chosen on the very images
        evaluated, so the figures are optimistic; they are what papers mean by a classical
        method's "best threshold" row. Ties go to the lowest threshold.

        Returns
        -------
        dict or None
            ``threshold``, ``miou``, ``niou``, ``pd``, ``fa``, ``precision``, ``recall``, ``f1``,
            ``hits``, ``false_alarm_pixels``, ``tp``, ``fp``, ``fn`` (masks ``scores > threshold``
            on every image, whatever rule :meth:`summary` used); ``None`` without a sweep or
            images.

        References
        ----------
        .. [1] Y. Dai et al., "Asymmetric Contextual Modulation for Infrared Small Target
           Detection", WACV 2021, and https://github.com/YimianDai/open-acm/issues/15.
        """
        if self.sweep is None or not self.images:
            return None
        union = self.sweep_pred_pixels + self.gt_pixels - self.sweep_intersection
        k = int(np.argmax(self.sweep_intersection / (union + EPS)))
        tp = int(self.sweep_intersection[k])
        fp = int(self.sweep_pred_pixels[k]) - tp
        fn = self.gt_pixels - tp
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        return {
            "threshold": float(self.sweep[k]),
            "miou": iou(tp, int(union[k]), EPS),
            "niou": float(self.sweep_iou_sum[k]) / self.images,
            "pd": _ratio(self.sweep_hits[k], self.targets),
            "fa": _ratio(self.sweep_false_alarm_pixels[k], self.pixels),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "hits": int(self.sweep_hits[k]),
            "false_alarm_pixels": int(self.sweep_false_alarm_pixels[k]),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }

    def roc(self) -> RocCurve:
        """Pixel ROC over all score levels seen (exact for 8- and 16-bit maps)."""
        return roc_from_histograms(self.positives, self.negatives)

    def pr(self) -> PrCurve:
        """Pixel precision–recall curve over all score levels seen, with AP."""
        return pr_from_histograms(self.positives, self.negatives)

    def pd_fa_curve(self) -> PdFaCurve:
        """Target-level Pd–Fa curve over the sweep thresholds.

        Raises
        ------
        ValueError
            The evaluator was built with ``sweep=None``.
        """
        if self.sweep is None:
            raise ValueError("this evaluator was built with sweep=None (no Pd-Fa curve)")
        pd = (
            self.sweep_hits / self.targets
            if self.targets
            else np.full(self.sweep.size, math.nan)
        )
        fa = (
            self.sweep_false_alarm_pixels / self.pixels
            if self.pixels
            else np.full(self.sweep.size, math.nan)
        )
        return PdFaCurve(
            thresholds=self.sweep.copy(),
            pd=np.asarray(pd, dtype=np.float64),
            fa=np.asarray(fa, dtype=np.float64),
            hits=self.sweep_hits.copy(),
            false_alarm_pixels=self.sweep_false_alarm_pixels.copy(),
            targets=self.targets,
            pixels=self.pixels,
        )
