"""ROC / PR / Pd-Fa figures: files written atomically, several methods per figure, no pyplot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irstd.errors import InputError
from irstd.metrics import Evaluator
from irstd.metrics import plots
from irstd.metrics.plots import plot_pd_fa, plot_pr, plot_roc


def _evaluator(seed):
    rng = np.random.default_rng(seed)
    ev = Evaluator(sweep=np.linspace(0, 1, 11))
    for _ in range(3):
        gt = np.zeros((24, 24), bool)
        gt[5:8, 5:8] = gt[15:17, 12:15] = True
        ev.update(np.clip(gt * rng.uniform(0.3, 1, gt.shape) + rng.uniform(0, 0.6, gt.shape), 0, 1), gt)
    return ev


def test_plots_several_methods(tmp_path):
    a, b = _evaluator(0), _evaluator(1)
    for fn, curves, name in (
        (plot_roc, {"a": a.roc(), "b": b.roc()}, "roc.png"),
        (plot_pr, {"a": a.pr(), "b": b.pr()}, "pr.png"),
        (plot_pd_fa, {"a": a.pd_fa_curve(), "b": b.pd_fa_curve()}, "pd_fa.png"),
    ):
        path = fn(curves, tmp_path / name)
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pd_fa.png", "pr.png", "roc.png"]  # no temp files
    assert "import matplotlib.pyplot" not in Path(plots.__file__).read_text()  # no global state


def test_plots_refuse_overwrite_and_wrong_curves(tmp_path):
    ev = _evaluator(2)
    path = plot_roc({"m": ev.roc()}, tmp_path / "roc.png")
    before = path.read_bytes()
    with pytest.raises(InputError):
        plot_roc({"m": ev.roc()}, path, overwrite=False)
    assert path.read_bytes() == before
    with pytest.raises(TypeError):
        plot_pr({"m": ev.roc()}, tmp_path / "pr.png")
    with pytest.raises(ValueError):
        plot_pd_fa({}, tmp_path / "pd_fa.png")
