"""ROC, precision–recall and Pd–Fa figures, one or several methods per figure.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no global
state) and written atomically through :func:`irstd.io.atomic_write`.
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

__all__ = ["plot_pd_fa", "plot_pr", "plot_roc"]


def _figure(title: str | None):
    fig = Figure(figsize=(5.0, 4.2), dpi=120, layout="constrained")
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

    Returns
    -------
    Path
    """
    _check(curves, RocCurve)
    fig, ax = _figure(title)
    for name, c in curves.items():
        ax.plot(c.fpr, c.tpr, lw=1.5, label=f"{name} (AUC = {_fmt(c.auc)})")
    if log_fpr:
        ax.set_xscale("log")
        ax.set_xlim(1e-7, 1)
    else:
        ax.plot([0, 1], [0, 1], ls=":", lw=0.8, color="grey")
        ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False-positive rate (pixels)")
    ax.set_ylabel("True-positive rate (pixels)")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path, overwrite)


def plot_pr(
    curves: Mapping[str, PrCurve],
    path: str | os.PathLike,
    *,
    title: str | None = "Pixel-level precision-recall",
    overwrite: bool = True,
) -> Path:
    """Draw pixel-level precision–recall curves, AP in the legend.

    Parameters
    ----------
    curves : mapping of str to PrCurve
    path : path-like
    title : str or None, optional
    overwrite : bool, optional

    Returns
    -------
    Path
    """
    _check(curves, PrCurve)
    fig, ax = _figure(title)
    for name, c in curves.items():
        # Operating points, the end point (recall 0, precision 1) excluded.
        ax.plot(c.recall[:-1], c.precision[:-1], lw=1.5, label=f"{name} (AP = {_fmt(c.ap)})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall (pixels)")
    ax.set_ylabel("Precision (pixels)")
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path, overwrite)


def plot_pd_fa(
    curves: Mapping[str, PdFaCurve],
    path: str | os.PathLike,
    *,
    title: str | None = "Target-level Pd-Fa",
    overwrite: bool = True,
) -> Path:
    """Draw target-level Pd–Fa curves (Pd in %, Fa in 10⁻⁶, logarithmic Fa axis).

    Parameters
    ----------
    curves : mapping of str to PdFaCurve
    path : path-like
    title : str or None, optional
    overwrite : bool, optional

    Returns
    -------
    Path

    Notes
    -----
    Each curve is drawn in threshold order (Pd and Fa are not monotone in the threshold:
    components merge and split, so sorting by Fa would zig-zag). Points with Fa = 0 cannot be
    drawn on the logarithmic axis; they are marked with hollow circles at the left edge of the
    plot (half the smallest positive Fa of all curves), not joined to the others; neither are
    consecutive points more than two decades apart in Fa.
    """
    _check(curves, PdFaCurve)
    fig, ax = _figure(title)
    positive = [c.fa[c.fa > 0] for c in curves.values()]
    floor = min((p.min() for p in positive if p.size), default=1e-6) * 1e6 / 2
    for name, c in curves.items():
        order = np.argsort(c.thresholds, kind="stable")
        fa, pd = c.fa[order] * 1e6, c.pd[order] * 100
        x = np.where(fa > 0, fa, np.nan)
        # Consecutive thresholds more than two decades apart in Fa (e.g. 0 -> 0.01 on
        # probabilities: the whole image becomes one component) are not joined: the sweep says
        # nothing about the operating points between them.
        gap = np.flatnonzero(np.abs(np.diff(np.log10(x))) > 2) + 1
        x, y = np.insert(x, gap, np.nan), np.insert(pd, gap, np.nan)
        line = ax.plot(x, y, marker=".", ms=3, lw=1.2, label=name)[0]
        zero = fa == 0
        if zero.any():
            ax.plot(np.full(int(zero.sum()), floor), pd[zero], ls="", marker="o", ms=4, mfc="none",
                    color=line.get_color())
    ax.set_xscale("log")
    ax.set_ylim(0, 101)
    ax.set_xlabel("Fa (false-alarm pixels per 10⁶ pixels)")
    ax.set_ylabel("Pd (% of targets detected)")
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path, overwrite)
