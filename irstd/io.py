"""Image input and output: one reader for every input, atomic writers.

Reading
-------
:func:`read_image` returns a 2-D grey array with the file's sample type kept (``uint8``,
``uint16`` or ``float32``). The rules:

* 8-bit colour, palette and alpha images (PNG, JPEG, BMP, 8-bit TIFF) become grey with the
  ITU-R 601-2 luma transform exactly as Pillow's ``Image.convert('L')`` does,
  ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``; alpha is ignored, palette images go
  through their palette, grey+alpha keeps the grey channel. Results are bit-identical to Pillow,
  which the classical reference implementations use.
* 16-bit data is never truncated to 8 bits: 16-bit PNG is decoded with OpenCV
  (``IMREAD_UNCHANGED``), TIFF with tifffile. 16-bit colour uses the same luma weights
  (0.299, 0.587, 0.114) in floating point, rounded to ``uint16``.
* Float TIFF (32 or 64 bit) is returned as ``float32``; colour float data uses the same weights.
* Multi-page TIFF: one page per frame (:func:`read_frames`, :func:`count_frames`).
* Pseudo-colour frames are refused: when more than :data:`PSEUDO_COLOUR_FRACTION` of a colour
  frame's pixels differ from the mean colour of the pixels with the same luma (a palette whose
  brightness is not monotonic in the value, such as jet or rainbow), luma would map different
  temperatures to one grey, so :func:`read_image` raises :class:`~irstd.errors.InputError`
  unless ``gray`` says how to collapse the colours (``luma`` anyway, or one channel ``r``,
  ``g``, ``b``). Grey stored as RGB, tinted grey and palettes of monotonic brightness (inferno,
  hot, ironbow-like) pass, and are converted by luma.

Every unreadable input (missing, a folder, empty, truncated, corrupt, not an image, zero-sized)
raises :class:`irstd.errors.InputError` with a one-line message naming the file.

How an image's values become CgriNet's input is :mod:`irstd.intensity`.

Writing
-------
:func:`atomic_write` (temporary file in the same folder, then ``os.replace``),
:func:`write_image`, :func:`write_json` and :func:`write_text`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from irstd.errors import InputError
from irstd.intensity import bit_depth_rule, input_rule, parse_input_range, resolve_auto

__all__ = [
    "GRAY_RULES",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "atomic_write",
    "check_gray",
    "count_frames",
    "image_facts",
    "image_info",
    "is_video",
    "mask_from_image",
    "mask_full_value",
    "pseudo_colour_fraction",
    "read_frames",
    "read_image",
    "read_mask",
    "read_scores",
    "sha256_file",
    "write_image",
    "write_json",
    "write_text",
]

#: File name suffixes recognised as images (lower case).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

#: File name suffixes read as videos, frame by frame (FFmpeg through OpenCV; 8-bit frames).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")

#: ITU-R 601-2 luma weights (R, G, B).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

#: How colour frames become grey (``gray`` of :func:`read_image`): ``auto`` luma, refusing
#: pseudo-colour frames; ``luma`` always; ``r``, ``g``, ``b`` one channel.
GRAY_RULES = ("auto", "luma", "r", "g", "b")

#: A pixel is off its luma's colour when a channel differs from the mean colour of the pixels
#: with the same 8-bit luma by more than this (on the 0-255 scale) ...
PSEUDO_COLOUR_TOLERANCE = 24
#: ... and a frame with more than this fraction of such pixels is pseudo-colour. SIRST's and
#: MDvsFA's 10,477 colour files stay under 0.001; jet, turbo, rainbow, HSV and coolwarm renderings
#: of SIRST frames reach 0.15-0.57; a red cross-hair and a yellow label over 3 % of a frame 0.03.
PSEUDO_COLOUR_FRACTION = 0.1

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_file(path: str | os.PathLike) -> Path:
    """Return ``Path(path)`` after checking that it names a non-empty regular file."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, expected an image file")
    if st.st_size == 0:
        raise InputError(f"{path}: empty file")
    return p


def _sniff(p: Path) -> str:
    """Container format from the first bytes: 'png', 'tiff', 'jpeg', 'bmp' or 'other'."""
    return _sniff_head(p)[0]


def _sniff_head(p: Path) -> tuple[str, bytes]:
    """(container format, first 32 bytes)."""
    try:
        with open(p, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(_PNG_MAGIC):
        return "png", head
    if head[:4] in _TIFF_MAGICS:
        return "tiff", head
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", head
    if head.startswith(b"BM"):
        return "bmp", head
    return "other", head


def _png_header(p: Path, head: bytes | None = None) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk."""
    if head is None or len(head) < 29:
        with open(p, "rb") as f:
            head = f.read(29)
    if len(head) < 29 or head[12:16] != b"IHDR":
        raise InputError(f"{p}: truncated or corrupt PNG (no IHDR chunk)")
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


def _luma_uint8(rgb: np.ndarray) -> np.ndarray:
    """Pillow's integer ITU-R 601-2 luma on uint8 R, G, B planes (bit-identical)."""
    r = rgb[..., 0].astype(np.uint32)
    g = rgb[..., 1].astype(np.uint32)
    b = rgb[..., 2].astype(np.uint32)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _luma_float(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in float64 on R, G, B planes."""
    x = rgb.astype(np.float64)
    wr, wg, wb = LUMA_WEIGHTS
    return wr * x[..., 0] + wg * x[..., 1] + wb * x[..., 2]


def pseudo_colour_fraction(rgb: np.ndarray) -> float:
    """Fraction of a colour image's pixels whose colour is not the one of their luma.

    For every 8-bit luma value the mean colour of its pixels is taken; a pixel counts when one
    of its channels differs from that mean by more than :data:`PSEUDO_COLOUR_TOLERANCE`. Grey,
    tinted grey and palettes whose brightness rises with the value give about 0 (each luma has
    one colour); palettes such as jet, where different values share a brightness, give a large
    fraction. Frames over 512×512 pixels are measured on every second row and column.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
        R, G, B planes: uint8, uint16 (its high byte is used) or float (stretched from the
        minimum to the maximum of all channels).

    Returns
    -------
    float
        In [0, 1].
    """
    if rgb.shape[0] * rgb.shape[1] > 512 * 512:
        rgb = rgb[::2, ::2]
    if rgb.dtype == np.uint16:
        rgb = (rgb >> 8).astype(np.uint8)
    elif rgb.dtype != np.uint8:
        x = np.nan_to_num(np.asarray(rgb, dtype=np.float64))
        lo, hi = float(x.min()), float(x.max())
        rgb = np.zeros(x.shape, np.uint8) if hi <= lo else np.rint((x - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    luma = _luma_uint8(rgb).ravel()
    if luma.size == 0:
        return 0.0
    count = np.maximum(np.bincount(luma, minlength=256), 1)
    off = np.zeros(luma.size, bool)
    for channel in range(3):
        values = rgb[..., channel].ravel()
        mean = np.bincount(luma, weights=values, minlength=256) / count
        off |= np.abs(values - mean[luma]) > PSEUDO_COLOUR_TOLERANCE
    return float(off.mean())


def check_gray(gray: str) -> str:
    """Check a ``gray`` rule (:data:`GRAY_RULES`) and return it."""
    if gray not in GRAY_RULES:
        raise InputError(f"--gray: expected one of {', '.join(GRAY_RULES)}, got {gray!r}")
    return gray


def _colour_to_grey(rgb: np.ndarray, path: Path, gray: str) -> np.ndarray:
    """R, G, B planes to grey by the ``gray`` rule (see :data:`GRAY_RULES`)."""
    if gray in ("r", "g", "b"):
        return rgb[..., "rgb".index(gray)]
    if gray == "auto" and not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
        share = pseudo_colour_fraction(rgb)
        if share > PSEUDO_COLOUR_FRACTION:
            raise InputError(
                f"{path}: pseudo-colour image ({share:.0%} of its pixels share a brightness with "
                "other colours, as in a jet or rainbow palette), so grey by luma would merge "
                "different temperatures; give --gray luma to convert it anyway, or --gray r, g or b "
                "for one channel"
            )
    if rgb.dtype == np.uint8:
        return _luma_uint8(rgb)
    if rgb.dtype == np.uint16:
        return np.clip(np.rint(_luma_float(rgb)), 0, 65535).astype(np.uint16)
    return _luma_float(rgb)


def _to_grey(arr: np.ndarray, path: Path, rgb_order: bool = True, gray: str = "auto") -> np.ndarray:
    """Reduce an (H, W), (H, W, C) array to 2-D grey with the module's rules."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        c = arr.shape[2]
        if c == 2:  # grey + alpha
            arr = arr[..., 0]
        elif c in (3, 4):
            arr = _colour_to_grey(arr[..., :3] if rgb_order else arr[..., 2::-1], path, gray)
        else:
            raise InputError(f"{path}: unsupported image with {c} channels")
    if arr.ndim != 2:
        raise InputError(f"{path}: unsupported image shape {arr.shape}")
    return _normalise_dtype(arr, path)


def _normalise_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    """Map the decoded sample type to uint8, uint16 or float32."""
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)  # as Pillow's '1' -> 'L'
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if arr.dtype.itemsize == 1 and lo >= 0:
            return arr.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return arr.astype(np.uint16)
        raise InputError(
            f"{path}: unsupported sample type {arr.dtype} with values {lo}..{hi} (expected 8-bit, 16-bit or float)"
        )
    raise InputError(f"{path}: unsupported sample type {arr.dtype}")


def _check_size(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.size == 0 or 0 in arr.shape:
        raise InputError(f"{path}: zero-sized image {arr.shape}")
    return arr


# ---- Pillow (8-bit PNG, JPEG, BMP, others) -------------------------------------------------

_PIL_8BIT_MODES = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "La", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


#: Pillow modes whose colours :func:`_to_grey` collapses (the others go through ``convert('L')``).
_PIL_COLOUR_MODES = {"P", "PA", "RGB", "RGBA", "RGBX"}


def _read_pillow(p: Path, frame: int, gray: str = "auto") -> np.ndarray:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                n = getattr(im, "n_frames", 1)
                if not 0 <= frame < n:
                    raise InputError(f"{p}: frame {frame} out of range (the file has {n} frame{'s' * (n != 1)})")
                if frame:
                    im.seek(frame)
                im.load()
                if im.width == 0 or im.height == 0:
                    raise InputError(f"{p}: zero-sized image ({im.width}x{im.height})")
                if im.mode in _PIL_COLOUR_MODES and gray != "luma" and not _grey_palette(im):
                    arr = np.asarray(im.convert("RGB"))  # luma of it: bit-identical to convert('L')
                elif im.mode in _PIL_8BIT_MODES:
                    arr = np.asarray(im.convert("L"))
                elif im.mode.startswith("I;16") or im.mode in ("I", "F"):
                    arr = np.asarray(im)
                    if arr.dtype.byteorder == ">":
                        arr = arr.astype(arr.dtype.newbyteorder("="))
                else:
                    arr = np.asarray(im.convert("L"))
    except InputError:
        raise
    except Exception as exc:  # Pillow raises many types for bad files
        raise InputError(f"{p}: not a readable image ({_reason(exc)})") from None
    return _check_size(_to_grey(arr, p, gray=gray), p)


def _grey_palette(im) -> bool:
    """Whether a Pillow palette image's palette is grey (then ``convert('L')`` is exact)."""
    if im.mode not in ("P", "PA"):
        return False
    palette = np.frombuffer(im.palette.tobytes(), np.uint8)
    if im.palette.mode != "RGB" or palette.size % 3:
        return False
    rgb = palette.reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


# ---- OpenCV (16-bit PNG) -------------------------------------------------------------------


def _read_png16(p: Path, gray: str = "auto") -> np.ndarray:
    import cv2
    from PIL import Image

    # Pillow's verify() walks every chunk and checks CRCs without decoding: catches truncation
    # and corruption that libpng may only warn about.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                im.verify()
    except Exception as exc:
        raise InputError(f"{p}: not a readable image ({_reason(exc)})") from None
    data = np.fromfile(p, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"{p}: not a readable image (OpenCV cannot decode this PNG)")
    return _check_size(_to_grey(arr, p, rgb_order=False, gray=gray), p)  # OpenCV gives BGR(A)


# ---- tifffile (TIFF) -----------------------------------------------------------------------


def _tiff_page_to_grey(page, p: Path, gray: str = "auto") -> np.ndarray:
    arr = page.asarray()
    photometric = int(getattr(page, "photometric", 1))
    if photometric == 3 and getattr(page, "colormap", None) is not None:  # palette
        cmap = np.asarray(page.colormap)  # (3, 2**bits) uint16
        rgb = cmap[:, arr].transpose(1, 2, 0)
        if arr.dtype == np.uint8:
            rgb = (rgb >> 8).astype(np.uint8)  # TIFF colormaps are 16-bit; Pillow keeps the high byte
        return _normalise_dtype(_colour_to_grey(rgb, p, gray), p)
    if photometric == 0 and arr.dtype.kind == "u":  # min-is-white: invert like Pillow
        arr = np.iinfo(arr.dtype).max - arr
    axes = getattr(page, "axes", "")
    if arr.ndim == 3 and axes.startswith("S") and arr.shape[0] in (2, 3, 4):  # planar
        arr = np.moveaxis(arr, 0, -1)
    return _to_grey(arr, p, gray=gray)


def _open_tiff(p: Path):
    import tifffile

    try:
        return tifffile.TiffFile(p)
    except Exception as exc:
        raise InputError(f"{p}: not a readable TIFF ({_reason(exc)})") from None


def _read_tiff(p: Path, frame: int, gray: str = "auto") -> np.ndarray:
    with _open_tiff(p) as tif:
        n = len(tif.pages)
        if n == 0:
            raise InputError(f"{p}: not a readable TIFF (no pages)")
        if not 0 <= frame < n:
            raise InputError(f"{p}: frame {frame} out of range (the file has {n} frame{'s' * (n != 1)})")
        page = None
        try:
            page = tif.pages[frame]
            if 0 in tuple(getattr(page, "shape", (1,))):
                raise InputError(f"{p}: zero-sized image {page.shape}")
            if int(getattr(page, "photometric", 1)) in (5, 6, 8) and np.dtype(page.dtype) == np.uint8:
                # CMYK, YCbCr, CIELab in 8 bits: Pillow's own conversion, bit-identical by definition
                return _read_pillow(p, frame, gray)
            arr = _tiff_page_to_grey(page, p, gray)
        except InputError:
            raise
        except Exception as exc:
            # e.g. LZW or JPEG compression, which tifffile decodes only with imagecodecs: Pillow
            # reads those for 8-bit, 16-bit grey and float data, but would truncate 16-bit colour.
            if int(getattr(page, "samplesperpixel", 1)) > 1 and int(getattr(page, "bitspersample", 8)) > 8:
                raise InputError(
                    f"{p}: cannot decode this {page.bitspersample}-bit colour TIFF ({_reason(exc)}; "
                    f"install the 'imagecodecs' package)"
                ) from None
            try:
                return _read_pillow(p, frame, gray)
            except InputError:
                raise InputError(f"{p}: not a readable TIFF ({_reason(exc)})") from None
    return _check_size(arr, p)


# ---- video (OpenCV / FFmpeg) ----------------------------------------------------------------

#: Forward gaps up to this many frames are skipped by decoding instead of seeking (exact, and
#: cheaper than a seek to the previous key frame; worker processes read every N-th frame).
_VIDEO_SKIP = 64


def _video_capture(p: Path):
    """``cv2.VideoCapture`` of ``p`` with FFmpeg's own log lines silenced (they would break the
    one-line errors; set ``OPENCV_FFMPEG_LOGLEVEL`` to see them)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg starts
    import cv2

    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"{p}: not a readable video (FFmpeg cannot open it)")
    return cap


class _VideoReader:
    """One open video, positioned after the frame it read last (reused for the next frame)."""

    def __init__(self, p: Path, key: tuple) -> None:
        self.key = key
        self.cap = _video_capture(p)
        self.next = 0  # index of the frame the next read() returns
        self.last: tuple[int, np.ndarray] | None = None  # index and BGR of the frame read last

    def frame(self, p: Path, k: int, gray: str = "auto") -> np.ndarray:
        import cv2

        if self.last is not None and self.last[0] == k:
            return _check_size(_to_grey(self.last[1], p, rgb_order=False, gray=gray), p)
        if k < self.next or k - self.next > _VIDEO_SKIP:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, k)
            self.next = k
        while self.next < k:  # a short gap: decode forward
            if not self.cap.grab():
                raise InputError(f"{p}: frame {k} out of range (the video ends at frame {self.next - 1})")
            self.next += 1
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            raise InputError(f"{p}: frame {k} out of range or not decodable")
        self.next = k + 1
        self.last = (k, bgr)
        return _check_size(_to_grey(bgr, p, rgb_order=False, gray=gray), p)

    def close(self) -> None:
        self.cap.release()


_video_reader: _VideoReader | None = None


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as a video (by its suffix, :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _read_video(p: Path, frame: int, gray: str = "auto") -> np.ndarray:
    """Frame ``frame`` of a video as 8-bit grey; sequential reads reuse one open decoder."""
    global _video_reader
    st = os.stat(p)
    key = (os.path.realpath(p), st.st_mtime_ns, st.st_size)
    if _video_reader is None or _video_reader.key != key:
        if _video_reader is not None:
            _video_reader.close()
            _video_reader = None
        _video_reader = _VideoReader(p, key)
    return _video_reader.frame(p, frame, gray)


def _count_video_frames(p: Path) -> int:
    """Frames of a video, counted by decoding (container headers are often approximate)."""
    cap = _video_capture(p)
    try:
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise InputError(f"{p}: no decodable frame in this video")
    return n


# --------------------------------------------------------------------------------------------
# public reading API
# --------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike, frame: int = 0, gray: str = "auto") -> np.ndarray:
    """Read one image as a 2-D grey array, sample type preserved.

    Parameters
    ----------
    path : str or path-like
        PNG, TIFF, JPEG or BMP file (other formats Pillow reads in 8 bits also work), or a
        video (:data:`VIDEO_SUFFIXES`, decoded by FFmpeg through OpenCV).
    frame : int, optional
        Page of a multi-page TIFF or frame of a video (0-based). Other files have one frame.
        Reading a video's frames in order decodes each once.
    gray : {"auto", "luma", "r", "g", "b"}, optional
        How colour becomes grey: ``auto`` (default) by luma, refusing pseudo-colour frames
        (:func:`pseudo_colour_fraction` over :data:`PSEUDO_COLOUR_FRACTION`); ``luma`` by luma
        always; ``r``, ``g`` or ``b``: that channel. Grey files are read as they are.

    Returns
    -------
    image : ndarray, shape (H, W), dtype uint8, uint16 or float32
        Grey image; colour converted with ITU-R 601-2 luma (bit-identical to Pillow's
        ``convert('L')`` for 8-bit data), 16-bit kept at 16 bits.

    Raises
    ------
    InputError
        The file is missing, a folder, empty, truncated, corrupt, not an image or zero-sized,
        ``frame`` is out of range, or the image is pseudo-colour under ``gray="auto"``.
    """
    check_gray(gray)
    p = _check_file(path)
    if frame < 0:
        raise InputError(f"{path}: frame {frame} out of range")
    if is_video(p):
        return _read_video(p, frame, gray)
    kind, head = _sniff_head(p)
    if kind == "tiff":
        return _read_tiff(p, frame, gray)
    if kind == "png":
        _, _, depth, _ = _png_header(p, head)
        if depth == 16:
            if frame:
                raise InputError(f"{p}: frame {frame} out of range (the file has 1 frame)")
            return _read_png16(p, gray)
    return _read_pillow(p, frame, gray)


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames in an image file (pages of a TIFF; 1 for PNG, JPEG, BMP) or a video
    (counted by decoding it once)."""
    p = _check_file(path)
    if is_video(p):
        return _count_video_frames(p)
    kind = _sniff(p)
    if kind == "tiff":
        with _open_tiff(p) as tif:
            return len(tif.pages)
    if kind == "png":
        return 1
    from PIL import Image

    try:
        with Image.open(p) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception as exc:
        raise InputError(f"{p}: not a readable image ({_reason(exc)})") from None


def read_frames(path: str | os.PathLike, gray: str = "auto") -> Iterator[np.ndarray]:
    """Iterate over the frames of an image file (every page of a multi-page TIFF, every frame
    of a video).

    Yields 2-D grey arrays with the rules of :func:`read_image` (and its ``gray``).
    """
    check_gray(gray)
    p = _check_file(path)
    if is_video(p):
        for k in range(_count_video_frames(p)):
            yield _read_video(p, k, gray)
        return
    if _sniff(p) != "tiff":
        for i in range(count_frames(p)):
            yield read_image(p, frame=i, gray=gray)
        return
    n = count_frames(p)
    with _open_tiff(p) as tif:  # one open for the whole stack
        for i in range(n):
            try:
                page = tif.pages[i]
                if int(getattr(page, "photometric", 1)) in (5, 6, 8):
                    raise ValueError("decoded by Pillow")
                arr = _check_size(_tiff_page_to_grey(page, p, gray), p)
            except InputError:
                raise
            except Exception:
                arr = _read_tiff(p, i, gray)  # same rules and fallbacks as read_image
            yield arr


def image_info(path: str | os.PathLike) -> dict[str, Any]:
    """Size and sample type from the file header, without decoding pixels where possible.

    Returns
    -------
    info : dict
        ``width``, ``height``, ``dtype`` (of :func:`read_image`'s result), ``frames``,
        ``format`` and ``colour`` (``grey``, ``grey+alpha``, ``rgb``, ``rgba``, ``palette``,
        ``bilevel`` or ``other``: what the file stores before the grey conversion). Raises
        :class:`InputError` for an unreadable header.
    """
    p = _check_file(path)
    kind, head = _sniff_head(p)
    if kind == "png":
        w, h, depth, ctype = _png_header(p, head)
        if w == 0 or h == 0:
            raise InputError(f"{p}: zero-sized image ({w}x{h})")
        colour = {0: "grey", 2: "rgb", 3: "palette", 4: "grey+alpha", 6: "rgba"}.get(ctype, "other")
        if ctype == 0 and depth == 1:
            colour = "bilevel"
        return {"width": w, "height": h, "dtype": "uint16" if depth == 16 else "uint8", "frames": 1,
                "format": "png", "colour": colour}
    if kind == "tiff":
        with _open_tiff(p) as tif:
            if not tif.pages:
                raise InputError(f"{p}: not a readable TIFF (no pages)")
            page = tif.pages[0]
            dt = np.dtype(page.dtype) if page.dtype is not None else np.dtype(np.uint8)
            if dt == np.bool_:
                dt = np.dtype(np.uint8)
            elif dt.kind == "f":
                dt = np.dtype(np.float32)
            elif dt.itemsize > 1:
                dt = np.dtype(np.uint16)
            photometric = int(getattr(page, "photometric", 1))
            spp = int(getattr(page, "samplesperpixel", 1))
            if photometric == 3:
                colour = "palette"
            elif photometric == 2:
                colour = "rgba" if spp >= 4 else "rgb"
            elif photometric in (0, 1):
                colour = "bilevel" if page.bitspersample == 1 else ("grey+alpha" if spp == 2 else "grey")
            else:
                colour = "other"
            return {
                "width": int(page.imagewidth),
                "height": int(page.imagelength),
                "dtype": str(dt),
                "frames": len(tif.pages),
                "format": "tiff",
                "colour": colour,
            }
    from PIL import Image

    try:
        with Image.open(p) as im:
            w, h = im.size
            mode = im.mode
            frames = int(getattr(im, "n_frames", 1))
            fmt = (im.format or kind).lower()
    except Exception as exc:
        raise InputError(f"{p}: not a readable image ({_reason(exc)})") from None
    if w == 0 or h == 0:
        raise InputError(f"{p}: zero-sized image ({w}x{h})")
    dtype = "float32" if mode == "F" else "uint16" if mode.startswith("I") else "uint8"
    colour = {"1": "bilevel", "L": "grey", "LA": "grey+alpha", "P": "palette", "PA": "palette", "RGB": "rgb",
              "RGBA": "rgba"}.get(mode, "grey" if mode.startswith("I") or mode == "F" else "other")
    return {"width": w, "height": h, "dtype": dtype, "frames": frames, "format": fmt, "colour": colour}


def image_facts(path: str | os.PathLike, bit_depth: int | None = None,
                input_range: str | None = "auto") -> dict[str, Any]:
    """What :func:`read_image` makes of a file: size, frames, type, value range of frame 0, the
    bit depth rule and how :func:`to_float` maps frame 0 under ``input_range`` (default ``auto``,
    CgriNet's packaged default) as ``input_rule`` (decodes the first frame)."""
    requested = parse_input_range(input_range)
    info = image_info(path)
    image = read_image(path, gray="luma")  # never empty
    if image.dtype.kind == "f":
        lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    else:
        lo, hi = int(image.min()), int(image.max())
    bits_rule = bit_depth_rule(image.dtype, bit_depth)
    spec = resolve_auto(requested, image, bit_depth)
    if spec == "bits":
        rule = bits_rule
    elif spec == "minmax":
        rule = f"minmax: (x - {lo:g})/({hi:g} - {lo:g})" if hi > lo else "minmax: constant frame -> 0"
    else:
        rule = input_rule(spec)
    return {
        "path": str(path),
        "format": info["format"],
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "frames": info["frames"],
        "dtype": str(image.dtype),
        "min": lo,
        "max": hi,
        "bit_depth_rule": bits_rule,
        "input_range": requested,
        "input_rule": rule,
    }


def mask_full_value(image: np.ndarray) -> float:
    """The value that means "target" in a mask image (the other binary value is 0).

    ``1`` when every value is 0 or 1 (0/1 masks, integer or float), else ``255`` for integer
    masks whose values do not exceed 255 (8-bit masks, also when stored in 16 bits), else the
    maximum of the type (65535 for 16-bit). Float masks: ``1.0``.
    """
    if image.dtype.kind == "f":
        return 1.0
    if image.dtype == np.bool_:
        return 1
    top = int(image.max(initial=0))
    if top <= 1:
        return 1
    if top <= 255:
        return 255
    return int(np.iinfo(image.dtype).max)


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """Binary mask from a mask image: ``image > mask_full_value(image) / 2``."""
    if image.dtype == np.bool_:
        return image.copy()
    return image > mask_full_value(image) / 2


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a ground-truth mask as a 2-D ``bool`` array.

    A pixel is target when its grey value is above half the mask's full value
    (:func:`mask_full_value`): ``> 127`` for 8-bit 0/255 masks, ``> 32767`` for 16-bit
    0/65535 masks, ``> 0.5`` for float masks, and value 1 for 0/1 masks (the other common
    convention). Colour masks go through the luma rule of :func:`read_image` first.
    """
    return mask_from_image(read_image(path, gray="luma"))  # any colour of a mask is a value


def read_scores(path: str | os.PathLike, shape: tuple[int, int] | None = None, gray: str = "auto") -> np.ndarray:
    """Read a saved prediction (score) map as ``float64``.

    Parameters
    ----------
    path : str or path-like
        ``.npy`` (2-D float or integer array), image file (PNG, TIFF, ...).
    shape : (int, int), optional
        Expected (H, W); a different shape raises :class:`InputError`.
    gray : {"auto", "luma", "r", "g", "b"}, optional
        How a colour image becomes grey (:func:`read_image`; ``auto`` refuses pseudo-colour,
        e.g. a heat map rendered with the jet palette).

    Returns
    -------
    scores : ndarray, shape (H, W), float64
        Integer images (8- or 16-bit) as ``value / max of the dtype`` (``/255``, ``/65535``);
        float data (``.npy``, float TIFF) as is. Singleton leading/trailing axes are dropped.

    Raises
    ------
    InputError
        Unreadable file, not 2-D, wrong shape, NaN or infinite values.
    """
    p = _check_file(path)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{path}: not a readable .npy array ({_reason(exc)})") from None
        arr = np.asarray(arr)
        if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
            arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
        if arr.ndim != 2:
            raise InputError(f"{path}: expected a 2-D score map, got shape {arr.shape}")
        if arr.dtype == np.bool_:
            scores = arr.astype(np.float64)
        elif arr.dtype.kind == "u" and arr.dtype.itemsize <= 2:
            scores = arr.astype(np.float64) / np.iinfo(arr.dtype).max
        elif arr.dtype.kind in "fiu":
            scores = arr.astype(np.float64)
        else:
            raise InputError(f"{path}: unsupported score type {arr.dtype}")
    else:
        img = read_image(p, gray=gray)
        if img.dtype.kind == "f":
            scores = img.astype(np.float64)
        else:
            scores = img.astype(np.float64) / np.iinfo(img.dtype).max
    if 0 in scores.shape:
        raise InputError(f"{path}: zero-sized score map {scores.shape}")
    if shape is not None and tuple(scores.shape) != tuple(shape):
        raise InputError(
            f"{path}: score map is {scores.shape[1]}x{scores.shape[0]} (WxH), expected {shape[1]}x{shape[0]}"
        )
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise InputError(f"{path}: {bad} NaN or infinite score value{'s' * (bad != 1)}")
    return scores


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (read in 1 MiB blocks); InputError if unreadable."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Context manager yielding a temporary path to write; moved onto ``path`` on success.

    The temporary file lies in the same folder (so ``os.replace`` is atomic) and keeps the
    suffix of ``path`` (writers that pick the format from the extension work). On an exception
    the temporary file is removed and ``path`` is left untouched.

    Parameters
    ----------
    path : str or path-like
        Final file.
    overwrite : bool, optional
        When False and ``path`` exists, raise :class:`InputError` (before and after writing).

    Examples
    --------
    >>> with atomic_write("out/scores.npy") as tmp:  # doctest: +SKIP
    ...     np.save(tmp, scores)
    """
    final = Path(path)
    if not overwrite and final.exists():
        raise InputError(f"{path}: already exists (use --overwrite to replace it)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp{final.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise OSError(f"{path}: nothing was written")
        if not overwrite and final.exists():
            raise InputError(f"{path}: already exists (use --overwrite to replace it)")
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` atomically and fsync it before the rename; returns the path."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) atomically; returns the path."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented JSON (NumPy scalars and arrays allowed) atomically.

    Non-finite floats are written as ``null`` so the file stays valid JSON.
    """
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False) + "\n"
    return write_text(path, text, overwrite=overwrite)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return [_finite(v) for v in obj.tolist()]
    return obj


def write_image(
    path: str | os.PathLike, array: np.ndarray, bit_depth: int | None = None, overwrite: bool = True
) -> Path:
    """Write a grey or RGB(A) image atomically; format from the extension.

    Parameters
    ----------
    path : str or path-like
        ``.png`` (8 or 16 bit), ``.tif``/``.tiff`` (8, 16 bit or float32), ``.jpg``, ``.bmp``
        (8 bit).
    array : ndarray, shape (H, W), (H, W, 3) or (H, W, 4)
        ``bool`` (written 0/255), ``uint8``, ``uint16`` or float. Colour arrays are in RGB(A)
        order. Float data goes to TIFF as float32; to other formats it must lie in [0, 1] and is
        scaled to ``bit_depth`` bits (8 by default, 16 for PNG on request) and rounded.
    bit_depth : {8, 16}, optional
        Only for float data written to an integer format.
    overwrite : bool, optional
        When False, an existing ``path`` raises :class:`InputError`.
    """
    import cv2

    p = Path(path)
    suffix = p.suffix.lower()
    arr = np.asarray(array)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or arr.size == 0:
        raise ValueError(f"{path}: cannot write an array of shape {arr.shape} as an image")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if suffix in (".tif", ".tiff"):
        import tifffile

        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{path}: cannot write {arr.dtype} data (uint8, uint16 or float)")
        photometric = "rgb" if arr.ndim == 3 and arr.shape[2] in (3, 4) else "minisblack"
        extrasamples = ("unassalpha",) if arr.ndim == 3 and arr.shape[2] == 4 else None
        with atomic_write(p, overwrite=overwrite) as tmp:
            tifffile.imwrite(tmp, arr, photometric=photometric, extrasamples=extrasamples, compression="zlib")
        return p
    if suffix not in (".png", ".jpg", ".jpeg", ".bmp"):
        raise ValueError(f"{path}: unsupported image format {suffix!r} (png, tif, jpg, bmp)")
    if arr.dtype.kind == "f":
        bits = bit_depth or 8
        if bits not in (8, 16) or (bits == 16 and suffix != ".png"):
            raise ValueError(f"{path}: bit_depth {bits} not supported for {suffix}")
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{path}: float data must lie in [0, 1] to be written as {suffix}")
        dt = np.uint8 if bits == 8 else np.uint16
        arr = np.rint(arr * (2**bits - 1)).astype(dt)
    if arr.dtype not in (np.uint8, np.uint16) or (arr.dtype == np.uint16 and suffix != ".png"):
        raise ValueError(f"{path}: cannot write {arr.dtype} data as {suffix}")
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[2] == 1 else cv2.cvtColor(
            arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        )
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if suffix == ".png" else []
    ok, buf = cv2.imencode(suffix if suffix != ".jpeg" else ".jpg", np.ascontiguousarray(arr), params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    with atomic_write(p, overwrite=overwrite) as tmp:
        buf.tofile(tmp)
    return p
