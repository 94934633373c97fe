"""Evaluate score maps against a dataset split: the library behind ``irstd evaluate``.

The work is split at one boundary: :func:`evaluate` takes a *score source*, any callable
``id -> (H, W) score map in [0, 1]`` (or ``id -> MethodOutput``, whose ``mask`` then decides the
predicted pixels). :class:`SavedPredictions` reads them from a folder of saved maps;
:class:`MethodScores` runs a method (:mod:`irstd.methods`) on the dataset's images, so that
``irstd evaluate --method M`` runs and evaluates in one go.

:func:`protocol` records the rules next to the numbers (written once, in :mod:`irstd.protocol`,
which ``irstd compare`` uses too); :func:`write_report` writes a run folder, with the
``per_image.csv`` writer (:func:`write_per_image_csv`) that ``irstd compare`` shares.
"""

from __future__ import annotations

import contextlib
import csv
import io as _stringio
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irstd import __version__, io
from irstd import protocol as protocol_rules
from irstd.data import Dataset, open_dataset
from irstd.errors import InputError
from irstd.metrics import DEFAULT_SWEEP, PER_IMAGE_FIELDS, Evaluator
from irstd.metrics.plots import plot_pd_fa, plot_pr, plot_roc
from irstd.protocol import read_for_compat, resize_for_compat

__all__ = [
    "PREDICTION_SUFFIXES",
    "REPORT_FILES",
    "EvaluationResult",
    "MethodScores",
    "SavedPredictions",
    "check_out_dir",
    "check_pairs",
    "claim_out_dir",
    "csv_text",
    "evaluate",
    "evaluate_predictions",
    "jsonable",
    "protocol",
    "report",
    "sweep_thresholds",
    "write_per_image_csv",
    "write_report",
]

#: File names looked for in a predictions folder, in this order: ``<id><suffix>``.
PREDICTION_SUFFIXES = (".png", ".npy", ".tif", ".tiff")

#: What :func:`write_report` writes into a run folder.
REPORT_FILES = ("metrics.json", "per_image.csv", "roc.png", "pr.png", "pd_fa.png")

#: The file :func:`claim_out_dir` creates (exclusively) in a folder while a run writes into it.
LOCK_FILE = ".irstd-run.lock"

ScoreSource = Callable[[str], np.ndarray]
Progress = Callable[[int, int, str], None]


class SavedPredictions:
    """Score source reading ``<id>.png`` (8/16-bit, ``value / max``), ``<id>.npy`` or a float
    ``<id>.tif``/``.tiff`` (float as is; 8/16-bit TIFF as ``value / max``).

    Parameters
    ----------
    folder : path-like
        Folder with one score map per id.
    gray : {"auto", "luma", "r", "g", "b"}, optional
        How colour maps become grey (:func:`irstd.io.read_image`; ``auto`` refuses pseudo-colour).

    Raises
    ------
    irstd.errors.InputError
        The folder does not exist; later, for an id: no map, two maps, or an unreadable map.
    """

    def __init__(self, folder: str | os.PathLike, gray: str = "auto") -> None:
        self.gray = io.check_gray(gray)
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{folder}: --predictions folder not found")

    def path(self, image_id: str) -> Path:
        """The score map file of ``image_id``."""
        found = [self.folder / f"{image_id}{s}" for s in PREDICTION_SUFFIXES]
        found = [p for p in found if p.is_file()]
        if not found:
            names = " or ".join(f"{image_id}{s}" for s in PREDICTION_SUFFIXES)
            raise InputError(f"{self.folder}: no prediction for id {image_id!r} (expected {names})")
        if len(found) > 1:
            raise InputError(
                f"{self.folder}: two predictions for id {image_id!r} ({found[0].name}, {found[1].name}); keep one"
            )
        return found[0]

    def __call__(self, image_id: str) -> np.ndarray:
        path = self.path(image_id)
        scores = io.read_scores(path, gray=self.gray)
        if path.suffix == ".npy" and np.load(path, mmap_mode="r").dtype in (np.float32, np.float16):
            # Back to the stored precision (exact), so that thresholds are compared as for the
            # in-memory float32 map (see irstd.metrics.threshold_scores).
            scores = scores.astype(np.float32)
        return scores

    def describe(self, image_id: str) -> str:
        """How error messages name the map of ``image_id``."""
        try:
            return str(self.path(image_id))
        except InputError:
            return f"{self.folder}: id {image_id!r}"

    def __repr__(self) -> str:
        return f"SavedPredictions({str(self.folder)!r})"


class MethodScores:
    """Score source running a method on a dataset's images, in id order.

    Calling it with the ids in order (as :func:`evaluate` does) runs the method ahead of the
    evaluation, in ``workers`` processes for classical methods; an id that :func:`evaluate`
    skipped before asking for its map is passed over.

    Parameters
    ----------
    dataset : Dataset
    ids : sequence of str
        The ids that will be asked for, in order.
    method : irstd.methods.Method
    workers : int, optional
        Worker processes (classical methods; see :func:`irstd.methods.run_method`).
    save_to : path-like, optional
        Write each score map as ``<id>.png`` (16-bit, ``value / 65535``) into this folder,
        usable later with ``--predictions``.
    overwrite : bool, optional
        Replace existing ``<id>.png`` files in ``save_to``.
    resize : int, optional
        Run the method on each image resized to ``resize × resize``
        (:func:`irstd.protocol.resize_for_compat`).
        Colour images become grey by the method's ``gray`` option (:func:`irstd.io.read_image`).
    problems : mapping, optional
        ``id -> reason`` of ids known to be unusable (:func:`check_pairs`): not run.

    Attributes
    ----------
    seconds : float
        Total wall time of the method on the images run so far (file reading excluded).
    runs : int
        Images the method ran on.
    saved : int
        Score maps written into ``save_to`` so far.
    warnings : list of str
        What the method said of the images it ran on (``MethodOutput.warnings``, e.g. an input
        range far from the one the weights were trained on), each message once.

    Notes
    -----
    ``source(id)`` returns the :class:`irstd.methods.MethodOutput` of ``id``.
    """

    def __init__(self, dataset: Dataset, ids: Sequence[str], method, *, workers: int = 1,
                 save_to: str | os.PathLike | None = None, overwrite: bool = False,
                 resize: int | None = None, problems: Mapping[str, str] | None = None) -> None:
        from irstd.methods import run_method

        self.method = method
        self.save_to = None if save_to is None else Path(save_to)
        self.overwrite = overwrite
        self.seconds = 0.0
        self.runs = 0
        self.saved = 0
        self.warnings: list[str] = []
        self.ids = list(ids)
        items = []
        self._paths: dict[str, Path] = {}
        problems = problems or {}
        for image_id in self.ids:
            if image_id in problems:  # found unusable before any work (check_pairs): not run
                items.append(InputError(problems[image_id]))
                continue
            try:
                self._paths[image_id] = dataset.image_path(image_id)
                items.append(self._paths[image_id])
            except InputError as exc:
                items.append(exc)
        if resize is not None:  # read and resize here; the method gets the arrays
            items = (read_for_compat(item, resize, method.gray) for item in items)
        self._runs = run_method(method, items, workers=workers, skip_errors=True)
        self._results = zip(self.ids, self._runs)

    def close(self) -> None:
        """Stop the worker processes (done by itself once the last id has been asked for)."""
        self._runs.close()

    def __call__(self, image_id: str):
        for got, result in self._results:
            if got != image_id:
                continue  # evaluate() skipped this id before asking for its map
            if got == self.ids[-1]:
                self.close()
            if isinstance(result, InputError):
                raise result
            self.runs += 1
            self.seconds += result.seconds
            for message in getattr(result, "warnings", ()):
                if message not in self.warnings:
                    self.warnings.append(message)
            if self.save_to is not None:
                io.write_image(self.save_to / f"{image_id}.png", np.clip(result.scores, 0.0, 1.0),
                               bit_depth=16, overwrite=self.overwrite)
                self.saved += 1
            return result
        raise InputError(f"id {image_id!r}: asked for out of order (method scores run in split order)")

    def describe(self, image_id: str) -> str:
        """How error messages name the id: its image file (the method's map has no file)."""
        path = self._paths.get(image_id)
        return f"{path if path is not None else f'id {image_id!r}'} ({self.method.name})"

    def timing(self) -> dict[str, Any]:
        """Method wall time: total and per image (seconds, file reading excluded)."""
        return {
            "method_seconds": self.seconds,
            "method_seconds_per_image": self.seconds / self.runs if self.runs else None,
            "method_runs": self.runs,
        }


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns.

    Attributes
    ----------
    evaluator : Evaluator
        Holds every metric of the images evaluated.
    ids : list of str
        The ids asked for, in order.
    skipped : list of (str, str)
        ``(id, one-line reason)`` of the ids skipped under ``skip_errors``.
    """

    evaluator: Evaluator
    ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _wh(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def sweep_thresholds(step: float = 0.01) -> np.ndarray | None:
    """Pd–Fa sweep thresholds ``0, step, 2·step, ..., 1`` (``k / n`` exactly, n = 1 / step).

    Parameters
    ----------
    step : float
        Must divide 1 (0.01, 0.02, 0.05, 0.1, ...); 0 means no sweep (returns None).

    Returns
    -------
    ndarray or None
    """
    if step == 0:
        return None
    n = round(1.0 / step) if step > 0 else 0
    if step < 0 or n < 1 or abs(n * step - 1.0) > 1e-9:
        raise InputError(f"--pd-fa-step: must divide 1 (e.g. 0.01, 0.05, 0.1) or be 0, got {step:g}")
    return np.arange(n + 1) / float(n)


def evaluate(
    dataset: Dataset,
    ids: Sequence[str],
    scores_for: ScoreSource,
    *,
    threshold: float = 0.5,
    sweep=DEFAULT_SWEEP,
    skip_errors: bool = False,
    progress: Progress | None = None,
    evaluator: Evaluator | None = None,
    resize: int | None = None,
    problems: Mapping[str, str] | None = None,
) -> EvaluationResult:
    """Evaluate the score maps of ``ids`` against the dataset's masks.

    Parameters
    ----------
    dataset : Dataset
        Gives the ground-truth masks (:meth:`Dataset.read_mask`).
    ids : sequence of str
    scores_for : callable
        ``scores_for(id)`` returns the (H, W) score map of ``id`` (values in [0, 1], or 8/16-bit
        integers), e.g. :class:`SavedPredictions`; or a :class:`irstd.methods.MethodOutput`
        (e.g. :class:`MethodScores`), whose ``mask`` is then the prediction (the method's own
        rule) while its ``scores`` give the curves.
    threshold : float, optional
        ``scores > threshold`` are predicted target pixels.
    sweep : sequence of float or None, optional
        Thresholds of the Pd–Fa curve (see :class:`~irstd.metrics.Evaluator`).
    skip_errors : bool, optional
        Record an unusable id (missing or unreadable map, size mismatch, NaN, ...) in
        ``skipped`` and go on, instead of raising.
    progress : callable, optional
        ``progress(done, total, id)`` after each id.
    evaluator : Evaluator, optional
        Accumulate into this one (built from ``threshold`` and ``sweep`` otherwise).
    resize : int, optional
        Compare at ``resize × resize`` (a ``--compat`` protocol): each mask is resized by
        nearest neighbour (:func:`irstd.protocol.resize_for_compat`) and the score maps must
        have that size.
    problems : mapping, optional
        ``id -> reason`` of ids found unusable beforehand (:func:`check_pairs`): raised (or
        skipped under ``skip_errors``) without reading anything.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    irstd.errors.InputError
        The first unusable id (unless ``skip_errors``). A prediction whose size differs from
        its mask is named with both sizes; it is never resized.
    """
    ids = list(ids)
    if not ids:
        raise InputError("split: no ids to evaluate")
    if evaluator is None:
        evaluator = Evaluator(threshold, sweep=sweep)
    result = EvaluationResult(evaluator=evaluator, ids=ids)
    describe = getattr(scores_for, "describe", None)
    problems = problems or {}
    for done, image_id in enumerate(ids, start=1):
        try:
            if image_id in problems:
                raise InputError(problems[image_id])
            gt = dataset.read_mask(image_id)
            if resize is not None:
                gt = resize_for_compat(gt, resize, mask=True)
            scores = scores_for(image_id)
            pred = None
            if hasattr(scores, "mask") and hasattr(scores, "scores"):  # a MethodOutput
                scores, pred = scores.scores, scores.mask
            if np.shape(scores) != gt.shape:
                where = describe(image_id) if describe else f"id {image_id!r}"
                raise InputError(
                    f"{where}: prediction of id {image_id!r} is {_wh(np.shape(scores))} "
                    + (f"but its mask is {_wh(gt.shape)} (WxH)" if resize is None else
                       f"but the protocol evaluates at {resize}x{resize} (predictions are never resized)")
                )
            try:
                evaluator.update(scores, gt, image_id=image_id, pred=pred)
            except InputError as exc:
                if not describe:
                    raise
                message = str(exc).removeprefix(f"{image_id}: ")
                raise InputError(f"{describe(image_id)}: {message}") from None
        except InputError as exc:
            if not skip_errors:
                raise
            result.skipped.append((image_id, str(exc)))
        if progress is not None:
            progress(done, len(ids), image_id)
    return result


def _header_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image or ``.npy`` file from its header (:func:`irstd.io.image_info`)."""
    if path.suffix.lower() == ".npy":
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable .npy score map ({exc})") from None
        if len(shape) != 2:
            raise InputError(f"{path}: expected a 2-D score map, got shape {shape}")
        return int(shape[0]), int(shape[1])
    info = io.image_info(path)
    return info["height"], info["width"]


def check_pairs(
    dataset: Dataset,
    ids: Sequence[str],
    *,
    predictions: SavedPredictions | None = None,
    sizes: bool = True,
) -> dict[str, str]:
    """Find, before any work, the ids :func:`evaluate` could not use: from the file headers only.

    Each id needs a readable mask and a readable image (or, with ``predictions``, one readable
    score map) of the mask's size (not compared when ``sizes`` is False, e.g. under a
    ``--compat`` protocol that resizes both).

    Parameters
    ----------
    dataset : Dataset
    ids : sequence of str
    predictions : SavedPredictions, optional
        Check its maps instead of the dataset's images.
    sizes : bool, optional

    Returns
    -------
    dict
        ``id -> one-line reason`` of every unusable id, in id order (empty: all usable).
    """
    problems: dict[str, str] = {}
    for image_id in ids:
        try:
            mask_path = dataset.mask_path(image_id)
            mask_hw = _header_size(mask_path)
            if predictions is None:
                path = dataset.image_path(image_id)
                what = "image"
            else:
                path = predictions.path(image_id)
                what = "prediction"
            hw = _header_size(path)
            if sizes and hw != mask_hw:
                raise InputError(
                    f"{path}: {what} of id {image_id!r} is {_wh(hw)} but its mask {mask_path.name} is "
                    f"{_wh(mask_hw)} (WxH)"
                )
        except InputError as exc:
            problems[image_id] = str(exc)
    return problems


@contextlib.contextmanager
def claim_out_dir(out: str | os.PathLike, overwrite: bool = False, *, option: str = "--out",
                  keep: bool = False) -> Iterator[Path]:
    """Hold an output folder for one run: checked, created, and locked against other runs.

    The folder is checked (:func:`check_out_dir`), created, and claimed by creating
    :data:`LOCK_FILE` in it exclusively, so that a second run given the same folder is refused
    instead of mixing its files with this run's; an unwritable folder fails here, before any
    work. On leaving, the lock is removed; when the block raised (an error, Ctrl-C) and the
    folder held nothing before, what the run wrote is removed too (and the folder, when it was
    created here), so nothing half-written blocks a re-run.

    Parameters
    ----------
    out : path-like
    overwrite : bool, optional
    option : str, optional
        How messages name the folder's option.
    keep : bool, optional
        Keep what was written even when the block raised (e.g. score maps saved one by one).

    Yields
    ------
    Path

    Raises
    ------
    irstd.errors.InputError
        See :func:`check_out_dir`; another run holds the folder.
    OSError
        The folder cannot be created or written.
    """
    out = check_out_dir(out, overwrite)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_FILE
    for attempt in (1, 2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if attempt == 1 and _stale_lock(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            raise InputError(
                f"{out}: another irstd run is writing into this {option} folder ({LOCK_FILE}); "
                f"wait for it or choose another {option}"
            ) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    before = {f.name for f in out.iterdir()} - {LOCK_FILE}
    try:
        yield out
    except BaseException:
        if not before and not keep:
            for f in out.iterdir():
                if f.name != LOCK_FILE:
                    with contextlib.suppress(OSError):
                        shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
        raise
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty


def _stale_lock(lock: Path) -> bool:
    """Whether ``lock`` names a process that no longer runs (a run killed without cleaning up)."""
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def evaluate_predictions(
    dataset: str | os.PathLike | Dataset,
    predictions: str | os.PathLike,
    *,
    split: str | None = None,
    split_file: str | os.PathLike | None = None,
    threshold: float = 0.5,
    sweep=DEFAULT_SWEEP,
    skip_errors: bool = False,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate a folder of saved score maps on a split (``irstd evaluate --predictions``).

    Parameters
    ----------
    dataset : path-like or Dataset
    predictions : path-like
        Folder with ``<id>.png`` or ``<id>.npy`` per id (see :class:`SavedPredictions`).
    split, split_file : optional
        Which ids (see :meth:`Dataset.ids`); all ids with an image when both are None.
    threshold, sweep, skip_errors, progress
        As in :func:`evaluate`.

    Returns
    -------
    EvaluationResult
    """
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    source = SavedPredictions(predictions)
    ids = ds.ids(split=split, split_file=split_file)
    return evaluate(
        ds, ids, source, threshold=threshold, sweep=sweep, skip_errors=skip_errors, progress=progress
    )


def protocol(
    *,
    dataset: str | os.PathLike | None = None,
    split: str | None = None,
    split_file: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    threshold: float | None = 0.5,
    method=None,
    workers: int | None = None,
    compat: str | None = None,
    gray: str = "auto",
) -> dict[str, Any]:
    """The protocol fields recorded next to every reported number.

    With ``method`` (an :class:`irstd.methods.Method`): its name, kind, score and mask rules
    and parameter count are recorded; ``threshold`` is None when the method's own rule makes
    the masks. ``compat`` names a :data:`irstd.protocol.COMPAT` protocol (resolution and Fa
    rule); ``gray`` is the colour rule of the images or maps read (:data:`irstd.io.GRAY_RULES`).
    The rules themselves come from :mod:`irstd.protocol`.
    """
    if method is not None:
        threshold = method.threshold
    out = {
        **protocol_rules.source(dataset, split, split_file),
        "predictions": None if predictions is None else str(predictions),
        "threshold": None if threshold is None else float(threshold),
        "threshold_rule": protocol_rules.threshold_rule(method),
        **protocol_rules.rules(compat, gray),
        "irstd_version": __version__,
    }
    if method is not None:
        record = method.record()
        out.update({
            "method": method.name,
            "method_kind": method.kind,
            "score_rule": method.score_rule,
            "mask_rule": method.mask_rule,
            "parameters": method.parameters,
            "weights": record["weights"],
            "bit_depth": record["bit_depth"],
            "input_range": record["input_range"],
            "input_scale": protocol_rules.input_scale_rule(method.kind),
            "workers": workers,
        })
    return out


def report(result: EvaluationResult, proto: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One flat dictionary: the summary metrics (plain fractions), the protocol, the Pd–Fa
    curve, the metrics at the best sweep threshold (:meth:`Evaluator.best_threshold`, under
    ``best_threshold``) and the skipped ids (what ``--json`` prints and ``metrics.json`` holds); ``extra``
    (e.g. :meth:`MethodScores.timing`) is added as is."""
    ev = result.evaluator
    out: dict[str, Any] = dict(ev.summary())
    out.update({k: v for k, v in proto.items() if k not in out})
    if "mask_rule" in proto:  # a method run: the protocol's threshold (None = own rule) holds
        out["threshold"] = proto["threshold"]
    out.update(extra or {})
    out["skipped"] = [{"id": i, "error": e} for i, e in result.skipped]
    if ev.sweep is not None:
        out["best_threshold"] = ev.best_threshold()
        c = ev.pd_fa_curve()
        out["pd_fa_curve"] = {
            "thresholds": c.thresholds.tolist(),
            "pd": c.pd.tolist(),
            "fa": c.fa.tolist(),
            "hits": c.hits.tolist(),
            "false_alarm_pixels": c.false_alarm_pixels.tolist(),
        }
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy values made plain and non-finite floats made ``None`` (valid JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def check_out_dir(out: str | os.PathLike, overwrite: bool = False, *, refusal: str | None = None) -> Path:
    """Refuse an existing, non-empty run folder unless ``overwrite`` (checked before any work).

    Parameters
    ----------
    out : path-like
    overwrite : bool, optional
    refusal : str, optional
        The error message after ``"<out>: "`` for a non-empty folder (a default names
        ``--overwrite``).

    Returns
    -------
    Path
        ``out`` (not created).

    Raises
    ------
    irstd.errors.InputError
        ``out`` is a file, or a non-empty folder without ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    if out.is_dir() and any(f.name != LOCK_FILE for f in out.iterdir()) and not overwrite:
        raise InputError(
            f"{out}: {refusal or 'run folder exists and is not empty (use --overwrite to replace its files)'}"
        )
    return out


def csv_text(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> str:
    """CSV of ``rows`` with the columns ``fields``, in order.

    Floats are written in full precision (``repr``: they read back to the same value), None as
    an empty cell; keys not in ``fields`` are left out.
    """
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


def write_per_image_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], *, method: bool = False) -> Path:
    """Write ``per_image.csv``: one row per image, :data:`irstd.metrics.PER_IMAGE_FIELDS`.

    Parameters
    ----------
    path : path-like
        Written atomically (replaced when it exists).
    rows : sequence of dict
        :attr:`irstd.metrics.Evaluator.per_image` rows (with a ``method`` key when ``method``).
    method : bool, optional
        Start each row with a ``method`` column (``irstd compare``: rows of several methods).

    Returns
    -------
    Path
    """
    fields = ("method", *PER_IMAGE_FIELDS) if method else PER_IMAGE_FIELDS
    return io.write_text(path, csv_text(rows, fields), overwrite=True)


def write_report(
    result: EvaluationResult,
    proto: dict[str, Any],
    out: str | os.PathLike,
    *,
    name: str = "predictions",
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``metrics.json``, ``per_image.csv``, ``roc.png``, ``pr.png`` and ``pd_fa.png``.

    Parameters
    ----------
    result : EvaluationResult
    proto : dict
        From :func:`protocol`.
    out : path-like
        Run folder (created); an existing non-empty one is refused unless ``overwrite``.
    name : str, optional
        Legend label of the curves.
    overwrite : bool, optional
    extra : dict, optional
        Added to ``metrics.json`` (see :func:`report`).

    Returns
    -------
    list of Path
        The files written (atomically).
    """
    out = check_out_dir(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    ev = result.evaluator
    written = [
        io.write_json(out / "metrics.json", report(result, proto, extra), overwrite=True),
        write_per_image_csv(out / "per_image.csv", ev.per_image),
    ]
    if ev.images:
        written.append(plot_roc({name: ev.roc()}, out / "roc.png"))
        written.append(plot_pr({name: ev.pr()}, out / "pr.png"))
        if ev.sweep is not None:
            written.append(plot_pd_fa({name: ev.pd_fa_curve()}, out / "pd_fa.png"))
    return written
