"""``irstd compare`` as the field compares: your own method's saved maps (``NAME=DIR``), method
plugins (entry point group ``irstd.methods``), display names and ``--label``, vector figures, the
Pd–Fa points, and the refusal of a folder holding another run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from irstd.cli.main import app
from irstd.errors import InputError
from irstd.metrics.curves import PdFaCurve
from irstd.metrics.plots import DEGENERATE_FA, pd_fa_points


def _run(*args):
    return CliRunner().invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from irstd.synth import write_dataset

    root = tmp_path_factory.mktemp("field")
    write_dataset(root / "ds", count=8, size=(96, 96), seed=5)
    return root / "ds"


@pytest.fixture(scope="module")
def saved(ds, tmp_path_factory):
    """LCM's score maps saved by irstd evaluate (16-bit PNG), one as .npy and one as float TIFF."""
    from irstd.io import read_scores, write_image

    folder = tmp_path_factory.mktemp("preds")
    result = _run("evaluate", "--dataset", ds, "--split", "test", "--method", "tophat", "--save-predictions", folder,
                  "--out", folder.parent / "ev_tophat")
    assert result.exit_code == 0, result.output
    first, second = sorted(folder.glob("*.png"))[:2]
    np.save(first.with_suffix(".npy"), read_scores(first).astype(np.float32))
    first.unlink()
    write_image(second.with_suffix(".tif"), read_scores(second).astype(np.float32))
    second.unlink()
    return folder


def test_saved_maps_equal_irstd_evaluate_predictions(ds, saved, tmp_path):
    ev = _run("evaluate", "--dataset", ds, "--split", "test", "--predictions", saved, "--out", tmp_path / "ev", "--json")
    assert ev.exit_code == 0, ev.output
    expected = json.loads(ev.stdout)
    cmp = _run("compare", "--dataset", ds, "--split", "test", "--methods", f"lcm,mine={saved}", "--label", "mine=Ours",
               "--out", tmp_path / "cmp", "--json")
    assert cmp.exit_code == 0, cmp.output
    rows = {r["method"]: r for r in json.loads(cmp.stdout)["methods"]}
    for key in ("miou", "niou", "pd", "fa", "auc", "ap", "f1", "precision", "recall"):
        assert rows["mine"][key] == expected[key], key
    assert rows["mine"]["display"] == "Ours" and rows["lcm"]["display"] == "LCM"
    assert rows["mine"]["seconds_per_image"] is None and rows["mine"]["kind"] == "predictions"
    tex = (tmp_path / "cmp" / "metrics.tex").read_text()
    assert "Ours &" in tex and "LCM &" in tex and r"\textbf{" in tex


def test_saved_maps_with_a_threshold_equal_evaluate_with_it(ds, saved, tmp_path):
    ev = _run("evaluate", "--dataset", ds, "--split", "test", "--predictions", saved, "--threshold", "0.3",
              "--out", tmp_path / "ev", "--json")
    cmp = _run("compare", "--dataset", ds, "--split", "test", "--methods", f"mine={saved}", "--threshold", "0.3",
               "--out", tmp_path / "cmp", "--json")
    assert ev.exit_code == 0 and cmp.exit_code == 0, cmp.output
    row = json.loads(cmp.stdout)["methods"][0]
    assert {k: row[k] for k in ("miou", "pd", "fa")} == {k: json.loads(ev.stdout)[k] for k in ("miou", "pd", "fa")}


def test_saved_maps_errors(ds, saved, tmp_path):
    missing = _run("compare", "--dataset", ds, "--split", "test", "--methods", f"mine={tmp_path / 'nope'}",
                   "--out", tmp_path / "a")
    assert missing.exit_code == 2 and "folder not found" in missing.stderr
    short = tmp_path / "short"  # a map for the first id only
    short.mkdir()
    first_id = (ds / "splits" / "test.txt").read_text().split()[0]
    np.save(short / f"{first_id}.npy", np.zeros((96, 96)))
    gap = _run("compare", "--dataset", ds, "--split", "test", "--methods", f"lcm,mine={short}", "--out", tmp_path / "b")
    assert gap.exit_code == 2 and "no prediction for id" in gap.stderr
    unknown = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm,mypreds", "--out", tmp_path / "d")
    assert unknown.exit_code == 2 and "--methods: unknown method 'mypreds'" in unknown.stderr
    bad_label = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm", "--label", "ipi=IPI",
                     "--out", tmp_path / "c")
    assert bad_label.exit_code == 2 and "--label ipi" in bad_label.stderr


@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_vector_figures(ds, tmp_path, fmt, magic):
    out = tmp_path / "cmp"
    result = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm,tophat", "--out", out,
                  "--figure-format", fmt, "--dpi", "100")
    assert result.exit_code == 0, result.output
    for name in ("roc", "pr", "pd_fa", "surfaces", "qualitative"):
        assert (out / f"{name}.{fmt}").read_bytes().startswith(magic), name
        assert not (out / f"{name}.png").exists()
    assert f"(qualitative.{fmt})" in (out / "report.md").read_text()
    bad = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm", "--out", tmp_path / "x",
               "--figure-format", "jpg")
    assert bad.exit_code == 2 and "--figure-format jpg" in bad.stderr


def test_another_run_in_the_folder_is_refused_unless_overwrite(ds, tmp_path):
    out = tmp_path / "cmp"
    assert _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm", "--out", out).exit_code == 0
    before = (out / "metrics.json").read_bytes()
    again = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm", "--out", out)  # the same run
    assert again.exit_code == 0 and "0 computed, 4 cached" in again.stderr
    for args in (["--methods", "lcm,tophat"], ["--methods", "lcm", "--threshold", "0.4"]):
        other = _run("compare", "--dataset", ds, "--split", "test", *args, "--out", out)
        assert other.exit_code == 2 and "holds another compare run (methods lcm" in other.stderr
    assert json.loads((out / "metrics.json").read_bytes())["methods"][0]["miou"] == json.loads(before)["methods"][0]["miou"]
    replaced = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm,tophat", "--out", out, "--overwrite")
    assert replaced.exit_code == 0 and "lcm: 4 images (0 computed, 4 cached" in replaced.stderr
    assert [r["method"] for r in json.loads((out / "metrics.json").read_text())["methods"]] == ["lcm", "tophat"]


def test_pd_fa_points_in_fa_order_without_degenerate_points():
    curve = PdFaCurve(thresholds=np.array([0.0, 0.25, 0.5, 0.75, 1.0]), pd=np.array([1.0, 0.9, 0.95, 0.5, 0.0]),
                      fa=np.array([0.99, 3e-4, 1e-4, 2e-5, 0.0]), hits=np.array([10, 9, 9, 5, 0]),
                      false_alarm_pixels=np.zeros(5), targets=10, pixels=1000)
    t, fa, pd, left_out = pd_fa_points(curve)
    assert left_out == 1 and 0.99 >= DEGENERATE_FA  # threshold 0: the whole frame
    assert list(t) == [1.0, 0.75, 0.5, 0.25] and list(np.diff(fa) >= 0) == [True] * 3
    assert fa[0] == 0 and pd[-1] == pytest.approx(90.0)


def test_method_plugin_installed_with_pip(ds, tmp_path):
    """A tiny package declaring an ``irstd.methods`` entry point is usable by name once installed."""
    src = tmp_path / "src"
    (src / "irstd_plug").mkdir(parents=True)
    (src / "irstd_plug" / "__init__.py").write_text(textwrap.dedent('''
        import numpy as np

        def brightness(image):
            """The image minus its mean: a (poor) raw map."""
            return np.asarray(image, dtype=np.float64) - float(np.mean(image))

        brightness.k = 4.0
        brightness.display = "Bright"
    '''))
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "irstd-plug"
        version = "0.1"

        [project.entry-points."irstd.methods"]
        bright = "irstd_plug:brightness"

        [tool.setuptools]
        packages = ["irstd_plug"]
    '''))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    if pip.returncode != 0 and "setuptools" in pip.stderr and "No module named" in pip.stderr:
        pytest.skip("setuptools is not installed: the plugin package cannot be built here")
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": str(target)}
    cmd = [sys.executable, "-m", "irstd.cli.main"]
    import os

    env = {**os.environ, **env}
    listed = subprocess.run([*cmd, "detect", "--help"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0
    out = tmp_path / "cmp"
    run = subprocess.run([*cmd, "compare", "--dataset", str(ds), "--split", "test", "--methods", "lcm,bright",
                          "--out", str(out), "--json"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    rows = {r["method"]: r for r in json.loads(run.stdout)["methods"]}
    assert rows["bright"]["display"] == "Bright" and rows["bright"]["kind"] == "plugin"
    assert rows["bright"]["mask_rule"] == "raw map > mean + 4·std"

    from irstd.methods import get_method  # not installed in this process: unknown here

    with pytest.raises(InputError, match="unknown method 'bright'"):
        get_method("bright")


def test_out_inside_the_dataset_is_refused(ds):
    result = _run("compare", "--dataset", ds, "--split", "test", "--methods", "lcm", "--out", ds / "masks" / "cmp",
                  "--overwrite")
    assert result.exit_code == 2 and "inside the dataset's masks/ folder" in result.stderr
    assert not (ds / "masks" / "cmp").exists()
