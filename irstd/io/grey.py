"""Colour to grey: the luma transform, the ``gray`` rules and the pseudo-colour test.

Every decoder of :mod:`irstd.io` ends in :func:`_to_grey`, which reduces a decoded array to a
2-D grey one of type ``uint8``, ``uint16`` or ``float32``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irstd.errors import InputError

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


#: Most pixels one frame may hold, whatever its format: Pillow's decompression-bomb limit
#: (2 × ``PIL.Image.MAX_IMAGE_PIXELS``, which PNG, JPEG and BMP always had), checked from the
#: header for TIFF pages, 16-bit PNG and video frames before any pixel is decoded.
MAX_PIXELS = 178_956_970


def check_pixels(width: int, height: int, path: Path) -> None:
    """Refuse a frame of more than :data:`MAX_PIXELS` pixels (from its header: a small
    compressed file can declare a huge frame)."""
    if int(width) * int(height) > MAX_PIXELS:
        raise InputError(
            f"{path}: {width}x{height} frame ({int(width) * int(height):,} pixels) is over irstd's limit of "
            f"{MAX_PIXELS:,} pixels per frame; cut it into smaller frames"
        )


def _check_size(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.size == 0 or 0 in arr.shape:
        raise InputError(f"{path}: zero-sized image {arr.shape}")
    return arr
