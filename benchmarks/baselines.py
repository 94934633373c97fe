"""Benchmark the baselines on real SIRST images against the straightforward paths.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/baselines.py [--images 20] [--methods NAME,...]
                                                     [--blas-threads N] [--json] [--no-reference]
                                                     [--ratios-only] [--svd-repeat 3]
                                                     [--svd-threads 1]

Images: the first ``--images`` ids of the SIRST test split under ``$IRSTD_DATA`` (default
``<repo>/../shared/data``): ``SIRST/splits/test.txt``, else ``SIRST/splits/dnanet_50_50/test.txt``,
converted to grey with Pillow ``convert('L')`` (ITU-R 601-2) as the references receive them.
Methods: by default every registered one (``irstd.baselines.METHODS``). The speed yardstick: one
thin SVD ``np.linalg.svd(A, full_matrices=False)`` of a random 2500×828 float64 matrix, timed in
the same process (median of ``--svd-repeat`` runs before and as many after the methods, on
``--svd-threads`` BLAS threads, default 1: on a shared 2-core machine a 2-thread LAPACK times the
load rather than the machine, 12-15 s instead of 1.3 s measured under load); every method's median
seconds per image is also printed as a ratio to it. ``--ratios-only`` runs no straightforward path
and prints that table alone.

For LCM, IPI and NRAM (without ``--no-reference``), for every image the fast library function and
the straightforward path of ``irstd.baselines._reference`` (per-patch loops, full LAPACK SVD
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
    splits = [root / "splits" / "test.txt", root / "splits" / "dnanet_50_50" / "test.txt"]
    split = next((p for p in splits if p.exists()), None)
    if split is None:
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


SVD_SHAPE = (2500, 828)


def time_svd(repeat=3, blas_threads=None, seed=0) -> list[float]:
    """Seconds of ``repeat`` thin SVDs of a random ``SVD_SHAPE`` float64 matrix (the yardstick)."""
    from irstd.baselines import matmul_threads

    a = np.random.default_rng(seed).standard_normal(SVD_SHAPE)
    times = []
    with matmul_threads(blas_threads):
        for _ in range(max(1, repeat)):
            t, _ = _timed(np.linalg.svd, a, full_matrices=False)
            times.append(t)
    return times


def _fast_paths():
    """Per method name: ``image -> (raw map, iterations or None)``, for every registered method."""
    from irstd.baselines import METHODS
    from irstd.baselines.ipi import ipi_decompose
    from irstd.baselines.nram import nram_decompose
    from irstd.baselines.pstnn import pstnn_decompose

    def iterations(decompose):
        def fn(im):
            target, _, info = decompose(im, background=False)
            return target, info["iterations"]
        return fn

    fast = {name: (lambda im, f=b.fn: (f(im), None)) for name, b in METHODS.items()}
    fast.update(ipi=iterations(ipi_decompose), nram=iterations(nram_decompose),
                pstnn=iterations(pstnn_decompose))
    return fast


def run(methods, images, reference=True, repeat=1, blas_threads=None):
    from irstd.baselines import _reference as ref
    from irstd.baselines import matmul_threads

    fast = _fast_paths()
    unknown = [m for m in methods if m not in fast]
    if unknown:
        raise SystemExit(f"unknown method(s): {', '.join(unknown)} (registered: {', '.join(fast)})")
    slow = {"lcm": lambda im: (ref.lcm(im), None), "ipi": ref.ipi, "nram": ref.nram}
    rows = []
    for name in methods:
        threads = 1 if name == "lcm" else blas_threads  # as irstd.methods.ClassicalMethod
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
        if not reference or name not in slow:  # straightforward paths exist for LCM, IPI, NRAM
            continue
        for row, (image_id, img), out in zip(rows[-len(images):], images, outputs):
            with matmul_threads(threads):
                t_slow, (ref_out, ref_iters) = _timed(slow[name], img)
            scale = float(np.abs(ref_out).max()) or 1.0
            row.update(reference_s=t_slow, ratio=t_slow / row["fast_s"],
                       max_rel_diff=float(np.abs(out - ref_out).max()) / scale,
                       reference_iterations=ref_iters)
    return rows


def summarise(rows, methods, svd_s=None):
    summary = {}
    for name in methods:
        rs = [r for r in rows if r["method"] == name]
        s = {"images": len(rs), "median_s": statistics.median(r["fast_s"] for r in rs),
             "min_s": min(r["fast_s"] for r in rs), "max_s": max(r["fast_s"] for r in rs)}
        if svd_s:
            s["svd_s"] = svd_s
            s["svd_ratio"] = s["median_s"] / svd_s
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
    ap.add_argument("--methods", default=None,
                    help="comma-separated names (default: every method of irstd.baselines.METHODS)")
    ap.add_argument("--repeat", type=int, default=1, help="fast runs per image (min is kept)")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the straightforward paths (no ratios)")
    ap.add_argument("--ratios-only", action="store_true",
                    help="no straightforward paths; print only the table of seconds per image and "
                         "ratio to one thin 2500x828 SVD")
    ap.add_argument("--svd-repeat", type=int, default=3,
                    help="SVD timings for the yardstick, before and after the methods (median)")
    ap.add_argument("--svd-threads", type=int, default=1,
                    help="NumPy BLAS threads for the yardstick SVD (default 1)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="NumPy BLAS threads for IPI/NRAM (default min(2, cpus); LAPACK stays at 1)")
    ap.add_argument("--json", action="store_true", help="print JSON (per image and summary)")
    args = ap.parse_args(argv)
    if args.methods is None:
        from irstd.baselines import METHODS

        methods = list(METHODS)
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    images, why = load_images(args.images)
    if images is None:
        print(f"skipped: {why}", file=sys.stderr)
        return 0
    svd_before = time_svd(args.svd_repeat, args.svd_threads)
    rows = run(methods, images, reference=not (args.no_reference or args.ratios_only),
               repeat=args.repeat, blas_threads=args.blas_threads)
    # the yardstick before and after the methods: the machine's load drifts
    svd_s = statistics.median(svd_before + time_svd(args.svd_repeat, args.svd_threads))
    summary = summarise(rows, methods, svd_s)
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["numpy_blas_threads_ipi_nram"] = args.blas_threads or min(2, os.cpu_count() or 1)
    if args.json:
        json.dump({"env": env, "cpus": os.cpu_count(), "images": len(images), "svd_s": svd_s,
                   "svd_threads": args.svd_threads,
                   "svd_shape": list(SVD_SHAPE), "summary": summary, "per_image": rows},
                  sys.stdout, indent=1)
        print()
        return 0
    if args.ratios_only:
        render_ratios(summary, len(images), env, svd_s, args.svd_threads)
    else:
        render(summary, len(images), env)
        print()
        render_ratios(summary, len(images), env, svd_s, args.svd_threads, header=False)
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


def render_ratios(summary, n_images, env, svd_s, svd_threads, header=True) -> None:
    """Print median seconds per image and its ratio to one thin SVD (text mode)."""
    if header:
        print(f"{n_images} SIRST test images, {os.cpu_count()} CPUs, threads {env}")
    m, n = SVD_SHAPE
    print(f"yardstick: one thin SVD of a {m}x{n} float64 matrix = {svd_s:.3f} s "
          f"({svd_threads} BLAS thread{'s' if svd_threads != 1 else ''}, same process)")
    print(f"{'method':10} {'median s':>9} {'ratio to SVD':>13}  iterations (min/median/max)")
    for name, s in summary.items():
        its = (f"{s['iterations_min']}/{s['iterations_median']}/{s['iterations_max']}"
               if "iterations_min" in s else "-")
        print(f"{name:10} {s['median_s']:9.4f} {s['svd_ratio']:13.4f}  {its}")


if __name__ == "__main__":
    raise SystemExit(main())
