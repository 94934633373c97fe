"""Test-time augmentation (:mod:`irstd.tta`): views, averaging, the method and the ``--tta`` option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from irstd.models import packaged as packaged_module
from irstd import methods
from irstd.cli.main import app
from irstd.compare import _build_methods, method_key
from irstd.errors import InputError
from irstd.io import write_image
from irstd.intensity import to_float
from irstd.methods import MethodOptions, get_method
from irstd.models import create_model, load_model, predict, save_weights
from irstd.synth import make_scene
from irstd.targets import find_targets
from irstd.tiles import map_tiled
from irstd.tta import TTA_MODES, map_tta, tta_views


@pytest.fixture(autouse=True)
def _no_packaged_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", tmp_path / "no-weights")


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_weights(create_model("cgrinet_test"), tmp_path / "tiny.safetensors")


@pytest.fixture
def image():
    return np.round(make_scene(np.random.default_rng(5), 70, 90)[0] * 255).astype(np.uint8)


def test_views_are_distinct_symmetries_identity_first():
    a = np.arange(12.0).reshape(3, 4)
    for mode, count in TTA_MODES.items():
        views = tta_views(mode)
        assert len(views) == count and views[0] == (False, False, False)
        seen = set()
        for rows, cols, transpose in views:
            v = a.T if transpose else a
            v = v[::-1] if rows else v
            v = v[:, ::-1] if cols else v
            seen.add((v.shape, v.tobytes()))
        assert len(seen) == count  # no view twice


def test_average_maps_each_view_back():
    a = np.random.default_rng(0).random((5, 7))
    # an equivariant map is unchanged by averaging
    for mode in TTA_MODES:
        np.testing.assert_allclose(map_tta(lambda x: x**2, a, mode), a**2, rtol=1e-6)
    # a map that is not: cumulative sum down the columns; its flip average by hand
    cs = lambda x: np.cumsum(x, axis=0)  # noqa: E731
    want = (cs(a) + cs(a[::-1])[::-1] + cs(a[:, ::-1])[:, ::-1] + cs(a[::-1, ::-1])[::-1, ::-1]) / 4
    np.testing.assert_allclose(map_tta(cs, a, "flip"), want, rtol=1e-6)
    got = map_tta(cs, a, "dihedral")
    want8 = (4 * want + 4 * map_tta(lambda x: cs(x.T).T, a, "flip")) / 8
    np.testing.assert_allclose(got, want8, rtol=1e-5)
    assert got.shape == a.shape and got.dtype == np.float32
    with pytest.raises(InputError, match="--tta"):
        map_tta(cs, a, "rot90")


def test_network_method_averages_flipped_predictions(weights, image):
    plain = get_method(f"cgrinet:{weights}").run(image)
    flip = get_method(f"cgrinet:{weights}", tta="flip").run(image)
    model = load_model(weights)
    x = to_float(image)
    want = np.mean([predict(model, x), predict(model, x[::-1].copy())[::-1], predict(model, x[:, ::-1].copy())[:, ::-1],
                    predict(model, x[::-1, ::-1].copy())[::-1, ::-1]], axis=0)
    np.testing.assert_allclose(flip.scores, want, atol=1e-5)
    assert not np.allclose(flip.scores, plain.scores, atol=1e-4)  # the tiny model is not flip invariant
    assert np.array_equal(flip.mask, flip.scores > 0.5)
    assert "mean over 4 flip views" in get_method(f"cgrinet:{weights}", tta="flip").score_rule
    tiled = get_method(f"cgrinet:{weights}", tta="dihedral", tile=64, overlap=16, engine="torch").run(image)
    views = []  # by hand: the 8 symmetries, each tiled, mapped back
    for transpose in (False, True):
        for rows, cols in ((False, False), (True, False), (False, True), (True, True)):
            v = x.T if transpose else x
            v = v[::-1] if rows else v
            v = v[:, ::-1] if cols else v
            p = map_tiled(lambda t: predict(model, t), np.ascontiguousarray(v), 64, 16)
            p = p[:, ::-1] if cols else p
            p = p[::-1] if rows else p
            views.append(p.T if transpose else p)
    np.testing.assert_allclose(tiled.scores, np.mean(views, axis=0), atol=1e-6)


def test_tta_only_for_networks_and_known_modes(weights):
    with pytest.raises(InputError, match="--tta flip: only with cgrinet"):
        get_method("lcm", tta="flip")
    with pytest.raises(InputError, match="--tta: expected one of none, flip, dihedral"):
        get_method(f"cgrinet:{weights}", tta="flips")
    # compare applies it to the networks of a list and runs the classical methods once
    infos, objs = _build_methods(["lcm", f"cgrinet:{weights}"], weights.parent, MethodOptions(tta="flip"))
    assert [m.tta for m in objs] == ["none", "flip"]
    keys = [method_key(f"cgrinet:{weights}", get_method(f"cgrinet:{weights}", tta=t))
            for t in ("none", "flip")]
    assert keys[0]["tta"] == "none" and keys[1]["tta"] == "flip" and keys[0] != keys[1]


def test_cli_tta(tmp_path, weights, image):
    write_image(tmp_path / "a.png", image)
    runner = CliRunner()
    scores = get_method(f"cgrinet:{weights}", tta="flip").run(image).scores  # averaged by hand in the test above
    t = round(float(np.quantile(scores, 0.995)), 4)  # the untrained model: a threshold that finds a few targets
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--weights", str(weights), "--tta", "flip",
                                 "--threshold", str(t), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    (d,) = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert d["tta"] == "flip"
    flip = get_method(f"cgrinet:{weights}", tta="flip", threshold=t).run(image)
    want = find_targets(flip.mask, flip.scores)
    assert len(d["targets"]) == len(want) > 0
    assert [t["bbox"] for t in d["targets"]] == [t["bbox"] for t in want]
    bad = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--weights", str(weights), "--tta", "all"])
    assert bad.exit_code == 2 and "--tta: expected one of" in bad.stderr and "Traceback" not in bad.stderr
    bad = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--method", "ipi", "--tta", "flip"])
    assert bad.exit_code == 2 and "only with cgrinet" in bad.stderr
    bad = runner.invoke(app, ["evaluate", "--dataset", str(tmp_path), "--split", "test",
                              "--predictions", str(tmp_path), "--tta", "flip"])
    assert bad.exit_code == 2 and "--tta: only with --method" in bad.stderr
