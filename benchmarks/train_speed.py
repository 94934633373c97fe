"""Training speed: ms per step and images/s of the eager and the captured step, per variant and batch.

    python benchmarks/train_speed.py [--device cpu|cuda] [--variants cgrinet,packaged] [--batch-sizes 12,48]
                                     [--crop 128] [--steps 20] [--warmup 5] [--threads 2]
                                     [--epoch-check DATASET_DIR [--split dnanet_50_50/train]]

Each row runs the training step of ``irstd train`` (:func:`irstd.train.steps.make_step`: forward, unite
loss on every side output, backward, Adam) on random 128² crops, reading the loss after every step
as the training loop does. Kinds: ``eager`` (float32), ``eager+amp`` (bfloat16 autocast), ``graph``
and ``graph+amp`` (the step captured as one CUDA graph; CUDA only). ``packaged`` is the
architecture of the shipped weights. The ratio column is each row's time per step relative to the
eager float32 step of the same variant and batch, measured in the same run.

``--epoch-check DIR`` then trains the first variant for 4 epochs on a dataset with ``irstd.train``
(auto step, validation only at the end) and prints the time of epochs 2-3 against their steps'
time at batch 12 measured above: the per-epoch overhead of the data path, logging and saving.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch

from irstd.losses import create_loss
from irstd.models import create_model, load_model
from irstd.train.steps import make_step


def build(variant: str, device: torch.device):
    if variant == "packaged":
        from irstd.methods import default_weights

        model = load_model(default_weights())
    else:
        model = create_model(variant)
    model.to(device).train()
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def time_steps(variant, device, batch, crop, mode, amp, steps, warmup) -> float:
    torch.manual_seed(0)
    model = build(variant, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    step, note = make_step(mode, model, create_loss("unite"), optimizer, device, amp=amp)
    if note:
        raise RuntimeError(note)
    x = torch.rand(batch, 1, crop, crop, device=device)
    y = (torch.rand(batch, 1, crop, crop, device=device) > 0.998).float()
    for _ in range(warmup):
        float(step(x, y, 1e-4))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(step(x, y, 1e-4))  # the loss is read every step, as in the training loop
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def epoch_check(variant, device, dataset, split, step_s) -> None:
    from irstd.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(datasets=[dataset], split=split, model="" if variant == "packaged" else variant,
                             init_weights="packaged" if variant == "packaged" else None, epochs=4, val_every=1000,
                             device=device.type, out=str(Path(tmp) / "run"))
        result = train(config)
        with open(result.run_dir / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        state_steps = len(result.train_ids) // config.batch_size
    epoch_s = statistics.mean(float(r["time_s"]) for r in rows[1:3])
    print(f"\nirstd train on {dataset} ({split}), {variant}, batch 12: epochs 2-3 took {epoch_s:.3f} s each; "
          f"{state_steps} steps x {step_s * 1e3:.1f} ms = {state_steps * step_s:.3f} s -> {epoch_s / (state_steps * step_s):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default="cgrinet,packaged")
    parser.add_argument("--batch-sizes", default="12,48")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (the graph is captured after 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epoch-check", default=None, help="dataset folder for the epoch-overhead check")
    parser.add_argument("--split", default="dnanet_50_50/train")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kinds = [("eager", False), ("eager", True), ("graph", False), ("graph", True)] if device.type == "cuda" else [("eager", False)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"training step: {args.crop}x{args.crop} crops, median of {args.steps} steps after {args.warmup}, {name}, torch {torch.__version__}")
    print(f"{'variant':<13} {'batch':>5} {'kind':<10} {'ms/step':>9} {'images/s':>9} {'vs eager':>9}")
    graph_12 = {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            reference = None
            for mode, amp in kinds:
                per_step = time_steps(variant, device, batch, args.crop, mode, amp, args.steps, args.warmup)
                reference = reference or per_step
                kind = mode + ("+amp" if amp else "")
                print(f"{variant:<13} {batch:>5} {kind:<10} {per_step * 1e3:>9.1f} {batch / per_step:>9.0f} {per_step / reference:>8.2f}x",
                      flush=True)
                if batch == 12 and not amp:
                    graph_12[variant] = per_step  # the fp32 step irstd train uses by default (graph on CUDA)
    if args.epoch_check:
        first = args.variants.split(",")[0].strip()
        if first in graph_12:
            epoch_check(first, device, args.epoch_check, args.split, graph_12[first])


if __name__ == "__main__":
    main()
