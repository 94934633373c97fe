"""The metrics engine: the community definitions of mIoU, nIoU, Pd, Fa, plus ROC/PR curves.

Defaults follow BasicIRSTD (see ``docs/metrics.md``): ``scores > 0.5`` strictly, ground truth
binarised once, 8-connected components, centroid distance < 3 px, greedy first-found matching,
Fa = pixels of unmatched predicted components / all pixels.
"""

from irstd.metrics.curves import (
    CURVE_BINS,
    PdFaCurve,
    PrCurve,
    RocCurve,
    average_precision,
    pr_curve,
    pr_from_histograms,
    roc_auc,
    roc_curve,
    roc_from_histograms,
    score_histograms,
    score_levels,
)
from irstd.metrics.evaluator import DEFAULT_SWEEP, PER_IMAGE_FIELDS, Evaluator
from irstd.metrics.pixel import (
    EPS,
    as_mask,
    as_scores,
    iou,
    iou_counts,
    precision_recall_f1,
    threshold_scores,
)
from irstd.metrics.target import (
    FA_RULES,
    MATCH_DISTANCE,
    Components,
    TargetMatch,
    components,
    match_centroids,
    match_targets,
)

__all__ = [
    "CURVE_BINS",
    "DEFAULT_SWEEP",
    "EPS",
    "FA_RULES",
    "MATCH_DISTANCE",
    "PER_IMAGE_FIELDS",
    "Components",
    "Evaluator",
    "PdFaCurve",
    "PrCurve",
    "RocCurve",
    "TargetMatch",
    "as_mask",
    "as_scores",
    "average_precision",
    "components",
    "iou",
    "iou_counts",
    "match_centroids",
    "match_targets",
    "pr_curve",
    "pr_from_histograms",
    "precision_recall_f1",
    "roc_auc",
    "roc_curve",
    "roc_from_histograms",
    "score_histograms",
    "score_levels",
    "threshold_scores",
]
