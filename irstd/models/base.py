"""What every irstd network shares: input normalisation, construction arguments, side outputs.

An irstd network is a :class:`SegmentationNet`: it takes ``(B, in_chans, H, W)`` in [0, 1]
(``irstd.intensity.to_float``) with ``H`` and ``W`` multiples of :attr:`SegmentationNet.stride`,
normalises it inside (``(x - input_mean) / input_std``, buffers saved with the weights, so
training and inference cannot disagree), and returns logits at the input size: in training mode
the list of side outputs (deep supervision, coarse to final; one element for a net without deep
supervision), in eval mode the final map only. ``model_args`` holds the JSON construction
arguments that rebuild it (:func:`irstd.models.load_model`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from irstd.errors import InputError

__all__ = ["SegmentationNet", "count_parameters", "per_channel"]

#: Number of ImageNet classes of the classifier the CgriNet paper counts with its encoder.
IMAGENET_CLASSES = 1000


def per_channel(value: float | Sequence[float], in_chans: int, name: str) -> list[float]:
    """``value`` as one finite float per input channel (a scalar is repeated)."""
    values = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) == 1:
        values = values * in_chans
    if len(values) != in_chans:
        raise InputError(f"{name}: expected 1 or {in_chans} values, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{name}: values must be finite, got {values}")
    return values


class SegmentationNet(nn.Module):
    """Base class of the networks: input normalisation buffers and the forward contract.

    Parameters
    ----------
    in_chans : int
        Input channels (1: grey infrared frames).
    input_mean, input_std : float or sequence of float
        ``(x - mean) / std`` applied to the [0, 1] input inside :meth:`forward`.

    Notes
    -----
    A subclass calls ``super().__init__(in_chans, input_mean, input_std)``, records its own
    construction arguments with :meth:`record_args`, and implements :meth:`forward_all` on the
    normalised input (``self.normalise(x)``), returning every side output as logits at the
    input size, the final map last.
    """

    #: Frame sizes the network accepts are multiples of this (callers pad to it).
    stride: int = 32

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = 0.0,
                 input_std: float | Sequence[float] = 1.0):
        super().__init__()
        in_chans = int(in_chans)
        if in_chans < 1:
            raise InputError(f"in_chans: must be at least 1, got {in_chans}")
        mean = per_channel(input_mean, in_chans, "input_mean")
        std = per_channel(input_std, in_chans, "input_std")
        if min(std) <= 0:
            raise InputError(f"input_std: must be positive, got {std}")
        #: Construction arguments (JSON types) that rebuild this model; saved with the weights.
        self.model_args: dict[str, Any] = dict(in_chans=in_chans, input_mean=mean, input_std=std)
        #: Registry name when built by :func:`irstd.models.create_model` (``None`` otherwise).
        self.model_name: str | None = None
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).view(1, in_chans, 1, 1))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).view(1, in_chans, 1, 1))

    @property
    def in_chans(self) -> int:
        return int(self.input_mean.shape[1])

    def record_args(self, **args: Any) -> None:
        """Add construction arguments (JSON types) to :attr:`model_args`."""
        self.model_args.update(args)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - input_mean) / input_std``."""
        return (x - self.input_mean) / self.input_std

    def published_count(self) -> int:
        """The parameters as the net's published count counts them (BasicIRSTD: thop); all
        trainable parameters unless a net says otherwise."""
        return count_parameters(self)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        """Every side output as ``(B, 1, H, W)`` logits, coarse to final."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits: the list of side outputs in training mode, the final map in eval mode."""
        outputs = self.forward_all(x)
        return outputs if self.training else outputs[-1]


def count_parameters(model: nn.Module, include_classifier: bool = False) -> int:
    """Number of trainable parameters.

    Parameters
    ----------
    model : nn.Module
    include_classifier : bool
        Add the encoder's ImageNet classifier (``num_features * 1000 + 1000``), which the model
        does not use (CgriNet only). This is how the CgriNet paper (like PraNet) counts:
        26,123,302 for ``cgrinet`` at ``in_chans=3``.
    """
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if include_classifier:
        n += model.num_features * IMAGENET_CLASSES + IMAGENET_CLASSES
    return n
