"""Training CgriNet: crop sampler, poly schedule, validation, checkpoints and exact resume.

Everything the ``irstd train`` command does lives in this package; the command line only parses
options and renders the progress events sent to the ``progress`` callback of :func:`train`.

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

Modules
-------
:mod:`~irstd.train.config` (:class:`TrainConfig`, reading and checking configs, the fields a
resume may change), :mod:`~irstd.train.data` (ids, images, validation carve-out, statistics),
:mod:`~irstd.train.sampling` (keyed crops on the CPU or the device),
:mod:`~irstd.train.model` (the model and loss a run trains), :mod:`~irstd.train.steps` (one
optimisation step, eager or a CUDA graph), :mod:`~irstd.train.distill` (teacher models),
:mod:`~irstd.train.state` (the resume state), :mod:`~irstd.train.run_dir` (the run folder's
files), :mod:`~irstd.train.distributed` (DDP) and :mod:`~irstd.train.loop` (:func:`train`).
"""

from irstd.train.config import RESUMABLE_FIELDS, TrainConfig, load_config, resolve_config
from irstd.train.data import carve_validation, compute_mean_std
from irstd.train.loop import POLY_POWER, TrainEvent, TrainResult, poly_lr, train
from irstd.train.sampling import (
    CropDataset,
    DeviceCrops,
    EpochSampler,
    augment,
    parse_scale_range,
    random_crop,
    random_scale,
)
from irstd.train.state import STATE_FILE, RunState, flatten_state, load_state, save_state, unflatten_state
from irstd.train.steps import train_step

__all__ = [
    "POLY_POWER",
    "RESUMABLE_FIELDS",
    "STATE_FILE",
    "CropDataset",
    "DeviceCrops",
    "EpochSampler",
    "RunState",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "augment",
    "carve_validation",
    "compute_mean_std",
    "flatten_state",
    "load_config",
    "load_state",
    "parse_scale_range",
    "poly_lr",
    "random_crop",
    "random_scale",
    "resolve_config",
    "save_state",
    "train",
    "train_step",
    "unflatten_state",
]
