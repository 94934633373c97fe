"""An independent re-implementation of the community's reference evaluation, for tests only.

Written from the description of BasicIRSTD's ``metrics.py`` (docs/metrics.md, "Agreement with the community code")
(``mIoU`` and ``PD_FA`` classes, used by ``evaluate.py``) and ACM's samplewise nIoU, in their
loop form with scikit-image, including their data handling:

- prediction maps and masks are read as ``float32 = uint8 / 255``; the prediction is
  ``map > threshold`` (a boolean), which ``mIoU`` re-thresholds at ``> 0``;
- IoU counts come from ``np.histogram(bins=1, range=(1, 1))`` (numpy widens the range to
  [0.5, 1.5]): the label area counts GT ≥ 128, the intersection needs ``pred == gt``, i.e. GT
  exactly 255;
- Pd/Fa cast prediction and GT to int64 (truncation: only GT 255 counts), label with
  ``skimage.measure.label(connectivity=2)``, take ``regionprops`` centroids, match with the
  greedy first-found loop (``np.linalg.norm`` distance < 3, ``del`` the matched region);
- Fa is BasicIRSTD's corrected form (pixels of the regions left unmatched) unless
  ``area_filter=True``, which reproduces DNANet's area-value filter.

Nothing from the engine under test is imported here.
"""

from __future__ import annotations

import numpy as np
from skimage import measure


class ReferenceIoU:
    """BasicIRSTD's ``mIoU`` accumulator (dataset-level IoU) plus ACM's per-image nIoU."""

    def __init__(self):
        self.total_inter = 0
        self.total_union = 0
        self.total_correct = 0
        self.total_label = 0
        self.per_image = []

    def update(self, pred, gt):
        predict = (np.asarray(pred) > 0).astype(np.float32)
        target = np.asarray(gt, dtype=np.float32)
        pixel_labeled = (target > 0).astype(np.float32).sum()
        pixel_correct = ((predict == target).astype(np.float32) * (target > 0)).sum()
        intersection = predict * (predict == target).astype(np.float32)
        area_inter, _ = np.histogram(intersection, bins=1, range=(1, 1))
        area_pred, _ = np.histogram(predict, bins=1, range=(1, 1))
        area_lab, _ = np.histogram(target, bins=1, range=(1, 1))
        area_union = area_pred + area_lab - area_inter
        self.total_inter += area_inter
        self.total_union += area_union
        self.total_correct += pixel_correct
        self.total_label += pixel_labeled
        self.per_image.append(1.0 * area_inter[0] / (np.spacing(1) + area_union[0]))

    def get(self):
        pix_acc = 1.0 * self.total_correct / (np.spacing(1) + self.total_label)
        iou = 1.0 * self.total_inter / (np.spacing(1) + self.total_union)
        return float(pix_acc), float(iou.mean())

    def niou(self):
        return float(np.mean(self.per_image))


class ReferencePdFa:
    """BasicIRSTD's ``PD_FA`` accumulator, loop form."""

    def __init__(self, area_filter: bool = False):
        self.area_filter = area_filter
        self.dismatch_pixel = 0
        self.all_pixel = 0
        self.PD = 0
        self.target = 0

    def update(self, pred, gt, size):
        predits = np.array(pred).astype("int64")
        labelss = np.array(gt).astype("int64")
        image = measure.label(predits, connectivity=2)
        coord_image = measure.regionprops(image)
        label = measure.label(labelss, connectivity=2)
        coord_label = measure.regionprops(label)
        self.target += len(coord_label)
        image_area_total = [np.array(r.area) for r in coord_image]
        image_area_match = []
        distance_match = []
        for i in range(len(coord_label)):
            centroid_label = np.array(list(coord_label[i].centroid))
            for m in range(len(coord_image)):
                centroid_image = np.array(list(coord_image[m].centroid))
                distance = np.linalg.norm(centroid_image - centroid_label)
                area_image = np.array(coord_image[m].area)
                if distance < 3:
                    distance_match.append(distance)
                    image_area_match.append(area_image)
                    del coord_image[m]
                    break
        if self.area_filter:
            dismatch = [x for x in image_area_total if x not in image_area_match]
        else:
            dismatch = [r.area for r in coord_image]
        self.dismatch_pixel += np.sum(dismatch)
        self.all_pixel += size[0] * size[1]
        self.PD += len(distance_match)

    def get(self):
        return self.PD / self.target, float(self.dismatch_pixel / self.all_pixel)


def reference_evaluate(pairs, threshold=0.5, area_filter=False):
    """Run the reference over ``(score_map_float32, gt_float32)`` pairs (BasicIRSTD evaluate.py).

    Returns a dict with ``miou``, ``niou``, ``pd``, ``fa``, ``pixacc``, ``hits``, ``targets``,
    ``false_alarm_pixels``.
    """
    iou, pdfa = ReferenceIoU(), ReferencePdFa(area_filter)
    for scores, gt in pairs:
        pred = scores > threshold
        iou.update(pred, gt)
        pdfa.update(pred, gt, gt.shape)
    pixacc, miou = iou.get()
    pd, fa = pdfa.get()
    return {
        "miou": miou,
        "niou": iou.niou(),
        "pd": pd,
        "fa": fa,
        "pixacc": pixacc,
        "hits": pdfa.PD,
        "targets": pdfa.target,
        "false_alarm_pixels": int(pdfa.dismatch_pixel),
    }


def reference_roc_auc_ap(scores, gt):
    """AUC and AP by scikit-learn's definitions, by brute force over distinct thresholds.

    For every distinct score t (decreasing) the prediction is ``scores >= t``; ROC starts at
    (0, 0), AUC is the trapezoid; AP = Σ (R_n − R_{n−1}) P_n with R_0 = 0.
    """
    scores = np.concatenate([np.ravel(s) for s in scores]).astype(np.float64)
    gt = np.concatenate([np.ravel(g) for g in gt]).astype(bool)
    p, n = gt.sum(), (~gt).sum()
    fpr, tpr, recall, precision = [0.0], [0.0], [0.0], []
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        tp = np.sum(pred & gt)
        fp = np.sum(pred & ~gt)
        fpr.append(fp / n)
        tpr.append(tp / p)
        recall.append(tp / p)
        precision.append(tp / (tp + fp))
    auc = 0.0
    for k in range(1, len(fpr)):
        auc += (fpr[k] - fpr[k - 1]) * (tpr[k] + tpr[k - 1]) / 2
    ap = sum((recall[k + 1] - recall[k]) * precision[k] for k in range(len(precision)))
    return auc, ap
