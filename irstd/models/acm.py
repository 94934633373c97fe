"""ACM: asymmetric contextual modulation U-Net for infrared small target detection.

The building blocks here (input stem, residual stage, asymmetric bi-directional fusion, FCN head)
are shared with :mod:`irstd.models.alcnet`; this file also holds the default input statistics
of the three small comparison networks (ACM, ALCNet, RDIAN).

Data flow of :class:`ACM` (input ``H x W``, multiples of 16; widths for the default
``channels=[8, 16, 32, 64]``, ``layers=[3, 3, 3]``)::

    x ── normalise ── stem (BN, 3 convs, max-pool; H/4, 16) ── layer1 ── c1 (H/4, 16)
                                                               layer2 ── c2 (H/8, 32)
                                                               layer3 ── c3 (H/16, 64)
    u2 = uplayer2(AsymBi(deconv2(c3), c2))     (H/8, 32)
    u1 = uplayer1(AsymBi(deconv1(u2), c1))     (H/4, 16)
    logits = bilinear x4 (FCN head(u1))        (H, 1)

References
----------
.. [1] Dai, Wu, Zhou, Barnard, "Asymmetric Contextual Modulation for Infrared Small Target
       Detection", WACV 2021 (open-acm, MXNet: https://github.com/YimianDai/open-acm).
.. [2] Ying et al., BasicIRSTD (PyTorch port: ``model/ACM/model_ACM.py``, ``fusion.py``),
       https://github.com/XinyiYing/BasicIRSTD.
.. [3] He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (basic block).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.base import SegmentationNet

__all__ = ["SIRST_MEAN", "SIRST_STD", "BasicBlock", "make_stage", "Stem", "AsymBiFusion", "FCNHead", "ACM"]

#: NUAA-SIRST grey mean and std in BasicIRSTD (``img_norm_cfg``), on the [0, 1] scale.
SIRST_MEAN = 101.06385040283203 / 255
SIRST_STD = 34.619606018066406 / 255


def check_lengths(name: str, values: Sequence[int], length: int) -> list[int]:
    """``values`` as a list of ``length`` positive ints, or :class:`InputError`."""
    values = [int(v) for v in values]
    if len(values) != length or any(v < 1 for v in values):
        raise InputError(f"{name}: expected {length} positive integers, got {values}")
    return values


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) to an explicit size (export-friendly)."""
    return F.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=False)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN, identity (or 1x1 conv + BN) shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


def make_stage(in_channels: int, out_channels: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """``blocks`` basic blocks, the first one carrying the stride and the width change."""
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, stride),
        *(BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)),
    )


class Stem(nn.Sequential):
    """Input BN, 3x3 conv stride 2 (``width``), 3x3 conv (``width``), 3x3 conv (``2 width``),
    each with BN + ReLU, then 3x3 max-pool stride 2: ``H/4`` at ``2 width`` channels."""

    def __init__(self, in_channels: int, width: int):
        def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        super().__init__(
            nn.BatchNorm2d(in_channels),
            *conv_bn_relu(in_channels, width, stride=2),
            *conv_bn_relu(width, width),
            *conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(3, 2, 1),
        )


def _gate(channels: int, hidden: int) -> list[nn.Module]:
    """1x1 conv -> BN -> ReLU -> 1x1 conv -> BN -> sigmoid (the modulation weights)."""
    return [
        nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        nn.Conv2d(hidden, channels, 1), nn.BatchNorm2d(channels), nn.Sigmoid(),
    ]


class AsymBiFusion(nn.Module):
    """Asymmetric bi-directional modulation (ACM's AsymBi fusion).

    The deep feature ``xh`` gates the shallow one channel-wise through global context (top-down:
    global average pool + MLP), the shallow feature gates the deep one point-wise (bottom-up:
    per-pixel MLP): ``post(2 xl * topdown(xh) + 2 xh * bottomup(xl))``, ``post`` a 3x3 conv +
    BN + ReLU. Both inputs have ``channels`` channels and the same size.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = channels // reduction
        self.topdown = nn.Sequential(*_gate(channels, hidden))
        self.bottomup = nn.Sequential(*_gate(channels, hidden))
        self.post = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )

    def forward(self, xh: torch.Tensor, xl: torch.Tensor) -> torch.Tensor:
        topdown = self.topdown(xh.mean((2, 3), keepdim=True))
        bottomup = self.bottomup(xl)
        return self.post(2 * xl * topdown + 2 * xh * bottomup)


class FCNHead(nn.Sequential):
    """3x3 conv (``in_channels // 4``, no bias) + BN + ReLU + dropout 0.1 + 1x1 conv to logits."""

    def __init__(self, in_channels: int, out_channels: int = 1, dropout: float = 0.1):
        mid = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, 1, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Conv2d(mid, out_channels, 1),
        )


def deconv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """4x4 transposed convolution, stride 2: exact 2x upsampling."""
    return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)


class ACM(SegmentationNet):
    """ACM U-Net (ASKCResUNet) with asymmetric bi-directional fusion, as BasicIRSTD builds it.

    Parameters
    ----------
    in_chans : int
        Input channels. BasicIRSTD builds ACM for 1 (grey) channel; its published count,
        397,823 parameters, is for ``in_chans=1`` and is matched exactly.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (NUAA-SIRST statistics of BasicIRSTD by default).
    layers : list of int
        Basic blocks per encoder stage (and per decoder stage: ``uplayer2`` has ``layers[1]``,
        ``uplayer1`` ``layers[0]``).
    channels : list of int
        Stem width, then the widths of the three stages (the stem outputs ``2 * channels[0]``,
        which must equal ``channels[1]``).
    fuse_reduction : int
        Bottleneck ratio ``r`` of the fusion's gating MLPs.

    Notes
    -----
    Departures, all deliberate:

    * The final sigmoid is left off: :meth:`forward_all` returns logits (the losses take logits).
    * BatchNorm momentum is PyTorch's default 0.1 everywhere. BasicIRSTD passes ``momentum=0.9``
      to the stem, shortcut, fusion and head BNs, a literal copy of MXNet's ``momentum=0.9``,
      which in PyTorch's convention means 0.1 (the original open-acm's behaviour).
    * The stem's input BN is affine as in BasicIRSTD (open-acm's has no scale and shift); the
      input is normalised before it, as BasicIRSTD does in its data loader.
    * The x4 upsampling of the head's output resizes to the input size (equal to BasicIRSTD's
      ``scale_factor=4`` for inputs that are multiples of :attr:`stride`).

    BasicIRSTD trains ACM with its SoftIoU loss on sigmoid probabilities (one ratio over the
    whole batch), Adam, lr 5e-4.

    References
    ----------
    .. [1] Dai, Wu, Zhou, Barnard, "Asymmetric Contextual Modulation for Infrared Small Target
           Detection", WACV 2021.
    .. [2] BasicIRSTD ``model/ACM/model_ACM.py`` (https://github.com/XinyiYing/BasicIRSTD).
    """

    stride = 16

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, layers: Sequence[int] = (3, 3, 3),
                 channels: Sequence[int] = (8, 16, 32, 64), fuse_reduction: int = 4):
        super().__init__(in_chans, input_mean, input_std)
        layers = check_lengths("layers", layers, 3)
        channels = check_lengths("channels", channels, 4)
        if channels[1] != 2 * channels[0]:
            raise InputError(f"channels: channels[1] must be 2 * channels[0], got {channels}")
        self.record_args(layers=layers, channels=channels, fuse_reduction=int(fuse_reduction))
        _, c1, c2, c3 = channels
        self.stem = Stem(self.in_chans, channels[0])
        self.layer1 = make_stage(c1, c1, layers[0])
        self.layer2 = make_stage(c1, c2, layers[1], stride=2)
        self.layer3 = make_stage(c2, c3, layers[2], stride=2)
        self.deconv2 = deconv(c3, c2)
        self.fuse2 = AsymBiFusion(c2, fuse_reduction)
        self.uplayer2 = make_stage(c2, c2, layers[1])
        self.deconv1 = deconv(c2, c1)
        self.fuse1 = AsymBiFusion(c1, fuse_reduction)
        self.uplayer1 = make_stage(c1, c1, layers[0])
        self.head = FCNHead(c1)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[-2:]
        c1 = self.layer1(self.stem(self.normalise(x)))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        up = self.uplayer2(self.fuse2(self.deconv2(c3), c2))
        up = self.uplayer1(self.fuse1(self.deconv1(up), c1))
        return [resize(self.head(up), size)]
