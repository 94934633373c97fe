"""Compare methods on a dataset split: the library behind ``irstd compare``.

:func:`compare` runs every method on every image of a split, caches each output under the run
folder, evaluates all methods with the one metrics engine (:class:`irstd.metrics.Evaluator`, the
method's own-rule mask passed as ``pred``) and returns a :class:`CompareResult`;
:func:`write_outputs` writes the table (``metrics.csv``, ``metrics.json``), the curves, the
figures and ``report.md``. Nothing here prints: progress goes through a callback.

The cache
---------
``<out>/cache/<method>-<key>/`` holds, per image id, ``<id>.npy`` (the score map, lossless: the
method's own float values, float32 when that is exact and float64 otherwise, restored to the
method's dtype on reading — so a cached evaluation is bit-identical to a fresh one),
``<id>.png`` (the own-rule mask, 0/255) and ``<id>.json`` (seconds, dtype, shape and the SHA-256
of the image file). The json is written last, atomically: an id counts as cached only when its
json exists, so a run killed mid-way resumes where it stopped. ``<key>`` is a hash of
:func:`method_key` (method name, score and mask rules, threshold, bit depth, SHA-256 of the
weights file, irstd version, SHA-256 of the method's source files, cache format): a changed method gets a new folder and is recomputed;
a changed image (other bytes under the same id) is recomputed too.
"""

from __future__ import annotations

import csv
import hashlib
import io as _stringio
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from irstd import __version__, io
from irstd.data import Dataset, check_split_choice, ids_hash, open_dataset
from irstd.errors import InputError
from irstd.evaluate import check_compat, fa_rule_text, jsonable, read_for_compat, resize_for_compat, resolution_rule
from irstd.provenance import versions
from irstd.methods import MethodOptions
from irstd.metrics import DEFAULT_SWEEP, MATCH_DISTANCE, PER_IMAGE_FIELDS, Evaluator

__all__ = [
    "CACHE_DIR",
    "CACHE_FORMAT",
    "MARKER",
    "OUTPUT_FILES",
    "SEED_FIELDS",
    "TABLE_FIELDS",
    "CompareResult",
    "MethodInfo",
    "MethodResult",
    "compare",
    "method_key",
    "parse_methods",
    "prepare_out",
    "seed_groups",
    "select_images",
    "latex_table",
    "table_rows",
    "write_outputs",
]

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
#: Columns of ``metrics.csv`` (one row per method), in order.
TABLE_FIELDS = (
    "method",
    "kind",
    "auc",
    "ap",
    "miou",
    "niou",
    "precision",
    "recall",
    "f1",
    "pd",
    "fa",
    "seconds_per_image",
    "seconds_per_200_images",
    "parameters",
    "images",
    "targets",
    "hits",
    "false_alarm_pixels",
    "score_rule",
    "mask_rule",
)
#: How many images the figures show when ``--images`` is not given.
DEFAULT_FIGURE_IMAGES = 3

Progress = Callable[[str, int, int, str, str], None]
"""``progress(method_label, done, total, image_id, status)``; status is ``"start"`` (done = 0),
``"cached"``, ``"computed"``, ``"skipped"`` or ``"evaluating"``."""


# --------------------------------------------------------------------------------------------
# methods and their cache keys
# --------------------------------------------------------------------------------------------


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """Method specs from ``--methods`` (``lcm,ipi,nram,cgrinet,cgrinet:FILE``), in order.

    Raises
    ------
    irstd.errors.InputError
        Empty list or a spec given twice.
    """
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    specs = [p.strip() for p in parts if p.strip()]
    if not specs:
        raise InputError("--methods: give at least one method (e.g. lcm,ipi,nram,cgrinet)")
    seen = set()
    for spec in specs:
        if spec in seen:
            raise InputError(f"--methods: {spec!r} is listed twice")
        seen.add(spec)
    return specs


def _code_hash(files: Sequence[Path]) -> str:
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
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _labels(specs: Sequence[str], names: Sequence[str]) -> list[str]:
    """Display names: the method's name (``lcm``, ``cgrinet``, ``cgrinet:<file stem>``), with
    parent folders of the weights file added while two labels clash."""
    labels = list(names)
    for depth in range(2, 8):
        if len(set(labels)) == len(labels):
            return labels
        for i, spec in enumerate(specs):
            name, sep, file = spec.partition(":")
            if sep and file and labels.count(labels[i]) > 1:
                parts = list(Path(file).with_suffix("").parts[-depth:])
                labels[i] = f"{name}:{'/'.join(parts)}"
    return labels if len(set(labels)) == len(labels) else list(specs)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._")[:60] or "method"


@dataclass
class MethodInfo:
    """One compared method: how it was asked for, its rules and its cache.

    Attributes
    ----------
    spec : str
        As given in ``--methods``.
    label : str
        Name in tables, legends and figures.
    name, kind, score_rule, mask_rule : str
        From :class:`irstd.methods.Method`.
    parameters : int or None
        Learnable parameters (None for classical methods).
    weights : str or None
        Weights file (``cgrinet:FILE``).
    key : dict
        :func:`method_key`.
    cache : Path
        The method's cache folder.
    """

    spec: str
    label: str
    name: str
    kind: str
    score_rule: str
    mask_rule: str
    parameters: int | None
    weights: str | None
    key: dict[str, Any]
    cache: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "label": self.label,
            "name": self.name,
            "kind": self.kind,
            "score_rule": self.score_rule,
            "mask_rule": self.mask_rule,
            "parameters": self.parameters,
            "weights": self.weights,
            "cache_key": self.key,
            "cache": str(self.cache),
        }


# --------------------------------------------------------------------------------------------
# the run folder and the cache
# --------------------------------------------------------------------------------------------


def prepare_out(out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Create or reuse a compare run folder (checked before any work).

    A folder with ``compare.json`` is ours: it is reused with its cache (``overwrite`` clears the
    cache and the outputs first). Another non-empty folder is refused unless ``overwrite`` (then
    our files are written into it; nothing else there is touched).

    Raises
    ------
    irstd.errors.InputError
        ``out`` is a file, or a non-empty folder that is not a compare folder (without
        ``overwrite``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    ours = (out / MARKER).is_file()
    if ours and overwrite:
        shutil.rmtree(out / CACHE_DIR, ignore_errors=True)
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
    elif not ours and out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(
            f"{out}: --out exists, is not empty and is not an irstd compare folder (no {MARKER}); "
            "choose another folder or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    if not ours or overwrite:
        io.write_json(
            out / MARKER,
            {"format": "irstd-compare", "cache_format": CACHE_FORMAT, "irstd_version": __version__},
        )
    return out


class _Cache:
    """Per-method, per-id cache files (see the module documentation)."""

    def __init__(self, folder: Path, key: Mapping[str, Any]) -> None:
        self.folder = folder
        self.key = dict(key)

    def open(self) -> None:
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

    def store(self, image_id: str, scores: np.ndarray, mask: np.ndarray, seconds: float, image_sha256: str) -> dict:
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


# --------------------------------------------------------------------------------------------
# running the methods
# --------------------------------------------------------------------------------------------

def _check_output(scores, mask, shape, where: str) -> None:
    if np.shape(scores) != tuple(shape) or np.shape(mask) != tuple(shape):
        raise InputError(
            f"{where}: output is {np.shape(scores)} / mask {np.shape(mask)}, image is {tuple(shape)}"
        )


@dataclass
class MethodResult:
    """One method's evaluation.

    Attributes
    ----------
    info : MethodInfo
    evaluator : Evaluator
        Over the evaluated ids (own-rule masks for IoU/Pd/Fa/F1, scores for the curves).
    seconds : dict of str to float
        Method wall time per evaluated id (from the cache when it was not recomputed).
    computed, cached : list of str
        Ids computed in this run / read from the cache.
    """

    info: MethodInfo
    evaluator: Evaluator
    seconds: dict[str, float] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.info.label

    def seconds_per_image(self) -> float:
        return float(np.mean(list(self.seconds.values()))) if self.seconds else float("nan")


@dataclass
class CompareResult:
    """What :func:`compare` returns.

    Attributes
    ----------
    dataset : Dataset
    split, split_file : str or None
    ids : list of str
        The split's ids, in order.
    evaluated : list of str
        The ids every method was evaluated on (``ids`` minus ``skipped``).
    methods : list of MethodResult
    skipped : list of (str, str)
        ``(id, one-line reason)``; an id that failed for any method is left out for all, so that
        every row of the table covers the same images.
    out : Path
    protocol : dict
    """

    dataset: Dataset
    split: str | None
    split_file: str | None
    ids: list[str]
    evaluated: list[str]
    methods: list[MethodResult]
    skipped: list[tuple[str, str]]
    out: Path
    protocol: dict[str, Any]

    def method(self, label: str) -> MethodResult:
        for m in self.methods:
            if m.label == label:
                return m
        raise KeyError(label)


def _build_methods(specs, out: Path, options: MethodOptions, compat=None):
    from irstd.methods import CLASSICAL, get_method

    # --tta concerns CgriNet only: the classical methods of the same run go without it
    methods = [get_method(s, options, **({"tta": "none"} if s.strip().lower() in CLASSICAL else {})) for s in specs]
    labels = _labels(specs, [m.name for m in methods])
    infos = []
    for spec, label, method in zip(specs, labels, methods):
        key = method_key(spec, method, compat=compat)
        weights = method.weights_file
        infos.append(
            MethodInfo(
                spec=spec,
                label=label,
                name=method.name,
                kind=method.kind,
                score_rule=method.score_rule,
                mask_rule=method.mask_rule,
                parameters=method.parameters,
                weights=None if weights is None else str(weights),
                key=key,
                cache=out / CACHE_DIR / f"{_slug(key['method'])}-{_key_hash(key)[:16]}",
            )
        )
    return infos, methods


def _fail(skip_errors: bool, failed: dict, image_id: str, exc: BaseException) -> None:
    if not skip_errors:
        raise exc
    message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    failed.setdefault(image_id, " ".join(message.split()))


def compare(
    dataset: str | os.PathLike | Dataset,
    methods: str | Sequence[str],
    out: str | os.PathLike,
    *,
    split: str | None = None,
    split_file: str | os.PathLike | None = None,
    options: MethodOptions | None = None,
    compat: str | None = None,
    workers: int = 1,
    skip_errors: bool = False,
    overwrite: bool = False,
    sweep=DEFAULT_SWEEP,
    progress: Progress | None = None,
) -> CompareResult:
    """Run, cache and evaluate several methods on one dataset split.

    Parameters
    ----------
    dataset : path-like or Dataset
    methods : str or sequence of str
        Method specs (``lcm``, ``ipi``, ``nram``, ``cgrinet``, ``cgrinet:FILE``), see
        :func:`irstd.methods.get_method`.
    out : path-like
        Run folder (see :func:`prepare_out`); its cache is reused.
    split, split_file : optional
        Which ids (:meth:`Dataset.ids`); one of them is required.
    options : MethodOptions, optional
        Options of every method (:class:`irstd.methods.MethodOptions`), all part of the cache
        key but the device: ``threshold`` replaces every method's own mask rule by ``score >
        threshold`` (the fixed-threshold protocol; by default each method uses its own rule);
        ``tta`` applies to the CgriNet methods only (the classical ones run once); ``gray`` is
        how colour images become grey.
    compat : str, optional
        Another code base's protocol (:data:`irstd.evaluate.COMPAT`), only to compare with its
        tables: every method runs on the image resized to its evaluation size, masks are resized
        by nearest neighbour, Fa follows that code; part of the cache key.
    workers : int, optional
        Processes for classical methods (networks run in this process).
    skip_errors : bool, optional
        Record a failing id in ``skipped`` and go on; otherwise the first failure raises (the
        outputs cached so far stay).
    overwrite : bool, optional
        Clear the cache and outputs of an existing compare folder first.
    sweep : sequence of float or None, optional
        Thresholds of the Pd–Fa curve on the scores.
    progress : callable, optional
        See :data:`Progress`.

    Returns
    -------
    CompareResult

    Raises
    ------
    irstd.errors.InputError
        Unusable options, dataset or out folder; the first failing image unless
        ``skip_errors``; no image left to evaluate.
    """
    check_split_choice(split, split_file)
    if workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    options = options or MethodOptions()
    size, fa_rule = check_compat(compat)
    specs = parse_methods(methods)
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    ids = ds.ids(split=split, split_file=split_file)
    if not ids:
        raise InputError(f"{split_file or split}: the split lists no ids")
    out = prepare_out(out, overwrite=overwrite)
    infos, method_objs = _build_methods(specs, out, options, compat=compat)
    report = progress if progress is not None else (lambda *a: None)

    # Before any work: which image bytes each id stands for (part of each cached record), and a
    # readable mask of the image's size (from the image header; pixels are decoded later).
    failed: dict[str, str] = {}
    digests: dict[str, str] = {}
    for image_id in ids:
        try:
            image_path = ds.image_path(image_id)
            digests[image_id] = io.sha256_file(image_path)
            info = io.image_info(image_path)
            gt = ds.read_mask(image_id)
            if size is None and gt.shape != (info["height"], info["width"]):  # compat: both are resized
                raise InputError(
                    f"{ds.mask_path(image_id)}: mask is {gt.shape[1]}x{gt.shape[0]} (WxH) but the image "
                    f"{image_path.name} is {info['width']}x{info['height']}"
                )
        except InputError as exc:
            _fail(skip_errors, failed, image_id, exc)

    results = []
    for info, method in zip(infos, method_objs):
        cache = _Cache(info.cache, info.key)
        cache.open()
        result = MethodResult(info=info, evaluator=Evaluator(
            sweep=sweep, fa_rule=fa_rule))
        results.append(result)
        todo, done = [], 0
        report(info.label, 0, len(ids), "", "start")
        for image_id in ids:
            if image_id in failed:
                done += 1
                report(info.label, done, len(ids), image_id, "skipped")
                continue
            record = cache.meta(image_id, digests[image_id])
            if record is not None:
                result.seconds[image_id] = float(record["seconds"])
                result.cached.append(image_id)
                done += 1
                report(info.label, done, len(ids), image_id, "cached")
            else:
                todo.append(image_id)

        def finish(image_id, scores, mask, seconds, shape):
            nonlocal done
            _check_output(scores, mask, shape, f"{info.label} on {ds.image_path(image_id)}")
            cache.store(image_id, scores, mask, seconds, digests[image_id])
            result.seconds[image_id] = float(seconds)
            result.computed.append(image_id)
            done += 1
            report(info.label, done, len(ids), image_id, "computed")

        def failure(image_id, exc):
            nonlocal done
            _fail(skip_errors, failed, image_id, exc)
            done += 1
            report(info.label, done, len(ids), image_id, "skipped")

        from irstd.methods import run_method

        paths = [str(ds.image_path(i)) for i in todo]
        if size is not None:  # read and resized here; the method gets the arrays
            paths = (read_for_compat(p, size, options.gray) for p in paths)
        for image_id, output in zip(todo, run_method(method, paths, workers, skip_errors=skip_errors)):
            if isinstance(output, InputError):
                failure(image_id, output)
            else:
                finish(image_id, output.scores, output.mask, output.seconds, np.shape(output.scores))

    evaluated = [i for i in ids if i not in failed]
    # Every method on the same ids: one pass over the masks, all methods per id.
    for k, image_id in enumerate(evaluated, start=1):
        try:
            gt = ds.read_mask(image_id)
            if size is not None:
                gt = resize_for_compat(gt, size, mask=True)
            maps = []
            for r in results:
                record = _Cache(r.info.cache, r.info.key).meta(image_id, digests[image_id])
                if record is None:  # pragma: no cover - just written
                    raise InputError(f"{r.info.cache}: cache record of id {image_id!r} vanished")
                scores, mask = _Cache(r.info.cache, r.info.key).load(image_id, record)
                if scores.shape != gt.shape:
                    raise InputError(
                        f"{ds.mask_path(image_id)}: mask is {gt.shape[1]}x{gt.shape[0]} (WxH) but the "
                        f"image is {scores.shape[1]}x{scores.shape[0]}"
                    )
                maps.append((scores, mask))
            for r, (scores, mask) in zip(results, maps):
                r.evaluator.update(scores, gt, image_id=image_id, pred=mask)
        except InputError as exc:
            _fail(skip_errors, failed, image_id, exc)
        for r in results:
            report(r.info.label, k, len(evaluated), image_id, "evaluating")
    evaluated = [i for i in ids if i not in failed]
    for r in results:
        r.seconds = {i: r.seconds[i] for i in evaluated if i in r.seconds}
    if not evaluated:
        raise InputError(f"{ds.root}: no image could be evaluated ({len(failed)} skipped)")
    skipped = [(i, failed[i]) for i in ids if i in failed]
    proto = _protocol(ds, split, split_file, ids, evaluated, options, sweep, compat)
    return CompareResult(
        dataset=ds,
        split=split if split_file is None else None,
        split_file=None if split_file is None else str(split_file),
        ids=ids,
        evaluated=evaluated,
        methods=results,
        skipped=skipped,
        out=out,
        protocol=proto,
    )


# --------------------------------------------------------------------------------------------
# table, protocol, figures, report
# --------------------------------------------------------------------------------------------


def _protocol(ds, split, split_file, ids, evaluated, options, sweep, compat) -> dict[str, Any]:
    threshold = options.threshold
    return {
        "dataset": str(ds.root),
        "split": split if split_file is None else None,
        "split_file": None if split_file is None else str(split_file),
        "ids": len(ids),
        "ids_sha256": ids_hash(ids),
        "evaluated": len(evaluated),
        "evaluated_sha256": ids_hash(evaluated),
        "threshold": threshold,
        "mask_protocol": (
            "own rule per method" if threshold is None else f"score > {threshold:g} for every method"
        ),
        "score_protocol": (
            "Classical maps are min-max normalised for curves and thresholded by their own rule for "
            "masks; CgriNet scores are its probabilities. IoU, nIoU, precision, recall, F1, Pd and Fa "
            "come from each method's mask; AUC, AP and the curves from its scores."
        ),
        "bit_depth": options.bit_depth,
        "input_range": options.input_range,
        "gray": options.gray,
        "compat": compat,
        "resolution": resolution_rule(compat),
        "matching": (
            f"8-connected components; unweighted centroids; Euclidean centroid distance < "
            f"{MATCH_DISTANCE:g} px; greedy first-found in label order, each component used once"
        ),
        "fa_rule": fa_rule_text(compat),
        "miou_rule": "dataset-accumulated intersection / (union + eps), eps = np.spacing(1)",
        "curves": "pixel ROC/PR over 65536 score levels k/65535",
        "pd_fa_sweep": None if sweep is None else [float(sweep[0]), float(sweep[-1]), int(len(sweep))],
        "time_rule": (
            "method wall time per image (file reading excluded), mean over the evaluated images, "
            "as measured when the output was computed (cached times are reused; with several worker "
            "processes the workers share the CPU); per 200 images = 200 x mean"
        ),
        "versions": versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def table_rows(result: CompareResult) -> list[dict[str, Any]]:
    """One row per method with :data:`TABLE_FIELDS` (plain fractions; Fa per pixel)."""
    rows = []
    for r in result.methods:
        s = r.evaluator.summary()
        per_image = r.seconds_per_image()
        rows.append(
            {
                "method": r.label,
                "kind": r.info.kind,
                "auc": s["auc"],
                "ap": s["ap"],
                "miou": s["miou"],
                "niou": s["niou"],
                "precision": s["precision"],
                "recall": s["recall"],
                "f1": s["f1"],
                "pd": s["pd"],
                "fa": s["fa"],
                "seconds_per_image": per_image,
                "seconds_per_200_images": 200.0 * per_image,
                "parameters": r.info.parameters,
                "images": s["images"],
                "targets": s["targets"],
                "hits": s["hits"],
                "false_alarm_pixels": s["false_alarm_pixels"],
                "score_rule": r.info.score_rule,
                "mask_rule": r.info.mask_rule,
                "best_threshold": r.evaluator.best_threshold(),
            }
        )
    return rows


#: Training options that change how a run is executed, not what it learns: weights whose configs
#: differ only in these and in the seed are repeats of one experiment.
_EXECUTION_OPTIONS = ("seed", "out", "resume", "workers", "device", "amp", "skip_errors")

#: The metrics averaged over the repeats of a :func:`seed_groups` group.
SEED_FIELDS = ("auc", "ap", "miou", "niou", "precision", "recall", "f1", "pd", "fa")


def seed_groups(result: CompareResult, rows: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Methods that repeat one training run with other seeds, with the mean and spread of their metrics.

    Two CgriNet weight files (written by ``irstd train``) belong together when the ``config`` in
    their metadata is the same but for the seed and the options of :data:`_EXECUTION_OPTIONS`,
    and they are the same checkpoint (``best`` or ``last``). A group needs two or more different
    seeds; one that lists a seed twice is left out (not a set of repeats).

    Parameters
    ----------
    result : CompareResult
    rows : sequence of dict, optional
        :func:`table_rows` of ``result`` (computed when not given).

    Returns
    -------
    list of dict
        One per group, in table order: ``label`` (``<model> × <n> seeds``), ``methods`` (their
        labels), ``seeds``, ``n``, ``mean`` and ``std`` (sample standard deviation, n − 1) of
        each :data:`SEED_FIELDS` metric.
    """
    from irstd.model_file import read_weights_metadata

    rows = table_rows(result) if rows is None else rows
    groups: dict[str, list] = {}
    for r, row in zip(result.methods, rows):
        if r.info.weights is None:
            continue
        meta = read_weights_metadata(r.info.weights)
        try:
            config = json.loads(meta["config"])
        except (KeyError, ValueError):
            continue  # not written by irstd train
        if not isinstance(config, dict) or "seed" not in config:
            continue
        what = {k: v for k, v in config.items() if k not in _EXECUTION_OPTIONS}
        what["checkpoint"] = meta.get("checkpoint")
        groups.setdefault(json.dumps(what, sort_keys=True), []).append((config["seed"], row, meta))
    out = []
    for members in groups.values():
        seeds = [seed for seed, _, _ in members]
        if len(members) < 2 or len(set(seeds)) != len(seeds):
            continue
        values = {f: np.array([float(row[f]) for _, row, _ in members]) for f in SEED_FIELDS}
        model = members[0][2].get("variant") or members[0][2].get("model") or "cgrinet"
        out.append({
            "label": f"{model} × {len(members)} seeds",
            "methods": [row["method"] for _, row, _ in members],
            "seeds": seeds,
            "n": len(members),
            "mean": {f: float(v.mean()) for f, v in values.items()},
            "std": {f: float(v.std(ddof=1)) for f, v in values.items()},
        })
    return out


def _csv(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> str:
    buf = _stringio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: ("" if row.get(k) is None else (repr(float(row[k])) if isinstance(row[k], float) else row[k]))
                for k in fields
            }
        )
    return buf.getvalue()


def select_images(result: CompareResult, count: int = DEFAULT_FIGURE_IMAGES) -> list[tuple[str, str]]:
    """The default pick of hard cases for the figures: ``(id, why)`` pairs.

    In turn, without repeating an id: the image where the methods disagree most (largest
    spread max − min of per-image IoU across methods), the image with the lowest mean per-image
    IoU, and the image with the smallest target (fewest ground-truth pixels per target); then
    again by lowest mean IoU until ``count`` images. Ties go to the earlier id of the split.
    """
    rows = {r.label: {row["id"]: row for row in r.evaluator.per_image} for r in result.methods}
    ids = [i for i in result.evaluated if all(i in v for v in rows.values())]
    if not ids:
        return []
    order = {i: k for k, i in enumerate(ids)}
    ious = {i: [v[i]["iou"] for v in rows.values()] for i in ids}
    first = next(iter(rows.values()))
    spread = {i: max(ious[i]) - min(ious[i]) for i in ids}
    mean = {i: float(np.mean(ious[i])) for i in ids}
    size = {i: first[i]["gt_pixels"] / max(first[i]["targets"], 1) if first[i]["targets"] else math.inf for i in ids}
    rules = [
        ("methods disagree most (IoU spread {v:.2f})", lambda i: (-spread[i], order[i]), spread),
        ("lowest mean IoU ({v:.2f})", lambda i: (mean[i], order[i]), mean),
        ("smallest targets ({v:.0f} px per target)", lambda i: (size[i], order[i]), size),
    ]
    chosen: list[tuple[str, str]] = []
    taken = set()
    k = 0
    while len(chosen) < min(count, len(ids)):
        why, key, values = rules[k] if k < len(rules) else rules[1]
        k += 1
        if len(result.methods) < 2 and why.startswith("methods disagree"):
            continue
        for i in sorted(ids, key=key):
            if i not in taken:
                chosen.append((i, why.format(v=values[i])))
                taken.add(i)
                break
    return chosen


def _figure_rows(result: CompareResult, images: Sequence[str]):
    rows = []
    for image_id in images:
        image = result.dataset.read_image(image_id, gray=result.protocol.get("gray", "auto"))
        gt = result.dataset.read_mask(image_id)
        size, _ = check_compat(result.protocol.get("compat"))
        if size is not None:  # the maps are at the protocol's size
            image = resize_for_compat(image, size)
            gt = resize_for_compat(gt, size, mask=True)
        digest = io.sha256_file(result.dataset.image_path(image_id))
        outputs = {}
        for r in result.methods:
            cache = _Cache(r.info.cache, r.info.key)
            record = cache.meta(image_id, digest)
            if record is None:
                raise InputError(f"{r.info.cache}: no cached output for id {image_id!r}")
            outputs[r.label] = cache.load(image_id, record)
        rows.append((image_id, image, gt, outputs))
    return rows


def write_outputs(
    result: CompareResult,
    *,
    images: Sequence[str] | None = None,
    command: str | None = None,
) -> list[Path]:
    """Write the table, curves, figures and ``report.md`` into ``result.out``.

    Parameters
    ----------
    result : CompareResult
    images : sequence of str, optional
        Ids shown in ``surfaces.png`` and ``qualitative.png`` (default: :func:`select_images`).
    command : str, optional
        The command line, quoted in the report.

    Returns
    -------
    list of Path
        Files written (atomically), in :data:`OUTPUT_FILES` order.
    """
    from irstd.figures import plot_qualitative, plot_surfaces
    from irstd.metrics.plots import plot_pd_fa, plot_pr, plot_roc

    out = result.out
    if images:
        unknown = [i for i in images if i not in result.evaluated]
        if unknown:
            raise InputError(
                f"--images: {', '.join(map(repr, unknown))} not among the evaluated ids of the split"
            )
        picks = [(i, "chosen with --images") for i in images]
    else:
        picks = select_images(result)
    rows = table_rows(result)
    groups = seed_groups(result, rows)
    document = {
        "protocol": result.protocol,
        "command": command,
        "methods": [
            dict(row, **{"info": r.info.as_dict(), "computed": len(r.computed), "cached": len(r.cached)})
            for row, r in zip(rows, result.methods)
        ],
        "seed_groups": groups,
        "figure_images": [{"id": i, "why": why} for i, why in picks],
        "skipped": [{"id": i, "error": e} for i, e in result.skipped],
        "pd_fa_curves": {
            r.label: {"thresholds": c.thresholds, "pd": c.pd, "fa": c.fa}
            for r in result.methods
            if r.evaluator.sweep is not None
            for c in [r.evaluator.pd_fa_curve()]
        },
    }
    per_image = [dict(row, method=r.label) for r in result.methods for row in r.evaluator.per_image]
    written = [
        io.write_text(out / "metrics.csv", _csv(rows, TABLE_FIELDS)),
        io.write_text(out / "metrics.tex", latex_table(rows)),
        io.write_json(out / "metrics.json", jsonable(document)),
        io.write_text(out / "per_image.csv", _csv(per_image, ("method", *PER_IMAGE_FIELDS))),
        plot_roc({r.label: r.evaluator.roc() for r in result.methods}, out / "roc.png"),
        plot_pr({r.label: r.evaluator.pr() for r in result.methods}, out / "pr.png"),
    ]
    if all(r.evaluator.sweep is not None for r in result.methods):
        written.append(plot_pd_fa({r.label: r.evaluator.pd_fa_curve() for r in result.methods}, out / "pd_fa.png"))
    figure_rows = _figure_rows(result, [i for i, _ in picks])
    if figure_rows:
        written.append(
            plot_surfaces(
                [(i, image, {m: s for m, (s, _) in o.items()}) for i, image, _, o in figure_rows],
                out / "surfaces.png",
            )
        )
        written.append(
            plot_qualitative(
                [(i, image, gt, {m: k for m, (_, k) in o.items()}) for i, image, gt, o in figure_rows],
                out / "qualitative.png",
            )
        )
    written.append(io.write_text(out / "report.md", _report_md(result, rows, picks, command, written, groups)))
    return written


def _fmt(value, scale=1.0, digits=2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value * scale:.{digits}f}"


def _params(n) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.3f} M" if n >= 1e5 else f"{n:,}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The paper-style table (Tables I–II) in Markdown."""
    head = (
        "| method | AUC | IoU (%) | nIoU (%) | F1 (%) | Pd (%) | Fa (×10⁻⁶) | s / image | s / 200 images | parameters |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['method']} | {_fmt(r['auc'], 1, 4)} | {_fmt(r['miou'], 100)} | {_fmt(r['niou'], 100)} | "
        f"{_fmt(r['f1'], 100)} | {_fmt(r['pd'], 100)} | {_fmt(r['fa'], 1e6)} | "
        f"{_fmt(r['seconds_per_image'], 1, 3)} | {_fmt(r['seconds_per_200_images'], 1, 1)} | {_params(r['parameters'])} |\n"
        for r in rows
    )
    return head + body


def _best_threshold_md(rows) -> list[str]:
    """The best-threshold table of ``report.md`` (no lines without a Pd–Fa sweep)."""
    best = [(r["method"], r["best_threshold"]) for r in rows if r.get("best_threshold")]
    if not best:
        return []
    lines = [
        "## At each method's best threshold (optimistic)",
        "",
        "Dai et al.'s protocol for classical methods, for comparison with papers that report it: "
        "scores (min–max maps, probabilities) > τ, τ the sweep threshold with the highest IoU on "
        "these very images — chosen on the test data, so an upper bound, not a deployable setting.",
        "",
        "| method | τ | IoU (%) | nIoU (%) | F1 (%) | Pd (%) | Fa (×10⁻⁶) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m} | {b['threshold']:.2f} | {_fmt(b['miou'], 100)} | {_fmt(b['niou'], 100)} | {_fmt(b['f1'], 100)} | "
        f"{_fmt(b['pd'], 100)} | {_fmt(b['fa'], 1e6)} |"
        for m, b in best
    ]
    return lines + [""]


def _tex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(c, c) for c in text)


def latex_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The paper-style table as a LaTeX ``tabular`` (booktabs rules), best value per column in bold.

    Columns as :func:`markdown_table` without the per-200-images time; the best value is the
    highest AUC, IoU, nIoU, F1 and Pd and the lowest Fa (ties all bold).
    """
    columns = (("auc", 1, 4, max), ("miou", 100, 2, max), ("niou", 100, 2, max), ("f1", 100, 2, max),
               ("pd", 100, 2, max), ("fa", 1e6, 2, min))
    best = {}
    for key, scale, digits, pick in columns:
        values = [round(r[key] * scale, digits) for r in rows
                  if isinstance(r[key], float | int) and math.isfinite(r[key])]
        best[key] = pick(values) if values else None
    lines = [
        "% irstd compare: AUC = pixel ROC area; IoU dataset-accumulated, nIoU per-image mean (%); F1 pixel level (%);",
        "% Pd = detected / targets (%); Fa = unmatched predicted pixels / all pixels (x 10^-6). Needs \\usepackage{booktabs}.",
        r"\begin{tabular}{lrrrrrrrr}",
        r"\toprule",
        r"Method & AUC & IoU (\%) & nIoU (\%) & F1 (\%) & $P_d$ (\%) & $F_a$ ($10^{-6}$) & s / image & Params \\",
        r"\midrule",
    ]
    for r in rows:
        cells = [_tex(str(r["method"]))]
        for key, scale, digits, _ in columns:
            text = _fmt(r[key], scale, digits)
            if text != "n/a" and round(r[key] * scale, digits) == best[key]:
                text = rf"\textbf{{{text}}}"
            cells.append(text)
        cells += [_fmt(r["seconds_per_image"], 1, 3), "--" if r["parameters"] is None else _params(r["parameters"])]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _seed_groups_md(groups) -> list[str]:
    """The mean ± std table of ``report.md`` (no lines without groups)."""
    if not groups:
        return []
    lines = [
        "## Repeats with other seeds (mean ± std)",
        "",
        "Weights from the same training configuration but for the seed (and how the run was executed), "
        "same checkpoint kind; std = sample standard deviation (n − 1).",
        "",
        "| group | seeds | AUC | IoU (%) | nIoU (%) | F1 (%) | Pd (%) | Fa (×10⁻⁶) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in groups:
        cells = [f"{_fmt(g['mean'][f], s, d)} ± {_fmt(g['std'][f], s, d)}"
                 for f, s, d in (("auc", 1, 4), ("miou", 100, 2), ("niou", 100, 2), ("f1", 100, 2), ("pd", 100, 2),
                                 ("fa", 1e6, 2))]
        lines.append(f"| {g['label']} ({', '.join(g['methods'])}) | {', '.join(map(str, g['seeds']))} | "
                     + " | ".join(cells) + " |")
    return [*lines, ""]


def _report_md(result: CompareResult, rows, picks, command, written, groups=()) -> str:
    p = result.protocol
    names = {w.name for w in written}
    where = f"split `{result.split}`" if result.split else f"split file `{result.split_file}`"
    lines = [
        "# irstd compare",
        "",
        f"- Command: `{command}`" if command else "- Command: (library call)",
        f"- Dataset: `{p['dataset']}`, {where}: {p['ids']} ids (SHA-256 of the id list `{p['ids_sha256'][:16]}…`), "
        f"{p['evaluated']} evaluated, {len(result.skipped)} skipped",
        f"- Masks: {p['mask_protocol']}; threshold option: {'none' if p['threshold'] is None else p['threshold']}"
        + ("" if p["bit_depth"] is None else f"; bit depth {p['bit_depth']}")
        + ("" if p.get("input_range") is None else f"; input range {p['input_range']}"),
        f"- Resolution: {p['resolution']}",
        f"- Date: {p['date']}; versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items() if v),
        "",
        "## Results",
        "",
        markdown_table(rows),
        f"Images: {rows[0]['images']}, targets: {rows[0]['targets']}. AUC = area under the pixel ROC of the "
        "scores; IoU = dataset-accumulated, nIoU = mean per image; F1 = pixel level; Pd = targets "
        f"detected / targets; Fa = {p['fa_rule']}. "
        f"Time: {p['time_rule']}.",
        "",
        *_seed_groups_md(groups),
        *_best_threshold_md(rows),
        "## Rules per method",
        "",
        p["score_protocol"] + " The table states which rule each row used:",
        "",
        "| method | kind | score rule (curves) | mask rule (IoU, F1, Pd, Fa) | weights |",
        "|---|---|---|---|---|",
    ]
    for r in result.methods:
        sha = r.info.key.get("weights_sha256")
        weights = f"`{r.info.weights}` (SHA-256 `{sha[:16]}…`)" if r.info.weights and sha else "–"
        lines.append(f"| {r.label} | {r.info.kind} | {r.info.score_rule} | {r.info.mask_rule} | {weights} |")
    lines += [
        "",
        f"Target matching: {p['matching']}. Fa: {p['fa_rule']}. Curves: {p['curves']}.",
        "",
        "## Figures",
        "",
    ]
    if "roc.png" in names:
        lines += ["Pixel-level ROC (AUC in the legend) and precision–recall (AP in the legend):", "",
                  "![ROC](roc.png) ![PR](pr.png)", ""]
    if "pd_fa.png" in names:
        lines += ["Target-level Pd–Fa, thresholds 0 to 1 on the scores:", "", "![Pd-Fa](pd_fa.png)", ""]
    if picks:
        lines += ["Images shown in the two figures below:", ""]
        lines += [f"- `{i}`: {why}" for i, why in picks]
        lines += [
            "",
            "3-D grey-level surfaces of the input (min–max scaled) and of each method's scores "
            "(min–max maps of classical methods, probabilities of networks; block maximum down to "
            "at most 64 × 64 samples so that small peaks survive):",
            "",
            "![surfaces](surfaces.png)",
            "",
            "Qualitative results: input, ground truth, each method's mask; green = predicted "
            "components matched to a target, orange = false-alarm components, red circle = missed "
            "target (same matching as Pd/Fa):",
            "",
            "![qualitative](qualitative.png)",
            "",
        ]
    lines += ["## Skipped images", ""]
    if result.skipped:
        lines += [f"- `{i}`: {e}" for i, e in result.skipped]
    else:
        lines.append("None.")
    lines += [
        "",
        "## Files",
        "",
        "`metrics.csv`, `metrics.tex` (the table as a LaTeX tabular, booktabs), `metrics.json` (table, "
        "protocol, Pd–Fa curves), `per_image.csv` (per method "
        "and image), the figures above; `cache/` holds every method's scores (`.npy`, lossless), "
        "masks (`.png`) and times per image, reused by a rerun.",
        "",
    ]
    return "\n".join(lines)
