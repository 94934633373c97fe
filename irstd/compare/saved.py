"""Your own method in a compare run: score maps or masks already saved, one file per id.

``--methods lcm,cgrinet,mine=DIR``: ``DIR`` holds ``<id>.png`` (8/16-bit, ``value / max``),
``<id>.npy`` or a float ``<id>.tif`` — read by :class:`irstd.evaluate.SavedPredictions`, the
reader of ``irstd evaluate --predictions``, and thresholded by the same rule
(``score > threshold``, 0.5 unless ``--threshold``), so the row equals what ``irstd evaluate
--predictions DIR`` reports for the same folder. A binary mask saved as 0/255 is its own score
map (1.0 above any threshold below 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irstd.errors import InputError
from irstd.evaluate import SavedPredictions

__all__ = ["SAVED_THRESHOLD", "SavedMethod", "is_saved_spec", "saved_method"]

#: The threshold of a saved map without ``--threshold`` (``irstd evaluate``'s default).
SAVED_THRESHOLD = 0.5
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def is_saved_spec(spec: str) -> bool:
    """``NAME=DIR`` (a saved method) rather than a method name."""
    return "=" in spec


@dataclass
class SavedMethod:
    """Saved maps as a compared method (what :func:`irstd.compare.compare` needs of it)."""

    name: str
    folder: Path
    source: SavedPredictions
    threshold: float
    kind: str = "predictions"
    parameters: int | None = None
    weights_file: Path | None = None

    @property
    def score_rule(self) -> str:
        return f"saved map from {self.folder} (8/16-bit images as value / max, float as is)"

    @property
    def mask_rule(self) -> str:
        return f"score > {self.threshold:g}"

    def output(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, mask)`` of ``image_id`` (InputError naming the file when unusable)."""
        from irstd.metrics import threshold_scores

        scores = self.source(image_id)
        return scores, threshold_scores(scores, self.threshold)


def saved_method(spec: str, threshold: float | None, gray: str) -> SavedMethod:
    """The :class:`SavedMethod` of ``NAME=DIR`` (InputError for a bad name or missing folder)."""
    name, _, folder = spec.partition("=")
    name, folder = name.strip(), folder.strip()
    if not _LABEL.match(name):
        raise InputError(f"--methods {spec}: NAME=DIR needs a name of letters, digits, '_', '.', '-' (e.g. mine=preds/)")
    if not folder:
        raise InputError(f"--methods {spec}: the folder is missing (NAME=DIR)")
    try:
        source = SavedPredictions(folder, gray=gray)
    except InputError:
        raise InputError(f"--methods {spec}: {folder}: folder not found") from None
    return SavedMethod(name=name, folder=Path(folder), source=source,
                       threshold=SAVED_THRESHOLD if threshold is None else float(threshold))
