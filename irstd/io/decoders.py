"""File checks, format sniffing and the still-image decoders.

Pillow decodes 8-bit images (PNG, JPEG, BMP and the rest it reads), OpenCV 16-bit PNG and
tifffile TIFF (falling back to Pillow for compressions tifffile cannot decode without
``imagecodecs``). Each returns a 2-D grey array by the rules of :mod:`irstd.io.grey`.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np

from irstd.errors import InputError
from irstd.io.grey import _check_size, _colour_to_grey, _normalise_dtype, _to_grey, check_pixels

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


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


def _reason(exc: BaseException) -> str:
    """An exception as one short line, for the messages of :class:`~irstd.errors.InputError`."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


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


# ---- OpenCV (16-bit PNG) -------------------------------------------------------------------


def _read_png16(p: Path, gray: str = "auto") -> np.ndarray:
    import cv2
    from PIL import Image

    width, height, _, _ = _png_header(p)
    check_pixels(width, height, p)
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


def _check_page(page, p: Path) -> None:
    """Refuse a TIFF page over :data:`~irstd.io.grey.MAX_PIXELS` from its header."""
    check_pixels(int(getattr(page, "imagewidth", 0) or 0), int(getattr(page, "imagelength", 0) or 0), p)


def _tiff_page_to_grey(page, p: Path, gray: str = "auto") -> np.ndarray:
    _check_page(page, p)
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
            _check_page(page, p)
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
