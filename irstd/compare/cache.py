"""The compare run folder and its per-method cache.

``<out>/cache/<method>-<key>/`` holds, per image id, ``<id>.npy`` (the score map, lossless: the
method's own float values, float32 when that is exact and float64 otherwise, restored to the
method's dtype on reading — so a cached evaluation is bit-identical to a fresh one),
``<id>.png`` (the own-rule mask, 0/255) and ``<id>.json`` (seconds, dtype, shape and the SHA-256
of the image file). The json is written last, atomically: an id counts as cached only when its
json exists, so a run killed mid-way resumes where it stopped. ``<key>`` is a hash of
:func:`method_key` (the method's record and options but the device, SHA-256 of the weights file,
irstd version, SHA-256 of the method's source files, cache format): a changed method gets a new
folder and is recomputed; a changed image (other bytes under the same id) is recomputed too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from irstd import __version__, io
from irstd.errors import InputError
from irstd.evaluate import check_out_dir

__all__ = ["CACHE_DIR", "CACHE_FORMAT", "MARKER", "OUTPUT_FILES", "method_key", "prepare_out", "run_identity"]

#: The file that marks a folder as an ``irstd compare`` run folder (its cache may be reused).
MARKER = "compare.json"
#: Sub-folder of the run folder with one cache folder per method.
CACHE_DIR = "cache"
#: Bumped when the cache layout changes (part of every cache key).
CACHE_FORMAT = 1
#: What :func:`write_outputs` writes (besides ``compare.json`` and ``cache/``).
OUTPUT_FILES = (
    "metrics.csv",
    "metrics.tex",
    "metrics.json",
    "per_image.csv",
    "roc.png",
    "pr.png",
    "pd_fa.png",
    "surfaces.png",
    "qualitative.png",
    "report.md",
)


def _code_hash(files: Sequence[Path]) -> str:
    """SHA-256 of the names and bytes of ``files``, in order."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def method_key(spec: str, method, *, compat: str | None = None) -> dict[str, Any]:
    """What a cached output depends on; its hash names the method's cache folder.

    The method's own record (:meth:`irstd.methods.Method.record`: rules, threshold, tiling,
    input mapping, engine, ...) and options, except where it runs (the device). The weights
    enter through their SHA-256, not their path: a moved file keeps its cache, a retrained one
    (same path, other bytes) is recomputed. The method's source code enters through a SHA-256
    of its files (:meth:`irstd.methods.Method.code_files`), so an edited implementation is
    recomputed even when the irstd version stays the same (editable installs).
    """
    record = {k: v for k, v in method.record().items() if k not in ("method", "weights", "device")}
    options = {k: v for k, v in asdict(method.options).items() if k != "device"}
    weights = method.weights_file
    return {
        "method": spec.partition(":")[0].strip().lower(),
        **record,
        "options": options,
        "weights_sha256": None if weights is None else io.sha256_file(weights),
        "compat": compat,
        "irstd_version": __version__,
        "code_sha256": _code_hash(method.code_files()),
        "cache_format": CACHE_FORMAT,
    }


def _key_hash(key: Mapping[str, Any]) -> str:
    """SHA-256 of a :func:`method_key` (its JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def run_identity(root, specs: Sequence[str], split, split_file, options, compat) -> dict[str, Any]:
    """What makes two compare runs the same run: dataset, split, methods and every option but the
    device (recorded in ``compare.json``; :func:`prepare_out` refuses a folder holding another)."""
    return {
        "dataset": str(Path(root).resolve()),
        "split": split,
        "split_file": None if split_file is None else str(Path(split_file).resolve()),
        "methods": list(specs),
        "options": {k: v for k, v in asdict(options).items() if k != "device"},
        "compat": compat,
    }


def _describe(run: Mapping[str, Any]) -> str:
    where = run.get("split") or run.get("split_file")
    return f"methods {','.join(run.get('methods', []))} on {run.get('dataset')} ({where})"


def prepare_out(out: str | os.PathLike, *, overwrite: bool = False, run: Mapping[str, Any] | None = None) -> Path:
    """Create or reuse a compare run folder (checked before any work).

    A folder with ``compare.json`` is ours. When it holds the same run (``run``, see
    :func:`run_identity`) it is reused with its cache; when it holds the outputs of another run
    (other methods, split or options) it is refused unless ``overwrite``, which removes those
    outputs and keeps the cache (its entries are keyed by method, options and image, so they are reused
    where they apply). Another non-empty folder is refused unless ``overwrite`` (then our files
    are written into it; nothing else there is touched).

    Raises
    ------
    irstd.errors.InputError
        ``out`` is a file, a non-empty folder that is not a compare folder, or a compare folder
        of another run (without ``overwrite``).
    """
    out = Path(out)
    run = None if run is None else json.loads(json.dumps(run))  # as compare.json holds it
    marker = out / MARKER
    ours = marker.is_file()
    previous = None
    if ours:
        try:
            previous = json.loads(marker.read_text()).get("run")
        except (OSError, ValueError, AttributeError):
            previous = None
        outputs = [p for name in OUTPUT_FILES for p in out.glob(f"{Path(name).stem}.*") if p.is_file()]
        other = run is not None and previous is not None and run != previous
        if other and outputs and not overwrite:  # a run that wrote nothing yet has nothing to lose
            raise InputError(
                f"{out}: holds another compare run ({_describe(previous)}); choose another --out, or pass "
                "--overwrite to replace its outputs (the cache is kept)"
            )
        if other or overwrite:
            for path in outputs:
                path.unlink(missing_ok=True)
    else:
        check_out_dir(out, overwrite, refusal=(
            f"--out exists, is not empty and is not an irstd compare folder (no {MARKER}); "
            "choose another folder or pass --overwrite"
        ))
    out.mkdir(parents=True, exist_ok=True)
    if not ours or run is not None and previous != run:
        io.write_json(
            marker,
            {"format": "irstd-compare", "cache_format": CACHE_FORMAT, "irstd_version": __version__,
             **({"run": run} if run is not None else {})},
        )
    return out


class _Cache:
    """Per-method, per-id cache files (see the module documentation)."""

    def __init__(self, folder: Path, key: Mapping[str, Any]) -> None:
        self.folder = folder
        self.key = dict(key)

    def open(self) -> None:
        """Create the folder and its ``key.json`` (the :func:`method_key` it stands for)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.is_file():
            io.write_json(key_file, self.key)

    def _paths(self, image_id: str) -> tuple[Path, Path, Path]:
        return (
            self.folder / f"{image_id}.npy",
            self.folder / f"{image_id}.png",
            self.folder / f"{image_id}.json",
        )

    def meta(self, image_id: str, image_sha256: str) -> dict | None:
        """The cached record of ``image_id`` when it is complete and of these image bytes."""
        npy, png, meta = self._paths(image_id)
        try:
            record = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        if record.get("image_sha256") != image_sha256 or not (npy.is_file() and png.is_file()):
            return None
        return record

    def load(self, image_id: str, record: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(scores in the method's dtype, own-rule mask)."""
        npy, png, _ = self._paths(image_id)
        try:
            scores = np.load(npy, allow_pickle=False).astype(record["dtype"])
        except Exception as exc:  # damaged cache file: named, one line
            raise InputError(f"{npy}: unreadable cache file ({exc}); rerun with --overwrite") from None
        mask = io.read_mask(png)
        shape = tuple(record["shape"])
        if scores.shape != shape or mask.shape != shape:
            raise InputError(f"{self.folder}: cache files of id {image_id!r} disagree in size; rerun with --overwrite")
        return scores, mask

    def output(self, image_id: str, image_sha256: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores, own-rule mask) of ``image_id``, which must be cached for these image bytes."""
        record = self.meta(image_id, image_sha256)
        if record is None:
            raise InputError(f"{self.folder}: no cached output for id {image_id!r}")
        return self.load(image_id, record)

    def store(self, image_id: str, scores: np.ndarray, mask: np.ndarray, seconds: float, image_sha256: str) -> dict:
        """Cache one id's output (scores, mask, seconds) for these image bytes; returns its record."""
        npy, png, meta = self._paths(image_id)
        scores = np.asarray(scores)
        stored = scores
        if scores.dtype == np.float64:
            narrow = scores.astype(np.float32)
            if np.array_equal(narrow.astype(np.float64), scores):
                stored = narrow  # exact: half the disk
        with io.atomic_write(npy) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, stored, allow_pickle=False)
        io.write_image(png, np.asarray(mask, dtype=bool))
        record = {
            "id": image_id,
            "seconds": float(seconds),
            "dtype": str(scores.dtype),
            "shape": list(scores.shape),
            "image_sha256": image_sha256,
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        io.write_json(meta, record)  # last: the id counts as cached from here on
        return record
