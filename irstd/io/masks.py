"""Ground-truth masks and saved prediction (score) maps."""

from __future__ import annotations

import os

import numpy as np

from irstd.errors import InputError
from irstd.io.decoders import _check_file, _reason
from irstd.io.images import read_image


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
