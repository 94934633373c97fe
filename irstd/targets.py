"""Targets of a detection mask: 8-connected components with position, size and scores.

The labelling is the metrics engine's (:func:`irstd.metrics.components`): 8-connected
components numbered in raster order of their first pixel, unweighted centroids. So a target
reported by ``irstd detect`` is exactly a predicted component as ``irstd evaluate`` matches it.

Each target is a plain dict (JSON-ready):

``id``
    1..n, in raster order of the component's first pixel.
``centroid``
    ``{"x": column, "y": row}``: unweighted mean of the pixel coordinates (pixel centres at
    integer coordinates, origin at the top-left pixel).
``bbox``
    ``{"x": first column, "y": first row, "width": columns, "height": rows}``: the smallest
    box holding every pixel of the target (``x + width`` is one past the last column).
``area``
    Number of pixels.
``peak``, ``mean``
    Maximum and mean of ``scores`` over the target's pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irstd.errors import InputError
from irstd.metrics import components

__all__ = ["TARGET_FIELDS", "find_targets", "flatten_target"]

#: Flat field names of a target, in CSV column order (see :func:`flatten_target`).
TARGET_FIELDS = ("target", "x", "y", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "area", "peak", "mean")


def find_targets(mask, scores) -> list[dict]:
    """The targets of a binary detection mask.

    Parameters
    ----------
    mask : (H, W) array_like of bool
        Detected pixels (e.g. ``MethodOutput.mask``).
    scores : (H, W) array_like
        Score map of the same size (e.g. ``MethodOutput.scores``), for ``peak`` and ``mean``.

    Returns
    -------
    list of dict
        One dict per 8-connected component, in raster order: ``id``, ``centroid`` ``{x, y}``,
        ``bbox`` ``{x, y, width, height}``, ``area``, ``peak``, ``mean`` (see the module
        docstring). Empty when the mask has no pixel.

    Raises
    ------
    InputError
        ``mask`` and ``scores`` differ in shape or are not 2-D.

    Examples
    --------
    >>> m = np.zeros((8, 8), bool); m[2:4, 5:8] = True
    >>> t = find_targets(m, m * 0.9)
    >>> t[0]["centroid"], t[0]["bbox"], t[0]["area"]
    ({'x': 6.0, 'y': 2.5}, {'x': 5, 'y': 2, 'width': 3, 'height': 2}, 6)
    """
    mask = np.asarray(mask, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if mask.ndim != 2 or mask.shape != scores.shape:
        raise InputError(f"targets: mask {mask.shape} and scores {scores.shape} must be 2-D of one shape")
    comp = components(mask)
    if comp.count == 0:
        return []
    index = np.arange(1, comp.count + 1)
    peaks = ndimage.maximum(scores, comp.labels, index)
    means = ndimage.mean(scores, comp.labels, index)
    boxes = ndimage.find_objects(comp.labels, max_label=comp.count)
    out = []
    for k in range(comp.count):
        rows, cols = boxes[k]
        out.append({
            "id": k + 1,
            "centroid": {"x": float(comp.centroids[k, 1]), "y": float(comp.centroids[k, 0])},
            "bbox": {
                "x": int(cols.start),
                "y": int(rows.start),
                "width": int(cols.stop - cols.start),
                "height": int(rows.stop - rows.start),
            },
            "area": int(comp.areas[k]),
            "peak": float(peaks[k]),
            "mean": float(means[k]),
        })
    return out


def flatten_target(target: dict) -> dict:
    """One target as a flat row with the columns :data:`TARGET_FIELDS` (for CSV)."""
    return {
        "target": target["id"],
        "x": target["centroid"]["x"],
        "y": target["centroid"]["y"],
        "bbox_x": target["bbox"]["x"],
        "bbox_y": target["bbox"]["y"],
        "bbox_width": target["bbox"]["width"],
        "bbox_height": target["bbox"]["height"],
        "area": target["area"],
        "peak": target["peak"],
        "mean": target["mean"],
    }
