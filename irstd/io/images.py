"""The public reading API: :func:`read_image`, :func:`count_frames`, :func:`read_frames`,
:func:`image_info` and :func:`image_facts`.

Files are dispatched by suffix (videos, :mod:`irstd.io.video`) and by their first bytes (TIFF,
16-bit PNG, the rest through Pillow; :mod:`irstd.io.decoders`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from irstd.errors import InputError
from irstd.intensity import bit_depth_rule, input_rule, parse_input_range, resolve_auto
from irstd.io.decoders import (
    _check_file,
    _open_tiff,
    _png_header,
    _read_pillow,
    _read_png16,
    _read_tiff,
    _reason,
    _sniff,
    _sniff_head,
    _tiff_page_to_grey,
)
from irstd.io.grey import _check_size, check_gray, check_pixels
from irstd.io.video import _count_video_frames, _read_video, is_video

#: File name suffixes recognised as images (lower case).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


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
        width, height, depth, _ = _png_header(p, head)
        check_pixels(width, height, p)
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
        check_pixels(w, h, p)
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
            check_pixels(int(page.imagewidth), int(page.imagelength), p)
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
    CgriNet's packaged default) as ``input_rule`` (decodes the first frame). ``non_finite``
    counts NaN and infinite pixels (float data); a frame with any is refused by every method
    (the non-finite pixel rule), and ``input_rule`` says so; ``min`` and ``max`` are then
    those of the finite pixels."""
    requested = parse_input_range(input_range)
    info = image_info(path)
    image = read_image(path, gray="luma")  # never empty
    non_finite = 0
    if image.dtype.kind == "f":
        finite = np.isfinite(image)
        non_finite = int(image.size - np.count_nonzero(finite))
        values = image[finite] if non_finite else image
        lo, hi = (float(values.min()), float(values.max())) if values.size else (math.nan, math.nan)
    else:
        lo, hi = int(image.min()), int(image.max())
    bits_rule = bit_depth_rule(image.dtype, bit_depth)
    spec = resolve_auto(requested, image, bit_depth) if not non_finite else requested
    if non_finite:  # the non-finite pixel rule (irstd.methods.base._check_image)
        rule = (f"refused: {non_finite} non-finite pixel{'s' * (non_finite != 1)} (NaN or infinite); "
                f"no method runs on this frame")
    elif spec == "bits":
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
        "non_finite": non_finite,
    }
