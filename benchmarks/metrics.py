"""Time per image of the metrics engine on the SIRST 50/50 test masks.

Prediction maps are made from the masks (8-bit: GT dilated by one pixel plus noise and a few
false-alarm blobs; float: a smoothed, noised copy). Times are reported with the reference loop
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
        out.append((image_id, gt, s, np.floor(s * 255).astype(np.uint8)))
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
    pixels = sum(g.size for _, g, _, _ in maps)

    def ours(kind, sweep):
        def run():
            ev = Evaluator(sweep=sweep)
            for image_id, gt, s, s8 in maps:
                ev.update(s8 if kind == "uint8" else s, gt, image_id=image_id)

        return run

    def reference():
        reference_evaluate([(s8.astype(np.float32) / 255.0, gt.astype(np.float32) / 255.0) for _, gt, _, s8 in maps])

    ref = _time(reference, args.repeat)
    print(f"{n} images, {pixels / n:.0f} pixels per image on average; best of {args.repeat}")
    print(f"{'what':52s} {'ms/image':>9s} {'vs reference':>13s}")
    print(f"{'reference loop (IoU + Pd/Fa only, skimage regionprops)':52s} {1e3 * ref / n:9.3f} {1.0:12.2f}x")
    for label, kind, sweep in (
        ("engine, 8-bit maps, no Pd-Fa sweep", "uint8", None),
        ("engine, 8-bit maps, Pd-Fa sweep of 101 thresholds", "uint8", DEFAULT_SWEEP),
        ("engine, float maps, no Pd-Fa sweep", "float", None),
        ("engine, float maps, Pd-Fa sweep of 101 thresholds", "float", DEFAULT_SWEEP),
    ):
        t = _time(ours(kind, sweep), args.repeat)
        print(f"{label:52s} {1e3 * t / n:9.3f} {t / ref:12.2f}x")

if __name__ == "__main__":
    main()
