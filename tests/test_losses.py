"""Losses: values on hand-made maps, deep-supervision sums, errors."""

from __future__ import annotations

import pytest
import torch

from irstd.errors import InputError
from irstd.losses import bce_loss, create_loss, dice_loss, focal_loss, list_losses, soft_iou_loss

BIG = 30.0


def _target():
    t = torch.zeros(2, 1, 8, 8)
    t[0, 0, 2:4, 2:4] = 1
    t[1, 0, 5, 6] = 1
    return t


def test_names():
    assert list_losses() == ["iou", "softiou", "dice", "focal", "bce", "iou+dice", "iou+focal", "unite"]
    for name in list_losses():
        assert create_loss(name).name == name
    assert create_loss("IoU + Dice").name == "iou+dice"
    with pytest.raises(InputError, match="unknown loss 'l1'"):
        create_loss("l1")


@pytest.mark.parametrize("name", list_losses())
def test_perfect_and_wrong_predictions(name):
    t = _target()
    loss = create_loss(name)
    perfect = loss(BIG * (2 * t - 1), t)
    wrong = loss(-BIG * (2 * t - 1), t)
    assert perfect.item() < 1e-6
    assert wrong.item() > 0.1


def test_soft_iou_by_hand():
    t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    # inter = 0.5, sum p = 2, sum g = 1 -> 1 - (0.5 + 1) / (2 + 1 - 0.5 + 1)
    assert soft_iou_loss(logits, t).item() == pytest.approx(1 - 1.5 / 3.5)
    # dice: 1 - (2 * 0.5 + 1) / (2 + 1 + 1)
    assert dice_loss(logits, t).item() == pytest.approx(1 - 2 / 4)
    assert bce_loss(logits, t).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    # focal at p = 0.5: alpha_t * 0.25 * log 2 averaged (alpha 0.25 on the positive, 0.75 on 3 negatives)
    expected = (0.25 * 0.25 + 3 * 0.75 * 0.25) * torch.log(torch.tensor(2.0)).item() / 4
    assert focal_loss(logits, t).item() == pytest.approx(expected)


def test_iou_empty_image_is_defined():
    t = torch.zeros(1, 1, 4, 4)
    assert soft_iou_loss(torch.full((1, 1, 4, 4), -BIG), t).item() == pytest.approx(0.0, abs=1e-6)


def test_unite_is_2_iou_plus_7_bce():
    torch.manual_seed(0)
    t, x = _target(), torch.randn(2, 1, 8, 8)
    expected = 2 * soft_iou_loss(x, t) + 7 * bce_loss(x, t)
    assert torch.allclose(create_loss()(x, t), expected)
    assert torch.allclose(create_loss("iou+focal")(x, t), soft_iou_loss(x, t) + focal_loss(x, t))


def test_sums_over_side_outputs_and_accepts_masks():
    torch.manual_seed(0)
    t = _target()
    maps = [torch.randn(2, 1, 8, 8) for _ in range(4)]
    loss = create_loss("unite")
    total = loss(maps, t)
    assert torch.allclose(total, sum(loss(m, t) for m in maps))
    assert torch.allclose(loss(maps, t[:, 0].bool()), total)  # (B, H, W) bool target
    weighted = create_loss("unite", side_weights=[0, 0, 0, 1])(maps, t)
    assert torch.allclose(weighted, loss(maps[-1], t))


def test_gradient_flows_and_shape_errors():
    t = _target()
    x = torch.zeros(2, 1, 8, 8, requires_grad=True)
    create_loss("iou+dice")([x, x], t).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        create_loss("bce")(torch.zeros(2, 1, 4, 4), t)
    with pytest.raises(ValueError, match="side weights"):
        create_loss("bce", side_weights=[1, 1])([x], t)


def test_batch_soft_iou_is_one_ratio_over_the_batch():
    from irstd.losses import softiou_loss

    logits = torch.tensor([[[[0.0, 0.0]]], [[[0.0, 0.0]]]])  # p = 0.5 everywhere, 4 pixels
    target = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])  # one target pixel in the first image
    # I = 0.5, sum p = 2, sum g = 1: 1 - (0.5 + 1) / (2 + 1 - 0.5 + 1)
    assert softiou_loss(logits, target).item() == pytest.approx(1 - 1.5 / 3.5)
    # per image: 1 - (0.5+1)/(1+1-0.5+1) and 1 - 1/(1+1): mean 0.5·(0.4 + 0.5)
    assert create_loss("iou")(logits, target).item() == pytest.approx(0.45)
    assert create_loss("softiou")([logits, logits], target).item() == pytest.approx(2 * (1 - 1.5 / 3.5))
