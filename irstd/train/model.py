"""The model a run trains: a fresh registry model, or a model file to fine-tune, and its loss."""

from __future__ import annotations

from pathlib import Path

from irstd.errors import InputError
from irstd.losses import create_loss
from irstd.models import create_model, list_models, load_model, read_weights_metadata
from irstd.models.cgrinet import IMAGENET
from irstd.train.config import TrainConfig, ablation_overrides

__all__ = ["build_loss", "build_model", "init_model_name", "input_channels", "load_model_file", "resolve_backbone",
           "resolve_model_file"]


def resolve_model_file(path: str | None, option: str) -> str | None:
    """Absolute path of a model file option; ``packaged``, ``paper`` and a network family with
    packaged weights (``acm``, ``rdian`` ...) name weights shipped with irstd
    (:func:`irstd.models.packaged.packaged_weights`) unless a file of that name exists."""
    if not path:
        return None
    from irstd.models.packaged import PACKAGED_NAMES, packaged_weights
    from irstd.models.registry import families

    if (path in PACKAGED_NAMES or path in families()) and not Path(path).exists():
        try:
            return str(packaged_weights(path))
        except InputError as exc:
            raise InputError(f"{option} {exc}") from None
    return str(Path(path).resolve())


def resolve_backbone(value: str | None) -> str | None:
    """``--pretrained-backbone``: ``imagenet`` as it is, a file as its absolute path."""
    if not value or value == IMAGENET:
        return value or None
    return str(Path(value).resolve())


def init_model_name(config: TrainConfig) -> str:
    """The registry name recorded in ``config.init_weights`` (checked against ``config.model``)."""
    meta = read_weights_metadata(config.init_weights)
    name = meta.get("model", "")
    if config.model and config.model != name:
        raise InputError(f"--model {config.model}: {config.init_weights} holds a {name} model (leave --model out to use it)")
    return name


def load_model_file(path: str, option: str, **kwargs):
    """:func:`irstd.models.load_model` with every failure of the file's metadata as one
    :class:`~irstd.errors.InputError` naming the file (a number too large to build, a value of the
    wrong type such as ``channels: "abc"``), instead of a traceback or a huge allocation."""
    try:
        return load_model(path, **kwargs)
    except InputError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError, RuntimeError, MemoryError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"{option} {path}: its model metadata cannot build a model ({reason})") from None


def build_model(config: TrainConfig):
    """The model to train: ``config.init_weights`` (extended by the ablations) or a fresh registry
    model with the run's ablations and encoder weights."""
    overrides = ablation_overrides(config.ablation)
    try:
        if config.init_weights:
            if overrides:  # a TypeError is then the ablations' (below)
                return load_model(config.init_weights, overrides=overrides)
            return load_model_file(config.init_weights, "--init-weights")
        if config.model not in list_models():
            raise InputError(f"--model {config.model}: unknown model (known: {', '.join(sorted(list_models()))})")
        if config.pretrained_backbone:
            if config.pretrained_backbone != IMAGENET and not Path(config.pretrained_backbone).is_file():
                raise InputError(f"{config.pretrained_backbone}: pretrained backbone file not found")
            overrides["pretrained_backbone"] = config.pretrained_backbone
        return create_model(config.model, **overrides)
    except TypeError as exc:
        raise InputError(f"--ablation {' '.join(config.ablation)}: {exc}") from None


def build_loss(name: str):
    """``irstd.losses.create_loss(name)``, an unknown name as :class:`~irstd.errors.InputError`."""
    try:
        return create_loss(name)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"--loss {name}: unknown loss ({exc})") from None


def input_channels(model) -> int:
    """Input channels of a network (from its normalisation buffers)."""
    return int(model.input_mean.shape[1]) if model.input_mean.ndim == 4 else 1
