"""MLCL-Net: multiscale local contrast learning network for infrared small target detection.

A three-stage residual backbone at full, half and quarter resolution; on each stage's output
a multiscale local contrast learning (MLCL) module, three parallel "local contrast learning"
branches (a ``k x k`` convolution followed by a 3x3 convolution of dilation ``k``, for
``k = 1, 3, 5``) fused by a 1x1 convolution; and a bilinear feature pyramid (BFPN) that sums
the three levels top-down before a two-layer 1x1 head.

Data flow (input ``H x W``, multiples of 4; default widths ``[16, 32, 64]``, ``blocks=2``)::

    x ── normalise ── stem (2 x conv3x3-BN-ReLU, 16) ── 2 res ── s1 (H, 16)
                      down(16 -> 32) ── 1 res ── s2 (H/2, 32)
                      down(32 -> 64) ── 1 res ── s3 (H/4, 64)
    p3 = lateral3(MLCL(s3))                         (H/4, 64)
    p2 = up(p3) + lateral2(MLCL(s2))                (H/2, 64)
    p1 = up(p2) + lateral1(MLCL(s1))                (H, 64)
    logits = 1x1 conv (64) + ReLU + 1x1 conv (1)    (H, 1)

``res`` is a basic residual block (identity shortcut); ``down`` halves the resolution with a
3x3 conv + BN + ReLU + 2x2 max-pool + 3x3 conv + BN, its shortcut a 3x3 stride-2 conv + BN +
ReLU. Laterals are 1x1 conv + ReLU; ``up`` is a bilinear resize with ``align_corners=True``
(``nn.UpsamplingBilinear2d``).

References
----------
.. [1] Yu, Liu, Wu, Hu, Xia, Lan, Liu, "Infrared small target detection based on multiscale
       local contrast learning networks", Infrared Physics & Technology 123, 104107, 2022
       (code: https://github.com/YuChuang1205/MLCL-Net, ``model_MLCL-Net_small.py``,
       ``model_MLCL-Net_base.py``, and the Keras ``model.py``).
.. [2] Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.acm import SIRST_MEAN, SIRST_STD, check_lengths
from irstd.models.base import SegmentationNet

__all__ = ["ResBlock", "DownBlock", "LocalContrastBranch", "MLCL", "MLCLNet"]


def _kaiming(module: nn.Module) -> None:
    """The public code's init: Kaiming-normal (fan-out, ReLU) conv weights, zero biases, BN 1/0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.BatchNorm2d(out_channels)]


class ResBlock(nn.Module):
    """3x3 conv + BN + ReLU + 3x3 conv + BN, plus the input, then ReLU (convs with biases)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(channels, channels), nn.ReLU(inplace=True), *_conv_bn(channels, channels))
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class DownBlock(nn.Module):
    """Residual block halving the resolution: body 3x3 conv + BN + ReLU, 2x2 max-pool, 3x3 conv
    + BN; shortcut 3x3 stride-2 conv + BN + ReLU; their sum, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(in_channels, out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                  *_conv_bn(out_channels, out_channels))
        self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, stride=2), nn.ReLU(inplace=True))
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class LocalContrastBranch(nn.Sequential):
    """Local contrast learning (LCL) at scale ``k``: ``k x k`` conv + ReLU (the local
    neighbourhood), then 3x3 conv of dilation ``k`` + ReLU (the surrounding ring at distance
    ``k``), an approximation of the patch-based local contrast measure."""

    def __init__(self, channels: int, scale: int):
        super().__init__(
            nn.Conv2d(channels, channels, scale, padding=scale // 2), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=scale, dilation=scale), nn.ReLU(inplace=True),
        )


class MLCL(nn.Module):
    """Multiscale local contrast learning: one :class:`LocalContrastBranch` per scale,
    concatenated and fused by a 1x1 conv (no activation)."""

    def __init__(self, channels: int, scales: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.branches = nn.ModuleList(LocalContrastBranch(channels, s) for s in scales)
        self.fuse = nn.Conv2d(len(self.branches) * channels, channels, 1)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], 1))


def _lateral(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))


class MLCLNet(SegmentationNet):
    """MLCL-Net as its authors' PyTorch code builds it (``MLCLNet_small`` by default).

    Parameters
    ----------
    in_chans : int
        Input channels (the stem's first convolution). The public code builds 3 (an RGB copy
        of the grey frame, divided by 255, no mean/std). Trainable parameters: 559,521 at
        ``in_chans=1`` (our default), 559,809 at 3; see Notes for the published 0.55 M.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (BasicIRSTD's NUAA-SIRST statistics by default).
    channels : list of int
        Widths of the three stages ``[16, 32, 64]``.
    blocks : int
        Residual blocks per stage, the downsampling block included: 2 is the authors' "small"
        network (``MLCLNet_small``, the one their later PAL framework uses), 3 their "base"
        (``MLCLNet_base``, 656,961 parameters at ``in_chans=1``), which they describe as
        matching the paper.
    scales : list of int
        Odd LCL scales of every MLCL module (``[1, 3, 5]``; the authors mention adding 7, 9
        for larger targets).
    fpn_channels : int
        Width of the pyramid and the head (64).

    Notes
    -----
    Published count. The CgriNet paper's table gives 0.55 M. No public build matches that
    within 1 %: the PyTorch small network has 559,809 parameters at 3 input channels (0.5598 M,
    +1.8 %; "0.55" if truncated rather than rounded), the base one 657,249, the authors'
    Keras ``model.py`` (base depth, branch outputs averaged instead of the 1x1 fusion, no
    ``lateral3``) 636,849, and a small-depth Keras network would have 539,409 (-1.9 %). The
    default here is the closest public build, the PyTorch small one, exactly.

    Departures from the public code, all deliberate: no final sigmoid (logits); upsampling
    resizes to the skip's size (``align_corners=True``, equal to the public ``scale_factor=2``
    for multiples of :attr:`stride`); the stem, laterals and head keep PyTorch's default init
    as in the public code, everything else the Kaiming init. The authors train with a soft IoU
    loss on the sigmoid map, one ratio over the whole batch (Keras ``soft_loss``, smoothing
    1e-6), on 512 x 512 resized SIRST frames; ``irstd.losses``'s ``iou`` averages per-image
    ratios with smoothing 1.
    """

    stride = 4

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, channels: Sequence[int] = (16, 32, 64),
                 blocks: int = 2, scales: Sequence[int] = (1, 3, 5), fpn_channels: int = 64):
        super().__init__(in_chans, input_mean, input_std)
        channels = check_lengths("channels", channels, 3)
        blocks, fpn_channels = int(blocks), int(fpn_channels)
        scales = [int(s) for s in scales]
        if blocks < 1:
            raise InputError(f"blocks: must be at least 1, got {blocks}")
        if fpn_channels < 1:
            raise InputError(f"fpn_channels: must be positive, got {fpn_channels}")
        if not scales or any(s < 1 or s % 2 == 0 for s in scales):
            raise InputError(f"scales: expected odd positive integers, got {scales}")
        self.record_args(channels=channels, blocks=blocks, scales=scales, fpn_channels=fpn_channels)

        c1, c2, c3 = channels
        stem = nn.Sequential(*_conv_bn(in_chans, c1), nn.ReLU(inplace=True), *_conv_bn(c1, c1), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList([
            nn.Sequential(stem, *(ResBlock(c1) for _ in range(blocks))),
            nn.Sequential(DownBlock(c1, c2), *(ResBlock(c2) for _ in range(blocks - 1))),
            nn.Sequential(DownBlock(c2, c3), *(ResBlock(c3) for _ in range(blocks - 1))),
        ])
        self.mlcl = nn.ModuleList(MLCL(c, scales) for c in channels)
        self.laterals = nn.ModuleList(_lateral(c, fpn_channels) for c in channels)
        self.head = nn.Sequential(nn.Conv2d(fpn_channels, fpn_channels, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(fpn_channels, 1, 1))

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.normalise(x)
        levels = []
        for stage, mlcl, lateral in zip(self.stages, self.mlcl, self.laterals):
            h = stage(h)
            levels.append(lateral(mlcl(h)))
        p = levels[2]
        for skip in (levels[1], levels[0]):
            p = F.interpolate(p, size=skip.shape[-2:], mode="bilinear", align_corners=True) + skip
        return [self.head(p)]
