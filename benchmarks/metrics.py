"""Time per image of the metrics engine on the SIRST 50/50 test masks.

Prediction maps are made from the masks: "noisy" (GT dilated by one pixel, smoothed, Gaussian
noise sigma 0.1 everywhere, three 2x2 false alarms; float and its 8-bit truncation) and "clean"
(the same without the noise: near 0 away from targets, like a trained network's output). Times are reported with the reference loop
(skimage regionprops + greedy loop, as BasicIRSTD) measured in the same run, as a ratio.

    IRSTD_DATA=/work/shared/data OMP_NUM_THREADS=1 python benchmarks/metrics.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from irstd.metrics import DEFAULT_SWEEP, Evaluator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_basicirstd import reference_evaluate  # noqa: E402


def _maps(root: Path):
    ids = (root / "splits" / "dnanet_50_50" / "test.txt").read_text().split()
    rng = np.random.default_rng(0)
    out = []
    for image_id in ids:
        gt = np.array(Image.open(root / "masks" / f"{image_id}.png"))
        m = gt > 127
        s = ndimage.gaussian_filter(ndimage.binary_dilation(m).astype(float), 1.0) * 1.5
        s = np.clip(s + rng.normal(0, 0.1, m.shape), 0, 1)
        for _ in range(3):
            r, c = rng.integers(0, m.shape[0] - 3), rng.integers(0, m.shape[1] - 3)
            s[r : r + 2, c : c + 2] = 0.9
        # "clean": a network-like map, near 0 away from targets, a few weak false alarms.
        c = ndimage.gaussian_filter(ndimage.binary_dilation(m).astype(float), 1.0) * 1.5
        c = np.clip(c + 0.02 * rng.random(m.shape) ** 8, 0, 1)
        for _ in range(3):
            r, cc = rng.integers(0, m.shape[0] - 3), rng.integers(0, m.shape[1] - 3)
            c[r : r + 2, cc : cc + 2] = rng.uniform(0.2, 0.9)
        out.append((image_id, gt, s, np.floor(s * 255).astype(np.uint8), c))
    return out


def _time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(os.environ.get("IRSTD_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")) / "SIRST"
    if not root.is_dir():
        sys.exit(f"SIRST not found under {root} (set IRSTD_DATA)")
    maps = _maps(root)
    n = len(maps)
    pixels = sum(g.size for _, g, _, _, _ in maps)

    def ours(kind, sweep):
        def run():
            ev = Evaluator(sweep=sweep)
            for image_id, gt, s, s8, c in maps:
                ev.update({"uint8": s8, "float": s, "clean": c}[kind], gt, image_id=image_id)

        return run

    def reference():
        reference_evaluate([(s8.astype(np.float32) / 255.0, gt.astype(np.float32) / 255.0) for _, gt, _, s8, _ in maps])

    def reference_sweep(count=20):
        pairs = [(s8.astype(np.float32) / 255.0, gt.astype(np.float32) / 255.0) for _, gt, _, s8, _ in maps[:count]]
        for t in DEFAULT_SWEEP:
            reference_evaluate(pairs, float(t))

    ref = _time(reference, args.repeat)
    ref_sweep = _time(reference_sweep, 1) / 20 * n
    print(f"{n} images, {pixels / n:.0f} pixels per image on average; best of {args.repeat}")
    print(f"{'what':58s} {'ms/image':>9s} {'vs reference':>13s}")
    print(f"{'reference loop (IoU + Pd/Fa at one threshold, skimage)':58s} {1e3 * ref / n:9.3f} {1.0:12.2f}x")
    print(f"{'reference loop at each of 101 thresholds (first 20 images)':58s} {1e3 * ref_sweep / n:9.3f} {ref_sweep / ref:12.2f}x")
    for label, kind, sweep in (
        ("engine, noisy 8-bit maps, no Pd-Fa sweep", "uint8", None),
        ("engine, noisy 8-bit maps, Pd-Fa sweep of 101 thresholds", "uint8", DEFAULT_SWEEP),
        ("engine, noisy float maps, no Pd-Fa sweep", "float", None),
        ("engine, noisy float maps, Pd-Fa sweep of 101 thresholds", "float", DEFAULT_SWEEP),
        ("engine, clean float maps, no Pd-Fa sweep", "clean", None),
        ("engine, clean float maps, Pd-Fa sweep of 101 thresholds", "clean", DEFAULT_SWEEP),
    ):
        t = _time(ours(kind, sweep), args.repeat)
        print(f"{label:58s} {1e3 * t / n:9.3f} {t / ref:12.2f}x")

if __name__ == "__main__":
    main()
