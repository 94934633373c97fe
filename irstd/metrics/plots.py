"""ROC, precision–recall and Pd–Fa figures, one or several methods per figure.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no global
state) and written atomically through :func:`irstd.io.atomic_write`, in the format the file
name's extension names (``.png``; ``.pdf`` and ``.svg`` are vector figures a paper can print).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from irstd.io import atomic_write
from irstd.metrics.curves import PdFaCurve, PrCurve, RocCurve

__all__ = ["DEFAULT_DPI", "DEGENERATE_FA", "MARKED_THRESHOLDS", "pd_fa_points", "plot_pd_fa", "plot_pr", "plot_roc"]


#: Resolution of raster figures (PNG) unless a caller gives ``dpi``.
DEFAULT_DPI = 150
#: Pd–Fa sweep points left out as degenerate: false alarms cover at least this fraction of the
#: frame's pixels (at threshold 0 every pixel is "target": one component, Fa near 10⁶).
DEGENERATE_FA = 0.5
#: Thresholds marked (and labelled) on each Pd–Fa curve.
MARKED_THRESHOLDS = (0.1, 0.5, 0.9)


#: Above this many curves the legend goes beside the axes and threshold labels are left out.
CROWDED = 6


def _style(i: int, n: int) -> dict:
    """Colour and line style of curve ``i`` of ``n``: matplotlib's 10 colours, then tab20 with
    dashed lines every other colour, so that up to 20 methods stay apart."""
    if n <= 10:
        return {"color": f"C{i}"}
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](i % 20), "ls": "-" if i % 2 == 0 else "--"}


def _legend(ax, n: int, loc: str) -> None:
    if n > CROWDED:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    else:
        ax.legend(loc=loc, fontsize="small")


def _figure(title: str | None, dpi: float = DEFAULT_DPI, n: int = 1):
    fig = Figure(figsize=(5.0 + (2.4 if n > CROWDED else 0.0), 4.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, path, overwrite: bool) -> Path:
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    return path


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _check(curves: Mapping, kind) -> None:
    if not curves:
        raise ValueError("no curve to plot")
    for name, curve in curves.items():
        if not isinstance(curve, kind):
            raise TypeError(f"{name}: expected a {kind.__name__}, got {type(curve).__name__}")


def plot_roc(
    curves: Mapping[str, RocCurve],
    path: str | os.PathLike,
    *,
    title: str | None = "Pixel-level ROC",
    log_fpr: bool = False,
    overwrite: bool = True,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """Draw pixel-level ROC curves, AUC in the legend.

    Parameters
    ----------
    curves : mapping of str to RocCurve
        Method name → curve (e.g. ``{"cgrinet": evaluator.roc()}``).
    path : path-like
        Output image (format from the extension, PNG usually).
    title : str or None, optional
    log_fpr : bool, optional
        Logarithmic false-positive-rate axis (targets are tiny, so the interesting part of the
        curve lies at very low FPR).
    overwrite : bool, optional
        When False, refuse to replace an existing file.
    dpi : float, optional
        Resolution of a raster file (PNG); vector files (PDF, SVG) scale freely.

    Returns
    -------
    Path
    """
    _check(curves, RocCurve)
    n = len(curves)
    fig, ax = _figure(title, dpi, n)
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c.fpr, c.tpr, lw=1.5, label=f"{name} (AUC = {_fmt(c.auc)})", **_style(i, n))
    if log_fpr:
        ax.set_xscale("log")
        ax.set_xlim(1e-7, 1)
    else:
        ax.plot([0, 1], [0, 1], ls=":", lw=0.8, color="grey")
        ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False-positive rate (pixels)")
    ax.set_ylabel("True-positive rate (pixels)")
    _legend(ax, n, "lower right")
    return _save(fig, path, overwrite)


def plot_pr(
    curves: Mapping[str, PrCurve],
    path: str | os.PathLike,
    *,
    title: str | None = "Pixel-level precision-recall",
    overwrite: bool = True,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """Draw pixel-level precision–recall curves, AP in the legend.

    Parameters
    ----------
    curves : mapping of str to PrCurve
    path : path-like
    title : str or None, optional
    overwrite : bool, optional
    dpi : float, optional

    Returns
    -------
    Path
    """
    _check(curves, PrCurve)
    n = len(curves)
    fig, ax = _figure(title, dpi, n)
    for i, (name, c) in enumerate(curves.items()):
        # Operating points, the end point (recall 0, precision 1) excluded.
        ax.plot(c.recall[:-1], c.precision[:-1], lw=1.5, label=f"{name} (AP = {_fmt(c.ap)})", **_style(i, n))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall (pixels)")
    ax.set_ylabel("Precision (pixels)")
    _legend(ax, n, "best")
    return _save(fig, path, overwrite)


def pd_fa_points(curve: PdFaCurve) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The points :func:`plot_pd_fa` draws for one curve, in drawing order.

    Returns
    -------
    thresholds, fa, pd : ndarray
        The sweep points whose false alarms cover less than :data:`DEGENERATE_FA` of the pixels,
        sorted by Fa (then Pd); ``fa`` in 10⁻⁶, ``pd`` in %.
    left_out : int
        How many degenerate points were left out.
    """
    kept = curve.fa < DEGENERATE_FA
    t, fa, pd = curve.thresholds[kept], curve.fa[kept] * 1e6, curve.pd[kept] * 100
    order = np.lexsort((pd, fa))
    return t[order], fa[order], pd[order], int((~kept).sum())


def plot_pd_fa(
    curves: Mapping[str, PdFaCurve],
    path: str | os.PathLike,
    *,
    title: str | None = "Target-level Pd-Fa",
    overwrite: bool = True,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """Draw target-level Pd–Fa curves (Pd in %, Fa in 10⁻⁶, logarithmic Fa axis).

    Parameters
    ----------
    curves : mapping of str to PdFaCurve
    path : path-like
    title : str or None, optional
    overwrite : bool, optional
    dpi : float, optional

    Returns
    -------
    Path

    Notes
    -----
    Each curve is drawn in Fa order (the operating points from fewest to most false alarms,
    so a reader follows it left to right; at equal Fa by Pd), with the thresholds of
    :data:`MARKED_THRESHOLDS` marked and labelled. Degenerate sweep points, where the false
    alarms cover at least :data:`DEGENERATE_FA` of the pixels (threshold 0: the whole frame is
    one component), are left out, and the figure says how many. Points with Fa = 0 cannot be drawn
    on the logarithmic axis; they are marked with hollow circles at the left edge of the plot
    (half the smallest positive Fa of all curves).
    """
    _check(curves, PdFaCurve)
    n = len(curves)
    fig, ax = _figure(title, dpi, n)
    points = {name: pd_fa_points(c) for name, c in curves.items()}
    left_out = sum(p[3] for p in points.values())
    positive = [fa[fa > 0] for _, fa, _, _ in points.values()]
    floor = min((p.min() for p in positive if p.size), default=1.0) / 2
    for i, (name, (t, fa, pd, _)) in enumerate(points.items()):
        on_axis = fa > 0
        line = ax.plot(fa[on_axis], pd[on_axis], marker=".", ms=3, lw=1.2, label=name, **_style(i, n))[0]
        colour = line.get_color()
        zero = ~on_axis
        if zero.any():
            ax.plot(np.full(int(zero.sum()), floor), pd[zero], ls="", marker="o", ms=4, mfc="none", color=colour)
        for mark in MARKED_THRESHOLDS:
            k = np.flatnonzero(np.isclose(t, mark))
            if k.size:
                x = fa[k[0]] if fa[k[0]] > 0 else floor
                ax.plot([x], [pd[k[0]]], ls="", marker="D", ms=4, color=colour)
                if n <= CROWDED:  # labels of many curves would cover each other
                    ax.annotate(f"{mark:g}", (x, pd[k[0]]), textcoords="offset points", xytext=(3, -8),
                                fontsize=6, color=colour)
    ax.set_xscale("log")
    ax.set_ylim(0, 101)
    ax.set_xlabel("Fa (false-alarm pixels per 10⁶ pixels)")
    ax.set_ylabel("Pd (% of targets detected)")
    _legend(ax, n, "best")
    note = f"◆ thresholds {', '.join(f'{m:g}' for m in MARKED_THRESHOLDS)}"
    if left_out:
        note += f"; {left_out} degenerate point{'s' * (left_out != 1)} (false alarms ≥ {DEGENERATE_FA:.0%} of the frame) left out"
    ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=6, color="0.3", va="bottom")
    return _save(fig, path, overwrite)
