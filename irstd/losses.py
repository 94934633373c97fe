"""Segmentation losses on logits, applied to every side output (deep supervision).

``create_loss(name)`` returns a callable ``loss(outputs, target) -> scalar`` where ``outputs`` is
one logit tensor ``(B, 1, H, W)`` or a list of them (CgriNet's side outputs in training mode) and
``target`` the ground-truth mask ``(B, 1, H, W)`` or ``(B, H, W)`` (bool or float in {0, 1}). The
loss of a list is the sum of the losses of its members (equal weights, the PraNet/CaraNet
convention; ``side_weights`` changes them).

``softiou`` is BasicIRSTD's SoftIoU (one ratio over the whole batch: :func:`softiou_loss`),
the own loss of the nets BasicIRSTD trains with it. Names (the paper's Table III): ``iou``,
``dice``, ``focal``, ``bce``, ``iou+dice``, ``iou+focal``
and ``unite`` = 2 IoU + 7 BCE, the default. The paper's L2 term is the optimiser's weight decay,
not part of these functions.

Net-specific losses take a net's own list of outputs instead of summing one loss over side
outputs: ``isnet`` (ISNet's ``[edge_logits, mask_logits]``, :class:`ISNetLoss`).

References
----------
.. [1] Rahman, Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
       Segmentation", ISVC 2016 (soft IoU).
.. [2] Milletari, Navab, Ahmadi, "V-Net", 3DV 2016 (Dice loss).
.. [3] Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
.. [4] Zhang et al., "ISNet: Shape Matters for Infrared Small Target Detection", CVPR 2022;
       BasicIRSTD's ``ISNetLoss`` (``loss.py``, https://github.com/XinyiYing/BasicIRSTD).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from irstd.errors import InputError

__all__ = [
    "soft_iou_loss",
    "softiou_loss",
    "dice_loss",
    "focal_loss",
    "bce_loss",
    "batch_soft_iou_loss",
    "gradient_magnitude",
    "ISNetLoss",
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


def batch_soft_iou_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """BasicIRSTD's SoftIoU: ``1 - (sum p g + s) / (sum p + sum g - sum p g + s)`` over the whole
    batch (one ratio, not a mean of per-image ratios), on probabilities ``probs``."""
    inter = (probs * target).sum()
    return 1.0 - (inter + smooth) / (probs.sum() + target.sum() - inter + smooth)


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(dy**2 + dx**2 + 1e-6)`` of channel 0 of ``(B, C, H, W)``, as ``(B, 1, H, W)``.

    Central differences with zero padding, ``dy = x[i + 1] - x[i - 1]`` and
    ``dx = x[j + 1] - x[j - 1]``: ISNet's ``Get_gradient_nopadding`` (3x3 kernels, padding 1),
    used on the image inside the network and on the mask for the edge ground truth (about 1 on
    the pixels next to a mask boundary, up to ``sqrt 2``, and 0.001 elsewhere).
    """
    x = F.pad(x[:, :1], (1, 1, 1, 1))
    dy = x[:, :, 2:, 1:-1] - x[:, :, :-2, 1:-1]
    dx = x[:, :, 1:-1, 2:] - x[:, :, 1:-1, :-2]
    return torch.sqrt(dy * dy + dx * dx + 1e-6)


def softiou_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """:func:`batch_soft_iou_loss` on ``sigmoid(logits)``: the ``softiou`` loss.

    A crop without a target only adds its false positives to the batch's union, where
    :func:`soft_iou_loss` gives it a ratio of its own that pulls every probability of the crop
    towards 0; the nets BasicIRSTD trains with it (ACM, ALCNet, RDIAN, DNANet, ISTDU-Net) are
    trained with this one by default.
    """
    p = torch.sigmoid(logits)
    return batch_soft_iou_loss(p, target.reshape(p.shape).to(p.dtype), smooth)


def _clamped_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``torch.nn.BCELoss`` of ``sigmoid(logits)``: the logs are clamped at -100, which bounds the
    loss for targets above 1 (the edge target reaches ``sqrt 2``), computed from the logits."""
    log_p = F.logsigmoid(logits).clamp(min=-100.0)
    log_q = F.logsigmoid(-logits).clamp(min=-100.0)
    return -(target * log_p + (1 - target) * log_q).mean()


#: name -> list of (weight, per-map loss)
_LOSSES: dict[str, list[tuple[float, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]]] = {
    "iou": [(1.0, soft_iou_loss)],
    "softiou": [(1.0, softiou_loss)],
    "dice": [(1.0, dice_loss)],
    "focal": [(1.0, focal_loss)],
    "bce": [(1.0, bce_loss)],
    "iou+dice": [(1.0, soft_iou_loss), (1.0, dice_loss)],
    "iou+focal": [(1.0, soft_iou_loss), (1.0, focal_loss)],
    "unite": [(2.0, soft_iou_loss), (7.0, bce_loss)],
}


#: name -> class of the losses on a net's own output list (not a sum over side outputs)
_NET_LOSSES: dict[str, type] = {}


def list_losses(net_specific: bool = False) -> list[str]:
    """Names accepted by :func:`create_loss`: the per-map losses, then with ``net_specific``
    the losses of one net's outputs (``isnet``)."""
    return list(_LOSSES) + (list(_NET_LOSSES) if net_specific else [])


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


class ISNetLoss:
    """ISNet's training loss on ``[edge_logits, mask_logits]`` (ISNet's training-mode output).

    ``L = IoU(sigmoid(m), g) + 10 BCE(sigmoid(e), G) + IoU(sigmoid(sigmoid(e)), G)`` with
    ``g`` the mask, ``G = gradient_magnitude(g)`` the edge target and IoU the batch-level
    :func:`batch_soft_iou_loss`: BasicIRSTD's ``ISNetLoss`` (the authors' training computes the
    same terms). Its quirks are kept: the edge IoU term takes the sigmoid of the edge
    *probabilities* (a second sigmoid, so it lies in (0.5, 0.73)), and the edge target is not
    clipped to [0, 1] (BCE is taken as ``-(G log p + (1 - G) log(1 - p))``, logs clamped at
    -100 like ``nn.BCELoss``'s CUDA kernel, which BasicIRSTD trains with). One departure: the
    BCE is computed from the logits, so where float32's sigmoid rounds to 1 (edge logits above
    about 17) it keeps its exact value and gradient, where BasicIRSTD's saturates at the clamp
    (value ``(1 - G) 100``, no gradient); elsewhere the two agree to float precision. The terms
    are computed in float32.

    Parameters
    ----------
    edge_weight : float
        Weight of the edge BCE (10).
    """

    name = "isnet"

    def __init__(self, edge_weight: float = 10.0):
        self.edge_weight = float(edge_weight)

    def __repr__(self) -> str:
        return "ISNetLoss()"

    def __call__(self, outputs: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        maps = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        if len(maps) != 2:
            raise ValueError(f"loss isnet: expected the 2 outputs [edge_logits, mask_logits], got {len(maps)}")
        edge, mask = (m.float() for m in maps)
        if target.ndim == mask.ndim - 1:
            target = target.unsqueeze(1)
        target = target.to(dtype=mask.dtype)
        for m in (edge, mask):
            if m.shape != target.shape:
                raise ValueError(f"loss: output shape {tuple(m.shape)} != target shape {tuple(target.shape)}")
        edge_target = gradient_magnitude(target)
        p_edge = torch.sigmoid(edge)
        return (batch_soft_iou_loss(torch.sigmoid(mask), target)
                + self.edge_weight * _clamped_bce(edge, edge_target)
                + batch_soft_iou_loss(torch.sigmoid(p_edge), edge_target))


_NET_LOSSES["isnet"] = ISNetLoss


def create_loss(name: str = DEFAULT_LOSS, side_weights: Sequence[float] | None = None) -> DeepSupervisionLoss:
    """The loss called ``name``, applied to every side output.

    Parameters
    ----------
    name : str
        ``iou``, ``dice``, ``focal``, ``bce``, ``iou+dice``, ``iou+focal`` or ``unite``
        (2 IoU + 7 BCE, default; add L2 through the optimiser's weight decay), or the
        net-specific ``isnet`` (:class:`ISNetLoss`).
    side_weights : sequence of float, optional
        Weights of the side outputs (equal weights of 1 by default; not for ``isnet``).

    Returns
    -------
    callable
        ``loss(outputs, target) -> scalar tensor``; ``outputs`` is a logit tensor or a list of
        them (for ``isnet``, the list ``[edge_logits, mask_logits]``).
    """
    key = name.strip().lower().replace(" ", "")
    if key in _NET_LOSSES:
        if side_weights is not None:
            raise InputError(f"loss: {key} takes no side weights")
        return _NET_LOSSES[key]()
    if key not in _LOSSES:
        raise InputError(f"loss: unknown loss {name!r} (available: {', '.join(list_losses(net_specific=True))})")
    return DeepSupervisionLoss(key, side_weights)
