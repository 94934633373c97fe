"""ISNet's loss: the edge target, hand-computed values on a 3 x 3 mask, the registry, errors."""

from __future__ import annotations

import math

import pytest
import torch

from irstd.errors import InputError
from irstd.losses import ISNetLoss, batch_soft_iou_loss, create_loss, gradient_magnitude, list_losses

EPS = math.sqrt(1e-6)  # the gradient magnitude where the mask is flat
ONE = math.sqrt(1 + 1e-6)  # next to a boundary along one axis


def _dot() -> torch.Tensor:
    t = torch.zeros(1, 1, 3, 3)
    t[0, 0, 1, 1] = 1
    return t


def test_gradient_magnitude_by_hand():
    expected = torch.tensor([[EPS, ONE, EPS], [ONE, EPS, ONE], [EPS, ONE, EPS]])
    assert torch.allclose(gradient_magnitude(_dot())[0, 0], expected)
    # a corner pixel of a 2 x 2 block: a vertical and a horizontal step -> sqrt(2)
    block = torch.zeros(1, 1, 4, 4)
    block[0, 0, 1:3, 1:3] = 1
    g = gradient_magnitude(block)
    assert g.shape == (1, 1, 4, 4)
    assert g[0, 0, 0, 1].item() == pytest.approx(ONE)  # above the block: dy = 1, dx = 0
    assert g[0, 0, 1, 1].item() == pytest.approx(math.sqrt(2 + 1e-6))  # dy = 1 (row 2), dx = 1 (col 2)
    assert gradient_magnitude(torch.ones(1, 3, 2, 2)).shape == (1, 1, 2, 2)  # channel 0 only


def test_batch_soft_iou_is_one_ratio_over_the_batch():
    p = torch.tensor([0.5, 0.5, 1.0, 0.0]).view(2, 1, 1, 2)
    g = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(2, 1, 1, 2)
    # inter = 0.5 + 1, sum p = 2, sum g = 2 -> 1 - (1.5 + 1) / (2 + 2 - 1.5 + 1)
    assert batch_soft_iou_loss(p, g).item() == pytest.approx(1 - 2.5 / 3.5)


def test_isnet_loss_by_hand():
    t = _dot()
    zeros = torch.zeros(1, 1, 3, 3)  # p = 0.5 everywhere, for the mask and the edge map
    # mask: inter 0.5, sum p 4.5, sum g 1 -> 1 - 1.5 / 6
    mask_iou = 1 - 1.5 / 6
    # edge BCE at p = 0.5 is log 2 whatever the target
    bce = math.log(2)
    # edge IoU on sigmoid(0.5) against G: 4 pixels ONE, 5 pixels EPS
    q = 1 / (1 + math.exp(-0.5))
    big_g = 4 * ONE + 5 * EPS
    edge_iou = 1 - (q * big_g + 1) / (9 * q + big_g - q * big_g + 1)
    expected = mask_iou + 10 * bce + edge_iou
    loss = create_loss("isnet")
    assert loss([zeros, zeros], t).item() == pytest.approx(expected, rel=1e-6)
    assert loss([zeros, zeros], t[:, 0].bool()).item() == pytest.approx(expected, rel=1e-6)  # (B, H, W) mask
    assert ISNetLoss(edge_weight=0)([zeros, zeros], t).item() == pytest.approx(mask_iou + edge_iou, rel=1e-6)


def test_isnet_loss_one_logit_by_hand():
    """One edge logit of 2 on a pixel whose target is EPS: only that pixel's BCE changes."""
    t = _dot()
    edge = torch.zeros(1, 1, 3, 3)
    edge[0, 0, 0, 0] = 2.0
    p = 1 / (1 + math.exp(-2.0))
    pixel_bce = -(EPS * math.log(p) + (1 - EPS) * math.log(1 - p))
    bce = (8 * math.log(2) + pixel_bce) / 9
    q0, q = 1 / (1 + math.exp(-p)), 1 / (1 + math.exp(-0.5))
    big_g = 4 * ONE + 5 * EPS
    inter = q * (4 * ONE + 4 * EPS) + q0 * EPS
    edge_iou = 1 - (inter + 1) / (8 * q + q0 + big_g - inter + 1)
    expected = (1 - 1.5 / 6) + 10 * bce + edge_iou
    assert create_loss("isnet")([edge, torch.zeros(1, 1, 3, 3)], t).item() == pytest.approx(expected, rel=1e-6)


def test_isnet_loss_prefers_the_truth_and_trains_both_outputs():
    t = torch.zeros(2, 1, 8, 8)
    t[0, 0, 2:4, 2:5] = 1
    t[1, 0, 6, 1] = 1
    loss = create_loss("isnet")
    edge_truth = 20 * (2 * (gradient_magnitude(t) > 0.5).float() - 1)
    good = loss([edge_truth, 20 * (2 * t - 1)], t)
    bad = loss([-edge_truth, -20 * (2 * t - 1)], t)
    assert good.item() < bad.item()
    e = torch.zeros(2, 1, 8, 8, requires_grad=True)
    m = torch.zeros(2, 1, 8, 8, requires_grad=True)
    loss([e, m], t).backward()
    assert e.grad.abs().sum() > 0 and m.grad.abs().sum() > 0
    assert torch.isfinite(loss([torch.full_like(t, 50.0), torch.full_like(t, -50.0)], t))


def test_isnet_registry_and_errors():
    assert "isnet" not in list_losses()  # the per-map losses
    assert list_losses(net_specific=True)[-1] == "isnet"
    assert isinstance(create_loss("ISNet"), ISNetLoss) and create_loss("isnet").name == "isnet"
    with pytest.raises(InputError, match="side weights"):
        create_loss("isnet", side_weights=[1, 1])
    with pytest.raises(InputError, match="isnet"):
        create_loss("nope")
    t = _dot()
    with pytest.raises(ValueError, match="2 outputs"):
        create_loss("isnet")(torch.zeros(1, 1, 3, 3), t)
    with pytest.raises(ValueError, match="shape"):
        create_loss("isnet")([torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 4, 4)], t)
