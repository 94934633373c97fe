"""``irstd train``: parse options, call :func:`irstd.train.train`, render progress on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from irstd.cli._common import EXIT_SKIPPED, GRAY_HELP, console
from irstd.errors import InputError

EXIT_INTERRUPTED = 130  # the shell convention for SIGINT; the state is saved, `--resume` continues


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Renderer:
    """Turns :class:`irstd.train.TrainEvent` objects into a rich progress bar and lines on stderr."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[ips]} img/s  ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = None
        self.interrupted = None

    def __call__(self, event) -> None:
        kind = event.kind
        if kind == "start":
            console.print(f"[bold]irstd train[/] → {escape(str(event.run_dir))}: {escape(event.message)}", soft_wrap=True)
        elif kind == "warning":
            console.print(f"irstd: warning: {event.message}", soft_wrap=True, markup=False, highlight=False)
        elif kind == "step":
            fields = dict(
                epoch=f"{event.epoch}/{event.epochs}",
                loss=f"{event.loss:.4f}",
                lr=f"{event.lr:.2e}",
                ips=f"{event.images_per_s:.1f}" if event.images_per_s else "?",
                eta=_fmt_eta(event.eta_s),
            )
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task("train", total=event.steps, **fields)
            self.progress.update(self.task, completed=event.step, total=event.steps, **fields)
        elif kind == "epoch":
            metrics = event.metrics or {}
            val = "  ".join(
                f"{name} {metrics[key] * scale:.2f}{unit}"
                for key, name, scale, unit in (("miou", "mIoU", 100, "%"), ("niou", "nIoU", 100, "%"), ("pd", "Pd", 100, "%"), ("fa", "Fa", 1e6, "×1e-6"))
                if key in metrics
            )
            self.progress.console.print(f"epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  lr {event.lr:.2e}  {val}", soft_wrap=True)
            if self.task is not None:
                self.progress.update(self.task, completed=0)
        elif kind in ("interrupted", "done"):
            self.stop()
            if kind == "interrupted":
                self.interrupted = event.message
                console.print(f"irstd: {event.message}", soft_wrap=True, markup=False, highlight=False)
            else:
                console.print(f"done: {event.run_dir} ({event.message})", soft_wrap=True, markup=False, highlight=False)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None


def train(
    dataset: Optional[list[Path]] = typer.Option(None, "--dataset", help="Dataset folder (repeat for a union; ids become <folder>/<id>)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model variant: cgrinet, cgrinet_small, cgrinet_tiny, cgrinet_test."),
    split: Optional[str] = typer.Option(None, "--split", help="Training split (default: train) (SIRST: dnanet_50_50/train)."),
    val_split: Optional[str] = typer.Option(None, "--val-split", help="Validation split (never a test split; disjoint from training)."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Seeded fraction of the training ids held out for validation (default: 0.1; 0 = none)."),
    val_seed: Optional[int] = typer.Option(None, "--val-seed", help="Seed of the --val-fraction carve-out (default: --seed); keep it to compare runs of several seeds on the same held-out images."),
    val_every: Optional[int] = typer.Option(None, "--val-every", help="Validate every K epochs (default: 1)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: 400)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per step, per process (default: 12)."),
    crop: Optional[int] = typer.Option(None, "--crop", help="Side of the random training crops, multiple of 32 (default: 128)."),
    scale_range: Optional[str] = typer.Option(None, "--scale-range", help="Resize each training image by a random factor in LO,HI before cropping, e.g. 0.5,2 (DNANet's random scale; default: none)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate, poly schedule (power 0.9) per iteration (default: 1e-4)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="L2 weight decay (default: 1e-4)."),
    ema: Optional[float] = typer.Option(None, "--ema", help="Exponential moving average of the weights with this decay (e.g. 0.999); validation and saved weights use it; from scratch it warms up over the first steps (default: none)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="Loss on every side output (default: the network's own: unite = 2·IoU + 7·BCE for CgriNet, iou (SoftIoU) for ACM/ALCNet/RDIAN...; irstd models lists them)."),
    ablation: Optional[list[str]] = typer.Option(None, "--ablation", help="Model override key=value (repeatable), e.g. use_cgm=false."),
    teacher: Optional[list[str]] = typer.Option(None, "--teacher", help="Distillation: a model file ('packaged', 'paper': the shipped weights) whose probabilities on each crop are a soft target (repeat for their mean)."),
    distill_weight: Optional[float] = typer.Option(None, "--distill-weight", help="Weight of the loss against the teachers' probabilities (default: 1)."),
    teacher_tta: Optional[str] = typer.Option(None, "--teacher-tta", help="Average each teacher over views of the crop: none, flip (4) or dihedral (8) (default: none)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: 0)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda (default: auto)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision: bfloat16 autocast (float16 with gradient scaling where the GPU lacks bfloat16); CUDA only, ignored with a warning on CPU."),
    step: Optional[str] = typer.Option(None, "--step", help="Training step: auto (a captured CUDA graph on one GPU, eager elsewhere), eager, or graph (default: auto)."),
    state_interval: Optional[float] = typer.Option(None, "--state-interval", help="Seconds between writes of the resume state and last.safetensors, checked at each epoch's end; 0 = every epoch (default: 60). Both also at the end; on Ctrl-C the state (last.safetensors only when the stop falls at an epoch's end)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (default: 0)."),
    skip_errors: Optional[bool] = typer.Option(None, "--skip-errors", help="Leave out unreadable image/mask pairs (listed at the end; exit 3)."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="Bit depth of 16-bit images for to_float (default: 16)."),
    input_range: Optional[str] = typer.Option(None, "--input-range", help="Input mapping to [0, 1]: auto (8-bit /255, 16-bit minmax unless --bit-depth), bits, minmax (each image from its own min to max) or fixed:LO,HI (default: auto); recorded in the weights for detect."),
    gray: Optional[str] = typer.Option(None, "--gray", help=GRAY_HELP),
    pretrained_backbone: Optional[str] = typer.Option(None, "--pretrained-backbone", help="Encoder ImageNet weights: a file (safetensors or .pth), or 'imagenet' for timm's res2net50d weights from its cache or a download (model cgrinet)."),
    init_weights: Optional[str] = typer.Option(None, "--init-weights", help="Fine-tune: start from this irstd model file ('packaged': the shipped weights); architecture and input normalisation come from it, --model may be left out."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config (e.g. a run's config.yaml); options given here override it."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/train/<model>, auto-incremented)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its saved state."),
) -> None:
    """Train CgriNet on one or more datasets (validation on held-out training ids, never on test).

    Example: irstd train --dataset data/SIRST --split dnanet_50_50/train --model cgrinet_small --epochs 400
    """
    from irstd.train import parse_scale_range, resolve_config, train as run_training

    if val_split is not None and val_fraction is not None:
        raise InputError("--val-split/--val-fraction: give one of them, not both")
    if val_split is not None and val_seed is not None:
        raise InputError("--val-seed: seeds the --val-fraction carve-out; not used with --val-split")
    cfg = resolve_config(
        config,
        datasets=[str(p) for p in dataset] if dataset else None,
        model=model, split=split, val_split=val_split, val_fraction=val_fraction, val_seed=val_seed, val_every=val_every,
        epochs=epochs, batch_size=batch_size, crop=crop,
        scale_range=parse_scale_range(scale_range) if scale_range is not None else None, lr=lr, weight_decay=weight_decay, ema=ema, loss=loss,
        ablation=list(ablation) if ablation else None, teachers=list(teacher) if teacher else None, distill_weight=distill_weight, teacher_tta=teacher_tta,
        seed=seed, device=device, amp=amp, step=step, state_interval=state_interval, workers=workers, skip_errors=skip_errors,
        bit_depth=bit_depth, input_range=input_range, gray=gray, pretrained_backbone=pretrained_backbone,
        init_weights=str(init_weights) if init_weights else None,
        out=str(out) if out else None, resume=resume or None,
    )
    if val_fraction is not None and cfg.val_split is not None:
        cfg.val_split = None  # the command line's --val-fraction overrides a config's split
    renderer = _Renderer()
    try:
        result = run_training(cfg, progress=renderer, command=" ".join(["irstd", *sys.argv[1:]]))
    finally:
        renderer.stop()
    if renderer.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.skipped:
        console.print(f"irstd: {len(result.skipped)} image(s) skipped:")
        for problem in result.skipped:
            console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(EXIT_SKIPPED)
