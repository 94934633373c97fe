"""UIU-Net: U-Net in U-Net for infrared small object detection.

A U-Net whose every stage is itself a small U-Net (U^2-Net's residual U-block, RSU), with an
interactive-cross attention (IC-A) fusion on the four deepest skip connections and deep
supervision: one side output per decoder stage plus the bottom stage, and a fused map.

Data flow (input ``H x W``, multiples of 32; ``RSU-L(mid, out)``; ``RSU-4F`` keeps the
resolution and widens its receptive field with dilations 1, 2, 4, 8 instead)::

    x ── normalise ── RSU-7(32, 64)  ── hx1 (H)      ─────────────────────────────┐
                      RSU-6(32, 128) ── hx2 (H/2)    ───────────────────────┐     │
                      RSU-5(64, 256) ── hx3 (H/4)    ─────────────────┐     │     │
                      RSU-4(128, 512) ─ hx4 (H/8)    ───────────┐     │     │     │
                      RSU-4F(256, 512) hx5 (H/16)    ─────┐     │     │     │     │
                      RSU-4F(256, 512) hx6 (H/32)         │     │     │     │     │
    hx5d = RSU-4F(256, 512)(IC-A(up(hx6),   hx5))  ───────┘     │     │     │     │
    hx4d = RSU-4(128, 256)(IC-A(up(hx5d),  hx4))   ─────────────┘     │     │     │
    hx3d = RSU-5(64, 128)(IC-A(up(hx4d),   hx3))   ───────────────────┘     │     │
    hx2d = RSU-6(32, 64)(IC-A(up(hx3d),    hx2))   ─────────────────────────┘     │
    hx1d = RSU-7(16, 64)(cat(up(hx2d),     hx1))   ───────────────────────────────┘
    d1..d6 = 3x3 conv(hx1d, hx2d, hx3d, hx4d, hx5d, hx6), resized to H x W
    d0 = 1x1 conv(cat(d1, ..., d6))

Every ``up`` is a bilinear resize to the skip's size; the encoder's max-pools use
``ceil_mode=True`` (as the public code), so sizes that are not multiples of 32 still run.

References
----------
.. [1] Wu, Hong, Chanussot, "UIU-Net: U-Net in U-Net for Infrared Small Object Detection",
       IEEE TIP 32:364-376, 2023 (code: https://github.com/danfenghong/IEEE_TIP_UIU-Net).
.. [2] Ying et al., BasicIRSTD, ``model/UIUNet/model_UIUNet.py`` and ``fusion.py``
       (https://github.com/XinyiYing/BasicIRSTD): the build and the 50,540,309-parameter count
       this module matches.
.. [3] Qin et al., "U^2-Net: Going Deeper with Nested U-Structure for Salient Object
       Detection", Pattern Recognition 106, 2020 (the RSU block).
.. [4] Dai, Wu, Zhou, Barnard, "Asymmetric Contextual Modulation for Infrared Small Target
       Detection", WACV 2021 (the asymmetric fusion IC-A builds on).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.acm import SIRST_MEAN, SIRST_STD, resize
from irstd.models.base import SegmentationNet

__all__ = ["ConvBNReLU", "RSU", "SpatialAttention", "InteractiveCrossAttention", "UIUNet"]

#: Encoder stages: (RSU height, mid channels, out channels, dilated).
ENCODER = [(7, 32, 64, False), (6, 32, 128, False), (5, 64, 256, False), (4, 128, 512, False),
           (4, 256, 512, True), (4, 256, 512, True)]
#: Decoder stages, deepest first: (RSU height, mid channels, out channels, dilated).
DECODER = [(4, 256, 512, True), (4, 128, 256, False), (5, 64, 128, False), (6, 32, 64, False),
           (7, 16, 64, False)]


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (with bias, dilation ``d``, padding ``d``) + BN + ReLU (U^2-Net's REBNCONV)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class RSU(nn.Module):
    """Residual U-block of height ``height`` (RSU-L), or its dilated form (RSU-LF).

    ``conv_in`` maps the input to ``out_channels``; a small U-Net of ``height - 1`` encoder
    convolutions (``mid_channels``), a dilated bottom convolution and ``height - 1`` decoder
    convolutions maps that back to ``out_channels``, and the two are added. The plain form
    halves the resolution between encoder levels (max-pool, ``ceil_mode``) and resizes
    bilinearly back in the decoder; its bottom convolution has dilation 2. The dilated form
    (``dilated=True``, U^2-Net's RSU-4F) keeps the resolution and uses dilations ``1, 2, 4, ...``
    down the encoder, ``2 ** (height - 1)`` at the bottom, and the mirror image up the decoder.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, height: int,
                 dilated: bool = False):
        super().__init__()
        if height < 2:
            raise InputError(f"height: must be at least 2, got {height}")
        self.dilated = dilated
        dilations = [2 ** i if dilated else 1 for i in range(height - 1)]
        self.conv_in = ConvBNReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            ConvBNReLU(out_channels if i == 0 else mid_channels, mid_channels, d) for i, d in enumerate(dilations)
        )
        self.bottom = ConvBNReLU(mid_channels, mid_channels, 2 ** (height - 1) if dilated else 2)
        self.decoder = nn.ModuleList(
            ConvBNReLU(2 * mid_channels, out_channels if i == 0 else mid_channels, d)
            for i, d in reversed(list(enumerate(dilations)))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.conv_in(x)
        skips = []
        h = x_in
        for i, conv in enumerate(self.encoder):
            if i and not self.dilated:
                h = _pool(h)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for i, (conv, skip) in enumerate(zip(self.decoder, reversed(skips))):
            if i and not self.dilated:
                h = resize(h, skip.shape[-2:])
            h = conv(torch.cat([h, skip], 1))
        return h + x_in


class SpatialAttention(nn.Module):
    """CBAM-style spatial map: a ``k x k`` convolution (no bias) over the channel mean and max.

    Returns the pre-sigmoid map ``(B, 1, H, W)``.
    """

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        if kernel_size not in (3, 7):
            raise InputError(f"spatial_kernel: must be 3 or 7, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1))


class InteractiveCrossAttention(nn.Module):
    """UIU-Net's interactive-cross attention (IC-A) between a deep and a shallow feature.

    The deep feature ``xh`` (already resized to the shallow one's size) is projected by a
    1x1 conv + BN + ReLU; its global context gates the shallow feature ``xl`` channel-wise
    (top-down: average pool, 1x1 conv bottleneck ``channels / reduction``, BN, sigmoid), and the
    gated shallow feature gates the deep one pixel-wise (bottom-up: 1x1 conv bottleneck + BN +
    ReLU, spatial attention, sigmoid). One shared 3x3 conv + BN + ReLU (``post``) refines both::

        td = topdown(xh);  bu = bottomup(xl * td)
        return post(2 xl td), post(2 xh bu)

    Both outputs have ``channels`` channels; UIU-Net concatenates them for the next decoder
    stage. Because the top-down BN sees ``1 x 1`` maps, training needs batches of 2 or more.
    """

    def __init__(self, channels: int, reduction: int = 4, spatial_kernel: int = 3):
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise InputError(f"fuse_reduction: {reduction} leaves no channel of {channels}")
        self.project = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.topdown = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1), nn.BatchNorm2d(channels), nn.Sigmoid(),
        )
        self.bottomup = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            SpatialAttention(spatial_kernel), nn.Sigmoid(),
        )
        self.post = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True))

    def forward(self, xh: torch.Tensor, xl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xh = self.project(xh)
        topdown = self.topdown(xh)
        bottomup = self.bottomup(xl * topdown)
        return self.post(2 * xl * topdown), self.post(2 * xh * bottomup)


class UIUNet(SegmentationNet):
    """UIU-Net as BasicIRSTD builds it (its default and only configuration).

    Parameters
    ----------
    in_chans : int
        Input channels (the first RSU's first convolution). BasicIRSTD builds UIU-Net for 1
        (grey) channel and its published count, 50,540,309 trainable parameters, is for
        ``in_chans=1``; it is matched exactly (``in_chans=3``, the authors' RGB build, has
        50,541,461).
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (BasicIRSTD's NUAA-SIRST statistics by default).
    fuse_reduction : int
        Bottleneck ratio ``r`` of the IC-A gates (4).
    spatial_kernel : int
        Kernel of IC-A's spatial attention (3; 7 is CBAM's).

    Notes
    -----
    :meth:`forward_all` returns the seven maps coarse to final: the side outputs of the
    bottom stage and of the decoder stages from the deepest up (``d6, d5, ..., d1``), then the
    fused map ``d0`` last (the eval-mode output). Departures from the public code, all
    deliberate:

    * No sigmoids: the public code returns ``sigmoid(d0), ..., sigmoid(d6)``; these are the
      logits (the losses take logits).
    * Resizes use ``F.interpolate(..., align_corners=False)``, the behaviour of the public
      code's deprecated ``F.upsample``.

    Training. The authors train with the sum of the binary cross-entropies of the seven
    sigmoid maps (``nn.BCELoss``, mean over pixels, equal weights; Adam, lr 1e-3, batch 3).
    That is ``irstd.losses.create_loss("bce")`` applied to this list (sum over outputs of
    ``binary_cross_entropy_with_logits``), except that ``nn.BCELoss`` clamps ``log`` at -100
    (logits beyond about +-100). BasicIRSTD instead trains UIU-Net with its SoftIoU loss on the
    sigmoid maps (one ratio over the whole batch) averaged over the seven outputs, Adam lr 5e-4.
    Training batches must hold at least 2 frames (BN on the IC-A's pooled 1 x 1 features).
    """

    stride = 32

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, fuse_reduction: int = 4,
                 spatial_kernel: int = 3):
        super().__init__(in_chans, input_mean, input_std)
        fuse_reduction, spatial_kernel = int(fuse_reduction), int(spatial_kernel)
        if fuse_reduction < 1:
            raise InputError(f"fuse_reduction: must be at least 1, got {fuse_reduction}")
        if spatial_kernel not in (3, 7):
            raise InputError(f"spatial_kernel: must be 3 or 7, got {spatial_kernel}")
        self.record_args(fuse_reduction=fuse_reduction, spatial_kernel=spatial_kernel)

        widths = [in_chans] + [out for _, _, out, _ in ENCODER]
        self.encoder = nn.ModuleList(
            RSU(widths[i], mid, out, height, dilated) for i, (height, mid, out, dilated) in enumerate(ENCODER)
        )
        # decoder stage i reads the deeper map and the skip at encoder level 5 - i (both that
        # skip's width, IC-A doubling it by concatenation), or their plain concatenation for
        # the last (full-resolution) stage
        skips = widths[-2:0:-1]  # 512, 512, 256, 128, 64
        self.decoder = nn.ModuleList(
            RSU(2 * skip, mid, out, height, dilated) for skip, (height, mid, out, dilated) in zip(skips, DECODER)
        )
        side_widths = [out for _, _, out, _ in reversed(DECODER)] + [widths[-1]]  # hx1d .. hx5d, hx6
        self.sides = nn.ModuleList(nn.Conv2d(w, 1, 3, padding=1) for w in side_widths)
        self.fuse = nn.Conv2d(len(side_widths), 1, 1)
        self.fusions = nn.ModuleList(
            InteractiveCrossAttention(skip, fuse_reduction, spatial_kernel) for skip in skips[:-1]
        )

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.normalise(x)
        features = []
        h = x
        for i, stage in enumerate(self.encoder):
            if i:
                h = _pool(h)
            h = stage(h)
            features.append(h)
        decoded = []
        for i, stage in enumerate(self.decoder):
            skip = features[-2 - i]
            h = resize(h, skip.shape[-2:])
            if i < len(self.fusions):
                h = stage(torch.cat(self.fusions[i](h, skip), 1))
            else:
                h = stage(torch.cat([h, skip], 1))
            decoded.append(h)
        # side inputs hx1d, hx2d, ..., hx5d, hx6
        side_inputs = decoded[::-1] + [features[-1]]
        size = x.shape[-2:]
        sides = [resize(side(f), size) if j else side(f) for j, (side, f) in enumerate(zip(self.sides, side_inputs))]
        fused = self.fuse(torch.cat(sides, 1))
        return sides[::-1] + [fused]
