"""Comparison figures: 3-D grey-level surfaces and the qualitative grid.

Pure drawing functions on arrays (matplotlib :class:`~matplotlib.figure.Figure` with the Agg
canvas, no pyplot state), written atomically through :func:`irstd.io.atomic_write`; the curve
figures (ROC, PR, Pd–Fa) are in :mod:`irstd.metrics.plots`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch

from irstd.io import atomic_write
from irstd.metrics.target import MATCH_DISTANCE, components, match_targets

__all__ = ["MATCHED_COLOUR", "FALSE_ALARM_COLOUR", "MISSED_COLOUR", "SURFACE_SIDE", "block_max",
           "display_range", "plot_qualitative", "plot_surfaces"]

#: Colours of the qualitative grid (RGB in [0, 1]).
MATCHED_COLOUR = (0.10, 0.85, 0.20)
FALSE_ALARM_COLOUR = (1.00, 0.55, 0.00)
MISSED_COLOUR = (0.95, 0.10, 0.10)
#: Samples per side, at most, of a surface plot (:func:`block_max`).
SURFACE_SIDE = 64
#: Resolution of raster figures (PNG) unless a caller gives ``dpi``.
DEFAULT_DPI = 150
#: Side of the qualitative grid's inset around a target, as a fraction of the panel.
INSET_SIZE = 0.38


def _save(fig: Figure, path, overwrite: bool) -> Path:
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    return path


def display_range(image) -> np.ndarray:
    """An image min–max scaled to [0, 1] in float64 (a constant image gives zeros)."""
    arr = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape)
    lo, hi = arr[finite].min(), arr[finite].max()
    if not hi > lo:
        return np.zeros(arr.shape)
    return np.where(finite, (arr - lo) / (hi - lo), 0.0)


def block_max(values, max_side: int = SURFACE_SIDE) -> np.ndarray:
    """Downsample a 2-D map by the maximum over square blocks so that its longer side is at most
    ``max_side`` (small peaks survive, unlike striding or averaging).

    Parameters
    ----------
    values : (H, W) array_like
    max_side : int, optional

    Returns
    -------
    ndarray of float64, shape (ceil(H / f), ceil(W / f)) with f = ceil(max(H, W) / max_side)
    """
    arr = np.asarray(values, dtype=np.float64)
    f = max(1, math.ceil(max(arr.shape) / max_side))
    if f == 1:
        return arr.copy()
    h, w = arr.shape
    H, W = math.ceil(h / f) * f, math.ceil(w / f) * f
    padded = np.pad(arr, ((0, H - h), (0, W - w)), mode="edge")
    return padded.reshape(H // f, f, W // f, f).max(axis=(1, 3))


def plot_surfaces(
    rows: Sequence[tuple[str, np.ndarray, Mapping[str, np.ndarray]]],
    path: str | os.PathLike,
    *,
    max_side: int = SURFACE_SIDE,
    overwrite: bool = True,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """3-D grey-level surfaces of inputs and method outputs (rows = images, columns = input +
    methods), as in the IRSTD papers' surface figures.

    Parameters
    ----------
    rows : sequence of (image_id, image, {method: scores})
        ``image`` any 2-D grey image (shown min–max scaled); ``scores`` (H, W) maps in [0, 1]
        shown as they are (min–max maps of classical methods, network probabilities).
    path : path-like
    max_side : int, optional
        Maps are reduced by :func:`block_max` to at most this many samples per side.
    overwrite : bool, optional
    dpi : float, optional
        Resolution of a raster file (PNG).

    Returns
    -------
    Path
    """
    if not rows:
        raise ValueError("no image to plot")
    methods = list(rows[0][2])
    cols = 1 + len(methods)
    fig = Figure(figsize=(2.7 * cols, 2.5 * len(rows) + 0.3), dpi=dpi)
    FigureCanvasAgg(fig)
    for r, (image_id, image, maps) in enumerate(rows):
        panels = [("input", image)] + [(m, maps[m]) for m in methods]
        for c, (title, values) in enumerate(panels):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1, projection="3d")
            # The input min-max scaled; scores as they are (in [0, 1]: min-max maps of classical
            # methods, probabilities of networks, which a second scaling would distort).
            z = block_max(display_range(values) if c == 0 else np.clip(np.asarray(values, np.float64), 0, 1), max_side)
            yy, xx = np.mgrid[0 : z.shape[0], 0 : z.shape[1]]
            ax.plot_surface(xx, yy, z, cmap="jet", vmin=0, vmax=1, rstride=1, cstride=1,
                            linewidth=0, antialiased=False)
            ax.set_zlim(0, 1)
            ax.set_xlim(0, z.shape[1] - 1)
            ax.set_ylim(z.shape[0] - 1, 0)  # image rows top to bottom
            ax.view_init(elev=35, azim=-60)
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticks([0, 0.5, 1])
            ax.tick_params(labelsize=6, pad=0)
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c > 0:  # a flat surface is then read as "all scores near 0.02", not as a bug
                ax.text2D(0.02, 0.02, f"max {float(np.max(values)):.3g}", transform=ax.transAxes, fontsize=7)
            if c == 0:
                ax.text2D(-0.08, 0.5, image_id, transform=ax.transAxes, rotation=90,
                          va="center", ha="right", fontsize=8)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.02, top=0.93, wspace=0.02, hspace=0.08)
    return _save(fig, path, overwrite)


def _overlay(image: np.ndarray, mask: np.ndarray, gt: np.ndarray, max_distance: float):
    """RGB panel of one method's mask on the grey input, and the markers to draw."""
    grey = display_range(image)
    rgb = np.repeat((0.75 * grey)[..., None], 3, axis=2)
    pred = components(mask)
    targets = components(gt)
    match = match_targets(mask, gt, max_distance, gt_components=targets)
    matched = np.zeros(pred.count, bool)
    matched[match.matches[match.matches >= 0]] = True
    lab = pred.labels
    if pred.count:
        hit_pixels = matched[np.maximum(lab - 1, 0)] & (lab > 0)
        fa_pixels = ~matched[np.maximum(lab - 1, 0)] & (lab > 0)
        rgb[hit_pixels] = MATCHED_COLOUR
        rgb[fa_pixels] = FALSE_ALARM_COLOUR
    markers = []  # (row, col, radius, colour)
    for k in range(pred.count):
        r, c = pred.centroids[k]
        markers.append((r, c, math.sqrt(pred.areas[k]), MATCHED_COLOUR if matched[k] else FALSE_ALARM_COLOUR))
    for t in np.flatnonzero(match.matches < 0):
        r, c = targets.centroids[t]
        markers.append((r, c, math.sqrt(targets.areas[t]), MISSED_COLOUR))
    return rgb, markers, match


def _zoom_window(gt: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(top, left, size_y, size_x)`` of a square window around the first target of ``gt`` (at
    least 12 pixels, 2.5 target diameters and 8 pixels of context), or None."""
    targets = components(gt)
    if not targets.count:
        return None
    h, w = gt.shape
    cy, cx = targets.centroids[0]
    side = int(min(h, w, max(12, 2.5 * math.sqrt(targets.areas[0]) + 8)))
    top = int(min(max(round(cy - side / 2), 0), h - side))
    left = int(min(max(round(cx - side / 2), 0), w - side))
    return top, left, side, side


def _inset(ax, rgb: np.ndarray, window: tuple[int, int, int, int]) -> None:
    """The magnified window in the panel's corner farthest from it, outlined in the panel."""
    from matplotlib.patches import Rectangle

    top, left, sy, sx = window
    h, w = rgb.shape[:2]
    size = INSET_SIZE
    x0 = 0.02 if left + sx / 2 > w / 2 else 0.98 - size
    y0 = 0.02 if top + sy / 2 < h / 2 else 0.98 - size  # axes y grows upwards, rows downwards
    inset = ax.inset_axes([x0, y0, size, size])
    inset.imshow(rgb[top:top + sy, left:left + sx], interpolation="nearest")
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_edgecolor("white")
        spine.set_linewidth(1.0)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), sx, sy, fill=False, lw=0.8, color="white"))


def _targets(n: int) -> str:
    return f"{n} target{'s' * (n != 1)}"


def plot_qualitative(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, Mapping[str, np.ndarray]]],
    path: str | os.PathLike,
    *,
    max_distance: float = MATCH_DISTANCE,
    max_markers: int = 40,
    overwrite: bool = True,
    dpi: float = DEFAULT_DPI,
    zoom: bool = True,
) -> Path:
    """Qualitative grid: input, ground truth and each method's mask with its target matching.

    Matched predicted components are green, false-alarm components orange, missed ground-truth
    targets get a red circle; every component also gets a circle of its colour so that
    few-pixel targets stay visible at print size. The matching is the one of Pd and Fa
    (:func:`irstd.metrics.match_targets`).

    Parameters
    ----------
    rows : sequence of (image_id, image, gt, {method: mask})
    path : path-like
    max_distance : float, optional
        Centroid distance of the matching (pixels).
    max_markers : int, optional
        At most this many circles per panel (missed targets first, then the largest
        components); the coloured pixels always show every component.
    overwrite : bool, optional
    dpi : float, optional
        Resolution of a raster file (PNG); vector files (PDF, SVG) scale freely.
    zoom : bool, optional
        In every panel, an inset magnifying the window around the row's first ground-truth
        target to :data:`INSET_SIZE` of the panel (as papers show few-pixel targets), in the
        corner farthest from it, the window outlined in the panel.

    Returns
    -------
    Path
    """
    if not rows:
        raise ValueError("no image to plot")
    methods = list(rows[0][3])
    cols = 2 + len(methods)
    aspect = max(r[1].shape[0] / r[1].shape[1] for r in rows)
    width = 2.3
    fig = Figure(figsize=(width * cols, width * aspect * len(rows) + 0.9), dpi=dpi)
    FigureCanvasAgg(fig)
    for r, (image_id, image, gt, masks) in enumerate(rows):
        gt = np.asarray(gt, bool)
        h, w = gt.shape
        window = _zoom_window(gt) if zoom else None
        base_radius = 0.035 * max(h, w)
        panels: list[tuple[str, np.ndarray, list, str]] = [
            ("input", np.repeat(display_range(image)[..., None], 3, axis=2), [], ""),
            ("ground truth", np.repeat(gt[..., None].astype(np.float64), 3, axis=2), [], _targets(components(gt).count)),
        ]
        for m in methods:
            rgb, markers, match = _overlay(image, np.asarray(masks[m], bool), gt, max_distance)
            note = f"Pd {match.hits}/{match.targets}, FA {match.false_alarm_pixels} px"
            panels.append((m, rgb, markers, note))
        for c, (title, rgb, markers, note) in enumerate(panels):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
            ax.imshow(rgb, interpolation="nearest")
            missed = [mk for mk in markers if mk[3] == MISSED_COLOUR]
            others = sorted((mk for mk in markers if mk[3] != MISSED_COLOUR), key=lambda mk: -mk[2])
            for y, x, size, colour in (missed + others)[:max_markers]:
                radius = max(base_radius, 0.8 * size + 2)
                ax.add_patch(Circle((x, y), radius, fill=False, lw=1.1, color=colour))
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
            if note:
                ax.set_xlabel(note, fontsize=7, labelpad=2)
            if c == 0:
                ax.set_ylabel(image_id, fontsize=8)
            if window is not None:
                _inset(ax, rgb, window)
    handles = [
        Patch(color=MATCHED_COLOUR, label="detected (matched component)"),
        Patch(color=FALSE_ALARM_COLOUR, label="false alarm (unmatched component)"),
        Line2D([], [], marker="o", ls="", mfc="none", mec=MISSED_COLOUR, ms=9, label="missed target"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.03, right=0.99, top=1 - 0.35 / fig.get_figheight(),
                        bottom=0.55 / fig.get_figheight(), wspace=0.04, hspace=0.18)
    return _save(fig, path, overwrite)
