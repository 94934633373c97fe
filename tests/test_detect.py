"""``irstd detect`` and :mod:`irstd.detect` on small synthetic scenes written in tmp_path."""

from __future__ import annotations

import csv
import io as _io
import json

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

import irstd
from irstd.models import packaged as packaged_module
from irstd import methods
from irstd.cli.main import app
from irstd.detect import Item, collect_inputs, detect, overlay, plan_items, plan_outputs
from irstd.errors import InputError
from irstd.io import read_image, write_image
from irstd.methods import get_method
from irstd.models import create_model, save_weights
from irstd.synth import make_scene
from irstd.targets import find_targets


def _scene(seed, h=96, w=112, dtype=np.uint8):
    image, _ = make_scene(np.random.default_rng(seed), h, w)
    if dtype == np.uint16:
        return np.round(image * 4000 + 100).astype(np.uint16)
    return np.round(image * 255).astype(np.uint8)


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    write_image(d / "img2.png", _scene(2))
    write_image(d / "img10.png", _scene(10, 100, 128))
    write_image(d / "img1.png", _scene(1, 128, 96, np.uint16))
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(create_model("cgrinet_test"), tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(autouse=True)
def _no_packaged_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", tmp_path / "no-weights")


def _run(*args, input=None):
    return CliRunner().invoke(app, ["detect", *map(str, args)], input=input)


def _json_lines(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _one_line_error(result, needle, code=2):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("irstd: error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# -- inputs -------------------------------------------------------------------------------------


def test_collect_inputs_folder_glob_and_list(folder, tmp_path):
    names = [p.name for p in collect_inputs([folder])]
    assert names == ["img1.png", "img2.png", "img10.png"]  # natural order, .txt ignored
    assert [p.name for p in collect_inputs([str(folder / "img1*.png")])] == ["img1.png", "img10.png"]
    listed = collect_inputs(["-", folder / "img2.png"], stdin_lines=[f"{folder / 'img10.png'}\n", "\n"])
    assert [p.name for p in listed] == ["img10.png", "img2.png"]
    assert len(collect_inputs([folder, folder / "img2.png"])) == 3  # each file once
    (folder / "sub").mkdir()
    write_image(folder / "sub" / "deep.png", _scene(3))
    assert len(collect_inputs([folder])) == 3
    assert [p.name for p in collect_inputs([folder], recursive=True)][-1] == "deep.png"
    with pytest.raises(InputError, match="no image file matches"):
        collect_inputs([str(folder / "*.jpg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        collect_inputs([tmp_path / "empty"])
    with pytest.raises(InputError, match="no such file"):
        collect_inputs([tmp_path / "missing.png"])


def test_multipage_tiff_frames(tmp_path):
    stack = np.stack([_scene(k, dtype=np.uint16) for k in range(3)])
    tifffile.imwrite(tmp_path / "clip.tif", stack, photometric="minisblack")
    items, skipped = plan_items([tmp_path / "clip.tif"])
    assert [(i.frame, i.frames, i.name) for i in items] == [(0, 3, "clip_f0"), (1, 3, "clip_f1"), (2, 3, "clip_f2")]
    method = get_method("lcm")
    results = list(detect(method, items))
    for k, det in enumerate(results):
        ref = method.run(stack[k])
        np.testing.assert_array_equal(det.output.mask, ref.mask)
        assert det.targets == find_targets(ref.mask, ref.scores)
    result = _run(tmp_path / "clip.tif", "--method", "lcm", "--format", "json")
    assert result.exit_code == 0, result.stderr
    lines = _json_lines(result)
    assert [d["frame"] for d in lines] == [0, 1, 2]
    assert lines[1]["targets"] == results[1].targets


def test_video_frames(tmp_path):
    import cv2

    frames = [_scene(k) for k in range(5)]
    d = tmp_path / "clips"
    d.mkdir()
    writer = cv2.VideoWriter(str(d / "run.mkv"), cv2.VideoWriter_fourcc(*"FFV1"), 25, (112, 96), True)
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    (d / "broken.mp4").write_bytes(b"not a video " * 20)
    assert collect_inputs([d]) == [d / "broken.mp4", d / "run.mkv"]  # folders list videos too
    items, _ = plan_items([d / "run.mkv"])
    assert [i.name for i in items] == [f"run_f{k}" for k in range(5)]
    result = _run(d / "run.mkv", "--method", "lcm", "-f", "json", "--out", tmp_path / "out", "--save-mask")
    assert result.exit_code == 0, result.stderr
    lines = _json_lines(result)
    assert [x["frame"] for x in lines] == list(range(5)) and {(x["width"], x["height"]) for x in lines} == {(112, 96)}
    method = get_method("lcm")
    for k, x in enumerate(lines):
        ref = method.run(frames[k])  # lossless video: the frames themselves
        assert x["targets"] == json.loads(json.dumps(find_targets(ref.mask, ref.scores)))
        np.testing.assert_array_equal(read_image(tmp_path / "out" / "masks" / f"run_f{k}.png") > 0, ref.mask)
    parallel = _run(d / "run.mkv", "--method", "lcm", "-f", "json", "--workers", "2")
    assert _json_lines(parallel) == [dict(x, seconds=y["seconds"]) for x, y in zip(lines, _json_lines(parallel))]
    _one_line_error(_run(d, "--method", "lcm"), "broken.mp4: not a readable video")
    skipped = _run(d, "--method", "lcm", "-f", "json", "--skip-errors")
    assert skipped.exit_code == 3 and len(_json_lines(skipped)) == 5 and "broken.mp4" in skipped.stderr


# -- formats ------------------------------------------------------------------------------------


def test_json_lines(folder):
    result = _run(folder, "--method", "nram", "--format", "json")
    assert result.exit_code == 0, result.stderr
    lines = _json_lines(result)
    assert [d["image"].rsplit("/", 1)[-1] for d in lines] == ["img1.png", "img2.png", "img10.png"]
    d = lines[2]
    assert (d["width"], d["height"], d["frame"]) == (128, 100, 0)
    assert d["method"] == "nram" and d["threshold"] is None and "mean + 3·std" in d["rule"]
    out = get_method("nram").run(read_image(folder / "img10.png"))
    assert d["targets"] == json.loads(json.dumps(find_targets(out.mask, out.scores)))


def test_csv_rows_and_threshold(folder):
    result = _run(folder / "img2.png", folder / "img10.png", "--method", "lcm", "--threshold", "0.4", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(_io.StringIO(result.stdout)))
    assert result.stdout.count("image,frame,width") == 1
    expected = []
    for name in ("img2.png", "img10.png"):
        out = get_method("lcm", threshold=0.4).run(read_image(folder / name))
        np.testing.assert_array_equal(out.mask, out.scores > 0.4)
        expected += [(name, t) for t in find_targets(out.mask, out.scores)]
    assert len(rows) == len(expected) > 0
    for row, (name, t) in zip(rows, expected):
        assert row["image"].endswith(name) and row["threshold"] == "0.4" and row["method"] == "lcm"
        assert int(row["target"]) == t["id"] and int(row["area"]) == t["area"]
        assert float(row["x"]) == pytest.approx(t["centroid"]["x"], abs=1e-3)
        assert int(row["bbox_x"]) == t["bbox"]["x"] and int(row["bbox_height"]) == t["bbox"]["height"]
        assert float(row["peak"]) == pytest.approx(t["peak"], rel=1e-5)
        assert (row["tile"], row["overlap"], row["tta"]) == ("", "", "none")
    tiled = _run(folder / "img10.png", "--method", "lcm", "--tile", "64", "-f", "csv")
    assert tiled.exit_code == 0, tiled.stderr
    rows = list(csv.DictReader(_io.StringIO(tiled.stdout)))
    assert rows and all((r["tile"], r["overlap"], r["tta"]) == ("64", "32", "none") for r in rows)


def test_table_and_workers(folder):
    serial = _run(folder, "--method", "lcm", "-f", "json")
    parallel = _run(folder, "--method", "lcm", "-f", "json", "--workers", "2")
    strip = lambda r: [{k: v for k, v in d.items() if k != "seconds"} for d in _json_lines(r)]  # noqa: E731
    assert parallel.exit_code == 0 and strip(parallel) == strip(serial)
    table = _run(folder, "--method", "lcm")
    assert table.exit_code == 0
    assert "img10.png" in table.stderr and "bbox" in table.stderr and not table.stdout  # tables go to stderr
    assert "targets in 3 images" in table.stderr


def test_stdin_and_glob(folder):
    listing = f"{folder / 'img10.png'}\n{folder / 'img2.png'}\n"
    result = _run("-", "--method", "lcm", "-f", "json", input=listing)
    assert result.exit_code == 0, result.stderr
    assert [d["image"].rsplit("/", 1)[-1] for d in _json_lines(result)] == ["img10.png", "img2.png"]
    result = _run(str(folder / "img?.png"), "--method", "lcm", "-f", "json")
    assert [d["image"].rsplit("/", 1)[-1] for d in _json_lines(result)] == ["img1.png", "img2.png"]


def test_cgrinet_with_weights(folder, weights):
    result = _run(folder / "img1.png", "--weights", weights, "-f", "json", "--threshold", "0.3")
    assert result.exit_code == 0, result.stderr
    (d,) = _json_lines(result)
    assert d["method"] == "cgrinet:tiny" and d["threshold"] == 0.3 and d["rule"] == "probability > 0.3"
    out = get_method(f"cgrinet:{weights}", threshold=0.3).run(read_image(folder / "img1.png"))
    assert d["targets"] == json.loads(json.dumps(find_targets(out.mask, out.scores)))
    again = _run(folder / "img1.png", "--method", f"cgrinet:{weights}", "-f", "json", "--threshold", "0.3")
    assert _json_lines(again)[0]["targets"] == d["targets"]


def test_input_range_for_raw_camera_counts(tmp_path):
    """A 14-bit camera's counts (offset 7000, gain 10) fill a sliver of uint16; the packaged
    model's input range (auto) stretches them, so it sees the same frame as the 8-bit one."""
    image, _ = make_scene(np.random.default_rng(1), 128, 160)
    u8 = np.round(image * 255).astype(np.uint8)
    write_image(tmp_path / "frame8.png", u8)
    write_image(tmp_path / "raw14.png", u8.astype(np.uint16) * 10 + 7000)
    weights = Path(irstd.__file__).parent / "weights" / methods.DEFAULT_WEIGHTS_NAME
    if not weights.is_file():
        pytest.skip(f"no packaged weights at {weights}")
    stretched = _run(tmp_path / "frame8.png", "--weights", weights, "--input-range", "minmax", "-f", "json")
    assert stretched.exit_code == 0, stretched.stderr
    result = _run(tmp_path / "raw14.png", "--weights", weights, "-f", "json")
    assert result.exit_code == 0, result.stderr
    (eight,), (raw,) = _json_lines(stretched), _json_lines(result)
    assert raw["width"] == 160 and eight["targets"] and raw["targets"] == eight["targets"]
    dim = _run(tmp_path / "raw14.png", "--weights", weights, "--input-range", "bits", "-f", "json")
    assert dim.exit_code == 0 and _json_lines(dim)[0]["targets"] != raw["targets"]
    for bad, needle in (("zscore", "--input-range: expected one of"), ("fixed:9,1", "LO < HI")):
        _one_line_error(_run(tmp_path / "raw14.png", "--weights", weights, "--input-range", bad), needle)


# -- saved files --------------------------------------------------------------------------------


def test_saved_files(folder, tmp_path):
    out = tmp_path / "out"
    result = _run(folder, "--method", "ipi", "--out", out, "--save-mask", "--save-scores", "--save-overlay")
    assert result.exit_code == 0, result.stderr
    for name in ("img1", "img2", "img10"):
        image = read_image(folder / f"{name}.png")
        ref = get_method("ipi").run(image)
        mask = read_image(out / "masks" / f"{name}.png")
        assert mask.dtype == np.uint8 and mask.shape == image.shape
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, ref.mask)
        scores = read_image(out / "scores" / f"{name}.png")
        assert scores.dtype == np.uint16 and scores.shape == image.shape
        np.testing.assert_allclose(scores / 65535, ref.scores, atol=0.5 / 65535 + 1e-12)
        with Image.open(out / "overlays" / f"{name}.png") as im:
            assert im.mode == "RGB"
            ov = np.asarray(im)
        np.testing.assert_array_equal(ov, overlay(image, find_targets(ref.mask, ref.scores)))
    assert not list(out.rglob(".*.tmp*"))
    # Existing outputs are kept unless --overwrite.
    before = (out / "masks" / "img2.png").read_bytes()
    _one_line_error(_run(folder, "--method", "lcm", "--out", out, "--save-mask"), "already exists")
    assert (out / "masks" / "img2.png").read_bytes() == before
    again = _run(folder, "--method", "lcm", "--out", out, "--save-mask", "--overwrite")
    assert again.exit_code == 0
    lcm_mask = get_method("lcm").run(read_image(folder / "img2.png")).mask
    np.testing.assert_array_equal(read_image(out / "masks" / "img2.png") == 255, lcm_mask)


def test_overlay_draws_boxes():
    image = np.zeros((20, 30), np.uint16)
    image[5, 5] = 1000
    mask = image > 0
    rgb = overlay(image, find_targets(mask, mask * 1.0))
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3)
    assert tuple(rgb[3, 3]) == (255, 40, 40) and tuple(rgb[7, 7]) == (255, 40, 40)  # box 2 px away
    assert tuple(rgb[5, 5]) == (255, 255, 255) and tuple(rgb[0, 0]) == (0, 0, 0)


def test_refuses_to_write_onto_inputs(tmp_path):
    img = tmp_path / "masks" / "a.png"
    img.parent.mkdir()
    write_image(img, _scene(4))
    _one_line_error(_run(img, "--method", "lcm", "--out", tmp_path, "--save-mask", "--overwrite"), "onto an input")
    assert read_image(img).shape == (96, 112)
    items = [Item(tmp_path / "x" / "a.png"), Item(tmp_path / "y" / "a.png")]
    with pytest.raises(InputError, match="same file name"):
        plan_outputs(items, tmp_path / "o", ["mask"])


# -- errors -------------------------------------------------------------------------------------


def test_usage_errors(folder, tmp_path):
    _one_line_error(_run(folder, "--method", "lcm", "--save-mask"), "--out")
    _one_line_error(_run(folder), "--method is required until trained CgriNet weights are packaged")
    _one_line_error(_run(folder, "--method", "sobel"), "unknown method")
    _one_line_error(_run(folder, "--method", "cgrinet"), "no trained cgrinet weights are packaged")
    _one_line_error(_run(folder, "--method", "lcm", "--weights", tmp_path / "w.safetensors"), "--weights")
    (tmp_path / "empty").mkdir()
    _one_line_error(_run(tmp_path / "empty", "--method", "lcm"), "no images")
    _one_line_error(_run(str(tmp_path / "*.png"), "--method", "lcm"), "no image file matches")


def test_default_method_once_weights_are_packaged(folder, weights, monkeypatch, tmp_path):
    packaged = tmp_path / "pkg"
    packaged.mkdir()
    (packaged / "cgrinet_sirst.safetensors").write_bytes(weights.read_bytes())
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", packaged)
    result = _run(folder / "img2.png", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert _json_lines(result)[0]["method"] == "cgrinet"


def test_bad_file_and_skip_errors(folder, tmp_path):
    bad = folder / "img5.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # truncated PNG
    _one_line_error(_run(folder, "--method", "lcm", "-f", "json"), "img5.png")
    result = _run(folder, "--method", "lcm", "-f", "json", "--skip-errors", "--workers", "2")
    assert result.exit_code == 3, result.stderr
    assert [d["image"].rsplit("/", 1)[-1] for d in _json_lines(result)] == ["img1.png", "img2.png", "img10.png"]
    assert "skipped" in result.stderr and "img5.png" in result.stderr and "1 input skipped" in result.stderr
    notimg = folder / "img7.png"
    notimg.write_text("hello")
    result = _run(folder, "--method", "lcm", "-f", "csv", "--skip-errors")
    assert result.exit_code == 3 and "img7.png" in result.stderr and "img5.png" in result.stderr


def test_pseudo_colour_frames_need_gray(tmp_path):
    import matplotlib

    scene = _scene(3)
    ranks = np.argsort(np.argsort(scene, axis=None, kind="stable")).reshape(scene.shape)
    grey = (ranks * 256 // ranks.size).astype(np.uint8)  # equalised: the frame uses the whole palette
    jet = np.rint(matplotlib.colormaps["jet"](grey / 255.0)[..., :3] * 255).astype(np.uint8)
    Image.fromarray(jet, "RGB").save(tmp_path / "jet.png")
    write_image(tmp_path / "grey.png", grey)
    _one_line_error(_run(tmp_path / "jet.png", "--method", "lcm"), "jet.png: pseudo-colour image")
    _one_line_error(_run(tmp_path / "jet.png", "--method", "lcm", "--gray", "red"), "--gray: expected one of")
    for gray, want in (("luma", read_image(tmp_path / "jet.png", gray="luma")), ("r", jet[..., 0])):
        result = _run(tmp_path / "jet.png", "--method", "lcm", "--gray", gray, "-f", "json", "--out", tmp_path / gray,
                      "--save-overlay")
        assert result.exit_code == 0, result.stderr
        got = _json_lines(result)[0]["targets"]
        mine = find_targets(*(lambda o: (o.mask, o.scores))(get_method("lcm").run(want)))
        assert [t["centroid"] for t in got] == [t["centroid"] for t in mine]
        assert (tmp_path / gray / "overlays" / "jet.png").is_file()
    skipped = _run(tmp_path / "grey.png", tmp_path / "jet.png", "--method", "lcm", "--skip-errors", "-f", "json")
    assert skipped.exit_code == 3 and "jet.png: pseudo-colour" in "".join(skipped.stderr.split("\n"))
    assert [Path(r["image"]).name for r in _json_lines(skipped)] == ["grey.png"]
