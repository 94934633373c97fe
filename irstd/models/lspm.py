"""LSPM network: infrared small target segmentation with multiscale feature representation.

A VGG-16 encoder (average-pooling variant), a local similarity pyramid module (LSPM) on its
deepest map, and a top-down decoder of feature aggregation modules with channel attention
(FAMCA), each merging an encoder level, the decoder's deeper output and the LSPM output
upsampled to that level.

Data flow (input ``H x W``, multiples of 16)::

    x ── normalise ── VGG-16: c1 (H, 64), c2 (H/2, 128), c3 (H/4, 256), c4 (H/8, 512), c5 (H/16, 512)
    g = LSPM(c5)                                         (H/16, 512)
    m = FAMCA(c4, c5, info512(up8(g)))                   (H/8, 512)
    m = FAMCA(c3, m,  info256(up4(g)))                   (H/4, 256)
    m = FAMCA(c2, m,  info128(up2(g)))                   (H/2, 128)
    m = channel attention(1x1 conv(up(m)))               (H, 128)
    logits = 1x1 conv(m)                                 (H, 1)

``info_w`` is a 3x3 conv (no bias) to ``w`` channels + ReLU on the LSPM output resized to the
level; every resize is bilinear with ``align_corners=True``. VGG-16 blocks 2-5 start with a 2x2
average pool (not max) as in the public code.

LSPM: for each grid size ``S`` in ``(1, 2, 3, 6)``, a local similarity layer
``x + G (R A)``, where ``A = softmax_rows(X^T X)`` is the ``HW x HW`` pixel-similarity matrix
of the flattened map ``X`` (``C x HW``, no scaling), ``R`` a 1x1 conv to ``S^2`` channels, and
``G`` the ``S x S`` adaptive average pool of ``x`` after a 1x1 conv + ReLU (``C x S^2``); the input
and the four layers are concatenated and fused by a 1x1 conv. FAMCA: the deeper input goes
through a 1x1 conv + ReLU, the three inputs are concatenated and fused by a 3x3 conv + ReLU,
and a squeeze-and-excitation gate (reduction 4, no biases) rescales the channels.

References
----------
.. [1] Huang, Dai, Huang, Huang, Wang, "Infrared small target segmentation with multiscale
       feature representation", Infrared Physics & Technology 116, 103755, 2021 (code:
       https://github.com/HuangLian126/LSPM, ``ourModels.py``, ``vgg.py``).
.. [2] Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
       Recognition", ICLR 2015 (VGG-16).
.. [3] Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.acm import SIRST_MEAN, SIRST_STD
from irstd.models.base import SegmentationNet

__all__ = ["adaptive_avg_pool", "LocalSimilarityLayer", "LocalSimilarityPyramid", "FAMCA", "LSPM"]

#: VGG-16's convolution widths per block.
VGG16 = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=True)


def _pool_matrix(n: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, n)`` averaging matrix of PyTorch's adaptive pooling: bin ``i`` averages the
    indices ``floor(i n / bins) <= r < ceil((i + 1) n / bins)``. ``n`` is recovered from the
    index tensor so that ONNX export keeps it dynamic."""
    r = torch.arange(n, device=like.device).to(like.dtype).unsqueeze(0)   # 1, n
    length = r[:, -1:] + 1                                                 # n, as a tensor
    i = torch.arange(bins, device=like.device).to(like.dtype).unsqueeze(1)  # bins, 1
    mask = ((r >= torch.floor(i * length / bins)) & (r < torch.ceil((i + 1) * length / bins))).to(like.dtype)
    return mask / mask.sum(1, keepdim=True)


def adaptive_avg_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` as two matrix products (exports to ONNX with dynamic
    sizes, which ``adaptive_avg_pool2d`` does not for sizes other than 1)."""
    rows = _pool_matrix(x.shape[-2], size, x)
    cols = _pool_matrix(x.shape[-1], size, x)
    return rows @ x @ cols.t()


class LocalSimilarityLayer(nn.Module):
    """One LSPM branch at grid size ``S``: ``x + G (R softmax(X^T X))`` (see the module notes)."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.size = size
        self.context = nn.Conv2d(channels, channels, 1, bias=False)
        self.reduce = nn.Conv2d(channels, size * size, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)                                               # B, C, HW
        similarity = torch.softmax(flat.transpose(1, 2) @ flat, dim=-1)   # B, HW, HW
        regions = self.reduce(x).flatten(2) @ similarity                  # B, S^2, HW
        context = F.relu(self.context(adaptive_avg_pool(x, self.size))).flatten(2)  # B, C, S^2
        return x + (context @ regions).reshape(b, c, h, w)


class LocalSimilarityPyramid(nn.Module):
    """The input and one :class:`LocalSimilarityLayer` per grid size, concatenated and fused by
    a 1x1 conv (no bias)."""

    def __init__(self, channels: int, sizes: Sequence[int] = (1, 2, 3, 6)):
        super().__init__()
        self.layers = nn.ModuleList(LocalSimilarityLayer(channels, s) for s in sizes)
        self.fuse = nn.Conv2d((len(self.layers) + 1) * channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([x] + [layer(x) for layer in self.layers], 1))


def _se_gate(channels: int, reduction: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                         nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())


class FAMCA(nn.Module):
    """Feature aggregation with channel attention.

    ``forward(left, down, right)``: ``left`` (``out_channels``) is the encoder level, ``down``
    (``in_channels``) the deeper decoder output, resized to ``left`` and projected by a 1x1 conv
    + ReLU, ``right`` (``out_channels``) the LSPM information at this level. Without ``down``
    and ``right`` (:attr:`single`), the input is upsampled x2, projected, and gated only.
    """

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4, single: bool = False,
                 unused_merge: bool = False):
        super().__init__()
        self.single = single
        self.project = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        if not single or unused_merge:
            # the single form's merge conv is built but never used by the public code
            self.merge = nn.Conv2d(3 * out_channels, out_channels, 3, padding=1, bias=False)
        self.gate = _se_gate(out_channels, reduction)

    def forward(self, left: torch.Tensor, down: torch.Tensor | None = None,
                right: torch.Tensor | None = None) -> torch.Tensor:
        if self.single:
            h, w = left.shape[-2:]
            merged = F.relu(self.project(_resize(left, (2 * h, 2 * w))))
        else:
            down = F.relu(self.project(_resize(down, left.shape[-2:])))
            merged = F.relu(self.merge(torch.cat([left, down, right], 1)))
        weights = self.gate(merged.mean((2, 3)))
        return merged * weights[:, :, None, None]


class LSPM(SegmentationNet):
    """The LSPM + FAMCA network as the authors' code builds it (``model_VGG``).

    Parameters
    ----------
    in_chans : int
        Input channels (VGG-16's first convolution). The public code reads RGB copies of the
        grey frames (3). Trainable parameters: 31,582,017 at ``in_chans=1`` (our default) and
        31,583,169 at 3, both the published 31.58 M.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (BasicIRSTD's NUAA-SIRST statistics by default; the public
        code feeds [0, 1] pixels unnormalised).
    sizes : list of int
        LSPM grid sizes ``S`` (``[1, 2, 3, 6]``).
    reduction : int
        Squeeze-and-excitation reduction of the FAMCA gates (4).
    published_extras : bool
        Build the 3x3 merge convolution (442,368 parameters) the public code's last, single-input
        FAMCA constructs but never calls, so that the count is the published one; it gets no
        gradient and does not change the output (``False``: 31,139,649 parameters at
        ``in_chans=1``).

    Notes
    -----
    The public code initialises VGG-16 from ImageNet weights (torchvision's ``vgg16``):
    :meth:`load_vgg16_weights` copies them in (nothing is downloaded here; a new model is
    randomly initialised). It trains with ``BCEWithLogitsLoss`` (``irstd.losses``'s ``bce``), Adam
    lr 1e-4 decayed x0.1 every 50 epochs, gradient clipping 0.5, batch 4, 352 x 352 resized frames.

    Departures from the public code, all deliberate: resizes go to the target's height and
    width (the public code passes one ``size`` integer, i.e. assumes square frames); the
    adaptive average pool is computed as matrix products (:func:`adaptive_avg_pool`, same
    values) so the model exports to ONNX with dynamic sizes. The pixel-similarity matrix is
    ``HW/256 x HW/256``: memory grows with the square of the frame area (a 512 x 512 frame: 1024
    tokens per map).
    """

    stride = 16

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, sizes: Sequence[int] = (1, 2, 3, 6),
                 reduction: int = 4, published_extras: bool = True):
        super().__init__(in_chans, input_mean, input_std)
        sizes = [int(s) for s in sizes]
        reduction = int(reduction)
        if not sizes or min(sizes) < 1:
            raise InputError(f"sizes: expected positive integers, got {sizes}")
        if reduction < 1 or 128 // reduction < 1:
            raise InputError(f"reduction: must be between 1 and 128, got {reduction}")
        self.record_args(sizes=sizes, reduction=reduction, published_extras=bool(published_extras))

        stages, width = [], in_chans
        for i, block in enumerate(VGG16):
            layers: list[nn.Module] = [nn.AvgPool2d(2)] if i else []
            for out in block:
                layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(inplace=True)]
                width = out
            stages.append(nn.Sequential(*layers))
        self.encoder = nn.ModuleList(stages)
        self.lspm = LocalSimilarityPyramid(512, sizes)
        self.infos = nn.ModuleList(
            nn.Sequential(nn.Conv2d(512, w, 3, padding=1, bias=False), nn.ReLU(inplace=True)) for w in (512, 256, 128)
        )
        self.aggregations = nn.ModuleList([
            FAMCA(512, 512, reduction), FAMCA(512, 256, reduction), FAMCA(256, 128, reduction),
            FAMCA(128, 128, reduction, single=True, unused_merge=bool(published_extras)),
        ])
        self.score = nn.Conv2d(128, 1, 1)

    def load_vgg16_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy torchvision's ImageNet VGG-16 convolutions (``features.*`` keys, or the 26
        conv tensors in order) into the encoder. For ``in_chans`` other than 3 the first
        convolution's RGB filters are summed (1 channel) or cycled (timm's rule)."""
        tensors = [v for k, v in state_dict.items() if not k.startswith("classifier")]
        convs = [m for m in self.encoder.modules() if isinstance(m, nn.Conv2d)]
        if len(tensors) != 2 * len(convs):
            raise InputError(f"state_dict: expected {2 * len(convs)} VGG-16 conv tensors, got {len(tensors)}")
        with torch.no_grad():
            for i, conv in enumerate(convs):
                weight, bias = tensors[2 * i], tensors[2 * i + 1]
                if i == 0 and weight.shape[1] != conv.in_channels:
                    if conv.in_channels == 1:
                        weight = weight.sum(1, keepdim=True)
                    else:
                        repeat = -(-conv.in_channels // weight.shape[1])
                        weight = weight.repeat(1, repeat, 1, 1)[:, :conv.in_channels] * (3 / conv.in_channels)
                if weight.shape != conv.weight.shape or bias.shape != conv.bias.shape:
                    raise InputError(f"state_dict: conv {i} has shape {tuple(weight.shape)}, "
                                     f"expected {tuple(conv.weight.shape)}")
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.normalise(x)
        features = []
        for stage in self.encoder:
            h = stage(h)
            features.append(h)
        c1, c2, c3, c4, c5 = features
        g = self.lspm(c5)
        merged = c5
        for aggregate, info, left in zip(self.aggregations, self.infos, (c4, c3, c2)):
            merged = aggregate(left, merged, info(_resize(g, left.shape[-2:])))
        merged = self.aggregations[3](merged)
        return [_resize(self.score(merged), c1.shape[-2:])]
