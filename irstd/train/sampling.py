"""Training samples: keyed random crops with rescaling and flips, cut on the CPU or on the device.

A training sample is keyed ``(index, epoch, position)``: its randomness is drawn from a generator
seeded with ``(seed, epoch, position)`` (:func:`sample_rng`), the epoch order from ``(seed, epoch)``
(:class:`EpochSampler`). Resuming therefore needs no sampler or worker state.

The random draws of one sample form a :class:`CropPlan` (:func:`plan_crop`): scale factor, crop
window and flips. Two places cut the pixels of a plan:

- :class:`CropDataset` (NumPy and OpenCV, one sample per item, for a ``DataLoader`` and its
  workers): the CPU path;
- :class:`DeviceCrops` (a whole batch gathered from the training images held on the training
  device): the GPU path, which reproduces OpenCV's bilinear and nearest-neighbour resizing, so both
  paths give the same crops (identical without rescaling, to float rounding with it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from irstd.errors import InputError
from irstd.intensity import to_float

__all__ = [
    "CropDataset",
    "CropPlan",
    "DeviceCrops",
    "EpochSampler",
    "augment",
    "check_scale_range",
    "parse_scale_range",
    "plan_crop",
    "random_crop",
    "random_scale",
    "sample_rng",
    "scaled_size",
]


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """A NumPy generator keyed by ``seed`` and integer ``keys`` (independent streams per key)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) for k in keys)])


# --------------------------------------------------------------------------------------------
# Scale range


def parse_scale_range(text: str) -> list[float]:
    """``"LO,HI"`` (command line) to ``[lo, hi]``, checked by :func:`check_scale_range`."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(f"--scale-range {text}: expected two numbers LO,HI (e.g. 0.5,2)") from None
    return check_scale_range(values)


def check_scale_range(values) -> list[float]:
    """Check a ``[lo, hi]`` scale range (0 < lo <= hi <= 8) and return it as a list of floats."""
    label = ",".join(map(str, values)) if isinstance(values, (list, tuple)) else str(values)
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"--scale-range {label}: expected two numbers LO,HI (e.g. 0.5,2)") from None
    if not 0 < lo <= hi <= 8:
        raise InputError(f"--scale-range {label}: needs 0 < LO <= HI <= 8")
    return [lo, hi]


# --------------------------------------------------------------------------------------------
# Pure pieces on arrays


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """``(round(height·factor), round(width·factor))``, at least 1 pixel a side."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def random_scale(image: np.ndarray, mask: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (bilinear) and its mask (nearest) by ``factor``, at least 1 pixel a side.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        float32 or float64.
    mask : ndarray of bool, shape (H, W)
    factor : float

    Returns
    -------
    image, mask : ndarray, shape (round(H·factor), round(W·factor))
        float32 image, bool mask.
    """
    h, w = image.shape
    h2, w2 = scaled_size(h, w, factor)
    if (h2, w2) == (h, w):
        return image, mask
    img = cv2.resize(np.asarray(image, dtype=np.float32), (w2, h2), interpolation=cv2.INTER_LINEAR)
    return img, _resize_mask(mask, h2, w2)


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def crop_window(mask: np.ndarray, size: int, rng: np.random.Generator, positive_prob: float = 0.5) -> tuple[int, int]:
    """Top-left corner of a random ``size``×``size`` window (see :func:`random_crop`)."""
    h, w = max(mask.shape[0], size), max(mask.shape[1], size)  # after padding
    want_target = rng.random() < positive_prob
    if want_target and mask.any():
        ys, xs = np.nonzero(mask)
        k = rng.integers(len(ys))
        y, x = int(ys[k]), int(xs[k])
        top = int(rng.integers(max(0, y - size + 1), min(y, h - size) + 1))
        left = int(rng.integers(max(0, x - size + 1), min(x, w - size) + 1))
    else:
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
    return top, left


def random_crop(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator,
    positive_prob: float = 0.5,
    fill: float = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size``×``size`` crop of an image and its mask.

    Images smaller than the crop are padded at the bottom/right first with ``fill`` (training uses
    the input mean, i.e. zero after normalisation as in BasicIRSTD and in
    ``irstd.models.inference``). With probability ``positive_prob`` (and when the mask has a target)
    the crop is drawn uniformly among the windows that contain a randomly chosen target pixel;
    otherwise uniformly among all windows.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Any dtype (kept).
    mask : ndarray of bool, shape (H, W)
    size : int
    rng : numpy.random.Generator
    positive_prob : float
    fill : float
        Padding value of the image (the mask is padded with False).

    Returns
    -------
    image_crop, mask_crop : ndarray, shape (size, size)
    """
    top, left = crop_window(mask, size, rng, positive_prob)
    return _cut(image, mask, size, top, left, fill)


def _cut(image, mask, size, top, left, fill):
    h, w = image.shape
    if h < size or w < size:
        pad = ((0, max(size - h, 0)), (0, max(size - w, 0)))
        image = np.pad(image, pad, constant_values=fill)
        mask = np.pad(mask, pad)
    return image[top : top + size, left : left + size], mask[top : top + size, left : left + size]


def _flip(image, mask, hflip: bool, vflip: bool, transpose: bool):
    if hflip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if vflip:
        image, mask = image[::-1, :], mask[::-1, :]
    if transpose:
        image, mask = image.T, mask.T
    return image, mask


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random horizontal flip, vertical flip and transpose (each with probability 0.5).

    Three random numbers are always drawn, so the generator advances the same way every time.
    """
    hflip, vflip, transpose = rng.random(3) < 0.5
    return _flip(image, mask, hflip, vflip, transpose)


@dataclass(frozen=True)
class CropPlan:
    """The random draws of one training sample.

    ``height, width`` is the image size after rescaling (the original size when ``factor`` is
    None); the window ``[top, top + size) × [left, left + size)`` lies in that image padded at the
    bottom/right to at least ``size``; the flips apply to the cut window in the order
    horizontal, vertical, transpose.
    """

    factor: float | None
    height: int
    width: int
    top: int
    left: int
    hflip: bool
    vflip: bool
    transpose: bool


def plan_crop(
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator,
    positive_prob: float = 0.5,
    scale_range: Sequence[float] | None = None,
) -> CropPlan:
    """Draw a sample's scale factor, crop window and flips (in this order) from ``rng``.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        The image's target mask (positive crops are centred on one of its pixels after scaling).
    size : int
        Crop side.
    rng : numpy.random.Generator
    positive_prob : float
        See :func:`random_crop`.
    scale_range : (lo, hi), optional
        Resize factor drawn uniformly from this range (no rescaling when None).

    Returns
    -------
    CropPlan
    """
    h, w = mask.shape
    factor = None
    if scale_range is not None:
        drawn = rng.uniform(*scale_range)
        if scaled_size(h, w, drawn) != (h, w):
            factor = float(drawn)
            h, w = scaled_size(h, w, drawn)
            mask = _resize_mask(mask, h, w)
    top, left = crop_window(mask, size, rng, positive_prob)
    hflip, vflip, transpose = (bool(v) for v in rng.random(3) < 0.5)
    return CropPlan(factor, h, w, top, left, hflip, vflip, transpose)


def apply_plan(image: np.ndarray, mask: np.ndarray, plan: CropPlan, size: int, fill: float = 0.0):
    """Cut a plan's crop out of a float image and its mask on the CPU (NumPy/OpenCV)."""
    if plan.factor is not None:
        image, mask = random_scale(image, mask, plan.factor)
    image, mask = _cut(image, mask, size, plan.top, plan.left, fill)
    return _flip(image, mask, plan.hflip, plan.vflip, plan.transpose)


# --------------------------------------------------------------------------------------------
# CPU path: a Dataset for torch's DataLoader


class CropDataset(torch.utils.data.Dataset):
    """Random crops of in-memory images; items are keyed ``(index, epoch, position)``.

    The randomness of one item depends only on ``(seed, epoch, position)``, not on worker state.
    """

    def __init__(self, images, masks, crop: int, seed: int, positive_prob: float = 0.5, bit_depth=None, fill: float = 0.0,
                 input_range: str = "bits", scale_range: Sequence[float] | None = None):
        self.scale_range = scale_range
        self.fill = fill
        self.images = images
        self.masks = masks
        self.crop = crop
        self.seed = seed
        self.positive_prob = positive_prob
        self.bit_depth = bit_depth
        self.input_range = input_range

    def __len__(self) -> int:
        return len(self.images)

    def plan(self, key) -> CropPlan:
        """The :class:`CropPlan` of item ``key = (index, epoch, position)``."""
        index, epoch, position = key
        rng = sample_rng(self.seed, 0xC409, epoch, position)
        return plan_crop(self.masks[index], self.crop, rng, self.positive_prob, self.scale_range)

    def __getitem__(self, key):
        image = to_float(self.images[key[0]], self.bit_depth, self.input_range)
        img, msk = apply_plan(image, self.masks[key[0]], self.plan(key), self.crop, self.fill)
        x = np.ascontiguousarray(img, dtype=np.float32)
        y = np.ascontiguousarray(msk, dtype=np.float32)
        return torch.from_numpy(x)[None], torch.from_numpy(y)[None]


class EpochSampler(torch.utils.data.Sampler):
    """Seeded epoch order sharded over ranks (like ``DistributedSampler``), resumable mid-epoch.

    Yields ``(index, epoch, position)`` keys for :class:`CropDataset`. Each rank gets
    ``ceil(n / world)`` samples (the order is wrapped to pad), rank ``r`` takes positions
    ``r, r + world, ...``. When that would leave a last batch of a single image (BatchNorm cannot
    train on it), that one sample is left out of the epoch.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, batch_size: int = 1):
        self.n = n
        self.seed = seed
        self.rank = rank
        self.world = world
        self.padded = math.ceil(n / world)
        self.per_rank = self.padded
        if batch_size > 1 and self.per_rank > 1 and self.per_rank % batch_size == 1:
            self.per_rank -= 1
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields epoch ``epoch`` from this rank's sample ``start`` on."""
        self.epoch = epoch
        self.start = start

    def __len__(self) -> int:
        return self.per_rank - self.start

    def __iter__(self):
        order = sample_rng(self.seed, 0x0DE5, self.epoch).permutation(self.n)
        total = self.padded * self.world
        order = np.resize(order, total)  # wraps around to pad (DistributedSampler's rule)
        for local in range(self.start, self.per_rank):
            position = local * self.world + self.rank
            yield int(order[position]), self.epoch, position


# --------------------------------------------------------------------------------------------
# Device path: whole batches gathered from images held on the training device


def _axis_lookup(src: int, dst: int, start: int, size: int, scaled: bool, reverse: bool):
    """Source indices and weights along one axis of a crop, as OpenCV's ``resize`` computes them.

    Bilinear (``INTER_LINEAR``): ``f = (d + 0.5)·src/dst − 0.5`` in float32, ``i0 = floor(f)``,
    weight ``f − i0`` of ``i0 + 1``, both clamped to the image. Nearest (``INTER_NEAREST``):
    ``floor(d·src/dst)``. ``valid`` is False on the padding beyond the scaled image.
    """
    d = start + np.arange(size)
    valid = d < dst
    if scaled:
        f = ((d + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
        i0 = np.floor(f).astype(np.int64)
        weight = (f - i0.astype(np.float32)).astype(np.float32)
        low, high = i0 < 0, i0 >= src - 1
        weight[low | high] = 0
        i0 = np.clip(i0, 0, src - 1)
        i1 = np.minimum(i0 + 1, src - 1)
        near = np.minimum(np.floor(d * (1.0 / (dst / src))).astype(np.int64), src - 1)
    else:
        i0 = i1 = near = np.minimum(d, src - 1)
        weight = np.zeros(size, np.float32)
    if reverse:
        i0, i1, weight, near, valid = i0[::-1], i1[::-1], weight[::-1], near[::-1], valid[::-1]
    return np.stack([i0, i1, near, valid]), weight


class DeviceCrops:
    """Training crops cut on the training device, a batch at a time.

    The images (after ``to_float``) and masks are copied to ``device`` once, back to back in one
    flat tensor each; the plans are drawn on the CPU exactly as :class:`CropDataset` draws them
    (:meth:`CropDataset.plan`), and a batch is a few gathers on the device, so no worker process
    and no host-to-device copy of pixels is needed per step.

    Parameters
    ----------
    dataset : CropDataset
        Images, masks and sampling parameters (its ``plan`` is used).
    device : torch.device

    Notes
    -----
    Without rescaling the crops equal :class:`CropDataset`'s exactly; with it, to float rounding
    (OpenCV's bilinear weights are reproduced, the arithmetic order may differ).
    """

    def __init__(self, dataset: CropDataset, device: torch.device):
        self.dataset = dataset
        self.device = torch.device(device)
        floats = [np.ascontiguousarray(to_float(im, dataset.bit_depth, dataset.input_range), dtype=np.float32) for im in dataset.images]
        self.shapes = [im.shape for im in floats]
        sizes = [im.size for im in floats]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.images = torch.from_numpy(np.concatenate([im.ravel() for im in floats])).to(self.device)
        self.masks = torch.from_numpy(np.concatenate([np.asarray(m, bool).ravel() for m in dataset.masks])).to(self.device)

    def batch(self, keys: Sequence[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and masks ``(B, 1, crop, crop)`` (float32, on the device) of these sample keys."""
        size = self.dataset.crop
        index_rows, index_cols, weight_rows, weight_cols, bases, widths, transposed = [], [], [], [], [], [], []
        for key in keys:
            plan = self.dataset.plan(key)
            h, w = self.shapes[key[0]]
            scaled = plan.factor is not None
            rows, wr = _axis_lookup(h, plan.height, plan.top, size, scaled, plan.vflip)
            cols, wc = _axis_lookup(w, plan.width, plan.left, size, scaled, plan.hflip)
            index_rows.append(rows)
            index_cols.append(cols)
            weight_rows.append(wr)
            weight_cols.append(wc)
            bases.append(self.offsets[key[0]])
            widths.append(w)
            transposed.append(plan.transpose)
        ints = torch.from_numpy(np.stack([np.stack(index_rows), np.stack(index_cols)]))  # (2, B, 4, S)
        per = torch.from_numpy(np.array([bases, widths, transposed], dtype=np.int64))  # (3, B)
        weights = torch.from_numpy(np.stack([np.stack(weight_rows), np.stack(weight_cols)]))  # (2, B, S)
        ints, per, weights = (t.to(self.device, non_blocking=True) for t in (ints, per, weights))
        (r0, r1, rn, rv), (c0, c1, cn, cv) = ints[0].unbind(1), ints[1].unbind(1)
        wr, wc = weights[0][:, :, None], weights[1][:, None, :]
        base, width, transpose = per[0][:, None, None], per[1][:, None, None], per[2].bool()

        def at(flat, rows, cols):
            return flat[base + rows[:, :, None] * width + cols[:, None, :]]

        top = at(self.images, r0, c0) * (1 - wc) + at(self.images, r0, c1) * wc
        bottom = at(self.images, r1, c0) * (1 - wc) + at(self.images, r1, c1) * wc
        valid = rv.bool()[:, :, None] & cv.bool()[:, None, :]
        x = torch.where(valid, top * (1 - wr) + bottom * wr, torch.full_like(top, self.dataset.fill))
        y = (at(self.masks, rn, cn) & valid).float()
        t = transpose[:, None, None]
        x = torch.where(t, x.transpose(1, 2), x)
        y = torch.where(t, y.transpose(1, 2), y)
        return x[:, None].contiguous(), y[:, None].contiguous()
