"""Tests of irstd.synth: masks consistent with the image, stated SCR, reproducibility, dataset writing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from irstd import io
from irstd.data import check_dataset, open_dataset
from irstd.errors import InputError
from irstd.synth import AREA_RANGE, make_scene, write_dataset

EIGHT = np.ones((3, 3), bool)


def test_scene_shape_range_and_targets():
    for seed in range(6):
        image, mask, targets = make_scene(np.random.default_rng(seed), 64, 80, targets=(2, 3), return_targets=True)
        assert image.shape == mask.shape == (64, 80)
        assert image.dtype == np.float64 and mask.dtype == bool
        assert 0.0 <= image.min() and image.max() <= 1.0
        _, n = ndimage.label(mask, structure=EIGHT)
        assert n == len(targets) >= 1  # masks are kept apart: one component per target
        assert mask.sum() == sum(t.area for t in targets)
        for t in targets:
            assert AREA_RANGE[0] <= t.area <= AREA_RANGE[1] + 10


def test_no_targets_gives_empty_mask():
    image, mask = make_scene(np.random.default_rng(1), 48, 48, targets=(0, 0))
    assert not mask.any()
    assert image.std() > 0  # a cluttered background, not a flat image


def test_scr_is_as_stated_and_targets_brighter_than_surroundings():
    scr_seen = []
    for seed in range(10):
        image, mask, targets = make_scene(np.random.default_rng(seed), 96, 96, scr=(4.0, 6.0), return_targets=True)
        scr_seen += [t.scr for t in targets]
        labels, n = ndimage.label(mask, structure=EIGHT)
        for k in range(1, n + 1):
            core = labels == k
            ring = ndimage.binary_dilation(core, iterations=4) & ~ndimage.binary_dilation(core, iterations=2)
            assert image[core].mean() > image[ring].mean()
    assert min(scr_seen) >= 4.0 - 1e-9
    assert np.median(scr_seen) < 6.0 + 1e-9


def test_tophat_finds_most_targets_at_default_scr():
    found = total = 0
    for seed in range(20):
        image, mask = make_scene(np.random.default_rng(seed), 128, 128)
        th = ndimage.white_tophat(image, size=11)
        det = th > th.mean() + 5 * th.std()
        labels, n = ndimage.label(mask, structure=EIGHT)
        total += n
        found += sum(bool(det[labels == k].any()) for k in range(1, n + 1))
    assert total > 20
    assert found / total > 0.6  # detectable ...
    # ... and not trivially: a plain global threshold misses many
    plain = 0
    for seed in range(20):
        image, mask = make_scene(np.random.default_rng(seed), 128, 128)
        det = image > image.mean() + 3 * image.std()
        labels, n = ndimage.label(mask, structure=EIGHT)
        plain += sum(bool(det[labels == k].any()) and (det & ~mask).sum() < 20 for k in range(1, n + 1))
    assert plain < found


def test_same_rng_same_scene():
    a = make_scene(np.random.default_rng(5), 40, 50)
    b = make_scene(np.random.default_rng(5), 40, 50)
    c = make_scene(np.random.default_rng(6), 40, 50)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("kwargs,match", [
    ({"targets": (3, 1)}, "--targets"), ({"targets": (-1, 2)}, "--targets"),
    ({"scr": (0, 2)}, "--scr"), ({"scr": (5, 2)}, "--scr"),
])
def test_bad_scene_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        make_scene(np.random.default_rng(0), 32, 32, **kwargs)
    with pytest.raises(InputError, match="--size"):
        make_scene(np.random.default_rng(0), 8, 32)


def test_write_dataset_layout_and_check(tmp_path):
    out = tmp_path / "syn"
    record = write_dataset(out, 4, (48, 64), seed=3)
    ds = open_dataset(out)
    assert ds.ids() == [f"synth_000{i}" for i in range(4)]
    assert ds.ids("train") == ["synth_0000", "synth_0001"] and ds.ids("test") == ["synth_0002", "synth_0003"]
    report = check_dataset(out)
    n_targets = sum(len(r["targets"]) for r in record["images"])
    assert report.facts["targets"] == n_targets
    assert all(p.kind == "empty_mask" for p in report.problems)  # only possible problem: no target drawn
    # written image is the quantised scene; mask matches make_scene
    child = np.random.SeedSequence(3).spawn(4)[1]
    image, mask = make_scene(np.random.default_rng(child), 48, 64)
    np.testing.assert_array_equal(ds.read_image("synth_0001"), np.rint(image * 255).astype(np.uint8))
    np.testing.assert_array_equal(ds.read_mask("synth_0001"), mask)
    meta = json.loads((out / "synth.json").read_text())
    assert meta["seed"] == 3 and meta["bit_depth"] == 8 and "mask_rule" in meta


def test_write_dataset_reproducible_bytes_and_16bit(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    write_dataset(a, 2, (32, 32), seed=11, bit_depth=16)
    write_dataset(b, 2, (32, 32), seed=11, bit_depth=16)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    img = io.read_image(a / "images" / "synth_0000.png")
    assert img.dtype == np.uint16 and len(np.unique(img)) > 256


def test_write_dataset_refuses_non_empty_without_overwrite(tmp_path):
    out = tmp_path / "syn"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises(InputError, match="not empty.*--overwrite"):
        write_dataset(out, 1, (32, 32), seed=0)
    write_dataset(out, 3, (32, 32), seed=0, overwrite=True)
    write_dataset(out, 1, (32, 32), seed=0, overwrite=True)  # stale synth_0001/2 removed
    assert (out / "keep.txt").read_text() == "user file"
    assert open_dataset(out).ids() == ["synth_0000"]
    assert check_dataset(out).facts["masks"] == 1
    for bad in ({"count": 0}, {"seed": -1}, {"bit_depth": 12}):
        kwargs = {"count": 1, "seed": 0, **bad}
        with pytest.raises(InputError):
            write_dataset(tmp_path / "other", size=(32, 32), **kwargs)
