"""Tiled inference (:mod:`irstd.tiles`): spans, stitching, methods and the ``--tile`` option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from typer.testing import CliRunner

from irstd.models import packaged as packaged_module
from irstd import methods
from irstd.baselines import ipi, lcm
from irstd.cli import detect as cli_detect
from irstd.cli.main import app
from irstd.errors import InputError
from irstd.io import write_image
from irstd.intensity import to_float
from irstd.methods import get_method
from irstd.models import create_model, load_model, predict, save_weights
from irstd.synth import make_scene
from irstd.tiles import check_tiling, map_tiled, tile_spans


@pytest.fixture(autouse=True)
def _no_packaged_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", tmp_path / "no-weights")


@pytest.mark.parametrize("length", [40, 64, 65, 100, 129, 300, 1001])
@pytest.mark.parametrize("tile, overlap", [(64, 0), (64, 16), (64, 32), (128, 33), (512, 64)])
def test_spans_partition_the_axis_with_context(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    covered = np.zeros(length, int)
    for start, stop, keep0, keep1 in spans:
        assert stop - start == min(tile, length)  # full tiles, the last one aligned to the end
        assert start <= keep0 < keep1 <= stop
        covered[keep0:keep1] += 1
        if start > 0:  # an inner border: at least overlap // 2 pixels of context
            assert keep0 - start >= overlap // 2
        if stop < length:
            assert stop - keep1 >= overlap // 2
    assert (covered == 1).all()
    starts = [s for s, *_ in spans]
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_local_filter_is_exact_with_enough_overlap():
    image = np.random.default_rng(0).random((150, 230))
    local = lambda a: ndimage.maximum_filter(a, size=9, mode="nearest")  # noqa: E731 - radius 4
    whole = local(image)
    np.testing.assert_array_equal(map_tiled(local, image, 64, 8), whole)
    assert np.abs(map_tiled(local, image, 64, 6) - whole).max() > 1e-3  # too little context shows
    calls = []
    assert map_tiled(lambda a: calls.append(a.shape) or a, image, None) is image
    assert map_tiled(lambda a: calls.append(a.shape) or a, image, 256) is image
    assert calls == [(150, 230), (150, 230)]  # no tiling: one call on the whole frame


def test_lcm_on_tiles_equals_lcm_on_the_frame():
    image = np.round(make_scene(np.random.default_rng(1), 140, 200)[0] * 255)
    method = get_method("lcm", tile=64, overlap=26)  # LCM's window radius is 13 (9-pixel cells)
    out = method.run(image)
    np.testing.assert_array_equal(out.raw, lcm(image))
    assert "on 64-pixel tiles overlapping by 26" in method.score_rule
    assert method.tiling() == {"size": 64, "overlap": 26}
    assert get_method("lcm").tiling() is None
    assert get_method("lcm", tile=100).tiling() == {"size": 100, "overlap": 50}  # default: 64, or half the tile
    assert get_method("lcm", tile=512).tiling() == {"size": 512, "overlap": 64}


def test_network_on_tiles(tmp_path):
    torch.manual_seed(0)
    weights = save_weights(create_model("cgrinet_test"), tmp_path / "tiny.safetensors")
    image = np.round(make_scene(np.random.default_rng(2), 150, 170)[0] * 255).astype(np.uint8)
    whole = get_method(f"cgrinet:{weights}").run(image)
    tiled = get_method(f"cgrinet:{weights}", tile=96, overlap=32).run(image)
    assert tiled.scores.shape == image.shape and np.isfinite(tiled.scores).all()
    assert np.array_equal(tiled.mask, tiled.scores > 0.5)
    assert not np.array_equal(tiled.scores, whole.scores)  # tiles, not the frame
    big = get_method(f"cgrinet:{weights}", tile=256).run(image)  # one tile holds the frame
    np.testing.assert_array_equal(big.scores, whole.scores)
    # By hand: 150 rows in tiles [0, 96) and [54, 150), cut at 75; 170 columns in [0, 96), [64, 160)
    # and [74, 170), cut at 80 and 117.
    model, x = load_model(weights), to_float(image)
    want = np.empty(image.shape)
    for y0, y1, ky0, ky1 in [(0, 96, 0, 75), (54, 150, 75, 150)]:
        for x0, x1, kx0, kx1 in [(0, 96, 0, 80), (64, 160, 80, 117), (74, 170, 117, 170)]:
            want[ky0:ky1, kx0:kx1] = predict(model, x[y0:y1, x0:x1])[ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0]
    torch_tiled = get_method(f"cgrinet:{weights}", tile=96, overlap=32, engine="torch").run(image)
    np.testing.assert_allclose(torch_tiled.scores, want, atol=1e-6)
    np.testing.assert_allclose(tiled.scores, want, atol=1e-4)  # ONNX Runtime, the CPU default


def test_ipi_on_tiles_equals_ipi_on_each_tile_pasted():
    image = np.round(make_scene(np.random.default_rng(3), 120, 150)[0] * 255)
    out = get_method("ipi", tile=80, overlap=20).run(image)
    # By hand: rows [0, 80) and [40, 120) cut at 60; columns [0, 80), [60, 140), [70, 150) cut at 70, 105.
    want = np.empty(image.shape)
    for y0, y1, ky0, ky1 in [(0, 80, 0, 60), (40, 120, 60, 120)]:
        for x0, x1, kx0, kx1 in [(0, 80, 0, 70), (60, 140, 70, 105), (70, 150, 105, 150)]:
            want[ky0:ky1, kx0:kx1] = ipi(image[y0:y1, x0:x1])[ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0]
    np.testing.assert_allclose(out.raw, want, rtol=0, atol=1e-9 * np.abs(want).max())
    assert not np.allclose(out.raw, ipi(image), atol=1e-3 * np.abs(want).max())  # tiles, not the frame


@pytest.mark.parametrize("tile, overlap, needle", [(63, 0, "--tile"), (64.5, 0, "--tile"), (64, 33, "--overlap"),
                                                   (64, -1, "--overlap")])
def test_bad_tiling(tile, overlap, needle):
    with pytest.raises(InputError, match=needle):
        check_tiling(tile, overlap)
    with pytest.raises(InputError, match=needle):
        get_method("lcm", tile=tile, overlap=overlap)


def test_cli_tile(tmp_path, monkeypatch):
    image = np.round(make_scene(np.random.default_rng(4), 130, 160)[0] * 255).astype(np.uint8)
    write_image(tmp_path / "a.png", image)
    runner = CliRunner()
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--method", "lcm", "--tile", "64",
                                 "--overlap", "26", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    (d,) = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert d["tile"] == {"size": 64, "overlap": 26}
    plain = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--method", "lcm", "-f", "json"])
    (p,) = [json.loads(line) for line in plain.stdout.splitlines() if line.strip()]
    assert p["tile"] is None and p["targets"] == d["targets"]  # LCM: exact with that overlap
    assert "--tile 512" not in plain.stderr  # small frames: no hint
    monkeypatch.setattr(cli_detect, "_TILE_HINT_PIXELS", 100 * 100)
    hinted = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--method", "lcm"])
    assert hinted.exit_code == 0 and "tip: frames this large" in hinted.stderr and "--tile 512" in hinted.stderr
    tiled = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--method", "lcm", "--tile", "64"])
    assert tiled.exit_code == 0 and "tip:" not in tiled.stderr
    bad = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "--method", "lcm", "--tile", "32"])
    assert bad.exit_code == 2 and "--tile" in bad.stderr and "Traceback" not in bad.stderr
    bad = runner.invoke(app, ["evaluate", "--dataset", str(tmp_path), "--split", "test",
                              "--predictions", str(tmp_path), "--tile", "64"])
    assert bad.exit_code == 2 and "--tile: only with --method" in bad.stderr
