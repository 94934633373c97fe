"""Training samples (:mod:`irstd.train.sampling`): crops cut on the device equal the DataLoader's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irstd.train.sampling import CropDataset, DeviceCrops, plan_crop, random_scale, sample_rng


def _images(count=16, seed=0):
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(20, 150, 2))  # some smaller than the crop: padding
        images.append(rng.integers(0, 256, (h, w)).astype(np.uint8))
        mask = np.zeros((h, w), bool)
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        mask[y : y + 3, x : x + 2] = True
        masks.append(mask)
    return images, masks


@pytest.mark.parametrize("scale_range", [None, [0.5, 2.0], [0.9, 1.1]])
def test_device_crops_equal_the_dataloader_crops(scale_range):
    images, masks = _images()
    dataset = CropDataset(images, masks, 64, seed=3, positive_prob=0.5, fill=0.4, scale_range=scale_range)
    keys = [(i % len(images), 7, i) for i in range(48)]
    x, y = DeviceCrops(dataset, torch.device("cpu")).batch(keys)
    ref_x = torch.stack([dataset[k][0] for k in keys])
    ref_y = torch.stack([dataset[k][1] for k in keys])
    assert x.shape == y.shape == (48, 1, 64, 64) and x.dtype == y.dtype == torch.float32
    assert torch.equal(y, ref_y)
    assert y.sum() > 0 and (x == 0.4).any()  # targets and padding both present
    if scale_range is None:
        assert torch.equal(x, ref_x)
    else:  # OpenCV's bilinear weights, the arithmetic order may differ
        assert float((x - ref_x).abs().max()) < 1e-4


def test_plan_draws_in_the_documented_order():
    mask = np.zeros((40, 50), bool)
    mask[10, 20] = True
    plan = plan_crop(mask, 32, sample_rng(1, 2), positive_prob=1.0, scale_range=[2.0, 2.0])
    assert (plan.factor, plan.height, plan.width) == (2.0, 80, 100)
    scaled = random_scale(np.zeros((40, 50), np.float32), mask, 2.0)[1]
    window = scaled[plan.top : plan.top + 32, plan.left : plan.left + 32]
    assert window.any()  # a positive crop holds a target pixel of the scaled mask
    same = plan_crop(mask, 32, sample_rng(1, 2), positive_prob=1.0, scale_range=None)
    assert same.factor is None and (same.height, same.width) == (40, 50)
