"""The :func:`compare` run: build the methods, run them over the split's ids through the cache,
evaluate them all with the one metrics engine.

Each method runs on every image of the split; its outputs go to its cache folder
(:mod:`irstd.compare.cache`), from which every method is then evaluated on the same ids
(:class:`irstd.metrics.Evaluator`, the method's own-rule mask passed as ``pred``). Nothing here
prints: progress goes through a callback (:data:`Progress`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from irstd import io
from irstd import protocol as protocol_rules
from irstd.compare.cache import CACHE_DIR, _Cache, _key_hash, method_key, prepare_out, run_identity
from irstd.compare.saved import SavedMethod, is_saved_spec, saved_method
from irstd.data import Dataset, check_split_choice, ids_hash, open_dataset
from irstd.errors import InputError
from irstd.methods import MethodOptions
from irstd.metrics import DEFAULT_SWEEP, Evaluator
from irstd.protocol import check_compat, read_for_compat, resize_for_compat
from irstd.provenance import versions

__all__ = ["CompareResult", "MethodInfo", "MethodResult", "Progress", "compare", "parse_labels", "parse_methods"]

Progress = Callable[[str, int, int, str, str], None]
"""``progress(method_label, done, total, image_id, status)``; status is ``"start"`` (done = 0),
``"cached"``, ``"computed"``, ``"skipped"`` or ``"evaluating"``."""



def parse_methods(text: str | Sequence[str]) -> list[str]:
    """Method specs from ``--methods`` (``lcm,ipi,nram,cgrinet,cgrinet:FILE,mine=DIR``), in order.

    Raises
    ------
    irstd.errors.InputError
        Empty list, a spec given twice, or two saved methods of one name.
    """
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    specs = [p.strip() for p in parts if p.strip()]
    if not specs:
        raise InputError("--methods: give at least one method (e.g. lcm,ipi,nram,cgrinet)")
    seen = set()
    for spec in specs:
        key = spec.partition("=")[0].strip() if is_saved_spec(spec) else spec
        if key in seen:
            raise InputError(f"--methods: {key!r} is listed twice")
        seen.add(key)
    return specs


def parse_labels(items: Sequence[str] | None) -> dict[str, str]:
    """``--label KEY=TEXT`` items as ``{KEY: TEXT}`` (KEY: a method's label or spec, e.g.
    ``mine`` or ``lcm``; TEXT: its name in tables, legends and figures)."""
    labels: dict[str, str] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip().strip('"').strip("'")
        if not sep or not key or not text:
            raise InputError(f"--label {item}: expected METHOD=TEXT (e.g. mine=Ours)")
        labels[key] = text
    return labels


def _default_display(spec: str, method) -> str:
    """The name papers print for a method: ``LCM``, ``Top-Hat``, ``CgriNet``, ``ACM``; a weights
    file adds its stem (``CgriNet (best)``); a saved method keeps its name."""
    if isinstance(method, SavedMethod):
        return method.name
    if method.kind == "plugin":
        return str(getattr(method.fn, "display", method.name))
    if method.kind == "classical":
        from irstd.baselines import METHODS

        base = METHODS.get(method.name)
        return base.display if base is not None and base.display else method.name.upper()
    from irstd.models.registry import family_display

    family, sep, stem = method.name.partition(":")
    display = family_display(family)
    return f"{display} ({stem})" if sep else display


def _displays(specs, labels, methods, chosen: Mapping[str, str]) -> list[str]:
    """Display names: ``--label`` choices, else :func:`_default_display`; a clash adds the label."""
    out = []
    for spec, label, method in zip(specs, labels, methods):
        out.append(chosen.get(label) or chosen.get(spec) or _default_display(spec, method))
    return [d if out.count(d) == 1 else f"{d} [{label}]" for d, label in zip(out, labels)]



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
        The method's identifier in the run's files (``lcm``, ``cgrinet:best``, ``mine``).
    display : str
        Its name in tables, legends and figures (``LCM``, ``CgriNet (best)``, ``--label``).
    name, kind, score_rule, mask_rule : str
        From :class:`irstd.methods.Method`.
    parameters : int or None
        Learnable parameters (None for classical methods).
    weights : str or None
        Weights file (``cgrinet:FILE``).
    key : dict
        :func:`method_key`.
    cache : Path or None
        The method's cache folder (None for saved maps: their files are read directly).
    saved : SavedMethod, optional
        The saved maps of a ``NAME=DIR`` method.
    """

    spec: str
    label: str
    display: str
    name: str
    kind: str
    score_rule: str
    mask_rule: str
    parameters: int | None
    weights: str | None
    key: dict[str, Any]
    cache: Path | None
    saved: SavedMethod | None = None

    def output(self, image_id: str, digest: str) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, mask)`` of ``image_id``: from the cache, or from the saved maps' folder."""
        if self.saved is not None:
            return self.saved.output(image_id)
        return _Cache(self.cache, self.key).output(image_id, digest)

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "label": self.label,
            "display": self.display,
            "name": self.name,
            "kind": self.kind,
            "score_rule": self.score_rule,
            "mask_rule": self.mask_rule,
            "parameters": self.parameters,
            "weights": self.weights,
            "cache_key": self.key,
            "cache": None if self.cache is None else str(self.cache),
        }



def _check_output(scores, mask, shape, where: str) -> None:
    """Raise :class:`InputError` (named by ``where``) unless scores and mask have ``shape``."""
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

    @property
    def display(self) -> str:
        return self.info.display

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


def _build_methods(specs, out: Path, options: MethodOptions, compat=None, labels: Mapping[str, str] | None = None):
    """The methods of ``specs`` and their :class:`MethodInfo` (label, display name, rules, cache).

    Parameters
    ----------
    specs : sequence of str
        From :func:`parse_methods`.
    out : Path
        The run folder (the cache folders are under ``out/cache``).
    options : MethodOptions
        Options of every method; ``tta`` is dropped for the classical ones.
    compat : str, optional
        Part of each cache key.
    labels : mapping, optional
        ``--label`` display names (:func:`parse_labels`).

    Returns
    -------
    infos : list of MethodInfo
    methods : list of irstd.methods.Method or SavedMethod
    """
    from irstd.methods import classical_names, get_method

    methods = []
    for s in specs:
        if is_saved_spec(s):
            if compat is not None:
                raise InputError(f"--methods {s}: saved maps cannot be resized by --compat {compat} (save them at that size and evaluate them with irstd evaluate --predictions)")
            methods.append(saved_method(s, options.threshold, options.gray))
        else:  # --tta concerns the networks only: the classical methods of the same run go without it
            try:
                methods.append(get_method(s, options, **({"tta": "none"} if s.strip().lower() in classical_names() else {})))
            except InputError as exc:  # the option here is --methods
                raise InputError(str(exc).replace("--method:", "--methods:", 1)) from None
    names = _labels(specs, [m.name for m in methods])
    known = set(names) | set(specs)
    for key in labels or {}:
        if key not in known:
            raise InputError(f"--label {key}=...: no method {key!r} in --methods (labels: {', '.join(names)})")
    displays = _displays(specs, names, methods, labels or {})
    infos = []
    for spec, label, display, method in zip(specs, names, displays, methods):
        saved = method if isinstance(method, SavedMethod) else None
        if saved is not None:
            key = {"method": saved.name, "folder": str(saved.folder.resolve()), "mask_rule": saved.mask_rule}
            cache = None
        else:
            key = method_key(spec, method, compat=compat)
            cache = out / CACHE_DIR / f"{_slug(key['method'])}-{_key_hash(key)[:16]}"
        weights = method.weights_file
        infos.append(
            MethodInfo(
                spec=spec,
                label=label,
                display=display,
                name=method.name,
                kind=method.kind,
                score_rule=method.score_rule,
                mask_rule=method.mask_rule,
                parameters=method.parameters,
                weights=None if weights is None else str(weights),
                key=key,
                cache=cache,
                saved=saved,
            )
        )
    return infos, methods


@dataclass
class _Run:
    """What the steps of one :func:`compare` run share.

    Attributes
    ----------
    ds : Dataset
    ids : list of str
        The split's ids, in order.
    size : int or None
        The ``--compat`` evaluation size (None: native resolution).
    skip_errors : bool
    report : Progress
    failed : dict of str to str
        Skipped ids and the first reason each failed.
    digests : dict of str to str
        SHA-256 of each id's image file.
    """

    ds: Dataset
    ids: list[str]
    size: int | None
    skip_errors: bool
    report: Progress
    failed: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def fail(self, image_id: str, exc: BaseException) -> None:
        """Record ``image_id`` as skipped with its first failure's message, or raise ``exc``."""
        if not self.skip_errors:
            raise exc
        message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        self.failed.setdefault(image_id, " ".join(message.split()))

    def ok(self) -> list[str]:
        """The ids not skipped so far, in split order."""
        return [i for i in self.ids if i not in self.failed]


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
    labels: Mapping[str, str] | None = None,
    sweep=DEFAULT_SWEEP,
    progress: Progress | None = None,
) -> CompareResult:
    """Run, cache and evaluate several methods on one dataset split.

    Parameters
    ----------
    dataset : path-like or Dataset
    methods : str or sequence of str
        Method specs: any :func:`irstd.methods.get_method` spec (``lcm``, ``tophat``,
        ``cgrinet``, ``acm:FILE`` ...) or ``NAME=DIR``, maps saved by your own method
        (:mod:`irstd.compare.saved`).
    out : path-like
        Run folder (see :func:`~irstd.compare.prepare_out`); its cache is reused. A folder
        holding another run (other methods, split or options) is refused unless ``overwrite``.
    split, split_file : optional
        Which ids (:meth:`Dataset.ids`); one of them is required.
    options : MethodOptions, optional
        Options of every method (:class:`irstd.methods.MethodOptions`), all part of the cache
        key but the device: ``threshold`` replaces every method's own mask rule by ``score >
        threshold`` (the fixed-threshold protocol; by default each method uses its own rule);
        ``tta`` applies to the CgriNet methods only (the classical ones run once); ``gray`` is
        how colour images become grey.
    compat : str, optional
        Another code base's protocol (:data:`irstd.protocol.COMPAT`), only to compare with its
        tables: every method runs on the image resized to its evaluation size, masks are resized
        by nearest neighbour, Fa follows that code; part of the cache key.
    workers : int, optional
        Processes for classical methods (networks run in this process).
    skip_errors : bool, optional
        Record a failing id in ``skipped`` and go on; otherwise the first failure raises (the
        outputs cached so far stay).
    overwrite : bool, optional
        Replace the outputs of another run in ``out`` (its cache is kept: entries are keyed).
    labels : mapping, optional
        Display names by method label or spec (``{"mine": "Ours"}``; ``--label``).
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
    from irstd.data import check_outside

    check_outside(out, ds, "--out")  # never into the dataset's images/, masks/ or splits/
    out = prepare_out(out, overwrite=overwrite, run=run_identity(ds.root, specs, split, split_file, options, compat))
    infos, method_objs = _build_methods(specs, out, options, compat=compat, labels=labels)
    run = _Run(ds, ids, size, skip_errors, progress if progress is not None else (lambda *a: None))
    _check_images(run)
    results = [
        _run_method(run, info, method, Evaluator(sweep=sweep, fa_rule=fa_rule), workers, options.gray)
        for info, method in zip(infos, method_objs)
    ]
    _evaluate(run, results)
    evaluated = run.ok()
    for r in results:
        r.seconds = {i: r.seconds[i] for i in evaluated if i in r.seconds}
    if not evaluated:
        raise InputError(f"{ds.root}: no image could be evaluated ({len(run.failed)} skipped)")
    return CompareResult(
        dataset=ds,
        split=split if split_file is None else None,
        split_file=None if split_file is None else str(split_file),
        ids=ids,
        evaluated=evaluated,
        methods=results,
        skipped=[(i, run.failed[i]) for i in ids if i in run.failed],
        out=out,
        protocol=_protocol(ds, split, split_file, ids, evaluated, options, sweep, compat),
    )


def _check_images(run: _Run) -> None:
    """Before any work: which image bytes each id stands for (part of each cached record), and a
    readable mask of the image's size (from the image header; pixels are decoded later)."""
    ds = run.ds
    for image_id in run.ids:
        try:
            image_path = ds.image_path(image_id)
            run.digests[image_id] = io.sha256_file(image_path)
            info = io.image_info(image_path)
            gt = ds.read_mask(image_id)
            if run.size is None and gt.shape != (info["height"], info["width"]):  # compat: both are resized
                raise InputError(
                    f"{ds.mask_path(image_id)}: mask is {gt.shape[1]}x{gt.shape[0]} (WxH) but the image "
                    f"{image_path.name} is {info['width']}x{info['height']}"
                )
        except InputError as exc:
            run.fail(image_id, exc)


def _run_method(run: _Run, info: MethodInfo, method, evaluator: Evaluator, workers: int, gray: str) -> MethodResult:
    """One method over the run's ids: cached outputs are reused, the others computed and cached.

    Parameters
    ----------
    run : _Run
    info : MethodInfo
    method : irstd.methods.Method
    evaluator : Evaluator
        The method's evaluator (filled later by :func:`_evaluate`).
    workers : int
        Processes for a classical method (:func:`irstd.methods.run_method`).
    gray : str
        Colour rule of the images read here (``--compat``: they are resized before the method).

    Returns
    -------
    MethodResult
        Without metrics yet; ``seconds``, ``computed`` and ``cached`` filled.
    """
    from irstd.methods import run_method

    if info.saved is not None:
        return _read_saved(run, info, evaluator)
    cache = _Cache(info.cache, info.key)
    cache.open()
    result = MethodResult(info=info, evaluator=evaluator)
    total, done, todo = len(run.ids), 0, []
    run.report(info.label, 0, total, "", "start")
    for image_id in run.ids:
        if image_id in run.failed:
            status = "skipped"
        else:
            record = cache.meta(image_id, run.digests[image_id])
            if record is None:
                todo.append(image_id)
                continue
            result.seconds[image_id] = float(record["seconds"])
            result.cached.append(image_id)
            status = "cached"
        done += 1
        run.report(info.label, done, total, image_id, status)
    paths = [str(run.ds.image_path(i)) for i in todo]
    if run.size is not None:  # read and resized here; the method gets the arrays
        paths = (read_for_compat(p, run.size, gray) for p in paths)
    for image_id, output in zip(todo, run_method(method, paths, workers, skip_errors=run.skip_errors)):
        if isinstance(output, InputError):
            run.fail(image_id, output)
            status = "skipped"
        else:
            where = f"{info.label} on {run.ds.image_path(image_id)}"
            _check_output(output.scores, output.mask, np.shape(output.scores), where)
            cache.store(image_id, output.scores, output.mask, output.seconds, run.digests[image_id])
            result.seconds[image_id] = float(output.seconds)
            result.computed.append(image_id)
            status = "computed"
        done += 1
        run.report(info.label, done, total, image_id, status)
    return result


def _read_saved(run: _Run, info: MethodInfo, evaluator: Evaluator) -> MethodResult:
    """A saved method: every id's map must be there (read in :func:`_evaluate`); no time."""
    result = MethodResult(info=info, evaluator=evaluator)
    run.report(info.label, 0, len(run.ids), "", "start")
    for done, image_id in enumerate(run.ids, start=1):
        status = "skipped"
        if image_id not in run.failed:
            try:
                info.saved.source.path(image_id)
                result.cached.append(image_id)
                status = "cached"
            except InputError as exc:
                run.fail(image_id, exc)
        run.report(info.label, done, len(run.ids), image_id, status)
    return result


def _evaluate(run: _Run, results: Sequence[MethodResult]) -> None:
    """Every method on the same ids (those not skipped so far): one pass over the masks, all
    methods per id; an id that fails here is skipped for every method."""
    ds = run.ds
    ids = run.ok()
    for k, image_id in enumerate(ids, start=1):
        try:
            gt = ds.read_mask(image_id)
            if run.size is not None:
                gt = resize_for_compat(gt, run.size, mask=True)
            maps = []
            for r in results:
                scores, mask = r.info.output(image_id, run.digests[image_id])
                if scores.shape != gt.shape:
                    raise InputError(
                        f"{ds.mask_path(image_id)}: mask is {gt.shape[1]}x{gt.shape[0]} (WxH) but the "
                        f"image is {scores.shape[1]}x{scores.shape[0]}"
                    )
                maps.append((scores, mask))
            for r, (scores, mask) in zip(results, maps):
                r.evaluator.update(scores, gt, image_id=image_id, pred=mask)
        except InputError as exc:
            run.fail(image_id, exc)
        for r in results:
            run.report(r.info.label, k, len(ids), image_id, "evaluating")


def _protocol(ds, split, split_file, ids, evaluated, options, sweep, compat) -> dict[str, Any]:
    """The ``protocol`` of a :class:`CompareResult` (rules from :mod:`irstd.protocol`)."""
    return {
        **protocol_rules.source(ds.root, split, split_file),
        "ids": len(ids),
        "ids_sha256": ids_hash(ids),
        "evaluated": len(evaluated),
        "evaluated_sha256": ids_hash(evaluated),
        "threshold": options.threshold,
        "mask_protocol": protocol_rules.mask_protocol(options.threshold),
        "score_protocol": protocol_rules.SCORE_PROTOCOL,
        "bit_depth": options.bit_depth,
        "input_range": options.input_range,
        **protocol_rules.rules(compat, options.gray),
        "pd_fa_sweep": None if sweep is None else [float(sweep[0]), float(sweep[-1]), int(len(sweep))],
        "time_rule": protocol_rules.TIME_RULE,
        "versions": versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
