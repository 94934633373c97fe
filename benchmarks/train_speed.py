"""Training speed of each CgriNet variant on CPU: images/s at batch 12, 128² crops, 2 threads.

    python benchmarks/train_speed.py [--variants cgrinet_test,cgrinet_tiny] [--steps 5] [--threads 2]

Uses the training step of ``irstd.train`` (Adam, unite loss on every side output) on random
inputs. The machine is shared, so the steps are timed round-robin (one step of each variant per
round, the median per variant is reported) and the table gives each variant's time relative to
the first one, measured in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from irstd.losses import create_loss
from irstd.models import create_model, list_models
from irstd.train import train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(sorted(list_models())), help="comma-separated model names")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    torch.manual_seed(0)
    x = torch.rand(args.batch_size, 1, args.crop, args.crop)
    y = (torch.rand(args.batch_size, 1, args.crop, args.crop) > 0.998).float()
    loss_fn = create_loss("unite")
    runs = {}
    for name in variants:
        model = create_model(name).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
        for _ in range(args.warmup):
            train_step(model, loss_fn, optimizer, x, y, 1e-4)
        runs[name] = (model, optimizer, [])
    for _ in range(args.steps):
        for name, (model, optimizer, times) in runs.items():
            start = time.perf_counter()
            train_step(model, loss_fn, optimizer, x, y, 1e-4)
            times.append(time.perf_counter() - start)
    print(f"CPU training speed: batch {args.batch_size}, {args.crop}x{args.crop}, median of {args.steps} steps "
          f"(round-robin, +{args.warmup} warm-up), {args.threads} threads, torch {torch.__version__}")
    print(f"{'variant':<16} {'params':>11} {'s/step':>8} {'images/s':>9} {'time vs first':>14}")
    reference = None
    for name, (model, _, times) in runs.items():
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        per_step = statistics.median(times)
        reference = reference or per_step
        print(f"{name:<16} {params:>11,} {per_step:>8.3f} {args.batch_size / per_step:>9.1f} {per_step / reference:>13.2f}x")


if __name__ == "__main__":
    main()
