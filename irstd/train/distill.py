"""Distillation: frozen teacher models whose mean probability becomes a soft training target.

``irstd train --teacher FILE [--teacher FILE ...] --distill-weight W`` adds
``W · loss(outputs, p_teacher)`` to the loss on the hard masks (:func:`irstd.train.steps.step_loss`),
where ``p_teacher`` is the mean of the teachers' probabilities (sigmoid of their final logits) on
the same augmented crops, computed in inference mode. Teachers may be any CgriNet variant: each
normalises its input with its own buffers, as in ``irstd detect``. With ``--teacher-tta flip``
(or ``dihedral``) each teacher's probability is itself the mean over the flipped (and
transposed) views of the crop (:mod:`irstd.tta`), so a single pass of the student learns what
test-time augmentation gives the teachers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from irstd.errors import InputError
from irstd.intensity import parse_input_range
from irstd.tta import check_tta, tta_views
from irstd.train.model import load_model_file

__all__ = ["Teachers", "load_teachers"]


class Teachers(nn.Module):
    """The mean probability of frozen models (always in eval mode, no gradients).

    Parameters
    ----------
    models : sequence of CgriNet
    tta : {"none", "flip", "dihedral"}
        Views of the input each teacher's probability is averaged over (:func:`irstd.tta.tta_views`).
    """

    def __init__(self, models: Sequence[nn.Module], tta: str = "none"):
        super().__init__()
        if not models:
            raise ValueError("Teachers: at least one model is needed")
        self.views = tta_views(check_tta(tta))
        self.models = nn.ModuleList(models)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "Teachers":
        """Teachers stay in eval mode (BatchNorm running statistics, final map only)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean probability ``(B, 1, H, W)`` of the teachers for float input ``(B, C, H, W)`` in [0, 1].

        The first channel of ``x`` is replicated to each teacher's input channels.
        """
        grey = x[:, :1]
        total = None
        for model in self.models:
            chans = int(model.input_mean.shape[1])
            for rows, cols, transpose in self.views:
                view = grey.transpose(-1, -2) if transpose else grey
                flips = [d for d, on in ((-2, rows), (-1, cols)) if on]
                view = view.flip(flips) if flips else view
                p = torch.sigmoid(model(view.expand(-1, chans, -1, -1)).float())
                p = p.flip(flips) if flips else p
                p = p.transpose(-1, -2) if transpose else p
                total = p if total is None else total + p
        return total / (len(self.models) * len(self.views))


def load_teachers(paths: Sequence[str | os.PathLike], input_range: str, device: torch.device, tta: str = "none") -> Teachers:
    """Load teacher model files (written by ``irstd train``) onto ``device``.

    Parameters
    ----------
    paths : sequence of path
    input_range : str
        The student's input range (canonical form); every teacher must have been trained with the
        same mapping to [0, 1], or its probabilities would be computed on other inputs.
    device : torch.device
    tta : {"none", "flip", "dihedral"}
        See :class:`Teachers`.

    Raises
    ------
    InputError
        A file that is missing or not a model file, or trained with another input range.
    """
    models = []
    for path in paths:
        model = load_model_file(path, "--teacher", device=device)
        theirs = parse_input_range(model.weights_metadata.get("input_range", "bits"))  # files from before input_range: bits
        if theirs != input_range:
            raise InputError(f"--teacher {path}: trained with input range {theirs!r}, this run uses {input_range!r}")
        if device.type == "cpu":
            model.to(memory_format=torch.channels_last)
        models.append(model)
    return Teachers(models, tta)
