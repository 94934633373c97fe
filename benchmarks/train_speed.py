"""Training speed of each CgriNet variant on CPU: images/s for a few steps at batch 12, 128² crops.

    python benchmarks/train_speed.py [--variants cgrinet_test,cgrinet_tiny] [--steps 5] [--threads 2]

Uses the training step of ``irstd.train`` (Adam, unite loss on every side output) on random
inputs. The machine is shared, so the table also gives each variant's time relative to the first
one, measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from irstd.losses import create_loss
from irstd.models import create_model, list_models
from irstd.train import train_step


def measure(name: str, steps: int, batch: int, crop: int, warmup: int) -> tuple[float, float]:
    """Seconds per step and images/s of ``name`` (after ``warmup`` untimed steps)."""
    torch.manual_seed(0)
    model = create_model(name).train()
    loss_fn = create_loss("unite")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    x = torch.rand(batch, 1, crop, crop)
    y = (torch.rand(batch, 1, crop, crop) > 0.998).float()
    for _ in range(warmup):
        train_step(model, loss_fn, optimizer, x, y, 1e-4)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, loss_fn, optimizer, x, y, 1e-4)
    per_step = (time.perf_counter() - start) / steps
    return per_step, batch / per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(sorted(list_models())), help="comma-separated model names")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    print(f"CPU training speed: batch {args.batch_size}, {args.crop}x{args.crop}, {args.steps} steps "
          f"(+{args.warmup} warm-up), {args.threads} threads, torch {torch.__version__}")
    print(f"{'variant':<20} {'params':>10} {'s/step':>8} {'images/s':>9} {'time vs first':>14}")
    reference = None
    for name in variants:
        params = sum(p.numel() for p in create_model(name).parameters())
        per_step, ips = measure(name, args.steps, args.batch_size, args.crop, args.warmup)
        reference = reference or per_step
        print(f"{name:<20} {params:>10,} {per_step:>8.3f} {ips:>9.1f} {per_step / reference:>13.2f}x", flush=True)


if __name__ == "__main__":
    main()
