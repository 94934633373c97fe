"""ISNet: shape-aware infrared small target detection (a mask and an edge map).

An ACM-like residual U-Net (stem, three stages, two transposed-convolution decoder steps) whose
skip fusions are two-orientation attention aggregation (TOAA: row- and column-wise deformable
convolutions of the decoder feature gate the encoder feature), and an edge branch: the image
gradient, lifted to ``E`` channels, is refined by three Taylor finite-difference (TFD) blocks,
each gated by a 1-channel side output of the U-Net (coarse to fine); the edge map re-weights the
last decoder feature before the head.

Data flow (input ``H x W``, multiples of 16; widths for the default ``channels=[8, 16, 32, 64]``,
``edge_channels=64``)::

    x ── normalise ── stem (H/4, 16) ── layer1 ── c1 (H/4, 16)
                                        layer2 ── c2 (H/8, 32)
                                        layer3 ── c3 (H/16, 64)
    u2 = uplayer2(TOAA(deconv2(c3), c2))      (H/8, 32)
    u1 = uplayer1(TOAA(deconv1(u2), c1))      (H/4, 16)
    s1, s2, s3 = 1x1 conv of c3, u2, u1, resized to H x W (1 channel each)
    e = TFD(TFD(TFD(1x1 conv(|grad x|), s1), s2), s3)    (H, E)
    edge = 1x1 conv(e)                                   (H, 1: the edge logits)
    u = resize(u1, H x W);  mask = head(sigmoid(edge) * u + u)   (H, 1: the mask logits)

References
----------
.. [1] Zhang, Zhang, Yang, Bai, Zhang, Guo, "ISNet: Shape Matters for Infrared Small Target
       Detection", CVPR 2022 (https://github.com/RuiZhang97/ISNet).
.. [2] Ying et al., BasicIRSTD, ``model/ISNet/model_ISNet.py`` and ``DCNv2/TTOA.py``
       (https://github.com/XinyiYing/BasicIRSTD).
.. [3] Takikawa, Acuna, Jampani, Fidler, "Gated-SCNN: Gated Shape CNNs for Semantic
       Segmentation", ICCV 2019 (the gated convolution of the TFD blocks).
.. [4] Dai et al., "Deformable Convolutional Networks", ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.losses import gradient_magnitude
from irstd.models.acm import SIRST_MEAN, SIRST_STD, FCNHead, Stem, check_lengths, deconv, make_stage, resize
from irstd.models.base import SegmentationNet

__all__ = ["DeformConv2d", "TOAA", "GatedConv", "TFDBlock", "ISNet"]


class DeformConv2d(nn.Module):
    """Deformable convolution v1 (stride 1, "same" padding) with its own offset convolution.

    The offset convolution (same kernel, zero-initialised, so training starts from a plain
    convolution) predicts ``(dy, dx)`` per kernel tap and pixel; each tap samples the input
    bilinearly at its shifted position (zero outside), and a ``k x k`` weight mixes the samples:
    DCNv2's ``DeformConvPack`` (the layout of torchvision's ``deform_conv2d``). Written with
    ``grid_sample`` so it runs anywhere and exports to ONNX (opset 16+).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int]):
        super().__init__()
        kh, kw = kernel_size
        self.kernel_size = (kh, kw)
        self.padding = (kh // 2, kw // 2)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels))
        conv = nn.Conv2d(in_channels, out_channels, kernel_size)  # PyTorch's default init
        self.weight.data.copy_(conv.weight.data)
        self.bias.data.copy_(conv.bias.data)
        self.conv_offset = nn.Conv2d(in_channels, 2 * kh * kw, kernel_size, padding=self.padding)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        kh, kw = self.kernel_size
        taps = kh * kw
        offset = self.conv_offset(x).view(b, taps, 2, h, w)
        ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
        xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, w)
        ky = torch.arange(kh, dtype=x.dtype, device=x.device).repeat_interleave(kw) - self.padding[0]
        kx = torch.arange(kw, dtype=x.dtype, device=x.device).repeat(kh) - self.padding[1]
        py = ys + ky.view(1, taps, 1, 1) + offset[:, :, 0]  # (b, taps, h, w) pixel rows
        px = xs + kx.view(1, taps, 1, 1) + offset[:, :, 1]
        # pixel -> grid_sample coordinates (align_corners=False): (2 p + 1) / size - 1
        grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1).view(b, taps * h, w, 2)
        samples = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        samples = samples.view(b, c * taps, h, w)  # channel-major, tap-minor: the weight's layout
        return F.conv2d(samples, self.weight.flatten(1)[:, :, None, None], self.bias)


class TOAA(nn.Module):
    """Two-orientation attention aggregation (the code's ``TTOA``).

    Both inputs pass a shared 1x1 conv bottleneck (``C -> C/2 -> C``); a ``3x1`` and a ``1x3``
    deformable convolution of the decoder feature ``low`` give column and row attention maps
    (sigmoid) that gate the encoder feature ``high``: ``2 low + (a_col + a_row) * high``.
    """

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.preprocess = nn.Sequential(nn.Conv2d(channels, channels // 2, 1), nn.Conv2d(channels // 2, channels, 1))
        self.dcn_row = DeformConv2d(channels, channels, (1, kernel))
        self.dcn_col = DeformConv2d(channels, channels, (kernel, 1))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low, high = self.preprocess(low), self.preprocess(high)
        col = low + torch.sigmoid(self.dcn_col(low)) * high
        row = low + torch.sigmoid(self.dcn_row(low)) * high
        return row + col


class GatedConv(nn.Module):
    """Gated 1x1 convolution (Gated-SCNN): ``conv(x * (1 + alpha))``, ``alpha`` a per-pixel
    sigmoid gate computed from ``x`` and a 1-channel guide (BN, 1x1 conv, ReLU, 1x1 conv, BN)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.BatchNorm2d(channels + 1), nn.Conv2d(channels + 1, channels + 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels + 1, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid(),
        )
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        nn.init.xavier_normal_(self.conv.weight)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        alpha = self.gate(torch.cat([x, guide], 1))
        return self.conv(x * (alpha + 1))


class _ResidualPair(nn.Module):
    """Basic residual block (two 3x3 conv + BN, identity shortcut) returning the block's output
    ``relu(x + f(x))`` and the rectified residual ``relu(f(x))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(x + f), F.relu(f)


class TFDBlock(nn.Module):
    """Taylor finite difference block: a third-order update of the edge feature ``u0``.

    ``u1, d0 = res1(u0)``; ``d1 = res2(u1)`` (its rectified residual); the result is
    ``3 d0 + d1 + gated(d1, s)`` with ``s`` the 1-channel side output guiding this block.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.res1 = _ResidualPair(channels)
        self.res2 = _ResidualPair(channels)
        self.gate = GatedConv(channels)

    def forward(self, u0: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        u1, d0 = self.res1(u0)
        _, d1 = self.res2(u1)
        return 3 * d0 + d1 + self.gate(d1, side)


def _resize_ac(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=True)


class ISNet(SegmentationNet):
    """ISNet (the code's ``ISNet_TTOA``), as BasicIRSTD builds it (``ISNet(mode='train')``).

    Parameters
    ----------
    in_chans : int
        Input channels. BasicIRSTD builds ISNet for 1 (grey) channel (the stem's input BN and
        first conv); the image gradient of the edge branch reads channel 0 only.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (NUAA-SIRST statistics of BasicIRSTD by default).
    layers : list of int
        Residual blocks per encoder stage (and per decoder stage: ``uplayer2`` has ``layers[1]``,
        ``uplayer1`` ``layers[0]``).
    channels : list of int
        Stem width, then the widths of the three stages (``channels[1] == 2 * channels[0]``).
    edge_channels : int
        Width ``E`` of the edge branch (TFD blocks).

    Notes
    -----
    :meth:`forward_all` returns ``[edge_logits, mask_logits]`` (the mask last), both at the input
    size; in eval mode the net returns the mask logits. Train it with the ``isnet`` loss
    (:func:`irstd.losses.create_loss`), which supervises the edge logits with the gradient
    magnitude of the mask (:func:`irstd.losses.gradient_magnitude`, also the
    image gradient the edge branch starts from). The sigmoid of the edge map *inside* the
    network (it re-weights the decoder feature) is kept; the two output sigmoids are left off.

    Parameter count: 985,810 trainable parameters for ``in_chans=1``. BasicIRSTD's published
    965,746 is ``thop``'s count, which misses the weights held directly by custom modules
    that thop cannot see: the 4 deformable convolutions' kernels and biases (7,776) and the
    3 gated convolutions' 1x1 kernels (12,288); the remaining parameters match it exactly.

    Departures, all deliberate:

    * Modules the code builds but never calls (``res1-3``, ``d1-3``, ``gate1-3``, ``SA``,
      ``SA_att``, ``cw``, ``head2``, ``conv2_1``, ``conv16``: 103,709 parameters in
      ``model.parameters()``) are not built.
    * The deformable convolutions are plain PyTorch (``grid_sample``) instead of the compiled
      DCNv2 extension: the same bilinear sampling and offset layout; the offset convolution's
      ``lr_mult = 0.1`` attribute, which BasicIRSTD's optimiser ignores, is not carried over.
    * The resizes that are identities (the gradient and the edge map to the input size) are
      skipped; the others resize to explicit sizes.

    BasicIRSTD trains ISNet with ``ISNetLoss``: SoftIoU on the mask + 10 BCE + SoftIoU on the
    edge map against the mask's gradient magnitude (the ``isnet`` loss here), Adam, lr 5e-4.

    References
    ----------
    .. [1] Zhang et al., "ISNet: Shape Matters for Infrared Small Target Detection", CVPR 2022.
    .. [2] BasicIRSTD ``model/ISNet/model_ISNet.py`` (https://github.com/XinyiYing/BasicIRSTD).
    """

    stride = 16

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, layers: Sequence[int] = (4, 4, 4),
                 channels: Sequence[int] = (8, 16, 32, 64), edge_channels: int = 64):
        super().__init__(in_chans, input_mean, input_std)
        layers = check_lengths("layers", layers, 3)
        channels = check_lengths("channels", channels, 4)
        if channels[1] != 2 * channels[0]:
            raise InputError(f"channels: channels[1] must be 2 * channels[0], got {channels}")
        edge_channels = int(edge_channels)
        if edge_channels < 1:
            raise InputError(f"edge_channels: must be positive, got {edge_channels}")
        self.record_args(layers=layers, channels=channels, edge_channels=edge_channels)
        _, c1, c2, c3 = channels
        self.stem = Stem(self.in_chans, channels[0])
        self.layer1 = make_stage(c1, c1, layers[0])
        self.layer2 = make_stage(c1, c2, layers[1], stride=2)
        self.layer3 = make_stage(c2, c3, layers[2], stride=2)
        self.deconv2 = deconv(c3, c2)
        self.toaa_low = TOAA(c2)
        self.uplayer2 = make_stage(c2, c2, layers[1])
        self.deconv1 = deconv(c2, c1)
        self.toaa_high = TOAA(c1)
        self.uplayer1 = make_stage(c1, c1, layers[0])
        self.head = FCNHead(c1)
        # edge branch
        self.dsn1 = nn.Conv2d(c3, 1, 1)
        self.dsn2 = nn.Conv2d(c2, 1, 1)
        self.dsn3 = nn.Conv2d(c1, 1, 1)
        self.dsup = nn.Conv2d(1, edge_channels, 1)
        self.tfd1 = TFDBlock(edge_channels)
        self.tfd2 = TFDBlock(edge_channels)
        self.tfd3 = TFDBlock(edge_channels)
        self.fuse = nn.Conv2d(edge_channels, 1, 1, bias=False)

    def published_count(self) -> int:
        """The parameters thop counts (BasicIRSTD's 965,746): all but the deformable convolutions'
        kernels and biases and the gated convolutions' kernels, held by modules thop cannot see."""
        hidden = {id(m.weight) for m in self.modules() if isinstance(m, DeformConv2d)}
        hidden |= {id(m.bias) for m in self.modules() if isinstance(m, DeformConv2d)}
        hidden |= {id(m.conv.weight) for m in self.modules() if isinstance(m, GatedConv)}
        return sum(p.numel() for p in self.parameters() if p.requires_grad and id(p) not in hidden)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.normalise(x)
        size = x.shape[-2:]
        grad = gradient_magnitude(x)
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        u2 = self.uplayer2(self.toaa_low(self.deconv2(c3), c2))
        u1 = self.uplayer1(self.toaa_high(self.deconv1(u2), c1))
        e = self.tfd1(self.dsup(grad), _resize_ac(self.dsn1(c3), size))
        e = self.tfd2(e, _resize_ac(self.dsn2(u2), size))
        e = self.tfd3(e, _resize_ac(self.dsn3(u1), size))
        edge = self.fuse(e)
        u = resize(u1, size)
        mask = self.head(torch.sigmoid(edge) * u + u)
        return [edge, mask]
