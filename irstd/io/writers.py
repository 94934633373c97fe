"""Atomic writers (temporary file in the same folder, then ``os.replace``) and file hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from irstd.errors import InputError


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
    if final.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, cannot be replaced by a file", str(final))
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder must go (here or higher up)
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(_first_file(final.parent))) from None
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp{final.suffix}")
    try:
        try:
            yield tmp
        except OSError as exc:  # e.g. a full disk: name the file the user asked for
            if exc.errno is None or exc.filename not in (None, str(tmp), tmp):
                raise
            raise type(exc)(exc.errno, exc.strerror, str(final)) from None
        if not tmp.exists():
            raise OSError(f"{path}: nothing was written")
        if not overwrite and final.exists():
            raise InputError(f"{path}: already exists (use --overwrite to replace it)")
        try:
            os.replace(tmp, final)
        except OSError as exc:  # name the file the user asked for, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, str(final)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _first_file(folder: Path) -> Path:
    """The first part of ``folder`` that exists and is not a folder (else ``folder``)."""
    for part in reversed([folder, *folder.parents]):
        if part.exists() and not part.is_dir():
            return part
    return folder


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
