"""CLI tests: `irstd data check` and `irstd synth` (exit codes, one-line errors, --json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irstd.cli.main import app


def make_dataset(root, ids=("a", "b", "c", "d"), size=(12, 16)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in ids:
        grey = rng.integers(0, 256, (*size, 1), dtype=np.uint8)
        Image.fromarray(np.repeat(grey, 3, axis=2), "RGB").save(root / "images" / f"{i}.png")  # grey stored as RGB
        m = np.zeros(size, np.uint8)
        m[3:5, 4:6] = 255
        Image.fromarray(m).save(root / "masks" / f"{i}.png")
    return root


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result, name):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("irstd: error: ") and name in lines[0]
    assert "Traceback" not in result.output


def test_check_clean_exit_0_and_json(tmp_path):
    root = make_dataset(tmp_path / "ds")
    write_lines(root / "splits" / "train.txt", ["a", "b"])
    write_lines(root / "splits" / "test.txt", ["c", "d"])
    result = run("data", "check", root, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["facts"]["images"] == 4 and report["problems"] == []


def test_check_problems_exit_1(tmp_path):
    root = make_dataset(tmp_path / "ds")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "masks" / "b.png")
    write_lines(root / "splits" / "train.txt", ["a", "b", "b"])
    write_lines(root / "splits" / "test.txt", ["b"])
    result = run("data", "check", root, "--json")
    assert result.exit_code == 1
    kinds = {p["kind"]: p["ids"] for p in json.loads(result.stdout)["problems"]}
    assert kinds == {"size_mismatch": ["b"], "empty_mask": ["b"], "duplicate_ids": ["b"], "split_overlap": ["b"]}
    table = run("data", "check", root)
    assert table.exit_code == 1 and "image and mask sizes differ" in table.stderr
    assert table.stdout == ""  # tables go to stderr


@pytest.mark.parametrize("what", ["missing", "file", "no_images"])
def test_check_unusable_exit_2(tmp_path, what):
    target = {"missing": tmp_path / "nope", "file": tmp_path / "f.txt", "no_images": tmp_path}[what]
    (tmp_path / "f.txt").write_text("x")
    _one_line_error(run("data", "check", target), str(target))


def test_synth_then_check(tmp_path):
    out = tmp_path / "scene"
    result = run("synth", "--out", out, "--count", 2, "--size", 64, 64, "--seed", 7, "--targets", 1, 2)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "images").iterdir()) == ["synth_0000.png", "synth_0001.png"]
    again = run("synth", "--out", out, "--count", 2, "--size", 64, 64, "--seed", 7)
    _one_line_error(again, str(out))
    assert run("synth", "--out", out, "--count", 1, "--size", 64, 64, "--seed", 7, "--overwrite").exit_code == 0
    check = run("data", "check", out, "--json")
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["facts"]["images"] == 1


def test_synth_bad_options(tmp_path):
    _one_line_error(run("synth", "--out", tmp_path / "o", "--count", 1, "--size", 64, 64, "--bit-depth", 12),
                    "--bit-depth")
    _one_line_error(run("synth", "--out", tmp_path / "o", "--count", 1, "--size", 64, 64, "--scr", 5, 1), "--scr")
    assert not (tmp_path / "o").exists()


# ---- bad image files through a command: dataset check with --decode ------------------------


@pytest.mark.parametrize("content,problem", [
    (b"", "empty file"),
    (b"this is text, not a PNG\n", "not a readable image"),
])
def test_check_decode_reports_bad_image_files(tmp_path, content, problem):
    root = make_dataset(tmp_path / "ds", ids=("a", "b"))
    (root / "images" / "b.png").write_bytes(content)
    result = run("data", "check", root, "--decode", "--json")
    assert result.exit_code == 1
    probs = {p["kind"]: p for p in json.loads(result.stdout)["problems"]}
    assert probs["unreadable_image"]["ids"] == ["b"]
    assert problem in probs["unreadable_image"]["details"]["b"] and "b.png" in probs["unreadable_image"]["details"]["b"]


# ---- irstd data info: one image file at a time, bad files -> exit 2, one line -------------


def test_info_reads_8_and_16_bit(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((5, 6), 4000, np.uint16))
    Image.fromarray(np.full((3, 4), 7, np.uint8)).save(tmp_path / "b.bmp")
    result = run("data", "info", tmp_path / "a.png", tmp_path / "b.bmp", "--bit-depth", 14, "--json")
    assert result.exit_code == 0, result.output
    a, b = json.loads(result.stdout)
    assert (a["dtype"], a["width"], a["height"], a["max"]) == ("uint16", 6, 5, 4000)
    assert a["bit_depth_rule"] == "uint16 / 16383 (14-bit), clipped to [0, 1]"
    assert (b["dtype"], b["bit_depth_rule"]) == ("uint8", "uint8 / 255 (8-bit full range)")
    # how CgriNet maps them: auto with a stated bit depth keeps the bit depth rule ...
    assert (a["input_range"], a["input_rule"]) == ("auto", a["bit_depth_rule"])
    assert b["input_rule"] == b["bit_depth_rule"]


def test_info_shows_the_input_range_cgrinet_applies(tmp_path):
    import cv2

    raw = np.full((5, 6), 7000, np.uint16)
    raw[2, 3] = 9550
    cv2.imwrite(str(tmp_path / "raw.png"), raw)
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((5, 6), 7000, np.uint16))
    result = run("data", "info", tmp_path / "raw.png", tmp_path / "flat.png", "--json")
    assert result.exit_code == 0, result.output
    raw_facts, flat = json.loads(result.stdout)
    assert raw_facts["input_rule"] == "minmax: (x - 7000)/(9550 - 7000)"  # 16-bit of unstated depth
    assert flat["input_rule"] == "minmax: constant frame -> 0"
    fixed = json.loads(run("data", "info", tmp_path / "raw.png", "--input-range", "fixed:0,1e4", "--json").stdout)
    assert fixed[0]["input_rule"] == "fixed: (x - 0)/(10000 - 0) clipped to [0, 1]"
    bad = run("data", "info", tmp_path / "raw.png", "--input-range", "zscore")
    assert bad.exit_code == 2 and "--input-range" in bad.output


def _bad(tmp_path, kind):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(good)
    path = tmp_path / f"{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:300])
    elif kind == "text":
        path.write_text("not an image\n")
    elif kind == "zero":
        import tifffile

        path = tmp_path / "zero.tif"
        tifffile.imwrite(path, np.zeros((0, 4), np.uint8))
    elif kind == "folder":
        path = tmp_path / "folder.png"
        path.mkdir()
    return path  # "missing": never written


@pytest.mark.filterwarnings("ignore:.*zero-size")
@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "zero", "missing", "folder"])
def test_info_bad_file_exit_2_one_line(tmp_path, kind):
    path = _bad(tmp_path, kind)
    _one_line_error(run("data", "info", tmp_path / "good.png", path), str(path))
