"""DNANet: dense nested attention network for infrared small target detection.

A UNet++-style grid of residual CBAM blocks (channel then spatial attention) whose nodes are
densely connected across depth (every node of row ``i`` sees the nodes before it in its row, the
upsampled node below and the downsampled node above), then a feature pyramid fusion of the last
column before the head. Node ``x{i}_{j}`` sits at depth ``i`` (``H / 2**i``), column ``j``.

Data flow (input ``H x W``, multiples of 16; widths for the default
``widths=[16, 32, 64, 128, 256]``)::

    x ── normalise ── x0_0 (H, 16) ── pool ── x1_0 (H/2, 32) ── ... ── x4_0 (H/16, 256)
    x{i}_{j} = block(cat[x{i}_0 .. x{i}_{j-1}, up(x{i+1}_{j-1}), down(x{i-1}_{j})])
    fused = block(cat[up16(1x1(x4_0)), up8(1x1(x3_1)), up4(1x1(x2_2)), up2(1x1(x1_3)), x0_4])
    side outputs: 1x1 conv of x0_1, x0_2, x0_3, and of fused (the final map)

References
----------
.. [1] Li, Xiao, Wang, Wang, Lin, Li, An, Guo, "Dense Nested Attention Network for Infrared
       Small Target Detection", IEEE TIP 32, 2023 (https://github.com/YeRen123455/
       Infrared-Small-Target-Detection).
.. [2] Ying et al., BasicIRSTD, ``model/DNANet/model_DNANet.py``
       (https://github.com/XinyiYing/BasicIRSTD).
.. [3] Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.models.acm import SIRST_MEAN, SIRST_STD, check_lengths
from irstd.models.base import SegmentationNet

__all__ = ["ChannelAttention", "SpatialAttention", "ResCBAMBlock", "DNANet"]


def resize_ac(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` to an explicit size (DNANet's up/down-sampling;
    equal to its ``nn.Upsample(scale_factor=...)`` for sizes that are multiples of the stride)."""
    return F.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=True)


class ChannelAttention(nn.Module):
    """CBAM channel attention: a shared 2-layer MLP (``channels // 16`` hidden, no biases) on the
    average- and max-pooled features, summed, sigmoid."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        peak = self.fc2(F.relu(self.fc1(x.amax((2, 3), keepdim=True))))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: 7x7 conv (no bias) over the channel mean and max, sigmoid."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return torch.sigmoid(self.conv(pooled))


class ResCBAMBlock(nn.Module):
    """Residual block with CBAM: two 3x3 conv + BN (convs with bias, as in the authors' code),
    channel then spatial attention on the residual branch, identity or 1x1 conv + BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.ca = ChannelAttention(out_channels)
        self.sa = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y = self.ca(y) * y
        y = self.sa(y) * y
        return F.relu(y + self.shortcut(x))


def _stage(in_channels: int, out_channels: int, blocks: int = 1) -> nn.Sequential:
    return nn.Sequential(ResCBAMBlock(in_channels, out_channels),
                         *(ResCBAMBlock(out_channels, out_channels) for _ in range(blocks - 1)))


class DNANet(SegmentationNet):
    """DNANet with deep supervision, as BasicIRSTD builds it (``DNANet(mode='train')``).

    Parameters
    ----------
    in_chans : int
        Input channels. BasicIRSTD builds DNANet with its default ``input_channels=1`` and feeds
        the grey frame (the authors' repository feeds 3 copies of it); its published count,
        4,696,568 parameters, is for ``in_chans=1`` and is matched exactly (3 channels add 320).
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (NUAA-SIRST statistics of BasicIRSTD by default).
    blocks : list of int
        Residual CBAM blocks per node of depth 1 to 4 (depth 0 nodes have one block).
    widths : list of int
        Channels of the nodes at depth 0 to 4.
    deep_supervision : bool
        Four outputs (columns 1, 2, 3 of the top row, then the fused map) instead of one.

    Notes
    -----
    Departures, all deliberate:

    * The sigmoids are left off: :meth:`forward_all` returns logits (the losses take logits).
    * The fixed-factor ``nn.Upsample`` layers are resizes to explicit sizes (same values for
      inputs that are multiples of :attr:`stride`; export-friendly).

    Deep supervision follows the code: four logit maps, the 1x1 heads of the top-row nodes
    ``x0_1``, ``x0_2``, ``x0_3`` (side outputs, coarse to fine in depth of nesting) and of the
    fused map (the final output; ``x0_4`` itself has no head). BasicIRSTD trains DNANet with its
    SoftIoU loss on the four sigmoid maps (one ratio over the whole batch, averaged over the
    maps), Adam, lr 5e-4 (x0.1 at epochs 200 and 300 of 400), batch 16 of 256 x 256 patches.

    References
    ----------
    .. [1] Li et al., "Dense Nested Attention Network for Infrared Small Target Detection",
           IEEE TIP 2023.
    .. [2] BasicIRSTD ``model/DNANet/model_DNANet.py`` (https://github.com/XinyiYing/BasicIRSTD).
    """

    stride = 16

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, blocks: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (16, 32, 64, 128, 256), deep_supervision: bool = True):
        super().__init__(in_chans, input_mean, input_std)
        blocks = check_lengths("blocks", blocks, 4)
        w = check_lengths("widths", widths, 5)
        self.record_args(blocks=blocks, widths=w, deep_supervision=bool(deep_supervision))
        self.deep_supervision = bool(deep_supervision)
        n = [1, *blocks]  # blocks per node, by depth
        # column 0: the encoder
        self.conv0_0 = _stage(self.in_chans, w[0])
        for i in range(1, 5):
            self.add_module(f"conv{i}_0", _stage(w[i - 1], w[i], n[i]))
        # column j, depth i < 5 - j: j earlier nodes of the row, the node below, the node above
        for j in range(1, 5):
            for i in range(5 - j):
                cin = j * w[i] + w[i + 1] + (w[i - 1] if i > 0 else 0)
                self.add_module(f"conv{i}_{j}", _stage(cin, w[i], n[i]))
        self.conv0_4_final = _stage(5 * w[0], w[0])
        self.reduce = nn.ModuleList(nn.Conv2d(w[i], w[0], 1) for i in (4, 3, 2, 1))
        heads = 4 if self.deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(w[0], 1, 1) for _ in range(heads))

    def _node(self, i: int, j: int) -> nn.Module:
        return getattr(self, f"conv{i}_{j}")

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[-2:]
        grid: dict[tuple[int, int], torch.Tensor] = {(0, 0): self.conv0_0(self.normalise(x))}
        # fill the grid by anti-diagonals: x{k}_0 first, then x{k-1}_1 ... x0_k
        for k in range(1, 5):
            grid[k, 0] = self._node(k, 0)(F.max_pool2d(grid[k - 1, 0], 2))
            for j in range(1, k + 1):
                i = k - j
                here = grid[i, 0].shape[-2:]
                parts = [grid[i, c] for c in range(j)] + [resize_ac(grid[i + 1, j - 1], here)]
                if i > 0:
                    parts.append(resize_ac(grid[i - 1, j], here))
                grid[i, j] = self._node(i, j)(torch.cat(parts, 1))
        top = grid[0, 0].shape[-2:]
        pyramid = [resize_ac(conv(grid[i, 4 - i]), top) for conv, i in zip(self.reduce, (4, 3, 2, 1))]
        fused = self.conv0_4_final(torch.cat([*pyramid, grid[0, 4]], 1))
        if not self.deep_supervision:
            return [self.heads[0](fused)]
        maps = [grid[0, 1], grid[0, 2], grid[0, 3], fused]
        return [head(m) for head, m in zip(self.heads, maps)]
