"""The resume state: one safetensors file (tensors) with its structure as JSON in the metadata.

:class:`RunState` holds the counters of a run (epoch, step, iteration, loss sums, best
validation); :meth:`RunState.snapshot` gathers them with the weights, the optimiser, the EMA
weights, the gradient scaler and the random number generators into the dict that
:func:`save_state` writes, and :meth:`RunState.restore` puts such a dict back. The file holds no
pickle: tensors are stored by safetensors, everything else as JSON (:func:`flatten_state`).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from irstd.errors import InputError
from irstd.io import write_bytes, write_text

__all__ = ["STATE_FILE", "RunState", "flatten_state", "load_state", "save_state", "unflatten_state", "write_run_state"]

#: The resume state's file name in the run folder.
STATE_FILE = "state.safetensors"
_STATE_KEY = "irstd_state"
_STATE_VERSION = 1
#: Entries of the state left out of its readable copy (``state.json``).
_BULKY_KEYS = ("model", "ema", "optimizer", "rng", "scaler")


@dataclass
class RunState:
    """The counters of a run, saved in the resume state and restored from it.

    Attributes
    ----------
    epochs_done : int
        Epochs completed.
    step_in_epoch : int
        Steps done in the epoch in progress (0 between epochs).
    iteration : int
        Steps done in the whole run (the poly schedule's clock).
    loss_sum, loss_count : float, int
        Sum of the batch losses (weighted by batch size) and images of the epoch in progress.
    best_miou, best_epoch : float or None, int or None
        The best validation mIoU so far and its epoch (``best.safetensors``).
    last_metrics : dict
        The last epoch's ``epoch``, ``loss`` and validation metrics.
    """

    epochs_done: int = 0
    step_in_epoch: int = 0
    iteration: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    best_miou: float | None = None
    best_epoch: int | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)

    def snapshot(self, *, model, ema, optimizer, scaler, device: torch.device, identity: dict[str, Any]) -> dict[str, Any]:
        """The resume state of this moment, as :func:`save_state` writes it.

        Parameters
        ----------
        model : torch.nn.Module
            The trained model (not its DDP wrapper).
        ema : timm.utils.ModelEmaV3 or None
            The weight average.
        optimizer : torch.optim.Optimizer
        scaler : torch.amp.GradScaler or None
        device : torch.device
            The training device (its random number generator is saved too).
        identity : dict
            What the run is (world size, file and id hashes, config, normalisation...): checked,
            not restored, by a resume.

        Returns
        -------
        dict
            ``version``, the four state dicts, the counters, ``rng``, then ``identity``.
        """
        return {
            "version": _STATE_VERSION,
            "model": model.state_dict(),
            "ema": None if ema is None else ema.module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "rng": _rng_state(device),
            **identity,
        }

    @classmethod
    def restore(cls, state: dict[str, Any], *, model, ema, optimizer, device: torch.device) -> RunState:
        """Put a saved state back into ``model``, ``ema``, ``optimizer`` and the random number
        generators (every DDP rank draws the same numbers); returns its counters.

        The gradient scaler is created with the training step, after this; the caller loads
        ``state["scaler"]`` into it.
        """
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
        _set_rng_state(state["rng"], device)
        counters = {f.name: state[f.name] for f in dataclasses.fields(cls)}
        counters["last_metrics"] = state.get("last_metrics") or {}
        return cls(**counters)


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
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise InputError(f"{path}: not a readable training state (truncated or corrupt: {type(exc).__name__}); "
                         f"the run cannot be resumed from it") from None
    try:
        return unflatten_state(structure, tensors)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"{path}: not a readable training state ({type(exc).__name__} in its structure)") from None


def write_run_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as the run's resume state (:data:`STATE_FILE`) and, without the tensors, as
    the readable ``state.json``."""
    save_state(run_dir / STATE_FILE, state)
    readable = {k: v for k, v in state.items() if k not in _BULKY_KEYS}
    write_text(run_dir / "state.json", json.dumps(readable, indent=1))


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
