"""``irstd evaluate`` and :mod:`irstd.evaluate` end to end on a tiny dataset written in tmp_path."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irstd.errors import InputError
from irstd.evaluate import SavedPredictions, evaluate, evaluate_predictions
from irstd.protocol import rules, summary_line
from irstd.metrics import Evaluator
from irstd.cli.main import app

SHAPES = {"a1": (24, 32), "a2": (20, 20), "a3": (30, 26), "a4": (16, 40)}


def _gt(shape, seed):
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    for _ in range(2):
        r, c = rng.integers(1, shape[0] - 4), rng.integers(1, shape[1] - 4)
        gt[r : r + rng.integers(1, 4), c : c + rng.integers(1, 4)] = 255
    return gt


def _scores(gt, seed):
    rng = np.random.default_rng(100 + seed)
    s = np.clip((gt > 0) * rng.uniform(0.4, 1.0, gt.shape) + rng.uniform(0, 0.55, gt.shape) ** 3, 0, 1)
    s[0, 0] = 0.9  # a false alarm
    return s


@pytest.fixture()
def tiny(tmp_path):
    """Dataset with 4 ids (split ``test``) and predictions as 8-bit PNG, 16-bit PNG and npy."""
    root = tmp_path / "ds"
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    pred = tmp_path / "pred"
    pred.mkdir()
    expected = {}
    for k, (image_id, shape) in enumerate(SHAPES.items()):
        gt = _gt(shape, k)
        Image.fromarray((np.random.default_rng(k).random(shape) * 255).astype(np.uint8)).save(
            root / "images" / f"{image_id}.png"
        )
        Image.fromarray(gt).save(root / "masks" / f"{image_id}.png")
        s = _scores(gt, k)
        if k == 0:
            v = np.floor(s * 255).astype(np.uint8)
            Image.fromarray(v).save(pred / f"{image_id}.png")
            expected[image_id] = v
        elif k == 1:
            v = np.floor(s * 65535).astype(np.uint16)
            Image.fromarray(v).save(pred / f"{image_id}.png")
            expected[image_id] = v
        else:
            v = s.astype(np.float32)
            np.save(pred / f"{image_id}.npy", v)
            expected[image_id] = v
    (root / "splits" / "test.txt").write_text("\n".join(SHAPES) + "\n")
    return root, pred, expected


def _run(*args):
    result = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    return result


def _reference(root, expected, ids=None, threshold=0.5):
    ev = Evaluator(threshold)
    for image_id in ids or SHAPES:
        gt = np.array(Image.open(root / "masks" / f"{image_id}.png"))
        ev.update(expected[image_id], gt, image_id=image_id)
    return ev


def test_cli_json_matches_the_evaluator(tiny):
    root, pred, expected = tiny
    result = _run("--dataset", root, "--split", "test", "--predictions", pred, "--json", "--threshold", 0.4)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    want = _reference(root, expected, threshold=0.4).summary()
    for key in ("miou", "niou", "pd", "fa", "auc", "ap", "precision", "recall", "f1", "threshold", "images", "targets"):
        assert data[key] == pytest.approx(want[key], abs=1e-12), key
    assert data["images"] == 4 and data["targets"] > 4
    assert data["split"] == "test" and data["resolution"] == "native" and "greedy" in data["matching"]
    assert 0 < data["miou"] < 1 and 0 < data["fa"] < 1e-1  # plain fractions, no percent scaling
    assert len(data["pd_fa_curve"]["pd"]) == 101
    assert "IoU %" in result.stderr and "{" not in result.stderr
    assert {k: data[k] for k in rules()} == rules()  # the protocol of irstd.protocol, as compare's
    assert " ".join(summary_line().split()) in " ".join(result.stderr.split())
    best = _reference(root, expected).best_threshold()
    assert data["best_threshold"] == pytest.approx(best, abs=1e-12)
    assert f"best threshold (chosen on these images, optimistic): score > {best['threshold']:g}" in result.stderr


def test_cli_out_folder_and_no_overwrite(tiny, tmp_path):
    root, pred, expected = tiny
    out = tmp_path / "run"
    result = _run("--dataset", root, "--split", "test", "--predictions", pred, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    names = sorted(p.name for p in out.iterdir())
    assert names == ["metrics.json", "pd_fa.png", "per_image.csv", "pr.png", "roc.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(_reference(root, expected).summary()["miou"], abs=1e-12)
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["id"] for r in rows] == list(SHAPES)
    assert (int(rows[0]["height"]), int(rows[0]["width"])) == SHAPES["a1"]
    # full precision: the CSV reads back to the evaluator's very values (as compare's per_image.csv)
    assert [float(r["iou"]) for r in rows] == [r["iou"] for r in _reference(root, expected).per_image]
    before = (out / "metrics.json").read_bytes()
    again = _run("--dataset", root, "--split", "test", "--predictions", pred, "--out", out, "--threshold", 0.9)
    assert again.exit_code == 2
    assert again.stderr.startswith("irstd: error:") and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert (out / "metrics.json").read_bytes() == before
    forced = _run("--dataset", root, "--split", "test", "--predictions", pred, "--out", out, "--threshold", 0.9, "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "metrics.json").read_text())["threshold"] == 0.9


def test_cli_pd_fa_step(tiny, tmp_path):
    root, pred, _ = tiny
    result = _run("--dataset", root, "--split", "test", "--predictions", pred, "--json", "--pd-fa-step", 0.1)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pd_fa_curve"]["thresholds"] == [k / 10 for k in range(11)]
    out = tmp_path / "run"
    result = _run("--dataset", root, "--split", "test", "--predictions", pred, "--json", "--pd-fa-step", 0, "--out", out)
    assert result.exit_code == 0, result.output
    assert "pd_fa_curve" not in json.loads(result.stdout) and not (out / "pd_fa.png").exists()
    _one_line_error(_run("--dataset", root, "--split", "test", "--predictions", pred, "--pd-fa-step", 0.3), "--pd-fa-step")


def test_npy_float32_and_png_agree_at_an_8bit_threshold(tiny, tmp_path):
    root, _, _ = tiny
    png, npy = tmp_path / "png", tmp_path / "npy"
    png.mkdir()
    npy.mkdir()
    rng = np.random.default_rng(3)
    for image_id, shape in SHAPES.items():
        v = rng.choice(np.array([0, 152, 153, 154, 255], np.uint8), size=shape)  # 153/255 = 0.6
        Image.fromarray(v).save(png / f"{image_id}.png")
        np.save(npy / f"{image_id}.npy", v.astype(np.float32) / np.float32(255))
    a = _run("--dataset", root, "--split", "test", "--predictions", png, "--json", "--threshold", 0.6)
    b = _run("--dataset", root, "--split", "test", "--predictions", npy, "--json", "--threshold", 0.6)
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    for key in ("miou", "niou", "pd", "fa", "precision", "recall", "f1", "tp", "fp"):
        assert da[key] == pytest.approx(db[key], abs=1e-12), key


def test_cli_split_file(tiny, tmp_path):
    root, pred, expected = tiny
    split = tmp_path / "two.txt"
    split.write_text("a3\na1\n")
    result = _run("--dataset", root, "--split-file", split, "--predictions", pred, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 2 and data["split_file"] == str(split)
    assert data["miou"] == pytest.approx(_reference(root, expected, ["a3", "a1"]).summary()["miou"], abs=1e-12)


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("irstd: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def test_missing_prediction(tiny):
    root, pred, _ = tiny
    (pred / "a3.npy").unlink()
    _one_line_error(_run("--dataset", root, "--split", "test", "--predictions", pred), "'a3'", "a3.png or a3.npy")


def test_size_mismatch(tiny):
    root, pred, _ = tiny
    np.save(pred / "a4.npy", np.zeros((16, 41), np.float32))
    _one_line_error(
        _run("--dataset", root, "--split", "test", "--predictions", pred), "a4.npy", "'a4'", "41x16", "40x16"
    )


def test_nan_in_npy(tiny):
    root, pred, _ = tiny
    bad = np.zeros((30, 26), np.float32)
    bad[3, 3] = np.nan
    np.save(pred / "a3.npy", bad)
    _one_line_error(_run("--dataset", root, "--split", "test", "--predictions", pred), "a3.npy", "NaN")


def test_scores_out_of_range(tiny):
    root, pred, _ = tiny
    np.save(pred / "a3.npy", np.full((30, 26), 2.0, np.float32))
    _one_line_error(_run("--dataset", root, "--split", "test", "--predictions", pred), "a3.npy", "[0, 1]")


def test_skip_errors_lists_and_exits_3(tiny):
    root, pred, expected = tiny
    (pred / "a2.png").unlink()
    np.save(pred / "a4.npy", np.zeros((5, 5), np.float32))
    result = _run("--dataset", root, "--split", "test", "--predictions", pred, "--json", "--skip-errors")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 2
    assert [s["id"] for s in data["skipped"]] == ["a2", "a4"]
    assert "skipped" in result.stderr and "a2" in result.stderr and "a4" in result.stderr
    assert data["miou"] == pytest.approx(_reference(root, expected, ["a1", "a3"]).summary()["miou"], abs=1e-12)


def test_bad_options(tiny, tmp_path):
    root, pred, _ = tiny
    _one_line_error(_run("--dataset", root, "--predictions", pred), "--split")
    split = tmp_path / "s.txt"
    split.write_text("a1\n")
    _one_line_error(_run("--dataset", root, "--split", "test", "--split-file", split, "--predictions", pred), "not both")
    _one_line_error(_run("--dataset", root, "--split", "nope", "--predictions", pred), "nope")
    _one_line_error(_run("--dataset", root, "--split", "test", "--predictions", tmp_path / "none"), "--predictions")
    assert _run("--dataset", root, "--split", "test", "--predictions", pred, "--threshold", 1.5).exit_code == 2


def test_library_boundary_accepts_any_score_source(tiny):
    root, pred, expected = tiny
    from irstd.data import open_dataset

    ds = open_dataset(root)
    via_folder = evaluate_predictions(root, pred, split="test").evaluator.summary()
    via_callable = evaluate(ds, list(SHAPES), lambda i: expected[i]).evaluator.summary()
    for key in via_folder:
        assert via_folder[key] == pytest.approx(via_callable[key], abs=1e-12, nan_ok=True), key
    with pytest.raises(InputError, match="two predictions"):
        np.save(pred / "a1.npy", np.zeros(SHAPES["a1"], np.float32))
        SavedPredictions(pred).path("a1")


@pytest.mark.slow
@pytest.mark.data
def test_cli_on_sirst_50_50_agrees_with_reference(tmp_path):
    import os
    import sys
    from pathlib import Path

    from scipy import ndimage

    root = Path(os.environ.get("IRSTD_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")) / "SIRST"
    split = root / "splits" / "dnanet_50_50" / "test.txt"
    if not split.is_file():
        pytest.skip(f"SIRST not found under {root} (set IRSTD_DATA)")
    sys.path.insert(0, str(Path(__file__).parent))
    from reference_basicirstd import reference_evaluate

    pred = tmp_path / "pred"
    pred.mkdir()
    rng = np.random.default_rng(7)
    pairs = []
    for image_id in split.read_text().split():
        gt = np.array(Image.open(root / "masks" / f"{image_id}.png"))
        s = ndimage.gaussian_filter(ndimage.binary_dilation(gt > 127).astype(float), 0.8) * 1.4
        s = np.floor(np.clip(s + rng.normal(0, 0.08, gt.shape), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(s).save(pred / f"{image_id}.png")
        pairs.append((s.astype(np.float32) / 255.0, gt.astype(np.float32) / 255.0))
    result = _run("--dataset", root, "--split", "dnanet_50_50/test", "--predictions", pred, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ref = reference_evaluate(pairs)
    assert data["images"] == 214 and data["targets"] == ref["targets"]
    for key in ("miou", "niou", "pd", "fa"):
        assert abs(data[key] - ref[key]) <= 1e-9, key


# -- irstd evaluate --method: run a method on the split's images and evaluate in one go ----------


@pytest.fixture()
def scenes(tmp_path):
    """A tiny synthetic dataset: 6 scenes (write_dataset size (96, 112)), split ``test``."""
    from irstd.synth import write_dataset

    root = tmp_path / "synth"
    write_dataset(root, count=6, size=(96, 112), seed=4)
    return root


def test_method_equals_saved_predictions_of_the_same_method(scenes, tmp_path):
    from irstd.data import open_dataset
    from irstd.methods import get_method

    ds = open_dataset(scenes)
    ids = ds.ids(split="test")
    pred = tmp_path / "lcm_npy"
    pred.mkdir()
    for image_id in ids:
        np.save(pred / f"{image_id}.npy", get_method("lcm").run(ds.read_image(image_id)).scores)
    common = ["--dataset", scenes, "--split", "test", "--json", "--threshold", 0.3]
    saved = _run(*common, "--predictions", pred)
    run = _run(*common, "--method", "lcm", "--workers", 2)
    assert saved.exit_code == run.exit_code == 0, run.stderr
    a, b = json.loads(saved.stdout), json.loads(run.stdout)
    for key in ("miou", "niou", "pd", "fa", "auc", "ap", "precision", "recall", "f1", "images", "targets",
                "pd_fa_curve"):
        assert a[key] == b[key], key
    assert b["method"] == "lcm" and b["threshold"] == 0.3 and b["mask_rule"] == "min-max score > 0.3"
    assert b["method_runs"] == len(ids) and b["method_seconds"] > 0


def test_method_own_rule_masks_and_score_curves(scenes, tmp_path):
    from irstd.data import open_dataset
    from irstd.methods import get_method

    ds = open_dataset(scenes)
    ids = ds.ids(split="test")
    ref = Evaluator()
    for image_id in ids:
        out = get_method("lcm").run(ds.read_image(image_id))
        ref.update(out.scores, ds.read_mask(image_id), image_id=image_id, pred=out.mask)
    result = _run("--dataset", scenes, "--split", "test", "--json", "--method", "lcm",
                  "--out", tmp_path / "run", "--save-predictions", tmp_path / "maps")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    expected = ref.summary()
    for key in ("miou", "niou", "pd", "fa", "auc", "ap", "precision", "recall"):
        assert data[key] == pytest.approx(expected[key], abs=1e-12), key
    assert data["threshold"] is None and data["mask_rule"] == "raw map > mean + 3·std"
    assert data["score_rule"] == "min-max normalised raw LCM map"
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["mask_rule"] == data["mask_rule"] and saved["method_runs"] == len(ids)
    assert "lcm" in result.stderr and "mean + 3·std" in result.stderr
    maps = sorted(p.stem for p in (tmp_path / "maps").iterdir())
    assert maps == sorted(ids)
    first = np.array(Image.open(tmp_path / "maps" / f"{ids[0]}.png"))
    assert first.dtype == np.uint16


def test_compat_dnanet(scenes, tmp_path):
    from irstd.data import open_dataset
    from irstd.protocol import resize_for_compat
    from irstd.methods import get_method

    ds = open_dataset(scenes)
    ids = ds.ids(split="test")
    ref = Evaluator(fa_rule="dnanet")
    pred = tmp_path / "pred256"
    pred.mkdir()
    for image_id in ids:  # DNANet's geometry: 256x256 image (bilinear) and mask (nearest)
        out = get_method("lcm").run(resize_for_compat(ds.read_image(image_id), 256))
        gt = resize_for_compat(ds.read_mask(image_id), 256, mask=True)
        ref.update(out.scores, gt, image_id=image_id, pred=out.mask)
        np.save(pred / f"{image_id}.npy", out.scores)
    result = _run("--dataset", scenes, "--split", "test", "--json", "--method", "lcm", "--compat", "dnanet")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("miou", "niou", "pd", "fa", "auc", "hits", "false_alarm_pixels", "pixels"):
        assert data[key] == pytest.approx(ref.summary()[key], abs=1e-12), key
    assert data["pixels"] == 256 * 256 * len(ids)  # Fa's denominator: size² · N
    assert data["compat"] == "dnanet" and data["resolution"].startswith("resized to 256x256")
    assert "area differs" in data["fa_rule"] and "--compat dnanet" in result.stderr
    saved = _run("--dataset", scenes, "--split", "test", "--json", "--predictions", pred, "--compat", "dnanet",
                 "--threshold", 0.4)
    assert saved.exit_code == 0 and json.loads(saved.stdout)["images"] == len(ids)
    native = tmp_path / "native"
    native.mkdir()
    np.save(native / f"{ids[0]}.npy", np.zeros((96, 112)))
    _one_line_error(_run("--dataset", scenes, "--split-file", _one_id(tmp_path, ids[0]), "--predictions", native,
                         "--compat", "dnanet"), "the protocol evaluates at 256x256")
    _one_line_error(_run("--dataset", scenes, "--split", "test", "--method", "lcm", "--compat", "mshnet"), "--compat")


def _one_id(tmp_path, image_id):
    path = tmp_path / "one.txt"
    path.write_text(image_id + "\n")
    return path


def test_resize_for_compat_is_pillows():
    from irstd.protocol import resize_for_compat

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    want = np.asarray(Image.fromarray(grey).resize((256, 256), Image.BILINEAR))
    np.testing.assert_array_equal(resize_for_compat(grey, 256), want)
    mask = rng.random((37, 53)) > 0.8
    want = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((256, 256), Image.NEAREST)) > 0
    np.testing.assert_array_equal(resize_for_compat(mask, 256, mask=True), want)
    counts = (grey.astype(np.uint16) * 200)
    out = resize_for_compat(counts, 64)
    assert out.dtype == np.uint16 and out.shape == (64, 64)
    np.testing.assert_allclose(out, resize_for_compat(counts.astype(np.float32), 64), atol=0.5)


def test_method_cgrinet_weights_and_skip_errors(scenes, tmp_path):
    import torch

    from irstd.models import create_model, save_weights

    torch.manual_seed(0)
    weights = save_weights(create_model("cgrinet_test"), tmp_path / "tiny.safetensors")
    from irstd.data import open_dataset

    ids = open_dataset(scenes).ids(split="test")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(scenes / "masks" / f"{ids[0]}.png")  # size mismatch
    result = _run("--dataset", scenes, "--split", "test", "--json", "--weights", weights)
    assert result.exit_code == 2 and ids[0] in result.stderr
    result = _run("--dataset", scenes, "--split", "test", "--json", "--weights", weights, "--skip-errors")
    assert result.exit_code == 3, result.stderr
    data = json.loads(result.stdout)
    assert data["images"] == len(ids) - 1 and [s["id"] for s in data["skipped"]] == [ids[0]]
    assert data["method"] == "cgrinet:tiny" and data["threshold"] == 0.5 and data["parameters"] > 0


def test_method_option_errors(scenes, tmp_path):
    _one_line_error(_run("--dataset", scenes, "--split", "test"), "exactly one")
    _one_line_error(_run("--dataset", scenes, "--split", "test", "--method", "lcm", "--predictions", tmp_path), "exactly one")
    _one_line_error(_run("--dataset", scenes, "--split", "test", "--method", "sobel"), "unknown method")
    _one_line_error(_run("--dataset", scenes, "--split", "test", "--predictions", tmp_path, "--save-predictions", tmp_path / "m"),
                    "--save-predictions")


def test_colour_prediction_maps_follow_the_gray_rule(tiny):
    import matplotlib

    root, pred, expected = tiny
    image_id = next(iter(SHAPES))
    ramp = np.linspace(0, 1, expected[image_id].size).reshape(expected[image_id].shape)  # the whole palette
    jet = np.rint(matplotlib.colormaps["jet"](ramp)[..., :3] * 255).astype(np.uint8)
    Image.fromarray(jet, "RGB").save(pred / f"{image_id}.png")  # a heat map saved as a picture
    _one_line_error(_run("--dataset", root, "--split", "test", "--predictions", pred), f"{image_id}.png", "pseudo-colour")
    result = _run("--dataset", root, "--split", "test", "--predictions", pred, "--json", "--gray", "r")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    want = _reference(root, {**expected, image_id: jet[..., 0]}).summary()
    assert data["gray"] == "r" and data["miou"] == pytest.approx(want["miou"], abs=1e-12)


def test_protocol_rules_state_the_engine_constants():
    from irstd.metrics import CURVE_BINS, MATCH_DISTANCE
    from irstd.protocol import COMPAT, check_compat, curves_rule, fa_rule_text, matching_rule

    assert f"distance < {MATCH_DISTANCE:g} px" in matching_rule()
    assert f"{CURVE_BINS} score levels k/{CURVE_BINS - 1}" in curves_rule()
    assert f"< {MATCH_DISTANCE:g} px" in summary_line() and fa_rule_text(None) in summary_line()
    for name, spec in COMPAT.items():
        assert check_compat(name) == (spec["size"], spec["fa_rule"])
        assert rules(name)["resolution"].startswith(f"resized to {spec['size']}x{spec['size']}")
        assert rules(name)["fa_rule"] in summary_line(name)
    with pytest.raises(InputError, match="--compat"):
        rules("nope")
