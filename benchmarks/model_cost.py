"""Cost of the CgriNet variants: parameters, multiply-adds, CPU time.

What is measured, per variant (``irstd.models.list_models()``):

- ``params``: trainable parameters as built (``in_chans=1``, the default).
- ``params_paper``: built with ``in_chans=3`` plus the unused ImageNet classifier
  (``num_features * 1000 + 1000``), the way the CgriNet paper (and PraNet) count: 26.12M for
  ``cgrinet``.
- ``gmacs``: multiply-accumulates of one forward pass at 1x1x256x256 (the BasicIRSTD
  convention; thop's "FLOPs" are MACs), counted with forward hooks on every ``nn.Conv2d``
  (output elements x in_channels/groups x kh x kw) and ``nn.Linear`` (output elements x
  in_features). Biases, BN, activations, resizes and element-wise products are not counted.
- ``attn_gmacs``: the axial-attention matrix products (q k^T and attn v) at the same input,
  counted analytically per ``AxialAttention`` call and reported separately (not in ``gmacs``).
- ``infer_ms``: CPU forward per image, eval mode under ``torch.inference_mode``, batch 1 at
  ``--size`` (256), median of ``--repeats`` after one warm-up.
- ``train_ms``: CPU forward + backward (unite loss on all side outputs, no optimiser step) per
  image, train mode, batch ``--batch`` (12) at ``--train-size`` (128), median of ``--repeats``
  after one warm-up, divided by the batch size.
- Timings run round-robin over the variants (one call of each per round, a warm-up round
  first), so a change of load on a shared machine hits every variant alike.
- ``*_vs_ref``: times divided by the reference variant's (``--reference``, default ``cgrinet``)
  measured in the same run: use these ratios when the machine is shared.
- ``matmul_ms`` (in ``setup``): a fixed float32 1024x1024 @ 1024x1024 product (1.07 G MACs)
  timed before and after the variants, a yardstick of how much CPU the run actually got.

Threads: ``torch.set_num_threads(--threads)`` (2 by default).

Usage::

    nice -n 10 .venv/bin/python benchmarks/model_cost.py            # table
    nice -n 10 .venv/bin/python benchmarks/model_cost.py --json     # JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

from irstd.losses import create_loss
from irstd.models import count_parameters, create_model, list_models
from irstd.models.cgrinet import AxialAttention


def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(conv + linear MACs, axial attention matmul MACs) of one forward pass on ``x``."""
    totals = {"layers": 0, "attention": 0}

    def conv_hook(m: nn.Conv2d, inp, out):
        kh, kw = m.kernel_size
        totals["layers"] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp, out):
        totals["layers"] += out.numel() * m.in_features

    def attention_hook(m: AxialAttention, inp, out):
        b, c, h, w = inp[0].shape
        d = m.query.out_channels
        length, sequences = (h, b * w) if m.axis == "height" else (w, b * h)
        totals["attention"] += sequences * length * length * (d + c)

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, AxialAttention):
            handles.append(m.register_forward_hook(attention_hook))
    model.eval()
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return totals["layers"], totals["attention"]


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(_time(fn) for _ in range(repeats))


def measure(names: list[str], size: int, train_size: int, batch: int, repeats: int) -> list[dict]:
    """Counts and median times per variant.

    Timings run round-robin (one inference / training step of each variant per round, after a
    warm-up round) so that a load change on a shared machine affects every variant alike.
    """
    x = torch.rand(1, 1, size, size)
    xb = torch.rand(batch, 1, train_size, train_size)
    yb = (torch.rand(batch, 1, train_size, train_size) > 0.99).float()
    loss_fn = create_loss("unite")
    rows, infers, steps = [], [], []
    for name in names:
        torch.manual_seed(0)
        model = create_model(name)
        macs, attn = count_macs(model, x)
        rows.append(
            dict(
                name=name,
                params=count_parameters(model),
                params_paper=count_parameters(create_model(name, in_chans=3), include_classifier=True),
                gmacs=macs / 1e9,
                attn_gmacs=attn / 1e9,
            )
        )

        def infer(model=model):
            model.eval()
            with torch.inference_mode():
                model(x)

        def step(model=model):
            model.train()
            model.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()

        infers.append(infer)
        steps.append(step)
    for fns, key, per in ((infers, "infer_ms", 1), (steps, "train_ms", batch)):
        times: list[list[float]] = [[] for _ in fns]
        for round_ in range(repeats + 1):
            for i, fn in enumerate(fns):
                t = _time(fn)
                if round_:  # round 0 is the warm-up
                    times[i].append(t)
        for row, ts in zip(rows, times):
            row[key] = 1000 * statistics.median(ts) / per
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list_models(), help="variants to measure (default: all)")
    parser.add_argument("--size", type=int, default=256, help="inference / MAC input size (default 256)")
    parser.add_argument("--train-size", type=int, default=128, help="training crop size (default 128)")
    parser.add_argument("--batch", type=int, default=12, help="training batch (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--reference", default="cgrinet", help="variant the time ratios refer to")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout instead of a table")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    a = torch.rand(1024, 1024)
    matmul_before = _median_time(lambda: a @ a, 5)
    rows = measure(args.variants, args.size, args.train_size, args.batch, args.repeats)
    ref = next((r for r in rows if r["name"] == args.reference), rows[0])
    for r in rows:
        r["infer_vs_ref"] = r["infer_ms"] / ref["infer_ms"]
        r["train_vs_ref"] = r["train_ms"] / ref["train_ms"]
    matmul_after = _median_time(lambda: a @ a, 5)
    setup = dict(
        threads=args.threads,
        matmul_ms=[round(1000 * matmul_before, 2), round(1000 * matmul_after, 2)],
        mac_input=[1, 1, args.size, args.size],
        infer=f"eval, inference_mode, batch 1 at {args.size}x{args.size}, median of {args.repeats}",
        train=f"forward+backward (unite loss), batch {args.batch} at {args.train_size}x{args.train_size}, per image, median of {args.repeats}",
        reference=ref["name"],
        torch=torch.__version__,
    )
    if args.json:
        json.dump(dict(setup=setup, variants=rows), sys.stdout, indent=2)
        print()
        return 0
    header = f"{'variant':<14} {'params':>11} {'paper count':>12} {'GMACs':>7} {'attn GMACs':>10} {'infer ms':>9} {'train ms/img':>12} {'infer/ref':>9} {'train/ref':>9}"
    print(f"# {setup['threads']} threads; MACs at 1x1x{args.size}x{args.size} (conv+linear); "
          f"infer: {setup['infer']}; train: {setup['train']}; ratios vs {ref['name']}")
    print(f"# yardstick: 1024^3 float32 matmul {setup['matmul_ms'][0]:.1f} ms before, {setup['matmul_ms'][1]:.1f} ms after")
    print(header)
    for r in rows:
        print(
            f"{r['name']:<14} {r['params']:>11,} {r['params_paper']:>12,} {r['gmacs']:>7.3f} {r['attn_gmacs']:>10.4f} "
            f"{r['infer_ms']:>9.1f} {r['train_ms']:>12.1f} {r['infer_vs_ref']:>9.3f} {r['train_vs_ref']:>9.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
