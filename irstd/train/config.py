"""The training configuration: :class:`TrainConfig`, reading ``config.yaml``, checks, resume rules."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from irstd.errors import InputError
from irstd.intensity import parse_input_range
from irstd.io import check_gray
from irstd.train.sampling import check_scale_range
from irstd.train.steps import STEP_MODES
from irstd.tta import check_tta

__all__ = [
    "RESUMABLE_FIELDS",
    "RUN_FIELDS",
    "TrainConfig",
    "ablation_overrides",
    "check_config",
    "check_resume_config",
    "is_test_split",
    "load_config",
    "resolve_config",
    "val_seed",
]

#: Fields not saved in ``config.yaml`` (where the run lives, not how it trains).
RUN_FIELDS = ("out", "resume")
#: Fields that may differ between a run and its ``--resume``; every other field must match.
RESUMABLE_FIELDS = ("epochs", "val_every", "device", "amp", "step", "state_interval", "workers", "skip_errors", *RUN_FIELDS)


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
    loss : str, optional
        Name for ``irstd.losses.create_loss`` (``unite`` = 2·IoU + 7·BCE on every side output).
        None (default): the network's own loss from the registry (``unite`` for CgriNet, the
        SoftIoU ``iou`` for ACM, ALCNet, RDIAN ...; :func:`default_loss`).
    ablation : list of str
        Model overrides ``key=value`` (value parsed as YAML), passed to ``create_model``.
    seed : int
        Seeds Python, NumPy, torch, the crop sampler and (unless ``val_seed`` is given) the
        validation carve-out.
    teachers : list of str
        Model files (written by ``irstd train``; ``"packaged"``: the shipped weights) whose mean
        probability on each training crop is a soft target (:mod:`irstd.train.distill`); empty: none.
    distill_weight : float
        Weight of the loss against the teachers' probabilities (added to the loss on the masks).
    teacher_tta : {"none", "flip", "dihedral"}
        Views of each crop the teachers' probabilities are averaged over (:mod:`irstd.tta`).
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses CUDA when available. On CUDA the training images are held on the GPU and
        the crops cut there (:class:`irstd.train.sampling.DeviceCrops`); on the CPU a DataLoader cuts
        them (:class:`irstd.train.sampling.CropDataset`); both give the same crops.
    amp : bool
        Mixed precision on CUDA: bfloat16 autocast (float16 with gradient scaling on GPUs without
        bfloat16); ignored with a warning on CPU.
    step : {"auto", "eager", "graph"}
        How the training step runs (:func:`irstd.train.steps.make_step`): ``graph`` records it once as
        a CUDA graph and replays it (CUDA, one process); ``auto`` (default) does so where it can
        and runs eagerly elsewhere (the CPU, DDP).
    state_interval : float
        Seconds between writes of the resume state and ``last.safetensors`` (checked at the end
        of each epoch; 0: every epoch). Both are also written at the end; on interruption the
        state is, and ``last.safetensors`` only when the stop falls at an epoch's end (it holds
        whole epochs).
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
    loss: str | None = None
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
            for name in RUN_FIELDS:
                data.pop(name, None)
        return data


_FIELD_NAMES = {f.name for f in dataclasses.fields(TrainConfig)}
#: Each field's annotation as text (``from __future__ import annotations``), e.g. ``"int | None"``.
_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``config.yaml`` (a mapping of :class:`TrainConfig` fields).

    Parameters
    ----------
    path : str or os.PathLike
        The YAML file.

    Returns
    -------
    dict
        The fields found in the file (unknown keys raise :class:`~irstd.errors.InputError`).
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a config file (a folder or a device)")
    if path.is_file() and path.stat().st_size > _MAX_CONFIG_BYTES:
        raise InputError(f"{path}: not a config file (over {_MAX_CONFIG_BYTES // 1024} KiB)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a config file (not UTF-8 text)") from None
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise InputError(f"{path}: cannot read config ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: config must be a mapping of option names to values")
    unknown = sorted(str(k) for k in set(data) - _FIELD_NAMES)
    if unknown:
        raise InputError(f"{path}: unknown config key(s): {', '.join(unknown)}")
    for key, value in data.items():
        expected = _FIELD_TYPES[key]
        if not _type_ok(value, expected):
            raise InputError(f"{path}: {key}: expected {expected}, got {value!r}"[:300])
    return data


#: A config file larger than this is not one (``--config /dev/zero`` or a binary file).
_MAX_CONFIG_BYTES = 1 << 20


def _type_ok(value: Any, expected: str) -> bool:
    """Whether a YAML value fits a field's annotation (``int``, ``float | None``, ``list[str]`` ...)."""
    for option in (t.strip() for t in expected.split("|")):
        if option == "None" and value is None:
            return True
        if option == "bool" and isinstance(value, bool):
            return True
        if option == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option == "str" and isinstance(value, str):
            return True
        if option.startswith("list[") and isinstance(value, list):
            inner = option[len("list["):-1]
            if all(_type_ok(v, inner) for v in value):
                return True
    return False


def resolve_config(config_file: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`: defaults < ``config_file`` < ``overrides`` (None = not given).

    With ``resume=True`` and an ``out`` folder holding a ``config.yaml``, that saved config is the
    base instead of the defaults, so ``irstd train --out runs/x --resume`` needs no other option.

    Parameters
    ----------
    config_file : str or os.PathLike, optional
        A YAML config (:func:`load_config`).
    **overrides
        :class:`TrainConfig` fields; None values and empty lists count as not given.

    Returns
    -------
    TrainConfig
        The checked configuration.
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
    check_config(config)
    return config


def default_loss(config: TrainConfig) -> str:
    """The registry's training loss of the model a run trains (``unite`` when it is not registered)."""
    from irstd.models.registry import MODELS

    name = config.model
    if config.init_weights and not name:
        from irstd.model_file import read_weights_metadata
        from irstd.train.model import resolve_model_file

        name = read_weights_metadata(resolve_model_file(config.init_weights, "--init-weights")).get("model", "")
    spec = MODELS.get(name)
    return spec.loss if spec is not None else "unite"


def check_config(config: TrainConfig) -> None:
    """Refuse a configuration that cannot train (:class:`~irstd.errors.InputError` naming the option).

    ``config.scale_range`` is replaced by its checked form.
    """
    if not config.datasets:
        raise InputError("--dataset: at least one dataset folder is required")
    if not config.model and not config.init_weights:
        raise InputError("--model: a model name is required (see irstd.models.list_models())")
    if config.loss is None:
        config.loss = default_loss(config)
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
    _check_splits(config)
    if config.resume and not config.out:
        raise InputError("--resume: needs --out, the run folder to continue")
    for item in config.ablation:
        if "=" not in item:
            raise InputError(f"--ablation {item}: expected key=value (e.g. use_cgm=false)")


def _check_splits(config: TrainConfig) -> None:
    if config.val_split is not None and is_test_split(config.val_split):
        raise InputError(
            f"--val-split {config.val_split}: refusing to validate on a test split (choosing the "
            "best checkpoint on test data inflates the reported numbers); use --val-fraction or a "
            "validation split"
        )
    if config.val_split is not None and config.val_split == config.split:
        raise InputError(f"--val-split {config.val_split}: same split as --split (validation ids must be disjoint)")


def is_test_split(name: str) -> bool:
    """``test``, ``x/test``, ``test_NUAA-SIRST``... (not ``trainvaltest``, which holds everything)."""
    return name.rpartition("/")[2].lower().startswith("test")


def val_seed(config: TrainConfig) -> int:
    """The seed of the validation carve-out: ``config.val_seed``, else ``config.seed``."""
    return config.seed if config.val_seed is None else config.val_seed


def ablation_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` items (value parsed as YAML) as ``create_model`` keyword arguments."""
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"--ablation {item}: cannot parse the value") from None
    return overrides


def check_resume_config(config: TrainConfig, saved: dict[str, Any]) -> None:
    """Refuse to resume a run saved with ``saved`` (its config dict) under another ``config``.

    Only the :data:`RESUMABLE_FIELDS` may differ; a run saved before ``input_range`` existed was
    trained by the bit depth rule (``bits``).
    """
    saved = {"input_range": "bits", **saved}
    now = config.to_dict(run_fields=False)
    changed = [k for k in now if k not in RESUMABLE_FIELDS and k in saved and _norm(saved[k]) != _norm(now[k])]
    if changed:
        detail = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        options = ", ".join("--" + k.replace("_", "-") for k in RESUMABLE_FIELDS if k not in RUN_FIELDS)
        raise InputError(f"--resume: incompatible change(s) from the saved run ({detail}); only {options} may change")


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value
