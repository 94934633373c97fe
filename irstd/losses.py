"""Segmentation losses on logits, applied to every side output (deep supervision).

``create_loss(name)`` returns a callable ``loss(outputs, target) -> scalar`` where ``outputs`` is
one logit tensor ``(B, 1, H, W)`` or a list of them (CgriNet's side outputs in training mode) and
``target`` the ground-truth mask ``(B, 1, H, W)`` or ``(B, H, W)`` (bool or float in {0, 1}). The
loss of a list is the sum of the losses of its members (equal weights, the PraNet/CaraNet
convention; ``side_weights`` changes them).

Names (the paper's Table III): ``iou``, ``dice``, ``focal``, ``bce``, ``iou+dice``, ``iou+focal``
and ``unite`` = 2 IoU + 7 BCE, the default. The paper's L2 term is the optimiser's weight decay,
not part of these functions.

References
----------
.. [1] Rahman, Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
       Segmentation", ISVC 2016 (soft IoU).
.. [2] Milletari, Navab, Ahmadi, "V-Net", 3DV 2016 (Dice loss).
.. [3] Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from irstd.errors import InputError

__all__ = [
    "soft_iou_loss",
    "dice_loss",
    "focal_loss",
    "bce_loss",
    "create_loss",
    "list_losses",
    "DEFAULT_LOSS",
]

DEFAULT_LOSS = "unite"
SMOOTH = 1.0


def _sums(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p = torch.sigmoid(logits).flatten(1)
    g = target.flatten(1)
    return (p * g).sum(1), p.sum(1), g.sum(1)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """``1 - (sum p g + s) / (sum p + sum g - sum p g + s)`` per image, averaged over the batch.

    ``p = sigmoid(logits)``; ``s`` (1) keeps empty images defined.
    """
    inter, sp, sg = _sums(logits, target)
    return (1.0 - (inter + smooth) / (sp + sg - inter + smooth)).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """``1 - (2 sum p g + s) / (sum p + sum g + s)`` per image, averaged over the batch."""
    inter, sp, sg = _sums(logits, target)
    return (1.0 - (2.0 * inter + smooth) / (sp + sg + smooth)).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet defaults ``alpha=0.25, gamma=2``), mean over pixels."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits, mean over pixels."""
    return F.binary_cross_entropy_with_logits(logits, target)


#: name -> list of (weight, per-map loss)
_LOSSES: dict[str, list[tuple[float, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]]] = {
    "iou": [(1.0, soft_iou_loss)],
    "dice": [(1.0, dice_loss)],
    "focal": [(1.0, focal_loss)],
    "bce": [(1.0, bce_loss)],
    "iou+dice": [(1.0, soft_iou_loss), (1.0, dice_loss)],
    "iou+focal": [(1.0, soft_iou_loss), (1.0, focal_loss)],
    "unite": [(2.0, soft_iou_loss), (7.0, bce_loss)],
}


def list_losses() -> list[str]:
    """Names accepted by :func:`create_loss`."""
    return list(_LOSSES)


class DeepSupervisionLoss:
    """A weighted sum of per-map losses, summed over side outputs (see :func:`create_loss`)."""

    def __init__(self, name: str, side_weights: Sequence[float] | None = None):
        self.name = name
        self.terms = _LOSSES[name]
        self.side_weights = None if side_weights is None else [float(w) for w in side_weights]

    def __repr__(self) -> str:
        return f"DeepSupervisionLoss({self.name!r})"

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of one logit map."""
        return sum(w * fn(logits, target) for w, fn in self.terms)

    def __call__(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        maps = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        if not maps:
            raise ValueError("loss: no outputs given")
        if target.ndim == maps[0].ndim - 1:
            target = target.unsqueeze(1)
        target = target.to(dtype=maps[0].dtype)
        weights = self.side_weights or [1.0] * len(maps)
        if len(weights) != len(maps):
            raise ValueError(f"loss: {len(weights)} side weights for {len(maps)} outputs")
        total = maps[0].new_zeros(())
        for w, m in zip(weights, maps):
            if m.shape != target.shape:
                raise ValueError(f"loss: output shape {tuple(m.shape)} != target shape {tuple(target.shape)}")
            total = total + w * self.single(m, target)
        return total


def create_loss(name: str = DEFAULT_LOSS, side_weights: Sequence[float] | None = None) -> DeepSupervisionLoss:
    """The loss called ``name``, applied to every side output.

    Parameters
    ----------
    name : str
        ``iou``, ``dice``, ``focal``, ``bce``, ``iou+dice``, ``iou+focal`` or ``unite``
        (2 IoU + 7 BCE, default; add L2 through the optimiser's weight decay).
    side_weights : sequence of float, optional
        Weights of the side outputs (equal weights of 1 by default).

    Returns
    -------
    callable
        ``loss(outputs, target) -> scalar tensor``; ``outputs`` is a logit tensor or a list of
        them.
    """
    key = name.strip().lower().replace(" ", "")
    if key not in _LOSSES:
        raise InputError(f"loss: unknown loss {name!r} (available: {', '.join(_LOSSES)})")
    return DeepSupervisionLoss(key, side_weights)
