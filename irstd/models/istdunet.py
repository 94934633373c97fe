"""ISTDU-Net: infrared small-target detection U-Net.

A U-Net whose encoder is a ResNeSt (split-attention bottlenecks, average-pool downsampling) on a
full-resolution stem, whose skip connections pass through external attention (two 1x1 "memory"
layers shared across all pixels, i.e. attention to learnt feature groups of the whole data set),
and whose decoder adds each skip to the upsampled 1x1-conv projection of the level below.

Data flow (input ``H x W``, multiples of 8; widths for the default ``layers=[1, 2, 4, 8]``,
``channels=[16, 32, 64, 128]``, bottleneck expansion 4)::

    x ── normalise ── input BN ── 3x3 conv (H, 16) ── stage1 ── x1 (H, 64)
                                                      stage2 ── x2 (H/2, 128)
                                                      stage3 ── x3 (H/4, 256)
                                                      stage4 ── x4 (H/8, 512)
    a_i = external attention(x_i)
    d = a3 + up(1x1(a4));  d = a2 + up(1x1(d));  d = a1 + up(1x1(d))   (H, 64)
    logits = head(d)   (3x3 conv, BN, ReLU, 1x1 conv)

References
----------
.. [1] Hou, Zhang, Tan, Xi, Zheng, Li, "ISTDU-Net: Infrared Small-Target Detection U-Net",
       IEEE Geoscience and Remote Sensing Letters 19, 2022.
.. [2] Ying et al., BasicIRSTD, ``model/ISTDUNet/`` (``model_ISTDUNet.py``, ``resnet2020.py``,
       ``splat.py``, ``eta.py``; https://github.com/XinyiYing/BasicIRSTD).
.. [3] Zhang et al., "ResNeSt: Split-Attention Networks", CVPR Workshops 2022.
.. [4] Guo, Liu, Mu, Hu, "Beyond Self-attention: External Attention using Two Linear Layers for
       Visual Tasks", IEEE TPAMI 2022.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.acm import SIRST_MEAN, SIRST_STD, check_lengths, resize
from irstd.models.base import SegmentationNet

__all__ = ["SplitAttentionConv", "SplitAttentionBottleneck", "ExternalAttention", "ISTDUNet"]

#: Bottleneck expansion (output width = 4 x planes).
EXPANSION = 4


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SplitAttentionConv(nn.Module):
    """ResNeSt split-attention 3x3 convolution (stride 1).

    A grouped conv gives ``radix`` splits of ``channels`` maps (``groups`` cardinal groups each);
    their sum, globally pooled, goes through a grouped 2-layer MLP (hidden
    ``max(in_channels * radix // 4, 32)``) whose output, softmax-normalised across the splits,
    weights the splits' sum.
    """

    def __init__(self, in_channels: int, channels: int, radix: int = 2, groups: int = 1, reduction: int = 4):
        super().__init__()
        hidden = max(in_channels * radix // reduction, 32)
        self.radix, self.groups = radix, groups
        self.conv = nn.Conv2d(in_channels, channels * radix, 3, padding=1, groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.fc1 = nn.Conv2d(channels, hidden, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, channels * radix, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.conv(x)))
        b = x.shape[0]
        splits = torch.chunk(x, self.radix, 1) if self.radix > 1 else (x,)
        gap = sum(splits).mean((2, 3), keepdim=True)
        att = self.fc2(F.relu(self.bn1(self.fc1(gap))))
        if self.radix > 1:  # (b, groups, radix, c/groups) -> softmax over radix -> (b, radix * c)
            att = torch.softmax(att.reshape(b, self.groups, self.radix, -1).transpose(1, 2), 1).reshape(b, -1, 1, 1)
            return sum(a * s for a, s in zip(torch.chunk(att, self.radix, 1), splits))
        return torch.sigmoid(att) * x


class SplitAttentionBottleneck(nn.Module):
    """ResNeSt bottleneck: 1x1 conv + BN + ReLU, split-attention 3x3 conv, 3x3 average pooling
    when strided ("avd"), 1x1 conv + BN to ``4 planes``; shortcut ``avgpool(stride) -> 1x1 conv
    -> BN`` when the shape changes ("avg_down"); ReLU after the sum."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, radix: int = 2, groups: int = 4,
                 bottleneck_width: int = 16):
        super().__init__()
        width = int(planes * bottleneck_width / 64) * groups
        out_channels = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = SplitAttentionConv(width, width, radix, groups)
        self.avd = nn.AvgPool2d(3, stride, padding=1) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            self.shortcut = nn.Sequential(pool, nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.avd(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


class ExternalAttention(nn.Module):
    """External attention with a residual: ``x + BN(1x1(M_v softnorm(M_k 1x1(x))))``.

    ``M_k`` (``units x C``) scores every pixel against ``units`` learnt memory vectors; the
    scores are softmax-normalised over the pixels, then l1-normalised over the units ("double
    normalisation"), and ``M_v`` (``C x units``) maps them back to ``C`` channels.
    """

    def __init__(self, channels: int, units: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.memory_key = nn.Conv1d(channels, units, 1, bias=False)
        self.memory_value = nn.Conv1d(units, channels, 1, bias=False)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        for conv in (self.conv1, self.conv2[0]):
            nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / channels))
        nn.init.normal_(self.memory_value.weight, 0, math.sqrt(2.0 / channels))
        with torch.no_grad():  # the code starts with M_k = M_v^T (tied by shared storage there)
            self.memory_key.weight.copy_(self.memory_value.weight.permute(1, 0, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        attn = torch.softmax(self.memory_key(y.flatten(2)), -1)
        attn = attn / (1e-9 + attn.sum(1, keepdim=True))
        y = self.memory_value(attn).view_as(x)
        return x + self.conv2(y)


class ISTDUNet(SegmentationNet):
    """ISTDU-Net as BasicIRSTD builds it (``ISTDU_Net()``).

    Parameters
    ----------
    in_chans : int
        Input channels. BasicIRSTD builds ISTDU-Net for 1 (grey) channel (the input BN and the
        stem conv); its published count, 2,751,873 parameters, is for ``in_chans=1`` and is
        matched exactly.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (NUAA-SIRST statistics of BasicIRSTD by default).
    layers : list of int
        Bottlenecks per encoder stage.
    channels : list of int
        Bottleneck ``planes`` per stage (the stage outputs ``4 x planes``).
    stem_width : int
        Channels of the full-resolution stem conv.
    radix, groups, bottleneck_width : int
        ResNeSt split-attention radix, cardinality and bottleneck width (per 64 planes).
    memory_units : int
        Memory size of the skip connections' external attention.

    Notes
    -----
    Departures, all deliberate:

    * The final sigmoid is left off: :meth:`forward_all` returns logits (the losses take logits).
    * The unused detection head (``headDet``: built, never called; 9,265 parameters, which
      BasicIRSTD's thop count leaves out too) is not built.
    * The external attention's two memories start tied (``M_k = M_v^T``) but are independent
      parameters; the code ties them through shared storage (``weight.data = ... .permute``), so
      both parameters' optimiser updates land on one tensor.
    * The resizes (x2 bilinear, ``align_corners=False``) go to the skip's explicit size.

    BasicIRSTD trains ISTDU-Net with its SoftIoU loss on the sigmoid map (one ratio over the
    whole batch), Adam, lr 5e-4. Split attention batch-normalises globally pooled features:
    training needs batches of at least 2.

    References
    ----------
    .. [1] Hou et al., "ISTDU-Net: Infrared Small-Target Detection U-Net", IEEE GRSL 2022.
    .. [2] BasicIRSTD ``model/ISTDUNet/model_ISTDUNet.py`` (https://github.com/XinyiYing/BasicIRSTD).
    """

    stride = 8

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, layers: Sequence[int] = (1, 2, 4, 8),
                 channels: Sequence[int] = (16, 32, 64, 128), stem_width: int = 16, radix: int = 2,
                 groups: int = 4, bottleneck_width: int = 16, memory_units: int = 64):
        super().__init__(in_chans, input_mean, input_std)
        layers = check_lengths("layers", layers, 4)
        channels = check_lengths("channels", channels, 4)
        stem_width, radix, groups, bottleneck_width, memory_units = check_lengths(
            "stem_width, radix, groups, bottleneck_width, memory_units",
            [stem_width, radix, groups, bottleneck_width, memory_units], 5)
        if any(int(c * bottleneck_width / 64) < 1 for c in channels):
            raise InputError(f"channels: every planes * bottleneck_width / 64 must be >= 1, got {channels}")
        self.record_args(layers=layers, channels=channels, stem_width=stem_width, radix=radix, groups=groups,
                         bottleneck_width=bottleneck_width, memory_units=memory_units)
        self.stem = nn.Sequential(nn.BatchNorm2d(self.in_chans, affine=False),
                                  _conv_bn_relu(self.in_chans, stem_width, 3))
        stages, cin = [], stem_width
        for i, (n, planes) in enumerate(zip(layers, channels)):
            stride = 1 if i == 0 else 2
            blocks = [SplitAttentionBottleneck(cin, planes, stride, radix, groups, bottleneck_width)]
            cin = planes * EXPANSION
            blocks += [SplitAttentionBottleneck(cin, planes, 1, radix, groups, bottleneck_width) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self._init_encoder()
        widths = [c * EXPANSION for c in channels]
        self.attention = nn.ModuleList(ExternalAttention(w, memory_units) for w in widths)
        self.up = nn.ModuleList(_conv_bn_relu(widths[i + 1], widths[i]) for i in reversed(range(3)))
        self.head = nn.Sequential(_conv_bn_relu(widths[0], widths[0] // 4, 3), nn.Conv2d(widths[0] // 4, 1, 1))

    def _init_encoder(self) -> None:
        """ResNeSt's initialisation of the encoder stages: He-normal convs (fan-out), BN (1, 0)."""
        for m in self.stages.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = self.stem(self.normalise(x))
        skips = []
        for stage, attention in zip(self.stages, self.attention):
            y = stage(y)
            skips.append(attention(y))
        d = skips[3]
        for project, skip in zip(self.up, reversed(skips[:3])):
            d = skip + resize(project(d), skip.shape[-2:])
        return [self.head(d)]
