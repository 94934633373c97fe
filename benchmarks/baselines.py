"""Benchmark the baselines on real SIRST images against the straightforward paths.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/baselines.py [--images 20] [--methods lcm,ipi,nram]
                                                     [--blas-threads N] [--json] [--no-reference]

Images: the first ``--images`` ids of ``SIRST/splits/test.txt`` under ``$IRSTD_DATA``
(default ``<repo>/../shared/data``), converted to grey with Pillow ``convert('L')`` (ITU-R 601-2)
as the references receive them. For every image and method the fast library function and the
straightforward path of ``irstd.baselines._reference`` (per-patch loops, full LAPACK SVD
``np.linalg.svd(full_matrices=False)``, per-patch-loop median reconstruction; for LCM one
correlation per neighbour cell) run in the same process (all fast runs of a method, then all
straightforward ones), so their ratio is robust to the load of a shared machine. IPI and NRAM (both paths) run under
``irstd.baselines.matmul_threads(N)`` as ``irstd detect`` runs them in one process: NumPy's matrix
products on ``--blas-threads`` threads (default ``min(2, cpus)``), SciPy's LAPACK on one. Printed: median seconds per image, the
straightforward/fast ratio (median of per-image ratios), the max relative difference
``max|fast - straightforward| / max|straightforward|`` and the solver iteration counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def data_root() -> Path:
    env = os.environ.get("IRSTD_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_images(count: int):
    from PIL import Image

    root = data_root() / "SIRST"
    split = root / "splits" / "test.txt"
    if not split.exists():
        return None, f"SIRST not found at {root} (set IRSTD_DATA); nothing to benchmark"
    ids = [line.strip() for line in split.read_text().splitlines() if line.strip()][:count]
    out = []
    for image_id in ids:
        with Image.open(root / "images" / f"{image_id}.png") as im:
            out.append((image_id, np.asarray(im.convert("L"), dtype=np.float64)))
    return out, None


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return time.perf_counter() - t0, res


def run(methods, images, reference=True, repeat=1, blas_threads=None):
    from irstd.baselines import _reference as ref
    from irstd.baselines import lcm, matmul_threads
    from irstd.baselines.ipi import ipi_decompose
    from irstd.baselines.nram import nram_decompose

    fast = {
        "lcm": lambda im: (lcm(im), None),
        "ipi": lambda im: (lambda r: (r[0], r[2]["iterations"]))(ipi_decompose(im)),
        "nram": lambda im: (lambda r: (r[0], r[2]["iterations"]))(nram_decompose(im)),
    }
    slow = {"lcm": lambda im: (ref.lcm(im), None), "ipi": ref.ipi, "nram": ref.nram}
    rows = []
    for name in methods:
        threads = 1 if name == "lcm" else blas_threads
        # All fast runs first, then all straightforward runs: interleaving them let the
        # reference's BLAS threads and allocations slow the next fast run (IPI 0.93 -> 1.25 s).
        outputs = []
        for image_id, img in images:
            t_fast = np.inf
            for _ in range(repeat):
                with matmul_threads(threads):
                    t, (out, iters) = _timed(fast[name], img)
                t_fast = min(t_fast, t)
            outputs.append(out)
            rows.append({"method": name, "id": image_id, "shape": list(img.shape),
                         "fast_s": t_fast, "iterations": iters})
        if not reference:
            continue
        for row, (image_id, img), out in zip(rows[-len(images):], images, outputs):
            with matmul_threads(threads):
                t_slow, (ref_out, ref_iters) = _timed(slow[name], img)
            scale = float(np.abs(ref_out).max()) or 1.0
            row.update(reference_s=t_slow, ratio=t_slow / row["fast_s"],
                       max_rel_diff=float(np.abs(out - ref_out).max()) / scale,
                       reference_iterations=ref_iters)
    return rows


def summarise(rows, methods):
    summary = {}
    for name in methods:
        rs = [r for r in rows if r["method"] == name]
        s = {"images": len(rs), "median_s": statistics.median(r["fast_s"] for r in rs),
             "min_s": min(r["fast_s"] for r in rs), "max_s": max(r["fast_s"] for r in rs)}
        if rs and "ratio" in rs[0]:
            s["reference_median_s"] = statistics.median(r["reference_s"] for r in rs)
            s["median_ratio"] = statistics.median(r["ratio"] for r in rs)
            s["max_rel_diff"] = max(r["max_rel_diff"] for r in rs)
            s["same_iterations"] = all(r["iterations"] == r["reference_iterations"] for r in rs)
        its = [r["iterations"] for r in rs if r["iterations"] is not None]
        if its:
            s["iterations_min"], s["iterations_median"], s["iterations_max"] = (
                min(its), statistics.median(its), max(its))
        summary[name] = s
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20, help="first N ids of splits/test.txt")
    ap.add_argument("--methods", default="lcm,ipi,nram")
    ap.add_argument("--repeat", type=int, default=1, help="fast runs per image (min is kept)")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the straightforward paths (no ratios)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="NumPy BLAS threads for IPI/NRAM (default min(2, cpus); LAPACK stays at 1)")
    ap.add_argument("--json", action="store_true", help="print JSON (per image and summary)")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    images, why = load_images(args.images)
    if images is None:
        print(f"skipped: {why}", file=sys.stderr)
        return 0
    rows = run(methods, images, reference=not args.no_reference, repeat=args.repeat,
               blas_threads=args.blas_threads)
    summary = summarise(rows, methods)
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["numpy_blas_threads_ipi_nram"] = args.blas_threads or min(2, os.cpu_count() or 1)
    if args.json:
        json.dump({"env": env, "cpus": os.cpu_count(), "images": len(images),
                   "summary": summary, "per_image": rows}, sys.stdout, indent=1)
        print()
        return 0
    render(summary, len(images), env)
    return 0


def render(summary, n_images, env) -> None:
    """Print the summary table (text mode)."""
    print(f"{n_images} SIRST test images, {os.cpu_count()} CPUs, threads {env}")
    print(f"{'method':6} {'median s':>9} {'min':>8} {'max':>8} {'ref s':>8} {'ratio':>7} "
          f"{'max rel diff':>12}  iterations (min/median/max), same as reference")
    for name, s in summary.items():
        its = (f"{s['iterations_min']}/{s['iterations_median']}/{s['iterations_max']}"
               if "iterations_min" in s else "-")
        if "median_ratio" in s:
            print(f"{name:6} {s['median_s']:9.4f} {s['min_s']:8.4f} {s['max_s']:8.4f} "
                  f"{s['reference_median_s']:8.3f} {s['median_ratio']:7.1f} "
                  f"{s['max_rel_diff']:12.2e}  {its}, {s['same_iterations']}")
        else:
            print(f"{name:6} {s['median_s']:9.4f} {s['min_s']:8.4f} {s['max_s']:8.4f} "
                  f"{'-':>8} {'-':>7} {'-':>12}  {its}")


if __name__ == "__main__":
    raise SystemExit(main())
