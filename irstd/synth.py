"""Synthetic infrared-like scenes with small targets and exact masks.

A scene is a cluttered background plus 0 to several small Gaussian-like targets:

* background: a 1/f^beta texture, clouds (a smoother 1/f field through a soft threshold, with
  bright rims), optionally a ground band under a rough horizon with warm blocks (buildings) and
  lines (roads) with sharp bright edges, a vertical sky gradient, sensor noise (white
  temporal noise and fixed-pattern column/row stripes);
* targets: an anisotropic, rotated 2-D Gaussian point-spread profile sampled at the pixel
  centres, of 1 to about 80 pixels, added to the background. The amplitude is set so that each
  target has the requested signal-to-clutter ratio

  .. math:: \\mathrm{SCR} = (\\mu_t - \\mu_b) / \\sigma_b,

  with :math:`\\mu_t` the mean of the scene over the target's mask and :math:`\\mu_b`,
  :math:`\\sigma_b` the mean and standard deviation of the background in the box that extends
  the target's bounding box by ``SCR_MARGIN`` (10) pixels on each side, without the target's
  mask dilated by 2 pixels (the usual local definition, e.g. Gao et al. 2013). The SCR is exact
  before the final clipping to [0, 1] and quantisation.
* mask: the pixels where the target's own profile is at least ``MASK_FRACTION`` (one half) of its
  sampled peak, so the mask is the target's core whatever the background. Targets are placed
  so that their masks are at least 3 pixels apart: the number of 8-connected components of the
  mask equals the number of targets.

Everything is drawn from the given generator: the same seed gives the same arrays, and
:func:`write_dataset` the same files byte for byte.

References
----------
.. [1] C. Gao, D. Meng, Y. Yang, Y. Wang, X. Zhou, A. G. Hauptmann, "Infrared Patch-Image Model
   for Small Target Detection in a Single Image", IEEE TIP 22(12), 2013 (SCR definition).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from irstd import __version__, intensity, io
from irstd.errors import InputError

__all__ = ["MASK_FRACTION", "SCR_MARGIN", "Target", "make_scene", "write_dataset"]

#: A pixel belongs to a target's mask when its profile is at least this fraction of the peak.
MASK_FRACTION = 0.5
#: Width (pixels) of the local background ring used for the SCR.
SCR_MARGIN = 10
#: Target mask areas are drawn log-uniformly in this range (pixels).
AREA_RANGE = (1.0, 80.0)

_NAME = "synth_{:04d}"
_NAME_RE = re.compile(r"^synth_\d{4,}\.png$")


@dataclass
class Target:
    """One synthetic target: centre (row, col), mask area (px), Gaussian sigmas, amplitude, SCR."""

    row: float
    col: float
    area: int
    sigma_major: float
    sigma_minor: float
    angle: float
    amplitude: float
    scr: float


@lru_cache(maxsize=16)
def _spectrum_filter(h: int, w: int, beta: float) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy * fy + fx * fx)
    r[0, 0] = 1.0 / max(h, w)
    filt = r ** (-beta / 2.0)
    filt[0, 0] = 0.0
    return filt


def _power_noise(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """Zero-mean, unit-std field with power spectrum ~ 1/f^beta."""
    spec = np.fft.rfft2(rng.standard_normal((h, w)))
    spec *= _spectrum_filter(h, w, round(beta, 2))
    out = np.fft.irfft2(spec, s=(h, w))
    std = out.std()
    return out / std if std > 0 else out


def _power_noise_1d(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    f = np.fft.rfftfreq(n)
    f[0] = 1.0 / n
    spec = np.fft.rfft(rng.standard_normal(n)) * f ** (-beta / 2.0)
    spec[0] = 0
    out = np.fft.irfft(spec, n=n)
    std = out.std()
    return out / std if std > 0 else out


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    rows = np.linspace(0.0, 1.0, h)[:, None]
    level = rng.uniform(0.15, 0.4)
    bg = level + rng.uniform(-0.08, 0.12) * rows + np.zeros((1, w))
    # clouds: smooth field through a soft threshold, bright rims
    if rng.random() < 0.85:
        field = _power_noise(rng, h, w, rng.uniform(3.0, 3.8))
        cover = rng.uniform(-0.8, 1.2)
        clouds = 1.0 / (1.0 + np.exp(-(field - cover) * rng.uniform(2.0, 6.0)))
        bg += rng.uniform(0.05, 0.25) * clouds
        gy, gx = np.gradient(clouds)
        rim = np.hypot(gy, gx)
        peak = rim.max()
        if peak > 0:
            bg += rng.uniform(0.0, 0.12) * rim / peak
    # fine 1/f texture
    bg += rng.uniform(0.005, 0.02) * _power_noise(rng, h, w, rng.uniform(1.6, 2.4))
    # ground band
    if rng.random() < 0.55:
        horizon = rng.uniform(0.55, 0.9) * h + rng.uniform(2, 0.05 * h + 3) * _power_noise_1d(rng, w, 2.0)
        below = rows * (h - 1) >= horizon[None, :]
        ground = rng.uniform(0.3, 0.6) + 0.04 * _power_noise(rng, h, w, 2.0)
        for _ in range(int(rng.integers(0, 9))):  # warm blocks: buildings, vehicles
            bh, bw = int(rng.integers(3, max(4, h // 10))), int(rng.integers(3, max(4, w // 8)))
            r0 = int(rng.uniform(np.min(horizon) - bh, h - 1))
            c0 = int(rng.integers(0, max(1, w - bw)))
            ground[max(r0, 0):r0 + bh, c0:c0 + bw] += rng.uniform(-0.1, 0.25)
        for _ in range(int(rng.integers(0, 3))):  # roads / linear structures
            c = rng.uniform(0, w)
            slope = rng.uniform(-2.0, 2.0)
            dist = np.abs((np.arange(w)[None, :] - c) - slope * (rows * (h - 1) - h))
            ground += rng.uniform(0.05, 0.2) * (dist < rng.uniform(0.8, 2.5))
        edge = below & ~np.roll(below, 1, axis=0)
        bg = np.where(below, ground, bg) + rng.uniform(0.0, 0.15) * edge
        bg = ndimage.uniform_filter(bg, 2) * 0.5 + bg * 0.5  # slight optics blur
    # sensor: fixed-pattern stripes and temporal noise
    bg += rng.normal(0.0, rng.uniform(0.001, 0.006), (1, w))
    bg += rng.normal(0.0, rng.uniform(0.0, 0.003), (h, 1))
    bg += rng.normal(0.0, rng.uniform(0.002, 0.008), (h, w))
    return bg


def _target_profile(rng: np.random.Generator, area_goal: float):
    """Profile and mask patches, sigmas, angle, patch radius and the sub-pixel centre offset."""
    aspect = rng.uniform(1.0, 2.0)
    # area of {g >= f * peak} for a Gaussian: 2 pi s1 s2 ln(1/f)
    s_prod = area_goal / (2.0 * np.pi * np.log(1.0 / MASK_FRACTION))
    s2 = np.sqrt(s_prod / aspect)
    s1 = s2 * aspect
    s1, s2 = max(s1, 0.35), max(s2, 0.35)
    angle = rng.uniform(0.0, np.pi)
    rad = int(np.ceil(3.0 * s1)) + 1
    dy, dx = rng.uniform(-0.5, 0.5, 2)
    yy, xx = np.mgrid[-rad:rad + 1, -rad:rad + 1].astype(np.float64)
    yy -= dy
    xx -= dx
    ca, sa = np.cos(angle), np.sin(angle)
    u = ca * xx + sa * yy
    v = -sa * xx + ca * yy
    prof = np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
    prof /= prof.max()
    return prof, prof >= MASK_FRACTION, s1, s2, angle, rad, float(dy), float(dx)


def make_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    targets: tuple[int, int] = (1, 4),
    scr: tuple[float, float] = (3.0, 10.0),
    return_targets: bool = False,
):
    """Make one synthetic infrared-like scene and its exact target mask.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random draw (same state, same scene).
    height, width : int
        Scene size in pixels (at least 16 each).
    targets : (int, int), optional
        Inclusive range of the number of targets (drawn uniformly). Fewer are placed when the
        scene is too small to keep them apart.
    scr : (float, float), optional
        Range of the signal-to-clutter ratio of each target (drawn uniformly); see the module
        documentation for the definition.
    return_targets : bool, optional
        Also return the list of :class:`Target` placed.

    Returns
    -------
    image : ndarray, shape (height, width), float64 in [0, 1]
    mask : ndarray, shape (height, width), bool
    targets : list of Target
        Only with ``return_targets``.
    """
    if height < 16 or width < 16:
        raise InputError(f"--size: {height}x{width} is too small (at least 16x16)")
    tmin, tmax = int(targets[0]), int(targets[1])
    if tmin < 0 or tmax < tmin:
        raise InputError(f"--targets: invalid range {targets[0]}..{targets[1]}")
    lo, hi = float(scr[0]), float(scr[1])
    if not (0 < lo <= hi) or not np.isfinite(hi):
        raise InputError(f"--scr: invalid range {scr[0]}..{scr[1]} (0 < LOW <= HIGH)")
    bg = _background(rng, height, width)
    image = bg.copy()
    mask = np.zeros((height, width), bool)
    occupied = np.zeros((height, width), bool)
    placed: list[Target] = []
    n = int(rng.integers(tmin, tmax + 1))
    for _ in range(n):
        area_goal = float(np.exp(rng.uniform(np.log(AREA_RANGE[0]), np.log(AREA_RANGE[1]))))
        prof, core, s1, s2, angle, rad, dy, dx = _target_profile(rng, area_goal)
        goal_scr = float(rng.uniform(lo, hi))
        size = 2 * rad + 1
        if size + 2 >= min(height, width):
            continue
        for _attempt in range(20):
            r0 = int(rng.integers(1, height - size - 1))
            c0 = int(rng.integers(1, width - size - 1))
            if not occupied[r0:r0 + size, c0:c0 + size][core].any():
                break
        else:
            continue
        full = np.zeros((height, width), bool)
        full[r0:r0 + size, c0:c0 + size] = core
        rows, cols = np.nonzero(full)
        br0, br1 = max(rows.min() - SCR_MARGIN, 0), min(rows.max() + SCR_MARGIN + 1, height)
        bc0, bc1 = max(cols.min() - SCR_MARGIN, 0), min(cols.max() + SCR_MARGIN + 1, width)
        near = ndimage.binary_dilation(full[br0:br1, bc0:bc1], iterations=2)
        ring = image[br0:br1, bc0:bc1][~near]
        mu_b, sd_b = float(ring.mean()), float(ring.std())
        sd_b = max(sd_b, 1e-3)
        window = image[r0:r0 + size, c0:c0 + size]
        mean_here = float(window[core].mean())
        amp = (goal_scr * sd_b + mu_b - mean_here) / float(prof[core].mean())
        amp = max(amp, 2.0 * sd_b)
        window += amp * prof
        scr_value = (float(window[core].mean()) - mu_b) / sd_b
        mask[r0:r0 + size, c0:c0 + size] |= core
        occupied |= ndimage.binary_dilation(full, iterations=3)
        placed.append(
            Target(row=r0 + rad + dy, col=c0 + rad + dx, area=int(core.sum()), sigma_major=float(s1),
                   sigma_minor=float(s2), angle=float(angle), amplitude=float(amp), scr=float(scr_value))
        )
    # map into [0, 1]: keep the background's level, make room for the brightest target
    top = image.max()
    if top > 0.98:
        low = min(image.min(), 0.0)
        image = (image - low) * (0.98 / (top - low))
    np.clip(image, 0.0, 1.0, out=image)
    if return_targets:
        return image, mask, placed
    return image, mask


#: Written first into every folder :func:`write_dataset` writes: ``--overwrite`` replaces the
#: dataset files only of a folder holding it (or a ``synth.json`` of irstd.synth, written by
#: versions before the marker).
SYNTH_MARKER = ".irstd_synth"

#: What :func:`write_dataset` writes (or replaces) in its folder.
_OWN_ENTRIES = ("images", "masks", "splits", "synth.json")


def written_by_synth(out: Path) -> bool:
    """Whether ``out`` is a folder :func:`write_dataset` wrote (its marker, or an irstd.synth
    ``synth.json``)."""
    if (out / SYNTH_MARKER).is_file():
        return True
    try:
        import json

        record = json.loads((out / "synth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "irstd.synth" in str(record.get("generator", ""))


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise InputError(f"{out}: folder is not empty (use --overwrite to replace its synthetic dataset)")
    mine = [name for name in _OWN_ENTRIES if (out / name).exists()]
    if mine and not written_by_synth(out):
        raise InputError(
            f"{out}: holds {', '.join(mine)} that irstd synth did not write (no {SYNTH_MARKER} marker); "
            f"--overwrite replaces only a synthetic dataset: choose a new or empty --out"
        )


def write_dataset(
    out: str | os.PathLike,
    count: int,
    size: tuple[int, int],
    seed: int,
    bit_depth: int = 8,
    targets: tuple[int, int] = (1, 4),
    scr: tuple[float, float] = (3.0, 10.0),
    overwrite: bool = False,
    test_fraction: float = 0.5,
    progress=None,
) -> dict[str, Any]:
    """Write a synthetic dataset in the ``images/`` + ``masks/`` + ``splits/`` layout.

    Files: ``images/synth_0000.png`` ... (8- or 16-bit grey PNG), ``masks/synth_0000.png``
    (8-bit, 0/255), ``splits/train.txt``, ``splits/test.txt`` (the last
    ``round(count * test_fraction)`` ids, at least one, are test; a split without ids, the
    training split of one scene, is not written) and ``synth.json`` (the
    parameters, rules and every target). Scene ``i`` depends only on ``seed`` and ``i``
    (``numpy.random.SeedSequence(seed).spawn``), so the same seed gives byte-identical files and
    a larger ``count`` extends a smaller one.

    Parameters
    ----------
    out : path
        Output folder; an existing non-empty folder is refused unless ``overwrite`` (then stale
        ``synth_*.png`` files from an earlier, larger run are removed). ``overwrite`` never
        replaces a dataset irstd synth did not write: a folder holding ``images/``, ``masks/``,
        ``splits/`` or ``synth.json`` without the :data:`SYNTH_MARKER` file (written first)
        is refused.
    count : int
        Number of scenes (>= 1).
    size : (int, int)
        (height, width).
    seed : int
        Seed (>= 0).
    bit_depth : {8, 16}
    targets, scr
        See :func:`make_scene`.
    progress : callable, optional
        ``progress(done, total)`` after each scene.

    Returns
    -------
    record : dict
        What ``synth.json`` holds.
    """
    out = Path(out)
    if count < 1:
        raise InputError(f"--count: must be at least 1, got {count}")
    if seed < 0:
        raise InputError(f"--seed: must be >= 0, got {seed}")
    if bit_depth not in (8, 16):
        raise InputError(f"--bit-depth: must be 8 or 16, got {bit_depth}")
    h, w = int(size[0]), int(size[1])
    _check_out(out, overwrite)
    children = np.random.SeedSequence(seed).spawn(count)
    ids = [_NAME.format(i) for i in range(count)]
    scenes = []
    for i, child in enumerate(children):
        image, mask, placed = make_scene(np.random.default_rng(child), h, w, targets=targets, scr=scr,
                                         return_targets=True)
        scenes.append((image, mask, placed))
        if progress is not None:
            progress(i + 1, count)
    # every scene was made before anything is written: bad options fail without side effects
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    scale = 2**bit_depth - 1
    records = []
    io.write_text(out / SYNTH_MARKER, "written by irstd synth: --overwrite may replace this dataset\n")
    for name, (image, mask, placed) in zip(ids, scenes):
        io.write_image(out / "images" / f"{name}.png", np.rint(image * scale).astype(dtype))
        io.write_image(out / "masks" / f"{name}.png", mask.astype(np.uint8) * np.uint8(255))
        records.append({"id": name, "targets": [asdict(t) for t in placed]})
    for sub in ("images", "masks"):
        for f in (out / sub).iterdir():
            if _NAME_RE.match(f.name) and f.stem not in set(ids):
                f.unlink()
    n_test = min(count, max(1, int(round(count * test_fraction))))
    for name, chosen in (("train", ids[: count - n_test]), ("test", ids[count - n_test:])):
        split = out / "splits" / f"{name}.txt"
        if chosen:
            io.write_text(split, "".join(f"{i}\n" for i in chosen))
        elif split.exists():  # an empty split is a problem for irstd data check: none is written
            split.unlink()
    record = {
        "generator": f"irstd {__version__} irstd.synth",
        "seed": seed,
        "count": count,
        "size": [h, w],
        "bit_depth": bit_depth,
        "bit_depth_rule": intensity.bit_depth_rule(np.dtype(dtype)),
        "targets_range": list(targets),
        "scr_range": list(scr),
        "scr_definition": f"(mean over target mask - local background mean) / local background std; "
                          f"local background = bounding box + {SCR_MARGIN} px, without the mask dilated by 2 px",
        "mask_rule": f"target profile >= {MASK_FRACTION} x its sampled peak",
        "splits": {"train": count - n_test, "test": n_test},
        "images": records,
    }
    io.write_json(out / "synth.json", record)
    return record
