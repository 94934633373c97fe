"""The training data: which ids train and which validate, the images read once, their statistics.

Several dataset roots train on their union; their ids are namespaced ``<folder name>/<id>``. The
validation ids come from ``val_split`` or a seeded carve-out of the training ids, and never from
the test split that goes with the training split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irstd.data import open_dataset
from irstd.errors import InputError
from irstd.train.config import TrainConfig, is_test_split, val_seed
from irstd.train.sampling import sample_rng

__all__ = ["Source", "TrainData", "carve_validation", "compute_mean_std", "load_data", "read_source", "select_ids"]


@dataclass
class Source:
    """Training or validation images read once: ids (namespaced), raw images, boolean masks."""

    ids: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)


@dataclass
class TrainData:
    """What :func:`load_data` returns: the namespaces, the ids and images of both sets, the skipped pairs."""

    names: list[str]
    train_ids: list[str]
    val_ids: list[str]
    train: Source
    val: Source
    skipped: list[str]


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


def _namespaces(roots: Sequence[str]) -> list[str]:
    names: list[str] = []
    for root in roots:
        base = Path(root).resolve().name or "dataset"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def select_ids(config: TrainConfig) -> tuple[dict, list[str], list[str]]:
    """Open the datasets and choose the (namespaced) training and validation ids.

    Parameters
    ----------
    config : TrainConfig

    Returns
    -------
    datasets : dict
        Namespace -> opened dataset (:func:`irstd.data.open_dataset`).
    train_ids, val_ids : list of str
        Disjoint; no validation id belongs to the test split next to the training split.
    """
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
        train_ids, val_ids = carve_validation(train_ids, config.val_fraction, val_seed(config))
    overlap = set(train_ids) & set(val_ids)
    if overlap:
        raise InputError(
            f"--val-split {config.val_split}: {len(overlap)} id(s) also in the training split "
            f"(e.g. {sorted(overlap)[0]}); validation ids must be disjoint from training ids"
        )
    _check_no_test_ids(config, names, datasets, val_ids)
    return dict(zip(names, datasets)), train_ids, val_ids


def _check_no_test_ids(config: TrainConfig, names: list[str], datasets: list, val_ids: list[str]) -> None:
    """Validation must never see an id of the test split that goes with the training split
    (same folder: ``train`` -> ``test``, ``dnanet_50_50/train`` -> ``dnanet_50_50/test``)."""
    val_set = set(val_ids)
    family = config.split.rpartition("/")[0]
    for name, ds in zip(names, datasets):
        for split in ds.splits():
            if split.rpartition("/")[0] != family or not is_test_split(split):
                continue
            leaked = val_set & {f"{name}/{i}" for i in ds.ids(split)}
            if leaked:
                raise InputError(
                    f"{config.datasets[names.index(name)]}: {len(leaked)} validation id(s) belong to "
                    f"the test split {split!r} (e.g. {sorted(leaked)[0]}); validation never uses test data"
                )


def read_source(datasets: dict, ids: Sequence[str], skipped: list[str] | None = None, gray: str = "auto") -> Source:
    """Read the image/mask pairs of ``ids``; with a ``skipped`` list, unreadable pairs are listed there
    and left out instead of raising."""
    source = Source()
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


def load_data(config: TrainConfig, warn: Callable[[str], None], validates: bool = True) -> TrainData:
    """Choose the ids (:func:`select_ids`) and read their images.

    Parameters
    ----------
    config : TrainConfig
    warn : callable
        Told about each pair left out (``config.skip_errors``).
    validates : bool
        False: the validation images are dropped after reading (a DDP rank other than 0, which
        does not validate); ``val_ids`` stays.

    Returns
    -------
    TrainData
    """
    datasets, train_ids, val_ids = select_ids(config)
    skipped: list[str] | None = [] if config.skip_errors else None
    train_src = read_source(datasets, train_ids, skipped, config.gray)
    val_src = read_source(datasets, val_ids, skipped, config.gray)
    if skipped:
        for problem in skipped:
            warn(f"skipped {problem}")
        if not train_src.ids:
            raise InputError(f"--dataset: no readable training image ({len(skipped)} skipped)")
    return TrainData(list(datasets), list(train_src.ids), list(val_src.ids), train_src,
                     val_src if validates else Source(), skipped or [])
