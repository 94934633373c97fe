"""The training run: :func:`train` sets up data, model, optimiser and step, resumes, and runs the
epochs with validation and checkpoints (see :mod:`irstd.train` for the run folder it writes).
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irstd.data import ids_hash
from irstd.errors import InputError
from irstd.intensity import parse_input_range, to_float
from irstd.io import sha256_file
from irstd.metrics import Evaluator
from irstd.models import predict, save_weights
from irstd.train.config import TrainConfig, check_config, check_resume_config
from irstd.train.data import Source, compute_mean_std, load_data
from irstd.train.distill import load_teachers
from irstd.train.distributed import (
    Dist,
    all_sum,
    any_rank,
    barrier,
    broadcast,
    choose_device,
    setup_dist,
    teardown_dist,
    wants_cuda,
)
from irstd.train.model import (
    build_loss,
    build_model,
    init_model_name,
    input_channels,
    resolve_backbone,
    resolve_model_file,
)
from irstd.train.run_dir import (
    RunLog,
    append_metrics,
    prepare_run_dir,
    remove_failed_start,
    truncate_metrics,
    weights_metadata,
    write_run_files,
)
from irstd.train.sampling import CropDataset, DeviceCrops, EpochSampler
from irstd.train.state import STATE_FILE, RunState, load_state, write_run_state
from irstd.train.steps import make_step

__all__ = ["POLY_POWER", "TrainEvent", "TrainResult", "poly_lr", "train"]

#: Power of the poly learning-rate schedule (CgriNet paper).
POLY_POWER = 0.9


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


def train(
    config: TrainConfig,
    progress: Callable[[TrainEvent], Any] | None = None,
    stop: threading.Event | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train a CgriNet variant as described by ``config`` (see :mod:`irstd.train`).

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
    check_config(config)
    config = dataclasses.replace(
        config,
        datasets=[str(Path(p).resolve()) for p in config.datasets],
        pretrained_backbone=resolve_backbone(config.pretrained_backbone),
        init_weights=resolve_model_file(config.init_weights, "--init-weights"),
        teachers=[resolve_model_file(t, "--teacher") for t in config.teachers],
        input_range=parse_input_range(config.input_range),
    )
    if config.init_weights:
        config = dataclasses.replace(config, model=init_model_name(config))
    emit = progress or (lambda event: None)
    command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    d = setup_dist("cuda" if wants_cuda(config.device) else "cpu")
    try:
        run = _Run(config, emit if d.main else (lambda event: None), command, d)
        run.setup_model()  # the inputs are checked before anything is created on disk
        run.setup_data()
        saved = run.open_run_dir()
        try:
            run.record_run()
            run.setup_training(saved)
        except BaseException:  # e.g. an unusable --teacher: a fresh run's folder is not left behind
            if d.main and saved is None:
                remove_failed_start(run.run_dir, run.created_dir)
            raise
        return run.fit(stop or threading.Event())
    finally:
        teardown_dist(d)


def validate(model, source: Source, device: torch.device, bit_depth: int | None, input_range: str) -> dict[str, float]:
    """Full-resolution validation: ``irstd.models.inference`` per image, the shared metrics engine.

    Returns
    -------
    dict
        ``miou``, ``niou``, ``pd`` and ``fa`` at threshold 0.5.
    """
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


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop``, a graceful stop at the next step boundary (a second signal
    takes the default action). Signal handlers can only be installed from the main thread."""
    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            stop.set()
            signal.signal(signum, old_handlers.get(signum) or signal.SIG_DFL)

        for signum in (signal.SIGINT, signal.SIGTERM):
            old_handlers[signum] = signal.signal(signum, on_signal)
    try:
        yield
    finally:
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)


class _Run:
    """One call of :func:`train`: its objects, and the steps that set them up and train, in the
    order :func:`train` calls them. Every rank runs them; rank 0 alone writes files and validates."""

    def __init__(self, config: TrainConfig, emit: Callable[[TrainEvent], Any], command: str, d: Dist):
        self.config, self.emit, self.command, self.d = config, emit, command, d
        self.device = choose_device(config.device, d)
        self.use_amp = config.amp and self.device.type == "cuda"
        if config.amp and not self.use_amp:
            self.warn("--amp needs CUDA; training in float32 on CPU")
        self.state = RunState()

    def warn(self, message: str) -> None:
        self.emit(TrainEvent("warning", message=message))

    # --- set-up ---------------------------------------------------------------------------------

    def setup_model(self) -> None:
        """Seed everything, build the model (fresh or from ``init_weights``) and the loss."""
        config = self.config
        _seed_everything(config.seed)
        self.model = build_model(config)
        self.init_sha256 = ""
        if config.init_weights:
            if self.model.new_tensors:
                self.warn(f"--init-weights: {len(self.model.new_tensors)} tensor(s) of the extended model start fresh "
                          f"(e.g. {self.model.new_tensors[0]})")
            self.init_sha256 = sha256_file(config.init_weights)
        self.loss_fn = build_loss(config.loss)

    def setup_data(self) -> None:
        """Choose the ids and read the images (rank 0 alone keeps the validation images)."""
        self.data = load_data(self.config, self.warn, validates=self.d.main)
        self.train_ids, self.val_ids = self.data.train_ids, self.data.val_ids

    def open_run_dir(self) -> dict[str, Any] | None:
        """Choose the run folder (rank 0 decides, the others follow), open the log, and read and
        check the saved state of a resumed run (None: a fresh start)."""
        config, d = self.config, self.d
        run_dir, has_state, error = None, False, None
        self.created_dir = False
        if d.main:
            existed = config.out is not None and Path(config.out).exists()
            try:
                run_dir, has_state = prepare_run_dir(config)
                self.created_dir = not existed
            except InputError as exc:
                error = str(exc)
        run_dir, has_state, error = broadcast((run_dir, has_state, error), d)
        if error:
            raise InputError(error)
        self.run_dir = run_dir
        self.log = RunLog(run_dir / "train.log" if d.main else None)
        self.teachers_sha256 = [sha256_file(t) for t in config.teachers]
        if config.resume and has_state:
            saved = load_state(run_dir / STATE_FILE)
            self._check_saved(saved)
            return saved
        if config.resume:
            self.warn(f"{run_dir}: no saved state yet; starting from the first epoch")
            if d.main:
                truncate_metrics(run_dir / "metrics.csv", 0)
        return None

    def _check_saved(self, saved: dict[str, Any]) -> None:
        """Refuse to resume a saved run that this run cannot continue exactly."""
        config = self.config
        check_resume_config(config, saved["config"])
        if saved["step_in_epoch"] and saved["world_size"] != self.d.world:
            raise InputError(f"--resume: the run stopped mid-epoch with {saved['world_size']} process(es); resume with the same number")
        if saved.get("init_weights_sha256", "") != self.init_sha256:
            raise InputError(
                f"--resume: {config.init_weights} is not the file the run started from "
                f"(sha256 {self.init_sha256[:12]}, the run's {str(saved.get('init_weights_sha256'))[:12]})"
            )
        if saved.get("teachers_sha256", []) != self.teachers_sha256:
            raise InputError("--resume: the --teacher files are not the ones the run started with (sha256 differs)")
        if saved["train_ids_sha256"] != ids_hash(self.train_ids) or saved["val_ids_sha256"] != ids_hash(self.val_ids):
            raise InputError(f"{self.run_dir}: the training/validation ids differ from the saved run (dataset changed on disk?)")
        done, step = saved["epochs_done"], saved["step_in_epoch"]
        if config.epochs < done or (config.epochs == done and step > 0):
            raise InputError(f"--epochs {config.epochs}: the run already completed {done} epoch(s)")

    def record_run(self) -> None:
        """The input normalisation (the training images' statistics, or those of the fine-tuned
        weights), then ``config.yaml`` and ``ids.json``."""
        config, model = self.config, self.model
        if config.init_weights:  # fine-tuning keeps the normalisation the weights were trained with
            self.mean, self.std = float(model.input_mean.flatten()[0]), float(model.input_std.flatten()[0])
        else:
            images = [to_float(img, config.bit_depth, config.input_range) for img in self.data.train.images]
            self.mean, self.std = compute_mean_std(images)
        if self.d.main:
            write_run_files(self.run_dir, config, self.train_ids, self.val_ids, self.data.skipped)

    def setup_training(self, saved: dict[str, Any] | None) -> None:
        """Model on the device, optimiser, teachers, weight average, sampler; the saved state put
        back; then the training step and the batch source."""
        self._place_model()
        config, d = self.config, self.d
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.teachers = load_teachers(config.teachers, config.input_range, self.device, config.teacher_tta) if config.teachers else None
        self.ema = None
        if config.ema is not None:
            from timm.utils import ModelEmaV3

            # From scratch the average warms up (timm's decay 1 - (1 + step)^(-2/3), capped at
            # --ema) so that it follows the first steps instead of holding the random weights.
            self.ema = ModelEmaV3(self.model, decay=config.ema, use_warmup=not config.init_weights)
        self.kept = self.model if self.ema is None else self.ema.module  # what is validated and saved
        self.sampler = EpochSampler(len(self.train_ids), config.seed, d.rank, d.world, config.batch_size)
        self.steps_per_epoch = math.ceil(self.sampler.per_rank / config.batch_size)
        self.total_iters = self.steps_per_epoch * config.epochs
        self.identity = {  # what the run is: saved with the state, checked on resume
            "world_size": d.world,
            "init_weights_sha256": self.init_sha256,
            "teachers_sha256": self.teachers_sha256,
            "steps_per_epoch": self.steps_per_epoch,
            "config": config.to_dict(run_fields=False),
            "train_ids_sha256": ids_hash(self.train_ids),
            "val_ids_sha256": ids_hash(self.val_ids),
            "input_mean": self.mean,
            "input_std": self.std,
        }
        if saved is not None:
            self._resume(saved)
        self._make_step(saved)
        self._make_batch_source()

    def _place_model(self) -> None:
        """Set the input normalisation of a fresh model, move it to the device, training mode."""
        model = self.model
        if not self.config.init_weights:
            with torch.no_grad():
                model.input_mean.fill_(self.mean)
                model.input_std.fill_(self.std)
            if isinstance(getattr(model, "model_args", None), dict):  # keep the rebuild arguments in step
                model.model_args["input_mean"] = [self.mean] * input_channels(model)
                model.model_args["input_std"] = [self.std] * input_channels(model)
        model.to(self.device)
        if self.device.type == "cpu":  # channels-last convolutions train faster on the CPU
            model.to(memory_format=torch.channels_last)
        model.train()
        self.in_chans = input_channels(model)

    def _resume(self, saved: dict[str, Any]) -> None:
        """Put the saved weights, optimiser, average, counters and random state back."""
        self.state = RunState.restore(saved, model=self.model, ema=self.ema, optimizer=self.optimizer, device=self.device)
        s = self.state
        if self.d.main:
            truncate_metrics(self.run_dir / "metrics.csv", s.epochs_done)
        self.log(f"resumed at epoch {s.epochs_done + 1} step {s.step_in_epoch} (iteration {s.iteration})")

    def _make_step(self, saved: dict[str, Any] | None) -> None:
        """The training step (:func:`~irstd.train.steps.make_step`), on the DDP wrapper under DDP."""
        config, d, device = self.config, self.d, self.device
        net = self.model
        if d.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop and batch sizes
        self.step_fn, note = make_step(config.step, net, self.loss_fn, self.optimizer, device, world=d.world, amp=self.use_amp,
                                       teacher=self.teachers, distill_weight=config.distill_weight, warn=self.warn)
        if note:
            self.warn(note)
        self.scaler = self.step_fn.scaler
        if self.scaler is not None and saved is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])

    def _make_batch_source(self) -> None:
        """Crops cut on the device (CUDA) or by a DataLoader; both give the same crops."""
        config, data = self.config, self.data
        self.dataset = CropDataset(data.train.images, data.train.masks, config.crop, config.seed, config.positive_prob,
                                   config.bit_depth, fill=self.mean, input_range=config.input_range,
                                   scale_range=config.scale_range)
        self.generator = torch.Generator()
        self.generator.manual_seed(config.seed)
        self.device_crops = DeviceCrops(self.dataset, self.device) if _crops_on_device(self.device) else None
        if self.device_crops is not None and config.workers:
            self.warn(f"--workers {config.workers}: not used, the crops are cut on {self.device}")

    def _batches(self):
        """The batches of the epoch the sampler is set to (from its start position)."""
        config = self.config
        if self.device_crops is not None:
            keys = list(self.sampler)
            for start in range(0, len(keys), config.batch_size):
                yield self.device_crops.batch(keys[start : start + config.batch_size])
            return
        yield from torch.utils.data.DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            num_workers=config.workers,
            worker_init_fn=_seed_worker,
            generator=self.generator,
            drop_last=False,
            persistent_workers=False,
        )

    # --- saving ---------------------------------------------------------------------------------

    def _save_state(self) -> None:
        """Write the resume state of this moment (rank 0)."""
        if not self.d.main:
            return
        state = self.state.snapshot(model=self.model, ema=self.ema, optimizer=self.optimizer, scaler=self.scaler,
                                    device=self.device, identity=self.identity)
        write_run_state(self.run_dir, state)

    def _save_weights(self, kind: str, epoch: int, metrics: dict[str, Any]) -> None:
        """Write ``best`` or ``last`` weights (the average when there is one)."""
        meta = weights_metadata(
            self.config, epoch=epoch, mean=self.mean, std=self.std, in_chans=self.in_chans, train_ids=self.train_ids,
            val_ids=self.val_ids, names=self.data.names, command=self.command, kind=kind, metrics=metrics,
            world=self.d.world, init_sha256=self.init_sha256,
        )
        save_weights(self.kept, self.run_dir / f"{kind}.safetensors", meta)

    # --- training -------------------------------------------------------------------------------

    def fit(self, stop: threading.Event) -> TrainResult:
        """Train the remaining epochs (or until ``stop``); the result of the run."""
        config, d, s = self.config, self.d, self.state
        with _stop_on_signals(stop):
            device_text = f"device {self.device}{f', {d.world} processes' if d.world > 1 else ''}"
            self.emit(TrainEvent(
                "start", epoch=s.epochs_done + 1, epochs=config.epochs, steps=self.steps_per_epoch, run_dir=str(self.run_dir),
                message=f"{len(self.train_ids)} training / {len(self.val_ids)} validation images, {self.steps_per_epoch} "
                f"steps per epoch, {device_text}, input mean {self.mean:.4f} std {self.std:.4f}",
            ))
            self.log(f"run {self.run_dir}: model {config.model}, {len(self.train_ids)} train / {len(self.val_ids)} val images, "
                     f"{self.steps_per_epoch} steps/epoch, device {self.device}, world {d.world}, mean {self.mean:.6f} std {self.std:.6f}")
            self.last_saved = time.monotonic()
            self.session_start = time.perf_counter()
            self.session_iters = 0
            interrupted = False
            for epoch in range(s.epochs_done + 1, config.epochs + 1):
                if not self._train_epoch(epoch, stop) or self._end_epoch(epoch, stop):
                    interrupted = True
                    break
        if not interrupted:
            best = "no validation" if s.best_miou is None else f"best validation mIoU {s.best_miou:.4f} at epoch {s.best_epoch}"
            self.log(f"done: {s.epochs_done} epochs, {best}")
            self.emit(TrainEvent("done", epoch=s.epochs_done, epochs=config.epochs, run_dir=str(self.run_dir),
                                 metrics=s.last_metrics or None, message=f"{s.epochs_done} epochs, {best}"))
        return TrainResult(self.run_dir, s.epochs_done, interrupted, s.best_miou, s.best_epoch, s.last_metrics,
                           self.train_ids, self.val_ids, self.data.skipped)

    def _train_epoch(self, epoch: int, stop: threading.Event) -> bool:
        """The steps of ``epoch`` from where it stands; False when ``stop`` ended it early (the
        mid-epoch state is saved)."""
        config, s = self.config, self.state
        self.sampler.set_epoch(epoch, start=s.step_in_epoch * config.batch_size)
        self.epoch_start = time.perf_counter()
        if s.step_in_epoch == 0:
            s.loss_sum, s.loss_count = 0.0, 0
        self.lr = poly_lr(config.lr, s.iteration, self.total_iters)
        for x, y in self._batches():
            value = self._step(epoch, x, y)
            elapsed = time.perf_counter() - self.session_start
            ips = self.session_iters * config.batch_size * self.d.world / elapsed if elapsed > 0 else None
            eta = (self.total_iters - s.iteration) * elapsed / self.session_iters
            self.emit(TrainEvent("step", epoch=epoch, epochs=config.epochs, step=s.step_in_epoch, steps=self.steps_per_epoch,
                                 loss=value, lr=self.lr, images_per_s=ips, eta_s=eta))
            if any_rank(stop.is_set(), self.d, self.device) and s.step_in_epoch < self.steps_per_epoch:
                self._save_state()
                msg = (f"interrupted at epoch {epoch} step {s.step_in_epoch}/{self.steps_per_epoch}; state saved, "
                       "continue with --resume")
                self.log(msg)
                self.emit(TrainEvent("interrupted", epoch=epoch, epochs=config.epochs, step=s.step_in_epoch,
                                     steps=self.steps_per_epoch, message=msg, run_dir=str(self.run_dir)))
                return False
        s.step_in_epoch = 0
        return True

    def _step(self, epoch: int, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimisation step on a batch, the average updated and the counters advanced; its loss."""
        s = self.state
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.in_chans != 1:
            x = x.expand(-1, self.in_chans, -1, -1)
        self.lr = poly_lr(self.config.lr, s.iteration, self.total_iters)
        value = float(self.step_fn(x, y, self.lr))
        if self.ema is not None:  # the warm-up needs the step count; a fine-tune averages at --ema throughout
            self.ema.update(self.model, step=s.iteration + 1 if self.ema.use_warmup else None)
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at epoch {epoch} step {s.step_in_epoch + 1}")
        s.loss_sum += value * x.shape[0]
        s.loss_count += x.shape[0]
        s.step_in_epoch += 1
        s.iteration += 1
        self.session_iters += 1
        return value

    def _end_epoch(self, epoch: int, stop: threading.Event) -> bool:
        """Close ``epoch``: mean loss over every process, then on rank 0 validation, ``metrics.csv``,
        checkpoints and the state; True when ``stop`` ends the run here."""
        config, d, s = self.config, self.d, self.state
        totals = all_sum([s.loss_sum, float(s.loss_count)], d, self.device)
        epoch_loss = float(totals[0] / max(totals[1], 1))
        stopping = any_rank(stop.is_set(), d, self.device) and epoch < config.epochs
        s.epochs_done = epoch
        if d.main:
            self._close_epoch(epoch, epoch_loss, stopping)
        barrier(d)
        if stopping:
            msg = f"interrupted after epoch {epoch}; state saved, continue with --resume"
            self.log(msg)
            self.emit(TrainEvent("interrupted", epoch=epoch, epochs=config.epochs, message=msg, run_dir=str(self.run_dir)))
        return stopping

    def _close_epoch(self, epoch: int, epoch_loss: float, stopping: bool) -> None:
        """Rank 0's end of an epoch: validate when due, log the row, write ``best``, and ``last``
        with the state when due (every ``state_interval`` seconds, at the end, on a stop)."""
        config, s = self.config, self.state
        metrics: dict[str, Any] = {}
        if self.val_ids and (epoch % config.val_every == 0 or epoch == config.epochs):
            metrics = validate(self.kept, self.data.val, self.device, config.bit_depth, config.input_range)
        epoch_time = time.perf_counter() - self.epoch_start
        row = {"epoch": epoch, "loss": f"{epoch_loss:.6f}", "lr": f"{self.lr:.6g}", "time_s": f"{epoch_time:.2f}"}
        for key in ("miou", "niou", "pd", "fa"):
            row[f"val_{key}"] = f"{metrics[key]:.6g}" if key in metrics else ""
        append_metrics(self.run_dir / "metrics.csv", row)
        if metrics and (s.best_miou is None or metrics["miou"] > s.best_miou):
            s.best_miou, s.best_epoch = metrics["miou"], epoch
            self._save_weights("best", epoch, metrics)
        s.last_metrics = {"epoch": epoch, "loss": epoch_loss, **metrics}
        if stopping or epoch == config.epochs or time.monotonic() - self.last_saved >= config.state_interval:
            self._save_weights("last", epoch, metrics)
            self._save_state()
            self.last_saved = time.monotonic()
        val_text = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.log(f"epoch {epoch}/{config.epochs} loss {epoch_loss:.5f} lr {self.lr:.3g} {val_text} time {epoch_time:.1f}s")
        self.emit(TrainEvent("epoch", epoch=epoch, epochs=config.epochs, steps=self.steps_per_epoch, loss=epoch_loss,
                             lr=self.lr, metrics=metrics or None, run_dir=str(self.run_dir)))
