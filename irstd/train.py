"""Training CgriNet: crop sampler, poly schedule, validation, checkpoints and exact resume.

Everything the ``irstd train`` command does lives here; the command line only parses options and
renders the progress events sent to the ``progress`` callback of :func:`train`.

A run folder holds

- ``config.yaml``: the resolved :class:`TrainConfig` (read back by ``--config``);
- ``ids.json``: the training and validation ids (namespaced ``<dataset>/<id>``) and their hashes;
- ``metrics.csv``: one row per epoch (loss, learning rate, validation mIoU/nIoU/Pd/Fa, time);
- ``train.log``: plain text lines, readable from ``nohup`` runs;
- ``last.safetensors`` / ``best.safetensors``: weights (``irstd.models.save_weights``) with the
  input normalisation, bit-depth rule, data, split hashes, epoch, seed and versions in the metadata;
- ``state.safetensors`` (+ a readable copy of its metadata in ``state.json``): everything needed
  for an exact resume (weights, optimiser, counters, RNG state). One file, written atomically, so a
  run killed at any moment resumes from its last saved state.

Randomness of the data pipeline is *keyed*: the crop and flips of a sample are drawn from a
generator seeded with ``(seed, epoch, position in the epoch)`` and the epoch order from
``(seed, epoch)``. Resuming therefore needs no sampler or worker state, and a resumed run sees the
same crops as an uninterrupted one, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _pyio
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from safetensors import safe_open
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from irstd.data import ids_hash, open_dataset
from irstd.distill import load_teachers
from irstd.provenance import versions
from irstd.tta import check_tta
from irstd.errors import InputError
from irstd.io import check_gray, sha256_file, write_bytes, write_text
from irstd.intensity import parse_input_range, to_float
from irstd.losses import create_loss
from irstd.metrics import Evaluator
from irstd.models import create_model, list_models, load_model, predict, read_weights_metadata, save_weights
from irstd.models.cgrinet import IMAGENET
from irstd.steps import STEP_MODES, make_step, train_step
from irstd.sampling import (
    CropDataset,
    DeviceCrops,
    EpochSampler,
    augment,
    check_scale_range,
    parse_scale_range,  # noqa: F401 - part of this module's public names
    random_crop,
    random_scale,
    sample_rng,
)

__all__ = [
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "augment",
    "compute_mean_std",
    "flatten_state",
    "load_config",
    "poly_lr",
    "random_crop",
    "random_scale",
    "resolve_config",
    "train",
    "parse_scale_range",
    "train_step",
    "unflatten_state",
]

#: Power of the poly learning-rate schedule (CgriNet paper).
POLY_POWER = 0.9
#: Fields that may differ between a run and its ``--resume``; every other field must match.
RESUMABLE_FIELDS = frozenset({"epochs", "val_every", "device", "amp", "step", "state_interval", "workers", "skip_errors", "out", "resume"})
#: Fields not saved in ``config.yaml`` (where the run lives, not how it trains).
_RUN_FIELDS = ("out", "resume")
STATE_FILE = "state.safetensors"
_STATE_KEY = "irstd_state"
_STATE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.yaml`` in the run folder).

    Parameters
    ----------
    datasets : list of str
        Dataset roots (``irstd.data.open_dataset``); several roots train on their union, ids
        namespaced ``<folder name>/<id>``.
    model : str
        Variant name for ``irstd.models.create_model`` (e.g. ``cgrinet_small``).
    split : str
        Training split of every dataset (``train``; SIRST: ``dnanet_50_50/train``).
    val_split : str, optional
        Validation split. Must be disjoint from the training ids and not a test split.
    val_fraction : float
        Used when ``val_split`` is None: this fraction of the training ids (seeded by ``val_seed``)
        is held out for validation. 0 disables validation (no ``best.safetensors``).
    val_seed : int, optional
        Seed of that carve-out; None (default): ``seed``. Runs with different ``seed`` values and
        one ``val_seed`` hold out the same images, so their validation figures compare.
    val_every : int
        Validate every K epochs (and after the last epoch).
    epochs, batch_size, crop : int
        Epoch count, images per step (per process under DDP), side of the square training crops.
    positive_prob : float
        Probability that a crop is centred around a target pixel (BasicIRSTD uses 0.5).
    scale_range : list of two floats, optional
        ``[lo, hi]``: before cropping, each sample's image is resized by a factor drawn uniformly
        from this range (bilinear; mask nearest), the random scale of DNANet's training (which
        uses 0.5–2 of its base size). None (default): no rescaling, as in BasicIRSTD.
    lr, weight_decay : float
        Adam learning rate and coupled L2 weight decay; the rate follows the poly schedule
        ``lr * (1 - t/T)**0.9`` per iteration.
    ema : float, optional
        Decay of an exponential moving average of the weights and buffers, updated after every
        step (timm's ``ModelEmaV3``; e.g. 0.999 averages over about the last 1000 steps). When
        given, validation, ``best`` and ``last`` use the average. None (default): no average.
    loss : str
        Name for ``irstd.losses.create_loss`` (``unite`` = 2·IoU + 7·BCE on every side output).
    ablation : list of str
        Model overrides ``key=value`` (value parsed as YAML), passed to ``create_model``.
    seed : int
        Seeds Python, NumPy, torch, the crop sampler and (unless ``val_seed`` is given) the
        validation carve-out.
    teachers : list of str
        Model files (written by ``irstd train``; ``"packaged"``: the shipped weights) whose mean
        probability on each training crop is a soft target (:mod:`irstd.distill`); empty: none.
    distill_weight : float
        Weight of the loss against the teachers' probabilities (added to the loss on the masks).
    teacher_tta : {"none", "flip", "dihedral"}
        Views of each crop the teachers' probabilities are averaged over (:mod:`irstd.tta`).
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses CUDA when available. On CUDA the training images are held on the GPU and
        the crops cut there (:class:`irstd.sampling.DeviceCrops`); on the CPU a DataLoader cuts
        them (:class:`irstd.sampling.CropDataset`); both give the same crops.
    amp : bool
        Mixed precision on CUDA: bfloat16 autocast (float16 with gradient scaling on GPUs without
        bfloat16); ignored with a warning on CPU.
    step : {"auto", "eager", "graph"}
        How the training step runs (:func:`irstd.steps.make_step`): ``graph`` records it once as
        a CUDA graph and replays it (CUDA, one process); ``auto`` (default) does so where it can
        and runs eagerly elsewhere (the CPU, DDP).
    state_interval : float
        Seconds between writes of the resume state and ``last.safetensors`` (checked at the end
        of each epoch; 0: every epoch). Both are also written at the end and on interruption.
    workers : int
        DataLoader worker processes (0: load in the main process; not used on CUDA).
    skip_errors : bool
        Leave out image/mask pairs that cannot be read (listed in ``ids.json`` and the result)
        instead of stopping.
    bit_depth : int, optional
        Bit depth for ``irstd.intensity.to_float`` of 16-bit images (None: 16).
    input_range : {"auto", "bits", "minmax", "fixed:LO,HI"}
        How ``irstd.intensity.to_float`` maps images to [0, 1] (default ``auto``: the bit depth rule
        for 8-bit images, per-image min-max for 16-bit ones unless ``bit_depth`` is given);
        recorded in the weights, so ``irstd detect`` maps frames the same way.
    gray : {"auto", "luma", "r", "g", "b"}
        How colour training images become grey (:func:`irstd.io.read_image`; ``auto`` refuses
        pseudo-colour images).
    pretrained_backbone : str, optional
        Weight file for the encoder, or ``"imagenet"`` for timm's ImageNet weights (found in
        timm's cache or downloaded; the full-width encoder of ``cgrinet`` only), passed to
        ``create_model(pretrained_backbone=...)``.
    init_weights : str, optional
        A model file of ours (written by ``irstd train``; ``"packaged"``: the weights shipped with
        irstd) to start from: fine-tuning.
        The architecture and the input normalisation come from the file (``model`` may be left
        empty; if given it must match); ``ablation`` may extend it (e.g. ``refine_head=true``) as
        long as every tensor of the file still fits. ``pretrained_backbone`` cannot be combined
        with it. The optimiser and the schedule start afresh.
    out : str, optional
        Run folder; default ``runs/train/<model>`` auto-incremented (``-2``, ``-3``...).
    resume : bool
        Continue the run in ``out`` from its saved state.
    """

    datasets: list[str] = field(default_factory=list)
    model: str = ""
    split: str = "train"
    val_split: str | None = None
    val_fraction: float = 0.1
    val_seed: int | None = None
    val_every: int = 1
    epochs: int = 400
    batch_size: int = 12
    crop: int = 128
    positive_prob: float = 0.5
    scale_range: list[float] | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-4
    ema: float | None = None
    loss: str = "unite"
    ablation: list[str] = field(default_factory=list)
    seed: int = 0
    teachers: list[str] = field(default_factory=list)
    distill_weight: float = 1.0
    teacher_tta: str = "none"
    device: str = "auto"
    amp: bool = False
    step: str = "auto"
    state_interval: float = 60.0
    workers: int = 0
    skip_errors: bool = False
    bit_depth: int | None = None
    input_range: str = "auto"
    gray: str = "auto"
    pretrained_backbone: str | None = None
    init_weights: str | None = None
    out: str | None = None
    resume: bool = False

    def to_dict(self, run_fields: bool = True) -> dict[str, Any]:
        """Plain dict (YAML/JSON-ready); ``run_fields=False`` drops ``out`` and ``resume``."""
        data = dataclasses.asdict(self)
        if not run_fields:
            for name in _RUN_FIELDS:
                data.pop(name, None)
        return data


_FIELD_NAMES = {f.name for f in dataclasses.fields(TrainConfig)}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``config.yaml`` (a mapping of :class:`TrainConfig` fields).

    Returns
    -------
    dict
        The fields found in the file (unknown keys raise :class:`~irstd.errors.InputError`).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read config ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: config must be a mapping of option names to values")
    unknown = sorted(set(data) - _FIELD_NAMES)
    if unknown:
        raise InputError(f"{path}: unknown config key(s): {', '.join(unknown)}")
    return data


def resolve_config(config_file: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`: defaults < ``config_file`` < ``overrides`` (None = not given).

    With ``resume=True`` and an ``out`` folder holding a ``config.yaml``, that saved config is the
    base instead of the defaults, so ``irstd train --out runs/x --resume`` needs no other option.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(load_config(config_file))
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - _FIELD_NAMES)
    if unknown:
        raise TypeError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
    if given.get("resume") and given.get("out"):
        saved = Path(given["out"]) / "config.yaml"
        if saved.is_file():
            # a run saved before input_range existed was trained by the bit depth rule
            values = {"input_range": "bits", **load_config(saved), **values}
    for key in ("datasets", "ablation", "teachers"):
        if key in given and isinstance(given[key], (list, tuple)) and not given[key]:
            del given[key]  # an empty repeated option means "not given"
    values.update(given)
    config = TrainConfig(**values)
    _check_config(config)
    return config


def _check_config(config: TrainConfig) -> None:
    if not config.datasets:
        raise InputError("--dataset: at least one dataset folder is required")
    if not config.model and not config.init_weights:
        raise InputError("--model: a model name is required (see irstd.models.list_models())")
    if config.init_weights and config.pretrained_backbone:
        raise InputError("--pretrained-backbone: cannot be combined with --init-weights (the weights come from that file)")
    checks = [
        (config.epochs >= 1, "--epochs", "must be >= 1"),
        (config.batch_size >= 2, "--batch-size", "must be >= 2 (BatchNorm needs more than one image per step)"),
        (config.crop >= 32 and config.crop % 32 == 0, "--crop", "must be a positive multiple of 32"),
        (config.lr > 0, "--lr", "must be > 0"),
        (config.weight_decay >= 0, "--weight-decay", "must be >= 0"),
        (config.ema is None or 0 < config.ema < 1, "--ema", "must lie in (0, 1), e.g. 0.999"),
        (0 <= config.val_fraction < 1, "--val-fraction", "must be in [0, 1)"),
        (config.val_every >= 1, "--val-every", "must be >= 1"),
        (0 <= config.positive_prob <= 1, "positive_prob", "must be in [0, 1]"),
        (config.workers >= 0, "--workers", "must be >= 0"),
        (config.distill_weight >= 0, "--distill-weight", "must be >= 0"),
        (config.state_interval >= 0, "--state-interval", "must be >= 0 (seconds)"),
        (config.step in STEP_MODES, "--step", f"must be one of {', '.join(STEP_MODES)}"),
        (config.device in ("auto", "cpu", "cuda"), "--device", "must be auto, cpu or cuda"),
    ]
    for ok, option, problem in checks:
        if not ok:
            raise InputError(f"{option}: {problem}")
    parse_input_range(config.input_range)
    check_gray(config.gray)
    check_tta(config.teacher_tta, "--teacher-tta")
    if config.scale_range is not None:
        config.scale_range = check_scale_range(config.scale_range)
    if config.val_split is not None and _is_test_split(config.val_split):
        raise InputError(
            f"--val-split {config.val_split}: refusing to validate on a test split (choosing the "
            "best checkpoint on test data inflates the reported numbers); use --val-fraction or a "
            "validation split"
        )
    if config.val_split is not None and config.val_split == config.split:
        raise InputError(f"--val-split {config.val_split}: same split as --split (validation ids must be disjoint)")
    if config.resume and not config.out:
        raise InputError("--resume: needs --out, the run folder to continue")
    for item in config.ablation:
        if "=" not in item:
            raise InputError(f"--ablation {item}: expected key=value (e.g. use_cgm=false)")


def _ablation_overrides(items: Sequence[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"--ablation {item}: cannot parse the value") from None
    return overrides


# --------------------------------------------------------------------------------------------
# Pure pieces: schedule, crops, augmentation, statistics


def poly_lr(base_lr: float, iteration: int, total: int, power: float = POLY_POWER) -> float:
    """Poly learning-rate schedule ``base_lr * (1 - iteration / total) ** power``.

    Parameters
    ----------
    base_lr : float
        Initial rate.
    iteration : int
        Iterations done so far (0 for the first step).
    total : int
        Total iterations of the run.
    power : float
        Exponent (0.9 in the CgriNet paper).

    Returns
    -------
    float
        The rate for the next step (0 at and after ``total``).
    """
    if total <= 0:
        return float(base_lr)
    return float(base_lr) * max(0.0, 1.0 - iteration / total) ** power


def compute_mean_std(images: Sequence[np.ndarray]) -> tuple[float, float]:
    """Pixel-weighted mean and standard deviation over float images (float64 sums)."""
    total = 0.0
    total_sq = 0.0
    count = 0
    for img in images:
        a = np.asarray(img, dtype=np.float64)
        total += float(a.sum())
        total_sq += float(np.square(a).sum())
        count += a.size
    if count == 0:
        raise ValueError("no pixels")
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return mean, math.sqrt(var) if var > 0 else 1.0


def _val_seed(config: "TrainConfig") -> int:
    return config.seed if config.val_seed is None else config.val_seed


def carve_validation(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (train, validation) with a seeded permutation; at least one of each."""
    ids = list(ids)
    if fraction <= 0:
        return ids, []
    n_val = max(1, int(round(fraction * len(ids))))
    if len(ids) - n_val < 1:
        raise InputError(f"--val-fraction {fraction}: leaves no training image out of {len(ids)}")
    order = sample_rng(seed, 0x7A1).permutation(len(ids))
    val_set = {ids[i] for i in order[:n_val]}
    return [i for i in ids if i not in val_set], [i for i in ids if i in val_set]


# --------------------------------------------------------------------------------------------
# Data


class _Source:
    """Training or validation images read once: ids (namespaced), raw images, boolean masks."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []


def _namespaces(roots: Sequence[str]) -> list[str]:
    names: list[str] = []
    for root in roots:
        base = Path(root).resolve().name or "dataset"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _select_ids(config: TrainConfig):
    """Open the datasets and choose the (namespaced) training and validation ids."""
    datasets = []
    for root in config.datasets:
        if not Path(root).is_dir():
            raise InputError(f"{root}: dataset folder not found")
        datasets.append(open_dataset(root))
    names = _namespaces(config.datasets)
    train_ids: list[str] = []
    val_ids: list[str] = []
    for name, ds in zip(names, datasets):
        ids = list(ds.ids(config.split))
        if not ids:
            raise InputError(f"{ds.root}: split {config.split!r} is empty")
        train_ids += [f"{name}/{i}" for i in ids]
        if config.val_split is not None:
            val_ids += [f"{name}/{i}" for i in ds.ids(config.val_split)]
    if config.val_split is None:
        train_ids, val_ids = carve_validation(train_ids, config.val_fraction, _val_seed(config))
    overlap = set(train_ids) & set(val_ids)
    if overlap:
        raise InputError(
            f"--val-split {config.val_split}: {len(overlap)} id(s) also in the training split "
            f"(e.g. {sorted(overlap)[0]}); validation ids must be disjoint from training ids"
        )
    # Validation must never see an id of the test split that goes with the training split
    # (same folder: "train" -> "test", "dnanet_50_50/train" -> "dnanet_50_50/test").
    val_set = set(val_ids)
    family = config.split.rpartition("/")[0]
    for name, ds in zip(names, datasets):
        for split in ds.splits():
            if split.rpartition("/")[0] != family or not _is_test_split(split):
                continue
            leaked = val_set & {f"{name}/{i}" for i in ds.ids(split)}
            if leaked:
                raise InputError(
                    f"{config.datasets[names.index(name)]}: {len(leaked)} validation id(s) belong to "
                    f"the test split {split!r} (e.g. {sorted(leaked)[0]}); validation never uses test data"
                )
    return dict(zip(names, datasets)), train_ids, val_ids


def _is_test_split(name: str) -> bool:
    """``test``, ``x/test``, ``test_NUAA-SIRST``... (not ``trainvaltest``, which holds everything)."""
    return name.rpartition("/")[2].lower().startswith("test")


def _read(datasets: dict, ids: Sequence[str], skipped: list[str] | None = None, gray: str = "auto") -> _Source:
    source = _Source()
    for nid in ids:
        name, _, image_id = nid.partition("/")
        try:
            image, mask = datasets[name].read_pair(image_id, gray=gray)
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append(f"{nid}: {exc}")
            continue
        source.ids.append(nid)
        source.images.append(image)
        source.masks.append(np.asarray(mask, dtype=bool))
    return source


# --------------------------------------------------------------------------------------------
# Safe state (de)serialisation: tensors in safetensors, structure in JSON, no pickle


def flatten_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts, lists, tuples, tensors, scalars) into JSON + named tensors.

    Tensors are replaced by ``{"__tensor__": name}``, tuples by ``{"__tuple__": [...]}``, dicts
    with non-string keys by ``{"__dict__": [[key, value], ...]}``. The inverse is
    :func:`unflatten_state`.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(value, path):
        if isinstance(value, torch.Tensor):
            tensors[path] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": path}
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: walk(v, f"{path}.{k}") for k, v in value.items()}
            return {"__dict__": [[walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")] for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, tuple):
            return {"__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot serialise {type(value).__name__} at {path}")

    return walk(obj, prefix), tensors


def unflatten_state(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(structure, dict):
        if set(structure) == {"__tensor__"}:
            return tensors[structure["__tensor__"]]
        if set(structure) == {"__tuple__"}:
            return tuple(unflatten_state(v, tensors) for v in structure["__tuple__"])
        if set(structure) == {"__dict__"}:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in structure["__dict__"]}
        return {k: unflatten_state(v, tensors) for k, v in structure.items()}
    if isinstance(structure, list):
        return [unflatten_state(v, tensors) for v in structure]
    return structure


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a resume state as one safetensors file (structure JSON in its metadata), atomically."""
    structure, tensors = flatten_state(state, "s")
    meta = {_STATE_KEY: json.dumps(structure), "format": "irstd-train-state", "version": str(_STATE_VERSION)}
    write_bytes(path, _st_save(tensors, metadata=meta))


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state` (no pickle involved)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = _st_load(Path(path).read_bytes())
        structure = json.loads(meta[_STATE_KEY])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: not a readable training state ({type(exc).__name__})") from None
    return unflatten_state(structure, tensors)


# --------------------------------------------------------------------------------------------
# Events and results


@dataclass
class TrainEvent:
    """A progress event sent to the ``progress`` callback of :func:`train` (rank 0 only).

    ``kind`` is one of ``start``, ``step``, ``epoch``, ``warning``, ``interrupted``, ``done``.
    """

    kind: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    metrics: dict[str, float] | None = None
    message: str = ""
    run_dir: str | None = None


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    epochs_done: int
    interrupted: bool
    best_miou: float | None
    best_epoch: int | None
    last_metrics: dict[str, Any]
    train_ids: list[str]
    val_ids: list[str]
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Run folder and logging


def _next_run_dir(base: Path, name: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        candidate = base / (name if k == 1 else f"{name}-{k}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            k += 1


def _prepare_run_dir(config: TrainConfig) -> tuple[Path, bool]:
    """Create/choose the run folder; returns (folder, has_state)."""
    if config.out is None:
        return _next_run_dir(Path("runs") / "train", config.model), False
    out = Path(config.out)
    if config.resume:
        if not out.is_dir():
            raise InputError(f"{out}: no run folder to resume")
        return out, (out / STATE_FILE).is_file()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: run folder exists and is not empty; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out, False


class _Log:
    """Plain lines appended to ``train.log`` (opened per line: survives ``kill -9``)."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, message: str) -> None:
        if self.path is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")


_METRIC_COLUMNS = ["epoch", "loss", "lr", "val_miou", "val_niou", "val_pd", "val_fa", "time_s"]


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop rows of epochs not covered by the saved state (written before a crash)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows = [r for r in rows if r.get("epoch", "").isdigit() and int(r["epoch"]) <= epochs_done]
    buf = _pyio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------
# Distributed plumbing


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this call initialised the process group

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_dist(device_kind: str) -> _Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1), gloo on CPU, nccl on CUDA."""
    if dist.is_available() and dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    backend = "nccl" if device_kind == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owned=True)


def _broadcast(value: Any, d: _Dist) -> Any:
    if d.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _any(flag: bool, d: _Dist, device: torch.device) -> bool:
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _barrier(d: _Dist) -> None:
    if d.world > 1:
        dist.barrier()


# --------------------------------------------------------------------------------------------
# The training run


def _choose_device(config: TrainConfig, d: _Dist) -> torch.device:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available (use --device auto or cpu)")
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        index = d.local_rank if d.world > 1 else torch.cuda.current_device()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def _crops_on_device(device: torch.device) -> bool:
    """Whether the training crops are cut on the device (:class:`DeviceCrops`): on CUDA."""
    return device.type == "cuda"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:  # pragma: no cover - runs in DataLoader workers
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(np.random.get_state(legacy=False), default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)),
        "python": json.dumps(random.getstate()),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np_state = json.loads(state["numpy"])
    np.random.set_state(np_state)
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _input_channels(model) -> int:
    return int(model.input_mean.shape[1]) if model.input_mean.ndim == 4 else 1


def _validate(model, source: _Source, device: torch.device, bit_depth, input_range, in_chans: int) -> dict[str, float]:
    """Full-resolution validation: ``irstd.models.predict`` per image, the shared metrics engine."""
    evaluator = Evaluator(threshold=0.5, sweep=None, keep_per_image=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for image_id, image, mask in zip(source.ids, source.images, source.masks):
                scores = predict(model, to_float(image, bit_depth, input_range))
                evaluator.update(scores, mask, image_id=image_id)
    finally:
        model.train(was_training)
    summary = evaluator.summary()
    return {k: float(summary[k]) for k in ("miou", "niou", "pd", "fa")}


def _weights_metadata(config, *, epoch, mean, std, in_chans, train_ids, val_ids, names, command, kind, metrics, d, init_sha256) -> dict[str, str]:
    bits = config.bit_depth or 16
    data = [
        {"root": str(Path(root).resolve()), "name": name, "split": config.split}
        for root, name in zip(config.datasets, names)
    ]
    return {
        "variant": config.model,
        "input_mean": repr(mean),
        "input_std": repr(std),
        "input_channels": str(in_chans),
        "bit_depth_rule": f"irstd.intensity.to_float(bit_depth={config.bit_depth}): uint8/255, uint16/(2**{bits}-1) clipped, float as is",
        "input_range": config.input_range,  # canonical since train()
        "train_data": json.dumps(data),
        "train_split": config.split,
        "train_ids": str(len(train_ids)),
        "train_ids_sha256": ids_hash(train_ids),
        "val_split": config.val_split if config.val_split is not None else f"fraction {config.val_fraction} of {config.split} (seed {_val_seed(config)})",
        "val_ids": str(len(val_ids)),
        "val_ids_sha256": ids_hash(val_ids),
        "epoch": str(epoch),
        "checkpoint": kind,
        "val_metrics": json.dumps(metrics or {}),
        "seed": str(config.seed),
        "world_size": str(d.world),
        "config": json.dumps(config.to_dict(run_fields=False)),
        "init_weights_sha256": init_sha256,
        "versions": json.dumps(versions()),
        "command": command,
    }


def train(
    config: TrainConfig,
    progress: Callable[[TrainEvent], Any] | None = None,
    stop: threading.Event | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train a CgriNet variant as described by ``config`` (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
    progress : callable, optional
        Receives :class:`TrainEvent` objects (rank 0 only). Never required.
    stop : threading.Event, optional
        When set, training stops at the next step boundary and saves the exact mid-epoch state
        (as SIGINT does; a SIGINT handler is installed while training in the main thread).
    command : str, optional
        Command line recorded in the metadata (default: ``sys.argv``).

    Returns
    -------
    TrainResult

    Notes
    -----
    Resume is exact on CPU with a fixed seed: ``stop`` (or Ctrl-C) saves the state at a step
    boundary, a ``kill -9`` loses the epoch in progress (the state saved at the end of the last
    epoch is used). Under DDP (``torchrun``) each process trains on its shard with
    ``config.batch_size`` images per step; rank 0 validates, logs and writes the files.
    """
    _check_config(config)
    config = dataclasses.replace(
        config,
        datasets=[str(Path(p).resolve()) for p in config.datasets],
        pretrained_backbone=_resolve_backbone(config.pretrained_backbone),
        init_weights=_resolve_model_file(config.init_weights, "--init-weights"),
        teachers=[_resolve_model_file(t, "--teacher") for t in config.teachers],
        input_range=parse_input_range(config.input_range),
    )
    if config.init_weights:
        config = dataclasses.replace(config, model=_init_model_name(config))
    emit = progress or (lambda event: None)
    command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    wants_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    d = _setup_dist("cuda" if wants_cuda else "cpu")
    try:
        return _train(config, emit if d.main else (lambda event: None), stop, command, d)
    finally:
        if d.owned and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, emit, stop, command: str, d: _Dist) -> TrainResult:
    device = _choose_device(config, d)
    warn = lambda msg: emit(TrainEvent("warning", message=msg))  # noqa: E731
    use_amp = config.amp and device.type == "cuda"
    if config.amp and not use_amp:
        warn("--amp needs CUDA; training in float32 on CPU")

    # Validate the inputs before creating anything on disk.
    _seed_everything(config.seed)
    model = _build_model(config)
    init_sha256 = ""
    if config.init_weights:
        if model.new_tensors:
            warn(f"--init-weights: {len(model.new_tensors)} tensor(s) of the extended model start fresh (e.g. {model.new_tensors[0]})")
        init_sha256 = sha256_file(config.init_weights)
    try:
        loss_fn = create_loss(config.loss)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"--loss {config.loss}: unknown loss ({exc})") from None
    datasets, train_ids, val_ids = _select_ids(config)
    names = list(datasets)

    skipped: list[str] | None = [] if config.skip_errors else None
    train_src = _read(datasets, train_ids, skipped, config.gray)
    val_src = _read(datasets, val_ids, skipped, config.gray)
    if skipped:
        train_ids, val_ids = list(train_src.ids), list(val_src.ids)
        for problem in skipped:
            warn(f"skipped {problem}")
        if not train_ids:
            raise InputError(f"--dataset: no readable training image ({len(skipped)} skipped)")
    if not d.main:
        val_src = _Source()  # rank 0 alone validates
    # Run folder (rank 0 decides, the others follow).
    run_dir, has_state, error = None, False, None
    if d.main:
        try:
            run_dir, has_state = _prepare_run_dir(config)
        except InputError as exc:
            error = str(exc)
    run_dir, has_state, error = _broadcast((run_dir, has_state, error), d)
    if error:
        raise InputError(error)
    log = _Log(run_dir / "train.log" if d.main else None)

    saved_state = None
    if config.resume and has_state:
        saved_state = load_state(run_dir / STATE_FILE)
        _check_resume(config, saved_state, d)
        if saved_state.get("init_weights_sha256", "") != init_sha256:
            raise InputError(
                f"--resume: {config.init_weights} is not the file the run started from "
                f"(sha256 {init_sha256[:12]}, the run's {str(saved_state.get('init_weights_sha256'))[:12]})"
            )
    elif config.resume:
        warn(f"{run_dir}: no saved state yet; starting from the first epoch")
        if d.main:
            _truncate_metrics(run_dir / "metrics.csv", 0)

    teachers_sha256 = [sha256_file(t) for t in config.teachers]
    if saved_state is not None and saved_state.get("teachers_sha256", []) != teachers_sha256:
        raise InputError("--resume: the --teacher files are not the ones the run started with (sha256 differs)")
    if saved_state is not None and (
        saved_state["train_ids_sha256"] != ids_hash(train_ids) or saved_state["val_ids_sha256"] != ids_hash(val_ids)
    ):
        raise InputError(f"{run_dir}: the training/validation ids differ from the saved run (dataset changed on disk?)")
    if config.init_weights:  # fine-tuning keeps the normalisation the weights were trained with
        mean, std = float(model.input_mean.flatten()[0]), float(model.input_std.flatten()[0])
    else:
        mean, std = compute_mean_std([to_float(img, config.bit_depth, config.input_range) for img in train_src.images])

    if d.main:
        write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(run_fields=False), sort_keys=False))
        ids_doc = {
            "train": {"count": len(train_ids), "sha256": ids_hash(train_ids), "ids": train_ids},
            "val": {"count": len(val_ids), "sha256": ids_hash(val_ids), "ids": val_ids},
            "skipped": skipped or [],
        }
        write_text(run_dir / "ids.json", json.dumps(ids_doc, indent=1))

    # Model normalisation, optimiser.
    if not config.init_weights:
        with torch.no_grad():
            model.input_mean.fill_(mean)
            model.input_std.fill_(std)
        if isinstance(getattr(model, "model_args", None), dict):  # keep the rebuild arguments in step
            model.model_args["input_mean"] = [mean] * _input_channels(model)
            model.model_args["input_std"] = [std] * _input_channels(model)
    model.to(device)
    if device.type == "cpu":  # 1.13x the training images/s of the packaged architecture on 2 cores
        model.to(memory_format=torch.channels_last)
    model.train()
    in_chans = _input_channels(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    teachers = load_teachers(config.teachers, config.input_range, device, config.teacher_tta) if config.teachers else None

    sampler = EpochSampler(len(train_ids), config.seed, d.rank, d.world, config.batch_size)
    steps_per_epoch = math.ceil(sampler.per_rank / config.batch_size)
    total_iters = steps_per_epoch * config.epochs

    # Counters (restored on resume).
    epochs_done, step_in_epoch, iteration = 0, 0, 0
    loss_sum, loss_count = 0.0, 0
    best_miou, best_epoch = None, None
    last_metrics: dict[str, Any] = {}
    if saved_state is not None:
        model.load_state_dict(saved_state["model"])
        optimizer.load_state_dict(saved_state["optimizer"])
        epochs_done = saved_state["epochs_done"]
        step_in_epoch = saved_state["step_in_epoch"]
        iteration = saved_state["iteration"]
        loss_sum, loss_count = saved_state["loss_sum"], saved_state["loss_count"]
        best_miou, best_epoch = saved_state["best_miou"], saved_state["best_epoch"]
        last_metrics = saved_state.get("last_metrics") or {}
        _set_rng_state(saved_state["rng"], device)  # every rank draws the same numbers
        if d.main:
            _truncate_metrics(run_dir / "metrics.csv", epochs_done)
        log(f"resumed at epoch {epochs_done + 1} step {step_in_epoch} (iteration {iteration})")
    ema = None
    if config.ema is not None:
        from timm.utils import ModelEmaV3

        # From scratch the average warms up (timm's decay 1 - (1 + step)^(-2/3), capped at
        # --ema) so that it follows the first steps instead of holding the random weights.
        ema = ModelEmaV3(model, decay=config.ema, use_warmup=not config.init_weights)
        if saved_state is not None and saved_state.get("ema") is not None:
            ema.module.load_state_dict(saved_state["ema"])
    kept = model if ema is None else ema.module  # what is validated and saved
    if config.epochs < epochs_done or (config.epochs == epochs_done and step_in_epoch > 0):
        raise InputError(f"--epochs {config.epochs}: the run already completed {epochs_done} epoch(s)")

    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop and batch sizes
    step_fn, note = make_step(config.step, net, loss_fn, optimizer, device, world=d.world, amp=use_amp,
                              teacher=teachers, distill_weight=config.distill_weight, warn=warn)
    if note:
        warn(note)
    scaler = step_fn.scaler
    if scaler is not None and saved_state is not None and saved_state.get("scaler"):
        scaler.load_state_dict(saved_state["scaler"])

    dataset = CropDataset(train_src.images, train_src.masks, config.crop, config.seed, config.positive_prob, config.bit_depth, fill=mean,
                          input_range=config.input_range, scale_range=config.scale_range)
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    device_crops = DeviceCrops(dataset, device) if _crops_on_device(device) else None
    if device_crops is not None and config.workers:
        warn(f"--workers {config.workers}: not used, the crops are cut on {device}")

    def batches():
        if device_crops is not None:
            keys = list(sampler)
            for start in range(0, len(keys), config.batch_size):
                yield device_crops.batch(keys[start : start + config.batch_size])
            return
        yield from torch.utils.data.DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=sampler,
            num_workers=config.workers,
            worker_init_fn=_seed_worker,
            generator=generator,
            drop_last=False,
            persistent_workers=False,
        )

    def state_dict_now(epochs_done_, step_, metrics_) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "model": model.state_dict(),
            "ema": None if ema is None else ema.module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epochs_done": epochs_done_,
            "step_in_epoch": step_,
            "iteration": iteration,
            "loss_sum": loss_sum,
            "loss_count": loss_count,
            "best_miou": best_miou,
            "best_epoch": best_epoch,
            "last_metrics": metrics_,
            "rng": _rng_state(device),
            "world_size": d.world,
            "init_weights_sha256": init_sha256,
            "teachers_sha256": teachers_sha256,
            "steps_per_epoch": steps_per_epoch,
            "config": config.to_dict(run_fields=False),
            "train_ids_sha256": ids_hash(train_ids),
            "val_ids_sha256": ids_hash(val_ids),
            "input_mean": mean,
            "input_std": std,
        }

    def save_all(epochs_done_, step_, metrics_) -> None:
        if not d.main:
            return
        state = state_dict_now(epochs_done_, step_, metrics_)
        save_state(run_dir / STATE_FILE, state)
        readable = {k: v for k, v in state.items() if k not in ("model", "ema", "optimizer", "rng", "scaler")}
        write_text(run_dir / "state.json", json.dumps(readable, indent=1))

    def weights(kind: str, epoch: int, metrics_) -> None:
        meta = _weights_metadata(
            config, epoch=epoch, mean=mean, std=std, in_chans=in_chans, train_ids=train_ids, val_ids=val_ids,
            names=names, command=command, kind=kind, metrics=metrics_, d=d, init_sha256=init_sha256,
        )
        save_weights(kept, run_dir / f"{kind}.safetensors", meta)

    # SIGINT/SIGTERM → graceful stop at the next step boundary (a second signal: default action).
    stop = stop or threading.Event()
    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def _on_signal(signum, frame):
            stop.set()
            signal.signal(signum, old_handlers.get(signum) or signal.SIG_DFL)

        for signum in (signal.SIGINT, signal.SIGTERM):
            old_handlers[signum] = signal.signal(signum, _on_signal)

    emit(TrainEvent(
        "start", epoch=epochs_done + 1, epochs=config.epochs, steps=steps_per_epoch, run_dir=str(run_dir),
        message=f"{len(train_ids)} training / {len(val_ids)} validation images, {steps_per_epoch} steps per epoch, "
        f"device {device}{f', {d.world} processes' if d.world > 1 else ''}, input mean {mean:.4f} std {std:.4f}",
    ))
    log(f"run {run_dir}: model {config.model}, {len(train_ids)} train / {len(val_ids)} val images, "
        f"{steps_per_epoch} steps/epoch, device {device}, world {d.world}, mean {mean:.6f} std {std:.6f}")

    interrupted = False
    last_saved = time.monotonic()
    session_start = time.perf_counter()
    session_iters = 0
    try:
        for epoch in range(epochs_done + 1, config.epochs + 1):
            sampler.set_epoch(epoch, start=step_in_epoch * config.batch_size)
            epoch_start = time.perf_counter()
            if step_in_epoch == 0:
                loss_sum, loss_count = 0.0, 0
            step = step_in_epoch
            lr = poly_lr(config.lr, iteration, total_iters)
            for x, y in batches():
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if in_chans != 1:
                    x = x.expand(-1, in_chans, -1, -1)
                lr = poly_lr(config.lr, iteration, total_iters)
                value = float(step_fn(x, y, lr))
                if ema is not None:  # the warm-up needs the step count; a fine-tune averages at --ema throughout
                    ema.update(model, step=iteration + 1 if ema.use_warmup else None)
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at epoch {epoch} step {step + 1}")
                loss_sum += value * x.shape[0]
                loss_count += x.shape[0]
                step += 1
                iteration += 1
                session_iters += 1
                elapsed = time.perf_counter() - session_start
                ips = session_iters * config.batch_size * d.world / elapsed if elapsed > 0 else None
                eta = (total_iters - iteration) * elapsed / session_iters
                emit(TrainEvent("step", epoch=epoch, epochs=config.epochs, step=step, steps=steps_per_epoch,
                                loss=value, lr=lr, images_per_s=ips, eta_s=eta))
                if _any(stop.is_set(), d, device) and step < steps_per_epoch:
                    save_all(epoch - 1, step, last_metrics)
                    interrupted = True
                    break
            if interrupted:
                msg = f"interrupted at epoch {epoch} step {step}/{steps_per_epoch}; state saved, continue with --resume"
                log(msg)
                emit(TrainEvent("interrupted", epoch=epoch, epochs=config.epochs, step=step, steps=steps_per_epoch, message=msg, run_dir=str(run_dir)))
                break
            step_in_epoch = 0
            # Epoch mean loss over every process.
            totals = torch.tensor([loss_sum, float(loss_count)], dtype=torch.float64)
            if d.world > 1:
                totals = totals.to(device)
                dist.all_reduce(totals)
            epoch_loss = float(totals[0] / max(totals[1], 1))
            stopping = _any(stop.is_set(), d, device) and epoch < config.epochs
            metrics: dict[str, Any] = {}
            if d.main:
                if val_ids and (epoch % config.val_every == 0 or epoch == config.epochs):
                    metrics = _validate(kept, val_src, device, config.bit_depth, config.input_range, in_chans)
                epoch_time = time.perf_counter() - epoch_start
                row = {"epoch": epoch, "loss": f"{epoch_loss:.6f}", "lr": f"{lr:.6g}", "time_s": f"{epoch_time:.2f}"}
                for key in ("miou", "niou", "pd", "fa"):
                    row[f"val_{key}"] = f"{metrics[key]:.6g}" if key in metrics else ""
                _append_metrics(run_dir / "metrics.csv", row)
                if metrics and (best_miou is None or metrics["miou"] > best_miou):
                    best_miou, best_epoch = metrics["miou"], epoch
                    weights("best", epoch, metrics)
                last_metrics = {"epoch": epoch, "loss": epoch_loss, **metrics}
                if stopping or epoch == config.epochs or time.monotonic() - last_saved >= config.state_interval:
                    weights("last", epoch, metrics)
                    save_all(epoch, 0, last_metrics)
                    last_saved = time.monotonic()
                val_text = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                log(f"epoch {epoch}/{config.epochs} loss {epoch_loss:.5f} lr {lr:.3g} {val_text} time {epoch_time:.1f}s")
                emit(TrainEvent("epoch", epoch=epoch, epochs=config.epochs, steps=steps_per_epoch, loss=epoch_loss,
                                lr=lr, metrics=metrics or None, run_dir=str(run_dir)))
            epochs_done = epoch
            _barrier(d)
            if stopping:
                interrupted = True
                msg = f"interrupted after epoch {epoch}; state saved, continue with --resume"
                log(msg)
                emit(TrainEvent("interrupted", epoch=epoch, epochs=config.epochs, message=msg, run_dir=str(run_dir)))
                break
    finally:
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)

    if not interrupted:
        best = "no validation" if best_miou is None else f"best validation mIoU {best_miou:.4f} at epoch {best_epoch}"
        log(f"done: {epochs_done} epochs, {best}")
        emit(TrainEvent("done", epoch=epochs_done, epochs=config.epochs, run_dir=str(run_dir),
                        metrics=last_metrics or None, message=f"{epochs_done} epochs, {best}"))
    return TrainResult(run_dir, epochs_done, interrupted, best_miou, best_epoch, last_metrics, train_ids, val_ids, skipped or [])


def _resolve_model_file(path: str | None, option: str) -> str | None:
    """Absolute path of a model file option; ``packaged`` and ``paper`` name weights shipped with
    irstd (:func:`irstd.methods.packaged_weights`)."""
    if not path:
        return None
    from irstd.methods import PACKAGED_NAMES, packaged_weights

    if path in PACKAGED_NAMES:
        try:
            return str(packaged_weights(path))
        except InputError as exc:
            raise InputError(f"{option} {exc}") from None
    return str(Path(path).resolve())


def _resolve_backbone(value: str | None) -> str | None:
    """``--pretrained-backbone``: ``imagenet`` as it is, a file as its absolute path."""
    if not value or value == IMAGENET:
        return value or None
    return str(Path(value).resolve())


def _init_model_name(config: TrainConfig) -> str:
    """The registry name recorded in ``config.init_weights`` (checked against ``config.model``)."""
    meta = read_weights_metadata(config.init_weights)
    name = meta.get("model", "")
    if config.model and config.model != name:
        raise InputError(f"--model {config.model}: {config.init_weights} holds a {name} model (leave --model out to use it)")
    return name


def _build_model(config: TrainConfig):
    """The model to train: ``config.init_weights`` (extended by the ablations) or a fresh registry
    model with the run's ablations and encoder weights."""
    overrides = _ablation_overrides(config.ablation)
    try:
        if config.init_weights:
            return load_model(config.init_weights, overrides=overrides)
        if config.model not in list_models():
            raise InputError(f"--model {config.model}: unknown model (known: {', '.join(sorted(list_models()))})")
        if config.pretrained_backbone:
            if config.pretrained_backbone != IMAGENET and not Path(config.pretrained_backbone).is_file():
                raise InputError(f"{config.pretrained_backbone}: pretrained backbone file not found")
            overrides["pretrained_backbone"] = config.pretrained_backbone
        return create_model(config.model, **overrides)
    except TypeError as exc:
        raise InputError(f"--ablation {' '.join(config.ablation)}: {exc}") from None


def _check_resume(config: TrainConfig, state: dict[str, Any], d: _Dist) -> None:
    saved = {"input_range": "bits", **state["config"]}  # runs from before input_range: bits
    now = config.to_dict(run_fields=False)
    changed = [k for k in now if k not in RESUMABLE_FIELDS and k in saved and _norm(saved[k]) != _norm(now[k])]
    if changed:
        detail = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise InputError(f"--resume: incompatible change(s) from the saved run ({detail}); only --epochs, --val-every, --device, --amp, --step, --state-interval, --workers, --skip-errors may change")
    if state["step_in_epoch"] and state["world_size"] != d.world:
        raise InputError(f"--resume: the run stopped mid-epoch with {state['world_size']} process(es); resume with the same number")


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value
