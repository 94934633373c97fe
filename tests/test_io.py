"""Tests of irstd.io: every input kind, the luma rule against Pillow, bad inputs, writers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from irstd import intensity, io
from irstd.errors import InputError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def near_grey(rng, shape, dtype=np.uint8) -> np.ndarray:
    """Random colour samples a little off grey (each channel within 1/32 of the range of a
    common value): colour that ``gray="auto"`` converts by luma instead of refusing."""
    top = int(np.iinfo(dtype).max)
    base = rng.integers(0, top + 1, (*shape[:-1], 1))
    noise = rng.integers(-(top // 32), top // 32 + 1, shape)
    return np.clip(base + noise, 0, top).astype(dtype)


# ---- 8-bit: bit-identical to Pillow's convert('L') ----------------------------------------


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "1"])
def test_png_8bit_modes_match_pillow(tmp_path, rng, mode):
    if mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (23, 31), dtype=np.uint8), "P")
        im.putpalette(near_grey(rng, (256, 3)).tobytes())
    elif mode == "1":
        im = Image.fromarray(rng.integers(0, 2, (23, 31)).astype(bool))
    else:
        bands = len(mode)
        shape = (23, 31) if bands == 1 else (23, 31, bands)
        im = Image.fromarray(near_grey(rng, shape) if bands > 1 else rng.integers(0, 256, shape, dtype=np.uint8), mode)
    path = tmp_path / f"x_{mode}.png"
    im.save(path)
    got = io.read_image(path)
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("L"))
    assert got.dtype == np.uint8 and got.shape == (23, 31)
    np.testing.assert_array_equal(got, expected)


def test_rgba_alpha_is_ignored(tmp_path, rng):
    rgb = near_grey(rng, (8, 9, 3))
    a = np.dstack([rgb, np.zeros((8, 9), np.uint8)])
    b = np.dstack([rgb, np.full((8, 9), 255, np.uint8)])
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(b, "RGBA").save(tmp_path / "b.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.png"), io.read_image(tmp_path / "b.png"))


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_jpeg_bmp_match_pillow(tmp_path, rng, suffix):
    path = tmp_path / f"x{suffix}"
    Image.fromarray(near_grey(rng, (20, 24, 3)), "RGB").save(path)
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("L"))
    np.testing.assert_array_equal(io.read_image(path), expected)


def test_tiff_8bit_rgb_matches_pillow(tmp_path, rng):
    rgb = near_grey(rng, (17, 19, 3))
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    expected = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    np.testing.assert_array_equal(io.read_image(path), expected)


def test_luma_formula_matches_pillow_on_all_extremes():
    # every corner of the RGB cube and a dense random sample
    vals = np.array([0, 1, 127, 128, 254, 255], np.uint8)
    grid = np.stack(np.meshgrid(vals, vals, vals, indexing="ij"), -1).reshape(1, -1, 3)
    rnd = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for rgb in (grid, rnd):
        np.testing.assert_array_equal(io.grey._luma_uint8(rgb), np.asarray(Image.fromarray(rgb, "RGB").convert("L")))


# ---- 16-bit and float ---------------------------------------------------------------------


def test_png_16bit_grey_not_truncated(tmp_path):
    img = np.array([[0, 1, 255, 256], [1000, 40000, 65534, 65535]], np.uint16)
    path = tmp_path / "g16.png"
    cv2.imwrite(str(path), img)
    got = io.read_image(path)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, img)


def test_png_16bit_colour_uses_rgb_weights(tmp_path, rng):
    rgb = near_grey(rng, (6, 7, 3), np.uint16)
    path = tmp_path / "c16.png"
    cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    got = io.read_image(path)
    expected = np.rint(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.uint16)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected)
    # pure red stays distinguishable from pure blue (BGR order handled)
    red = np.zeros((2, 2, 3), np.uint16)
    red[..., 0] = 60000
    cv2.imwrite(str(tmp_path / "red.png"), red[..., ::-1])
    assert io.read_image(tmp_path / "red.png")[0, 0] == round(0.299 * 60000)


def test_tiff_16bit_and_float(tmp_path, rng):
    u16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    f32 = rng.random((9, 11), dtype=np.float32) * 3 - 1
    tifffile.imwrite(tmp_path / "u16.tif", u16)
    tifffile.imwrite(tmp_path / "f32.tiff", f32)
    a = io.read_image(tmp_path / "u16.tif")
    b = io.read_image(tmp_path / "f32.tiff")
    assert a.dtype == np.uint16 and b.dtype == np.float32
    np.testing.assert_array_equal(a, u16)
    np.testing.assert_array_equal(b, f32)


def test_multipage_tiff_frames(tmp_path, rng):
    stack = rng.integers(0, 65536, (4, 5, 6), dtype=np.uint16)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as w:
        for page in stack:
            w.write(page)
    assert io.count_frames(path) == 4
    frames = list(io.read_frames(path))
    assert len(frames) == 4
    for f, s in zip(frames, stack):
        np.testing.assert_array_equal(f, s)
    np.testing.assert_array_equal(io.read_image(path, frame=2), stack[2])
    with pytest.raises(InputError, match="frame 4 out of range"):
        io.read_image(path, frame=4)
    assert io.count_frames(tmp_path / "stack.tif") == 4


def _write_video(path, frames):
    """A lossless (FFV1) colour video of ``frames`` (each (H, W, 3) BGR uint8)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25, (w, h), True)
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_video_frames_in_any_order(tmp_path, rng):
    bgr = near_grey(rng, (80, 24, 32, 3))  # 80 frames: seeks and forward skips
    path = _write_video(tmp_path / "clip.mkv", list(bgr))
    want = [np.asarray(Image.fromarray(f[..., ::-1]).convert("L")) for f in bgr]  # luma as Pillow's
    assert io.count_frames(path) == 80
    frames = list(io.read_frames(path))
    assert len(frames) == 80 and all(f.dtype == np.uint8 for f in frames)
    for f, w in zip(frames, want):
        np.testing.assert_array_equal(f, w)
    for k in (5, 5, 3, 79, 0, 10, 77, 1):  # repeat, back, far forward, short forward
        np.testing.assert_array_equal(io.read_image(path, frame=k), want[k])
    with pytest.raises(InputError, match="frame 80 out of range"):
        io.read_image(path, frame=80)
    assert io.is_video(path) and io.is_video("A.MP4") and not io.is_video("a.png")


def test_video_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video " * 50)
    for read in (io.count_frames, io.read_image):
        with pytest.raises(InputError, match=r"bad.mp4: not a readable video"):
            read(bad)
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        io.read_image(tmp_path / "empty.avi")


def test_single_frame_counts(tmp_path):
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "a.png")
    assert io.count_frames(tmp_path / "a.png") == 1
    assert len(list(io.read_frames(tmp_path / "a.png"))) == 1


def test_image_info_from_header(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((5, 7), np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((2, 5, 7), np.float32))
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "c.jpg")
    assert io.image_info(tmp_path / "a.png")["dtype"] == "uint16"
    info = io.image_info(tmp_path / "b.tif")
    assert (info["width"], info["height"], info["dtype"], info["frames"]) == (7, 5, "float32", 2)
    info = io.image_info(tmp_path / "c.jpg")
    assert (info["width"], info["height"], info["dtype"]) == (7, 5, "uint8")


# ---- to_float and the bit depth rule -------------------------------------------------------


def test_to_float_rules():
    u8 = np.array([0, 128, 255], np.uint8)
    np.testing.assert_allclose(intensity.to_float(u8), [0, 128 / 255, 1], rtol=1e-7)
    u16 = np.array([0, 8191, 16383, 65535], np.uint16)
    np.testing.assert_allclose(intensity.to_float(u16), [0, 8191 / 65535, 16383 / 65535, 1], rtol=1e-6)
    np.testing.assert_allclose(intensity.to_float(u16, bit_depth=14), [0, 8191 / 16383, 1, 1], rtol=1e-6)
    f = np.array([-0.5, 2.0], np.float32)
    np.testing.assert_array_equal(intensity.to_float(f), f)
    assert intensity.to_float(u8).dtype == np.float32
    np.testing.assert_array_equal(intensity.to_float(u8, bit_depth=14), intensity.to_float(u8))  # 16-bit data only
    for bad in (0, 17, 2.5):
        with pytest.raises(InputError, match="bit-depth"):
            intensity.to_float(u16, bit_depth=bad)


def test_to_float_input_ranges():
    raw = np.array([[7000, 8250], [9500, 7000]], np.uint16)  # a 14-bit camera's counts
    np.testing.assert_allclose(intensity.to_float(raw, input_range="minmax"), [[0, 0.5], [1, 0]], atol=1e-7)
    np.testing.assert_allclose(intensity.to_float(raw, bit_depth=14, input_range="minmax"), [[0, 0.5], [1, 0]], atol=1e-7)
    np.testing.assert_allclose(intensity.to_float(raw, input_range="fixed:7500,8500"), [[0, 0.75], [1, 0]], atol=1e-7)
    u8 = np.array([10, 20, 30], np.uint8)  # minmax treats every sample type alike
    np.testing.assert_allclose(intensity.to_float(u8, input_range="minmax"), [0, 0.5, 1], atol=1e-7)
    temps = np.array([21.5, 36.5, 29.0], np.float32)  # e.g. radiometric degrees Celsius
    np.testing.assert_allclose(intensity.to_float(temps, input_range="minmax"), [0, 1, 0.5], atol=1e-7)
    for flat in (np.full((3, 4), 7000, np.uint16), np.zeros((0,), np.float32)):
        out = intensity.to_float(flat, input_range="minmax")
        assert out.dtype == np.float32 and out.shape == flat.shape and not out.any()
    assert intensity.to_float(raw, input_range="minmax").dtype == np.float32
    np.testing.assert_array_equal(intensity.to_float(raw, input_range="bits"), intensity.to_float(raw))
    np.testing.assert_array_equal(intensity.to_float(raw, input_range=None), intensity.to_float(raw))


def test_to_float_auto_picks_the_rule_per_sample_type():
    u8 = np.array([10, 20, 30], np.uint8)
    raw = np.array([7000, 8250, 9500], np.uint16)
    unit = np.array([0.25, 0.5], np.float32)
    temps = np.array([21.5, 36.5, 29.0], np.float32)
    np.testing.assert_array_equal(intensity.to_float(u8, input_range="auto"), intensity.to_float(u8))  # trained on 8-bit
    np.testing.assert_allclose(intensity.to_float(raw, input_range="auto"), [0, 0.5, 1], atol=1e-7)  # stretched
    np.testing.assert_array_equal(intensity.to_float(raw, 14, "auto"), intensity.to_float(raw, 14))  # stated depth
    np.testing.assert_array_equal(intensity.to_float(unit, input_range="auto"), unit)
    np.testing.assert_allclose(intensity.to_float(temps, input_range="auto"), [0, 1, 0.5], atol=1e-7)
    assert not intensity.to_float(np.full((2, 2), 9000, np.uint16), input_range="auto").any()


@pytest.mark.parametrize("text, canonical", [
    (None, "bits"), ("bits", "bits"), ("AUTO", "auto"), (" MinMax ", "minmax"), ("fixed:7000,9500", "fixed:7000,9500"),
    ("fixed: 0.5 , 1e3", "fixed:0.5,1000"), ("fixed:-3,2", "fixed:-3,2"),
])
def test_parse_input_range(text, canonical):
    assert intensity.parse_input_range(text) == canonical


@pytest.mark.parametrize("text", ["", "automatic", "percentile", "fixed:", "fixed:1", "fixed:2,1", "fixed:1,1",
                                  "fixed:a,b", "fixed:1,2,3", "fixed:nan,1", "fixed:0,inf"])
def test_parse_input_range_refuses(text):
    with pytest.raises(InputError, match="--input-range"):
        intensity.parse_input_range(text)


def test_input_rule_strings():
    assert intensity.input_rule() == "bits: uint8/255, uint16/(2**16-1) clipped, float as is"
    assert intensity.input_rule("bits", 14) == "bits: uint8/255, uint16/(2**14-1) clipped, float as is"
    assert intensity.input_rule("minmax") == "minmax: (x - min)/(max - min) per frame"
    assert intensity.input_rule("fixed:7000,9500") == "fixed: (x - 7000)/(9500 - 7000) clipped to [0, 1]"
    assert intensity.input_rule("auto").startswith("auto: uint8/255; uint16 and float outside [0, 1]: (x - min)")
    assert "uint16/(2**14-1) clipped" in intensity.input_rule("auto", 14)


def test_bit_depth_rule_strings():
    assert intensity.bit_depth_rule("uint8") == "uint8 / 255 (8-bit full range)"
    assert intensity.bit_depth_rule(np.uint16) == "uint16 / 65535 (16-bit full range)"
    assert intensity.bit_depth_rule("uint16", 14) == "uint16 / 16383 (14-bit), clipped to [0, 1]"
    assert intensity.bit_depth_rule("float32") == "float32 used as is"
    assert intensity.bit_depth_rule("uint8", 14) == "uint8 / 255 (8-bit full range)"


# ---- masks and scores ----------------------------------------------------------------------


def test_read_mask_conventions(tmp_path):
    m255 = np.array([[0, 255], [128, 127]], np.uint8)
    Image.fromarray(m255).save(tmp_path / "a.png")
    np.testing.assert_array_equal(io.read_mask(tmp_path / "a.png"), [[False, True], [True, False]])
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(tmp_path / "b.png")
    np.testing.assert_array_equal(io.read_mask(tmp_path / "b.png"), [[False, True], [True, False]])
    cv2.imwrite(str(tmp_path / "c.png"), np.array([[0, 65535]], np.uint16))
    np.testing.assert_array_equal(io.read_mask(tmp_path / "c.png"), [[False, True]])
    assert io.read_mask(tmp_path / "a.png").dtype == np.bool_


def test_read_scores_kinds(tmp_path):
    Image.fromarray(np.array([[0, 255, 51]], np.uint8)).save(tmp_path / "a.png")
    np.testing.assert_allclose(io.read_scores(tmp_path / "a.png"), [[0, 1, 0.2]])
    cv2.imwrite(str(tmp_path / "b.png"), np.array([[0, 65535]], np.uint16))
    np.testing.assert_allclose(io.read_scores(tmp_path / "b.png"), [[0, 1]])
    np.save(tmp_path / "c.npy", np.array([[0.25, 0.5]], np.float32))
    s = io.read_scores(tmp_path / "c.npy", shape=(1, 2))
    assert s.dtype == np.float64
    np.testing.assert_allclose(s, [[0.25, 0.5]])
    tifffile.imwrite(tmp_path / "d.tif", np.array([[0.125, 0.75]], np.float32))
    np.testing.assert_allclose(io.read_scores(tmp_path / "d.tif"), [[0.125, 0.75]])


def test_read_scores_errors(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.1, np.nan]]))
    with pytest.raises(InputError, match=r"nan\.npy: 1 NaN"):
        io.read_scores(tmp_path / "nan.npy")
    np.save(tmp_path / "s.npy", np.zeros((3, 4)))
    with pytest.raises(InputError, match="expected 5x3"):
        io.read_scores(tmp_path / "s.npy", shape=(3, 5))
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="2-D"):
        io.read_scores(tmp_path / "v.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="bad.npy"):
        io.read_scores(tmp_path / "bad.npy")


# ---- bad inputs ----------------------------------------------------------------------------


def _bad_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    files = {
        "empty": (tmp_path / "empty.png", b"", "empty file"),
        "truncated": (tmp_path / "trunc.png", data[: len(data) // 2], "not a readable image"),
        "text": (tmp_path / "text.png", b"hello, this is not an image\n", "not a readable image"),
        "garbage_tif": (tmp_path / "g.tif", b"II*\x00garbage", "not a readable TIFF"),
    }
    for path, content, _ in files.values():
        path.write_bytes(content)
    return files


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "garbage_tif"])
def test_bad_files_raise_one_line_input_error(tmp_path, kind):
    path, _, message = _bad_files(tmp_path)[kind]
    with pytest.raises(InputError) as exc:
        io.read_image(path)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    assert message in text


def test_truncated_16bit_png(tmp_path):
    path = tmp_path / "t16.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 65536, (64, 64), dtype=np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(InputError, match="t16.png"):
        io.read_image(path)


def test_missing_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        io.read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        io.read_image(tmp_path)


@pytest.mark.filterwarnings("ignore:.*zero-size")
def test_zero_sized_tiff(tmp_path):
    path = tmp_path / "zero.tif"
    tifffile.imwrite(path, np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError, match="zero.tif"):
        io.read_image(path)


def test_zero_sized_png_header(tmp_path):
    # hand-made PNG with width 0 in IHDR
    import struct
    import zlib

    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 4, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "z.png").write_bytes(png)
    with pytest.raises(InputError, match="z.png"):
        io.read_image(tmp_path / "z.png")
    with pytest.raises(InputError, match="z.png"):
        io.image_info(tmp_path / "z.png")


# ---- writers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,array",
    [
        ("a.png", np.arange(12, dtype=np.uint8).reshape(3, 4)),
        ("b.png", (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)),
        ("c.tif", (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)),
        ("d.tiff", np.linspace(-1, 2, 12, dtype=np.float32).reshape(3, 4)),
        ("e.bmp", np.arange(12, dtype=np.uint8).reshape(3, 4)),
    ],
)
def test_write_image_roundtrip(tmp_path, name, array):
    path = io.write_image(tmp_path / "sub" / name, array)
    got = io.read_image(path)
    assert got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_write_image_float_and_rgb(tmp_path):
    io.write_image(tmp_path / "f.png", np.array([[0.0, 0.5, 1.0]]))
    np.testing.assert_array_equal(io.read_image(tmp_path / "f.png"), [[0, 128, 255]])
    io.write_image(tmp_path / "f16.png", np.array([[0.0, 1.0]]), bit_depth=16)
    np.testing.assert_array_equal(io.read_image(tmp_path / "f16.png"), [[0, 65535]])
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255  # red
    io.write_image(tmp_path / "rgb.png", rgb)
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 0, 0)
    io.write_image(tmp_path / "m.png", np.array([[True, False]]))
    np.testing.assert_array_equal(io.read_image(tmp_path / "m.png"), [[255, 0]])


def test_atomic_write_cleans_up_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_write(target) as tmp:
            tmp.write_text("new, partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with io.atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".txt"
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(InputError, match="already exists"):
        with io.atomic_write(target, overwrite=False) as tmp:
            tmp.write_text("x")
    assert target.read_text() == "new"


def test_write_json(tmp_path):
    path = io.write_json(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan")})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": None}


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P", "CMYK"])
@pytest.mark.parametrize("compression", [None, "tiff_deflate", "tiff_lzw"])
def test_tiff_8bit_modes_match_pillow(tmp_path, rng, mode, compression):
    if mode == "1":
        im = Image.fromarray(rng.integers(0, 2, (13, 17)).astype(bool))
    elif mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (13, 17), dtype=np.uint8), "P")
        im.putpalette(near_grey(rng, (256, 3)).tobytes())
    else:
        bands = len(mode)
        im = Image.fromarray(near_grey(rng, (13, 17, bands)) if bands > 1 else rng.integers(0, 256, (13, 17), dtype=np.uint8), mode)
    path = tmp_path / "x.tif"
    im.save(path, compression=compression)
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("L"))
    np.testing.assert_array_equal(io.read_image(path), expected)


def test_tiff_16bit_rgb_and_planar(tmp_path, rng):
    rgb = near_grey(rng, (5, 6, 3), np.uint16)
    expected = np.rint(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(io.read_image(tmp_path / "c.tif"), expected)
    np.testing.assert_array_equal(io.read_image(tmp_path / "p.tif"), expected)


def test_mask_rule_values():
    assert io.mask_full_value(np.array([0, 1], np.uint8)) == 1
    assert io.mask_full_value(np.array([0, 255], np.uint16)) == 255  # 8-bit mask stored in 16 bits
    assert io.mask_full_value(np.array([0, 65535], np.uint16)) == 65535
    assert io.mask_full_value(np.array([0.0, 1.0], np.float32)) == 1.0
    np.testing.assert_array_equal(io.mask_from_image(np.array([0, 200, 255], np.uint16)), [False, True, True])
    np.testing.assert_array_equal(io.mask_from_image(np.array([0.2, 0.6], np.float32)), [False, True])


def test_lzw_tiff_16bit_grey_via_fallback(tmp_path, rng):
    # tifffile needs imagecodecs for LZW; the reader falls back to Pillow, which keeps 16 bits
    u16 = rng.integers(0, 65536, (7, 9), dtype=np.uint16)
    Image.fromarray(u16).save(tmp_path / "g.tif", compression="tiff_lzw")
    got = io.read_image(tmp_path / "g.tif")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, u16)


def test_image_info_colour(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), "RGB").save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (4, 5), dtype=np.uint8)).convert("P").save(tmp_path / "b.png")
    Image.fromarray(rng.integers(0, 256, (4, 5, 4), dtype=np.uint8), "RGBA").save(tmp_path / "c.png")
    tifffile.imwrite(tmp_path / "d.tif", rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "e.tif", rng.integers(0, 256, (4, 5), dtype=np.uint16))
    got = [io.image_info(tmp_path / n)["colour"] for n in ("a.png", "b.png", "c.png", "d.tif", "e.tif")]
    assert got == ["rgb", "palette", "rgba", "rgb", "grey"]


# ---- pseudo-colour frames and the gray rule -------------------------------------------------


def _rendered(name: str, grey: np.ndarray) -> np.ndarray:
    """``grey`` (uint8) rendered with a matplotlib colour map, as uint8 RGB."""
    import matplotlib

    return np.rint(matplotlib.colormaps[name](grey / 255.0)[..., :3] * 255).astype(np.uint8)


@pytest.fixture
def scene():
    yy, xx = np.mgrid[0:64, 0:80]
    grey = (40 + 1.5 * xx + yy).astype(np.uint8)  # a ramp that spans most of the range
    grey[30:33, 40:43] = 255
    return grey


def test_pseudo_colour_fraction_tells_palettes_from_tinted_grey(scene):
    grey3 = np.repeat(scene[..., None], 3, axis=2)
    tinted = np.clip(grey3 * np.array([0.8, 0.85, 1.0]) + np.array([10, 8, 40]), 0, 255).astype(np.uint8)
    assert io.pseudo_colour_fraction(grey3) == 0.0
    assert io.pseudo_colour_fraction(tinted) < 0.01  # SIRST's blue-tinted frames
    for name in ("inferno", "hot", "gray"):  # brightness rises with the value: luma keeps the order
        assert io.pseudo_colour_fraction(_rendered(name, scene)) < 0.01, name
    for name in ("jet", "turbo", "hsv"):  # different values share a brightness
        assert io.pseudo_colour_fraction(_rendered(name, scene)) > io.PSEUDO_COLOUR_FRACTION, name
    overlay = grey3.copy()
    overlay[20:22, :] = (255, 0, 0)  # a red line over a grey frame: a few pixels, not a palette
    assert io.pseudo_colour_fraction(overlay) < io.PSEUDO_COLOUR_FRACTION
    as16 = _rendered("jet", scene).astype(np.uint16) * 257
    assert io.pseudo_colour_fraction(as16) == io.pseudo_colour_fraction(_rendered("jet", scene))
    assert io.pseudo_colour_fraction(as16.astype(np.float32) / 65535) > io.PSEUDO_COLOUR_FRACTION


def test_pseudo_colour_frames_are_refused_unless_gray_says_how(tmp_path, scene):
    jet = _rendered("jet", scene)
    path = tmp_path / "jet.png"
    Image.fromarray(jet, "RGB").save(path)
    with pytest.raises(InputError, match=r"jet.png: pseudo-colour image .*--gray luma"):
        io.read_image(path)
    with Image.open(path) as ref:
        np.testing.assert_array_equal(io.read_image(path, gray="luma"), np.asarray(ref.convert("L")))
    for k, channel in enumerate("rgb"):
        np.testing.assert_array_equal(io.read_image(path, gray=channel), jet[..., k])
    with pytest.raises(InputError, match="--gray: expected one of auto, luma, r, g, b"):
        io.read_image(path, gray="red")
    # the same palette in a palette PNG, a 16-bit PNG, a palette TIFF and a video
    pal = Image.fromarray(scene, "P")
    pal.putpalette(_rendered("jet", np.arange(256, dtype=np.uint8)[None])[0].tobytes())
    pal.save(tmp_path / "p.png")
    cv2.imwrite(str(tmp_path / "c16.png"), jet[..., ::-1].astype(np.uint16) * 257)
    cmap = _rendered("jet", np.arange(256, dtype=np.uint8)[None])[0].T.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "p.tif", scene, photometric="palette", colormap=cmap)
    video = _write_video(tmp_path / "clip.mkv", [jet[..., ::-1]] * 2)
    for name in ("p.png", "c16.png", "p.tif", "clip.mkv"):
        with pytest.raises(InputError, match="pseudo-colour"):
            io.read_image(tmp_path / name)
        assert io.read_image(tmp_path / name, gray="luma").shape == scene.shape
    np.testing.assert_array_equal(io.read_image(tmp_path / "p.tif", gray="g"), jet[..., 1])
    np.testing.assert_array_equal(io.read_image(video, frame=1, gray="b"), jet[..., 2])  # lossless FFV1
    # a palette whose brightness follows the value is read by luma, as before
    Image.fromarray(_rendered("inferno", scene), "RGB").save(tmp_path / "inferno.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "inferno.png"),
                                  io.read_image(tmp_path / "inferno.png", gray="luma"))


def test_masks_in_any_colour_are_read(tmp_path, scene):
    colours = _rendered("jet", scene)
    colours[scene < 100] = 0
    Image.fromarray(colours, "RGB").save(tmp_path / "m.png")
    np.testing.assert_array_equal(io.read_mask(tmp_path / "m.png"), io.read_image(tmp_path / "m.png", gray="luma") > 127)
