"""Tests of irstd.data: every community layout, splits, read_pair, check_dataset problems."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from irstd.data import check_dataset, open_dataset, read_split_file
from irstd.errors import InputError


def _mask(h=12, w=16, spots=((3, 4),)):
    m = np.zeros((h, w), np.uint8)
    for r, c in spots:
        m[r:r + 2, c:c + 2] = 255
    return m


def make_dataset(root: Path, ids=("a", "b", "c", "d"), mask_suffix="", image_ext=".png", size=(12, 16)):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in ids:
        img = np.repeat(rng.integers(0, 256, (*size, 1), dtype=np.uint8), 3, axis=2)  # grey stored as RGB
        Image.fromarray(img, "RGB").save(root / "images" / f"{i}{image_ext}")
        Image.fromarray(_mask(*size)).save(root / "masks" / f"{i}{mask_suffix}.png")
    return root


def write_lines(path: Path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


# ---- layouts -------------------------------------------------------------------------------


def test_splits_folder_nested(tmp_path):
    root = make_dataset(tmp_path / "ds")
    write_lines(root / "splits" / "train.txt", ["a", "b"])
    write_lines(root / "splits" / "test.txt", ["c", "d"])
    write_lines(root / "splits" / "dnanet_50_50" / "test.txt", ["a", "", "c.png  "])
    ds = open_dataset(root)
    assert ds.splits() == ["dnanet_50_50/test", "test", "train"]
    assert ds.ids("test") == ["c", "d"]
    assert ds.ids("dnanet_50_50/test") == ["a", "c"]
    assert ds.ids() == ["a", "b", "c", "d"]
    assert "splits/" in ds.layout
    assert "4 images" in ds.describe()


def test_basicirstd_img_idx(tmp_path):
    root = make_dataset(tmp_path / "NUAA-SIRST")
    write_lines(root / "img_idx" / "train_NUAA-SIRST.txt", ["a", "b"])
    write_lines(root / "img_idx" / "test_NUAA-SIRST.txt", ["c", "d"])
    ds = open_dataset(root)
    assert sorted(ds.splits()) == ["test", "train"]
    assert ds.ids("train") == ["a", "b"]
    assert "BasicIRSTD" in ds.layout


def test_dnanet_ratio_folder(tmp_path):
    root = make_dataset(tmp_path / "NUDT")
    write_lines(root / "50_50" / "train.txt", ["a", "b"])
    write_lines(root / "50_50" / "test.txt", ["c", "d"])
    ds = open_dataset(root)
    assert ds.splits() == ["50_50/test", "50_50/train"]
    assert ds.ids("50_50/test") == ["c", "d"]
    assert "DNANet" in ds.layout


def test_sirst_idx_folders_and_pixels0_masks(tmp_path):
    root = make_dataset(tmp_path / "sirst", ids=("Misc_1", "Misc_2", "Misc_10"), mask_suffix="_pixels0")
    write_lines(root / "idx_427" / "trainval.txt", ["Misc_1", "Misc_2"])
    write_lines(root / "idx_427" / "test.txt", ["Misc_10"])
    write_lines(root / "idx_320" / "test.txt", ["Misc_2"])
    ds = open_dataset(root)
    assert ds.splits() == ["idx_320/test", "idx_427/test", "idx_427/trainval"]
    assert ds.ids() == ["Misc_1", "Misc_2", "Misc_10"]  # natural order
    assert ds.mask_path("Misc_10").name == "Misc_10_pixels0.png"
    image, mask = ds.read_pair("Misc_10")
    assert image.shape == mask.shape and mask.dtype == bool and mask.sum() == 4


def test_mshnet_top_level_and_other_extensions(tmp_path):
    root = make_dataset(tmp_path / "IRSTD-1k", image_ext=".bmp")
    write_lines(root / "trainval.txt", ["a", "b"])
    write_lines(root / "test.txt", ["c", "d"])
    (root / "README.txt").write_text("not a split")
    ds = open_dataset(root)
    assert ds.splits() == ["test", "trainval"]
    assert ds.image_path("a").suffix == ".bmp"
    assert ds.read_image("a").dtype == np.uint8


def test_name_clash_keeps_both(tmp_path):
    root = make_dataset(tmp_path / "ds")
    write_lines(root / "splits" / "test.txt", ["a"])
    write_lines(root / "test.txt", ["b"])
    ds = open_dataset(root)
    assert ds.ids("test") == ["a"]
    assert ds.splits() == ["test", "test.txt"]
    assert ds.ids("test.txt") == ["b"]


def test_split_file_option_and_parsing(tmp_path):
    root = make_dataset(tmp_path / "ds")
    f = tmp_path / "mine.txt"
    f.write_text("\ufeffimages/b.png\r\n\r\n# comment\n a \nb\n")
    assert read_split_file(f) == ["b", "a", "b"]
    assert open_dataset(root).ids(split_file=f) == ["b", "a"]
    with pytest.raises(InputError, match="no such split file"):
        open_dataset(root).ids(split_file=tmp_path / "nope.txt")


def test_unknown_split_lists_available(tmp_path):
    root = make_dataset(tmp_path / "ds")
    write_lines(root / "splits" / "test.txt", ["a"])
    with pytest.raises(InputError, match=r"unknown split 'val'.*available: test"):
        open_dataset(root).ids("val")
    assert open_dataset(root).ids("test.txt") == ["a"]


def test_not_a_dataset(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(InputError, match="no images/ folder"):
        open_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_dataset(tmp_path)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        open_dataset(f)


def test_read_pair_size_mismatch_names_id_and_sizes(tmp_path):
    root = make_dataset(tmp_path / "ds")
    Image.fromarray(_mask(20, 30)).save(root / "masks" / "b.png")
    with pytest.raises(InputError, match=r"'b'.*16x12.*30x20"):
        open_dataset(root).read_pair("b")


def test_missing_ids_raise(tmp_path):
    root = make_dataset(tmp_path / "ds")
    os.remove(root / "masks" / "a.png")
    ds = open_dataset(root)
    with pytest.raises(InputError, match="no mask for id 'a'"):
        ds.read_mask("a")
    with pytest.raises(InputError, match="no image for id 'zz'"):
        ds.read_image("zz")


# ---- check_dataset -------------------------------------------------------------------------


def test_check_clean_dataset(tmp_path):
    root = make_dataset(tmp_path / "ds")
    write_lines(root / "splits" / "train.txt", ["a", "b"])
    write_lines(root / "splits" / "test.txt", ["c", "d"])
    report = check_dataset(root)
    assert report.ok, report.problems
    f = report.facts
    assert f["images"] == 4 and f["targets"] == 4 and f["targets_per_image"] == {"1": 4}
    assert f["width_range"] == [16, 16] and f["height_range"] == [12, 12]
    assert f["image_dtypes"] == {"uint8": 4}
    assert f["splits"] == {"test": 2, "train": 2}
    assert report.to_dict()["ok"] is True


def _kinds(report):
    return {p.kind: p for p in report.problems}


def test_check_reports_every_problem(tmp_path):
    root = make_dataset(tmp_path / "ds", ids=("a", "b", "c", "d", "e", "f", "g"))
    os.remove(root / "masks" / "a.png")  # missing mask
    Image.fromarray(_mask()).save(root / "masks" / "orphan.png")  # mask without image
    Image.fromarray(_mask(20, 30)).save(root / "masks" / "b.png")  # size mismatch
    nb = _mask()
    nb[0, :3] = 100
    Image.fromarray(nb).save(root / "masks" / "c.png")  # 3 non-binary pixels
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "masks" / "d.png")  # empty
    (root / "images" / "e.png").write_bytes(b"")  # empty image file
    two = _mask(spots=((1, 1), (8, 10)))
    Image.fromarray(two).save(root / "masks" / "f.png")  # two targets
    write_lines(root / "splits" / "train.txt", ["b", "c", "c", "g", "ghost"])
    write_lines(root / "splits" / "test.txt", ["g", "f"])
    report = check_dataset(root)
    k = _kinds(report)
    assert not report.ok
    assert k["missing_mask"].ids == ["a"]
    assert k["missing_image"].ids == ["orphan"]
    assert k["size_mismatch"].ids == ["b"] and k["size_mismatch"].details["b"] == "image 16x12, mask 30x20"
    assert k["non_binary_mask"].ids == ["c"] and k["non_binary_mask"].details == {"c": 3}
    assert k["empty_mask"].ids == ["d"]
    assert k["unreadable_image"].ids == ["e"] and "empty file" in k["unreadable_image"].details["e"]
    assert k["duplicate_ids"].ids == ["c"] and k["duplicate_ids"].details == {"c": 2}
    assert k["unknown_ids"].ids == ["ghost"]
    assert k["split_overlap"].ids == ["g"] and "test" in k["split_overlap"].message
    # targets: b 1, c 1, f 2, g 1, e (mask ok, image unreadable) 1 -> masks of ids with an image
    assert report.facts["targets"] == 6
    assert report.facts["targets_per_image"]["2"] == 1


def test_overlap_rules_follow_split_roles(tmp_path):
    root = make_dataset(tmp_path / "ds")
    for name, ids in {"train": ["a"], "val": ["b"], "trainval": ["a", "b"], "test": ["c"],
                      "trainvaltest": ["a", "b", "c"]}.items():
        write_lines(root / "idx_427" / f"{name}.txt", ids)
    write_lines(root / "splits" / "other" / "test.txt", ["a"])  # different folder: no pairing
    assert check_dataset(root).ok
    write_lines(root / "idx_427" / "val.txt", ["b", "c"])  # val overlaps test
    report = check_dataset(root)
    assert [p.ids for p in report.problems] == [["c"]]
    assert "idx_427/test" in report.problems[0].message


def test_check_16bit_and_decode(tmp_path):
    root = make_dataset(tmp_path / "ds", ids=("a",))
    cv2.imwrite(str(root / "images" / "b.png"), np.full((12, 16), 40000, np.uint16))
    Image.fromarray(_mask()).save(root / "masks" / "b.png")
    good = (root / "images" / "a.png").read_bytes()
    (root / "images" / "a.png").write_bytes(good[: len(good) // 2])  # truncated: header still fine
    report = check_dataset(root)
    assert report.facts["image_dtypes"] == {"uint16": 1, "uint8": 1}
    assert "unreadable_image" not in _kinds(report)
    deep = check_dataset(root, decode_images=True)
    assert _kinds(deep)["unreadable_image"].ids == ["a"]


def test_duplicate_files_for_one_id(tmp_path):
    root = make_dataset(tmp_path / "ds", ids=("a",))
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "images" / "a.bmp")
    ds = open_dataset(root)
    assert ds.image_path("a").suffix == ".png"
    assert _kinds(check_dataset(root))["duplicate_files"].ids == ["a"]


# ---- real data -----------------------------------------------------------------------------


def _data_root() -> Path:
    env = os.environ.get("IRSTD_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.data
def test_real_sirst_finds_exactly_misc_111():
    root = _data_root() / "SIRST"
    if not (root / "images").is_dir():
        pytest.skip(f"SIRST not found at {root} (set IRSTD_DATA)")
    report = check_dataset(root)
    assert [(p.kind, p.ids) for p in report.problems] == [("size_mismatch", ["Misc_111"])]
    assert report.problems[0].details["Misc_111"] == "image 325x220, mask 592x400"
    assert report.facts["images"] == 427 and report.facts["targets"] == 533
    ds = open_dataset(root)
    assert len(ds.ids("test")) == 86 and len(ds.ids("dnanet_50_50/test")) == 214
    with pytest.raises(InputError, match="Misc_111"):
        ds.read_pair("Misc_111")


@pytest.mark.data
@pytest.mark.slow
def test_real_mdvsfa_is_clean():
    root = _data_root() / "MDvsFA"
    if not (root / "images").is_dir():
        pytest.skip(f"MDvsFA not found at {root} (set IRSTD_DATA)")
    report = check_dataset(root)
    assert report.ok, [(p.kind, p.ids[:5]) for p in report.problems]
    assert report.facts["pairs"] == 10078 and report.facts["splits"] == {"test": 100, "train": 9978}
