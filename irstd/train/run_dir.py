"""The run folder: choosing it, ``config.yaml`` and ``ids.json``, ``train.log``, ``metrics.csv``, and
the metadata written into the weight files.
"""

from __future__ import annotations

import csv
import io as _pyio
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from irstd.data import ids_hash
from irstd.errors import InputError
from irstd.io import write_text
from irstd.provenance import versions
from irstd.train.config import TrainConfig, val_seed
from irstd.train.state import STATE_FILE

__all__ = ["RunLog", "append_metrics", "prepare_run_dir", "remove_failed_start", "truncate_metrics", "weights_metadata",
           "write_run_files"]

#: Columns of ``metrics.csv``.
METRIC_COLUMNS = ["epoch", "loss", "lr", "val_miou", "val_niou", "val_pd", "val_fa", "time_s"]


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


#: Files a run writes once it has trained: a folder holding any of them has work to lose.
PROGRESS_FILES = ("metrics.csv", "best.safetensors", "last.safetensors", "state.json", STATE_FILE)
#: Files a run writes before its first step (all a failed start leaves behind).
SETUP_FILES = ("config.yaml", "ids.json", "train.log")


def _failed_start(out: Path) -> bool:
    """Whether ``out`` holds only what a run writes before training (a start that failed)."""
    names = {f.name for f in out.iterdir() if not (f.name.startswith(".") and f.name.endswith(".tmp"))}
    return names <= set(SETUP_FILES)


def prepare_run_dir(config: TrainConfig) -> tuple[Path, bool]:
    """Create or choose the run folder.

    Parameters
    ----------
    config : TrainConfig
        ``out`` (None: ``runs/train/<model>``, auto-incremented) and ``resume``.

    Returns
    -------
    run_dir : Path
    has_state : bool
        Whether the folder holds a resume state (only with ``resume``).

    Raises
    ------
    InputError
        ``out`` holds another run (without ``resume``: a folder with only a failed start's
        :data:`SETUP_FILES` is started again); with ``resume``, no folder, or a run that has
        trained (:data:`PROGRESS_FILES`) but has no saved state: starting it again would
        replace its metrics and weights.
    """
    if config.out is None:
        return _next_run_dir(Path("runs") / "train", config.model), False
    out = Path(config.out)
    if config.resume:
        if not out.is_dir():
            raise InputError(f"{out}: no run folder to resume")
        if (out / STATE_FILE).is_file():
            return out, True
        trained = [name for name in PROGRESS_FILES if (out / name).exists()]
        if trained:
            raise InputError(
                f"{out}: --resume: no saved state ({STATE_FILE}) but the run has trained ({', '.join(trained)}); "
                f"it cannot be continued, and starting again would replace its files: choose another --out"
            )
        return out, False
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _failed_start(out))):
        raise InputError(f"{out}: run folder exists and is not empty; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out, False


def remove_failed_start(run_dir: Path, created: bool) -> None:
    """Remove what a run wrote before it failed to start (:data:`SETUP_FILES`), and its folder
    when the run created it and nothing else is in it: a failed start blocks nothing."""
    if not run_dir.is_dir() or not _failed_start(run_dir):
        return
    for name in SETUP_FILES:
        try:
            (run_dir / name).unlink()
        except FileNotFoundError:
            pass
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            pass


def write_run_files(run_dir: Path, config: TrainConfig, train_ids: list[str], val_ids: list[str], skipped: list[str]) -> None:
    """Write ``config.yaml`` (the config without ``out``/``resume``) and ``ids.json`` (the ids,
    their counts and hashes, the skipped pairs)."""
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(run_fields=False), sort_keys=False))
    ids_doc = {
        "train": {"count": len(train_ids), "sha256": ids_hash(train_ids), "ids": train_ids},
        "val": {"count": len(val_ids), "sha256": ids_hash(val_ids), "ids": val_ids},
        "skipped": skipped,
    }
    write_text(run_dir / "ids.json", json.dumps(ids_doc, indent=1))


class RunLog:
    """Plain lines appended to ``train.log`` (opened per line: survives ``kill -9``); None: no log."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, message: str) -> None:
        if self.path is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")


def truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop rows of ``metrics.csv`` of epochs not covered by the saved state (written before a crash)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows = [r for r in rows if r.get("epoch", "").isdigit() and int(r["epoch"]) <= epochs_done]
    buf = _pyio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one epoch's row to ``metrics.csv`` (header first in a new file), flushed to disk."""
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def weights_metadata(config: TrainConfig, *, epoch: int, mean: float, std: float, in_chans: int, train_ids: list[str],
                     val_ids: list[str], names: list[str], command: str, kind: str, metrics: dict[str, Any] | None,
                     world: int, init_sha256: str) -> dict[str, str]:
    """The metadata of a weight file written by training (``best`` or ``last``).

    Parameters
    ----------
    config : TrainConfig
        The resolved config (``config`` entry, without ``out``/``resume``).
    epoch : int
        The epoch the weights are from.
    mean, std : float
        The input normalisation.
    in_chans : int
        Input channels of the model.
    train_ids, val_ids : list of str
        The (namespaced) ids; their counts and hashes are recorded.
    names : list of str
        The namespace of each dataset root.
    command : str
        The command line of the run.
    kind : str
        ``best`` or ``last``.
    metrics : dict, optional
        The validation metrics of ``epoch``.
    world : int
        Processes of the run.
    init_sha256 : str
        SHA-256 of ``config.init_weights`` ("" without).

    Returns
    -------
    dict of str to str
    """
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
        "bit_depth": str(config.bit_depth) if config.bit_depth is not None else "none",
        "input_range": config.input_range,  # canonical since train()
        "train_data": json.dumps(data),
        "train_split": config.split,
        "train_ids": str(len(train_ids)),
        "train_ids_sha256": ids_hash(train_ids),
        "val_split": config.val_split if config.val_split is not None else f"fraction {config.val_fraction} of {config.split} (seed {val_seed(config)})",
        "val_ids": str(len(val_ids)),
        "val_ids_sha256": ids_hash(val_ids),
        "epoch": str(epoch),
        "checkpoint": kind,
        "val_metrics": json.dumps(metrics or {}),
        "seed": str(config.seed),
        "world_size": str(world),
        "config": json.dumps(config.to_dict(run_fields=False)),
        "init_weights_sha256": init_sha256,
        "versions": json.dumps(versions()),
        "command": command,
    }
