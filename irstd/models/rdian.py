"""RDIAN: receptive-field and direction induced attention network.

Data flow of :class:`RDIAN` (input ``H x W``, even; default widths ``channels=[16, 32]``)::

    x ── normalise ──┬── conv-BN-LReLU ── f1 (H, 16)
                     └── direction attention a = sigmoid(sum_k d_k d_{k+4})   (H, 1)
    f = conv-BN-LReLU stride 2 (f1 + f1 * a)                                  (H/2, 32)
    y = CBAM(conv-BN-LReLU(concat of 4 residual branches of kernel 1, 3, 5, 7 on f)) (H/2, 32)
    logits = FCN head(ReLU(bilinear x2 (y) + conv1x1-BN-LReLU(f1)))          (H, 1)

``d_k`` is the difference between a pixel and its neighbour two pixels away in the ``k``-th of
eight directions (fixed 5x5 kernels, zero padding); the product of opposite differences is large
where the pixel stands out from both sides, as a small target does (a multi-direction local
contrast in the spirit of MPCM).

References
----------
.. [1] Sun, Yang, He, "Receptive-Field and Direction Induced Attention Network for Infrared Dim
       Small Target Detection With a Large-Scale Dataset IRDST", IEEE TGRS 61, 2023
       (code: https://github.com/sun11999/RDIAN).
.. [2] Ying et al., BasicIRSTD (``model/RDIAN``), https://github.com/XinyiYing/BasicIRSTD.
.. [3] Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.acm import SIRST_MEAN, SIRST_STD, FCNHead, check_lengths, resize
from irstd.models.base import SegmentationNet

__all__ = ["ConvBNLReLU", "ResidualBranchBlock", "CBAM", "DirectionAttention", "RDIAN"]

#: (row, column) offsets of the eight neighbours at distance 2, clockwise from the top left;
#: entries ``k`` and ``k + 4`` are opposite.
DIRECTIONS = ((-2, -2), (-2, 0), (-2, 2), (0, 2), (2, 2), (2, 0), (2, -2), (0, -2))


class ConvBNLReLU(nn.Sequential):
    """``k x k`` convolution (no bias, 'same' padding) + BN + LeakyReLU(0.01)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(),
        )


class ResidualBranchBlock(nn.Module):
    """Two ``k x k`` conv-BN-LReLU (halving then restoring the width) plus the identity."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNLReLU(channels, channels // 2, kernel_size), ConvBNLReLU(channels // 2, channels, kernel_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CBAM(nn.Module):
    """CBAM: channel gate (shared MLP on global average and max pools) then spatial gate
    (7x7 conv + BN on the channel max and mean)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        # eps and momentum of the spatial gate's BN as in the CBAM / RDIAN code.
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 7, 1, 3, bias=False), nn.BatchNorm2d(1, eps=1e-5, momentum=0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        x = x * torch.sigmoid(channel)[:, :, None, None]
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class DirectionAttention(nn.Module):
    """``sigmoid(sum_k d_k d_{k+4})`` over the four axes, ``d_k = x - x(shifted by 2 along k)``.

    Computed on the channel mean of the input (the grey image itself for one channel); the eight
    fixed 5x5 kernels are a non-persistent buffer, not parameters.
    """

    def __init__(self):
        super().__init__()
        kernels = torch.zeros(len(DIRECTIONS), 1, 5, 5)
        for k, (dy, dx) in enumerate(DIRECTIONS):
            kernels[k, 0, 2, 2] = 1.0
            kernels[k, 0, 2 + dy, 2 + dx] = -1.0
        self.register_buffer("kernels", kernels, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = F.conv2d(x.mean(1, keepdim=True), self.kernels, padding=2)
        return torch.sigmoid((d[:, :4] * d[:, 4:]).sum(1, keepdim=True))


class RDIAN(SegmentationNet):
    """RDIAN as its authors and BasicIRSTD build it.

    Parameters
    ----------
    in_chans : int
        Input channels. RDIAN and BasicIRSTD build it for 1 (grey) channel; the published count,
        216,558 trainable parameters, is for ``in_chans=1`` and is matched exactly. With more
        channels the direction attention reads their mean.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (NUAA-SIRST statistics of BasicIRSTD by default).
    channels : list of int
        Width at full resolution and at half resolution (``[16, 32]``).
    kernel_sizes : list of int
        Kernel size of each residual branch (``[1, 3, 5, 7]``, odd).
    blocks : list of int
        Residual blocks per branch (``[1, 2, 2, 2]``).
    cbam_reduction : int
        Reduction ratio of CBAM's channel MLP (32: a 32 -> 1 -> 32 MLP).

    Notes
    -----
    Departures: the final sigmoid of BasicIRSTD's copy is left off (the authors' code also
    returns logits and applies the sigmoid in the loss); the fixed direction kernels (200
    non-trainable parameters in the public code) are a buffer, so they are neither trained nor
    saved; CBAM's pools are written as reductions (same values, export-friendly). BatchNorm as
    in the public code: PyTorch defaults, except CBAM's spatial BN (momentum 0.01).

    The authors train RDIAN with soft IoU on sigmoid probabilities (per image, averaged) and
    Adagrad; BasicIRSTD trains it with its SoftIoU loss (one ratio over the whole batch), Adam,
    lr 5e-4.

    References
    ----------
    .. [1] Sun, Yang, He, "Receptive-Field and Direction Induced Attention Network for Infrared
           Dim Small Target Detection With a Large-Scale Dataset IRDST", IEEE TGRS 2023.
    .. [2] BasicIRSTD ``model/RDIAN/model_RDIAN.py`` (https://github.com/XinyiYing/BasicIRSTD).
    """

    stride = 2

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, channels: Sequence[int] = (16, 32),
                 kernel_sizes: Sequence[int] = (1, 3, 5, 7), blocks: Sequence[int] = (1, 2, 2, 2),
                 cbam_reduction: int = 32):
        super().__init__(in_chans, input_mean, input_std)
        channels = check_lengths("channels", channels, 2)
        kernel_sizes = [int(k) for k in kernel_sizes]
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise InputError(f"kernel_sizes: expected odd positive sizes, got {kernel_sizes}")
        blocks = check_lengths("blocks", blocks, len(kernel_sizes))
        self.record_args(channels=channels, kernel_sizes=kernel_sizes, blocks=blocks,
                         cbam_reduction=int(cbam_reduction))
        c1, c2 = channels
        self.direction = DirectionAttention()
        self.conv1 = ConvBNLReLU(self.in_chans, c1)
        self.conv2 = ConvBNLReLU(c1, c2, stride=2)
        self.branches = nn.ModuleList(
            nn.Sequential(*(ResidualBranchBlock(c2, k) for _ in range(n))) for k, n in zip(kernel_sizes, blocks)
        )
        self.conv_cat = ConvBNLReLU(len(kernel_sizes) * c2, c2)
        self.cbam = CBAM(c2, cbam_reduction)
        self.conv_res = ConvBNLReLU(c1, c2, kernel_size=1)
        self.head = FCNHead(c2)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.normalise(x)
        f1 = self.conv1(x)
        f = self.conv2(f1 + f1 * self.direction(x))
        y = self.cbam(self.conv_cat(torch.cat([branch(f) for branch in self.branches], dim=1)))
        fused = F.relu(resize(y, x.shape[-2:]) + self.conv_res(f1))
        return [self.head(fused)]
