"""CgriNet: context-guided reverse attention network for infrared small target detection.

One architecture file in the timm style: the small building blocks first (channel reduction, CGM,
MAB, axial attention, RAM), then the :class:`CgriNet` assembly, then a registry of named variants
whose entries are argument sets.

Data flow (input ``H x W``, multiples of 32; ``C`` = ``channels``, 32 in the paper model)::

    x ── normalise ── Res2Net-50 v1b ─┬─ Res2 (H/8)  ── reduce ── r2 (C) ─┐
                                      ├─ Res3 (H/16) ── reduce ── r3 (C) ─┼─ MAB ── S_g (H/8)
                                      └─ Res4 (H/32) ── reduce ── r4 (C) ─┘
    S_4 = RAM(CGM(r4), S_g)   (H/32)
    S_3 = RAM(CGM(r3), S_4)   (H/16)
    S_2 = RAM(CGM(r2), S_3)   (H/8, the final map)

Levels are numbered by the Res2Net stage they read: per-level switches are tuples ordered
``(Res2, Res3, Res4)``, i.e. finest first. Every side output is resized bilinearly to ``H x W``.
The resolved specification (shapes, parameter budget, choices) is ``docs/cgrinet.md``.

References
----------
.. [1] CgriNet: context-guided reverse attention network with multiscale aggregation for infrared
       small target detection (the paper; 26.12M parameters counted with the backbone's classifier).
.. [2] Fan et al., "PraNet: Parallel Reverse Attention Network for Polyp Segmentation", MICCAI 2020.
.. [3] Wu, Su, Huang, "Cascaded Partial Decoder for Fast and Accurate Salient Object Detection",
       CVPR 2019 (the partial decoder used as MAB).
.. [4] Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation",
       IEEE TIP 2021 (the context-guided block used as CGM).
.. [5] Wang et al., "Axial-DeepLab: Stand-Alone Axial-Attention for Panoptic Segmentation",
       ECCV 2020 (axial self-attention).
.. [6] Gao et al., "Res2Net: A New Multi-Scale Backbone Architecture", IEEE TPAMI 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.base import SegmentationNet

__all__ = [
    "ChannelReduction",
    "ContextGuidedModule",
    "MultiscaleAggregation",
    "AxialAttention",
    "ReverseAttentionModule",
    "CgriNet",
]

#: Default input normalisation: the ImageNet statistics of a grey image on [0, 1]
#: (mean and std of 0.299 R + 0.587 G + 0.114 B are close to 0.449 / 0.226).
DEFAULT_MEAN = 0.449
DEFAULT_STD = 0.226
#: The encoder's total stride: inputs must be multiples of this (``predict`` pads).
STRIDE = 32


def _resize(x: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize to an explicit target size (export-friendly: no scale factors, and the
    size is passed through untouched so symbolic sizes stay symbolic under ``torch.export``)."""
    return F.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=align_corners)


class ConvBN(nn.Sequential):
    """``k x k`` convolution without bias followed by batch normalisation (no activation)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class ChannelReduction(nn.Sequential):
    """1x1 convolution (no bias) + BN + PReLU mapping an encoder stage to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(out_channels),
        )


class ContextGuidedModule(nn.Module):
    """CGM: CGNet's context-guided block with a dilation-3 surrounding branch.

    ``y = PReLU(BN(conv1x1(x)))`` to ``mid_channels``; local feature = depthwise 3x3 of ``y``,
    surrounding context = depthwise 3x3 with ``dilation``; joint feature = PReLU(BN(concat));
    global context = GAP -> FC -> ReLU -> FC -> sigmoid re-weighting of the joint feature's
    channels; output = ``x`` + re-weighted joint feature (1x1 projection back to ``channels`` first
    when ``2 * mid_channels != channels``).

    Parameters
    ----------
    channels : int
        Input and output width.
    mid_channels : int, optional
        Width of the local / surrounding branches; ``channels // 2`` by default (CGNet).
        ``1`` is the literal "one channel" reading of the paper.
    dilation : int
        Dilation of the surrounding-context branch (3 in CgriNet).
    reduction : int
        Squeeze ratio of the global-context MLP (hidden width ``max(1, 2 * mid // reduction)``).
    """

    def __init__(self, channels: int, mid_channels: int | None = None, dilation: int = 3, reduction: int = 8):
        super().__init__()
        mid = channels // 2 if mid_channels is None else int(mid_channels)
        joint = 2 * mid
        hidden = max(1, joint // reduction)
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid, eps=1e-3), nn.PReLU(mid)
        )
        self.local = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.surround = nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, groups=mid, bias=False)
        self.joint = nn.Sequential(nn.BatchNorm2d(joint, eps=1e-3), nn.PReLU(joint))
        self.glob = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(joint, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, joint, 1),
            nn.Sigmoid(),
        )
        self.project = nn.Conv2d(joint, channels, 1, bias=False) if joint != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        j = self.joint(torch.cat([self.local(y), self.surround(y)], dim=1))
        return x + self.project(j * self.glob(j))


class MultiscaleAggregation(nn.Module):
    """MAB: the partial decoder of CPD/PraNet on three reduced levels, one logit map at Res2 size.

    Convolutions are conv + BN without activation, as the reference code behaves; resizes are
    bilinear with ``align_corners=True`` (reference) and explicit target sizes.
    """

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.up1 = ConvBN(c, c)
        self.up2 = ConvBN(c, c)
        self.up3 = ConvBN(c, c)
        self.up4 = ConvBN(c, c)
        self.up5 = ConvBN(2 * c, 2 * c)
        self.cat2 = ConvBN(2 * c, 2 * c)
        self.cat3 = ConvBN(3 * c, 3 * c)
        self.conv4 = ConvBN(3 * c, 3 * c)
        self.out = nn.Conv2d(3 * c, 1, 1)

    def forward(self, r4: torch.Tensor, r3: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        s3, s2 = r3.shape[-2:], r2.shape[-2:]
        r4_at3 = _resize(r4, s3, align_corners=True)
        r4_at2 = _resize(r4_at3, s2, align_corners=True)
        a3 = self.up1(r4_at3) * r3
        a2 = self.up2(r4_at2) * self.up3(_resize(r3, s2, align_corners=True)) * r2
        b3 = self.cat2(torch.cat([a3, self.up4(r4_at3)], dim=1))
        b2 = self.cat3(torch.cat([a2, self.up5(_resize(b3, s2, align_corners=True))], dim=1))
        return self.out(self.conv4(b2))


class SumAggregation(nn.Module):
    """Stand-in for MAB in the ablation ``use_mab=False`` (our own, not from the paper).

    Global map = 1x1 conv (C -> 1, with bias) of ``r2 + up(r3) + up(r4)`` (bilinear).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.out = nn.Conv2d(channels, 1, 1)

    def forward(self, r4: torch.Tensor, r3: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        size = r2.shape[-2:]
        return self.out(r2 + _resize(r3, size) + _resize(r4, size))


class AxialAttention(nn.Module):
    """Single-head axial self-attention along one spatial axis, with a residual.

    For ``axis="height"`` every column is an independent sequence of ``H`` tokens of dimension
    ``C``; for ``axis="width"`` every row is a sequence of ``W`` tokens. ``q, k`` are 1x1
    projections to ``C // 8``, ``v`` a 1x1 projection to ``C``; attention is
    ``softmax(q k^T / sqrt(C // 8))`` along the axis; output = ``gamma * attended + x`` with a
    learnable scalar ``gamma`` initialised to 0 (the module starts as the identity).

    Unlike the CaraNet/UACANet idiom (a ``view`` that does not select columns), the tensor is
    permuted so that the height mode really attends within each column.
    """

    def __init__(self, channels: int, axis: str = "height"):
        super().__init__()
        if axis not in ("height", "width"):
            raise ValueError(f"axis: expected 'height' or 'width', got {axis!r}")
        if channels % 8:
            raise ValueError(f"channels: must be a multiple of 8 for axial attention, got {channels}")
        self.axis = axis
        key_channels = channels // 8
        self.scale = 1.0 / math.sqrt(key_channels)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _rows(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention within each row (along the last axis) of (B, *, H, W) tensors."""
        b, c, h, w = v.shape
        d = q.shape[1]
        q = q.permute(0, 2, 3, 1).reshape(b * h, w, d)
        k = k.permute(0, 2, 3, 1).reshape(b * h, w, d)
        v = v.permute(0, 2, 3, 1).reshape(b * h, w, c)
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.scale, dim=-1)
        return torch.bmm(attn, v).reshape(b, h, w, c).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        if self.axis == "height":  # a module attribute, not data: fixed at construction
            out = self._rows(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3)).transpose(2, 3)
        else:
            out = self._rows(q, k, v)
        return self.gamma * out + x


class ReverseAttentionModule(nn.Module):
    """RAM: axial attention on the CGM feature, gated by reverse attention, plus the coarser map.

    ``p`` = coarser logits resized to this level; ``r = 1 - sigmoid(p)``;
    ``a = AxialW(AxialH(f))`` (or ``f`` when ``use_axial=False``: plain PraNet-style reverse
    attention); output logits ``= conv3x3(a * r) + p``.
    """

    def __init__(self, channels: int, use_axial: bool = True):
        super().__init__()
        if use_axial:
            self.attention = nn.Sequential(AxialAttention(channels, "height"), AxialAttention(channels, "width"))
        else:
            self.attention = nn.Identity()
        self.out = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, f: torch.Tensor, coarser: torch.Tensor) -> torch.Tensor:
        p = _resize(coarser, f.shape[-2:])
        reverse = 1.0 - torch.sigmoid(p)
        return self.out(self.attention(f) * reverse) + p


def _three(value: bool | Sequence[bool], name: str) -> list[bool]:
    values = [bool(value)] * 3 if isinstance(value, bool) else [bool(v) for v in value]
    if len(values) != 3:
        raise InputError(f"{name}: expected one flag or three (Res2, Res3, Res4), got {len(values)}")
    return values


class RefinementHead(nn.Module):
    """Full-resolution refinement of the final logits (ours, not in the paper).

    ``S_r = S + conv3x3(ReLU(BN(conv3x3(ReLU(BN(conv3x3([x_n, S])))))))`` with ``x_n`` the
    normalised input and ``S`` the final logits resized to the input size: three 3x3
    convolutions at the input resolution that move the boundaries of a stride-4/8 map onto the
    image's edges (a 7x7 receptive field). The last convolution starts at zero, so a model
    extended with the head computes exactly what it computed before until it is trained.

    Parameters
    ----------
    in_chans : int
        Channels of the normalised input.
    width : int
        Hidden width (16).
    """

    def __init__(self, in_chans: int = 1, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            ConvBN(in_chans + 1, width),
            nn.ReLU(inplace=True),
            ConvBN(width, width),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(width, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.out(self.body(torch.cat([x, logits], dim=1)))


#: ``pretrained_backbone`` value that asks timm for its ImageNet weights of the encoder.
IMAGENET = "imagenet"


def imagenet_encoder(encoder: str, encoder_args: dict[str, Any], levels: Sequence[int], in_chans: int) -> nn.Module:
    """A timm ``features_only`` encoder with timm's ImageNet weights, found the way timm finds them.

    timm reads the weights of its default pretrained tag (``res2net50d.in1k``) from the Hugging
    Face cache (``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``); when they are not there
    and the machine is online (not ``HF_HUB_OFFLINE=1``, the hub's host resolves), it downloads
    them into it. With ``in_chans=1`` timm sums the RGB filters of the first convolution.

    Raises
    ------
    InputError
        A narrowed encoder (``encoder_args``: the ImageNet weights fit the full width only), or
        weights neither cached nor downloadable (one line, at once when the host does not resolve).
    """
    import logging
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if encoder_args:
        raise InputError(
            f"--pretrained-backbone {IMAGENET}: timm's ImageNet weights fit the full {encoder} encoder, "
            f"not one narrowed by {encoder_args} (use the model cgrinet, or pass a weight file)"
        )

    def build(offline: bool) -> nn.Module:
        hub_log = logging.getLogger("huggingface_hub")
        saved = constants.HF_HUB_OFFLINE, hub_log.level
        constants.HF_HUB_OFFLINE = offline or saved[0]
        hub_log.setLevel(logging.ERROR)  # its retry warnings would break the one-line error
        try:
            return timm.create_model(encoder, pretrained=True, features_only=True, out_indices=tuple(levels), in_chans=in_chans)
        finally:
            constants.HF_HUB_OFFLINE, _ = saved
            hub_log.setLevel(saved[1])

    def fail(reason: str) -> InputError:
        return InputError(f"--pretrained-backbone {IMAGENET}: timm found no {encoder} ImageNet weights in its cache "
                          f"({constants.HF_HUB_CACHE}) and {reason}")

    try:
        return build(offline=True)  # the cache first: no network round trip when the file is there
    except Exception:  # noqa: BLE001 - hub and file errors all mean "not cached"
        pass
    if constants.HF_HUB_OFFLINE:
        raise fail("HF_HUB_OFFLINE forbids a download") from None
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        raise fail(f"cannot download them ({host} does not resolve: {exc.strerror or exc})") from None
    try:
        return build(offline=False)
    except Exception as exc:  # noqa: BLE001 - network and hub errors all mean "no weights"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise fail(f"could not download them ({type(exc).__name__}: {first[:160]})") from None


class CgriNet(SegmentationNet):
    """CgriNet with a timm Res2Net encoder.

    Parameters
    ----------
    encoder : str
        timm architecture of the encoder (``res2net50d`` = Res2Net-50 v1b 26w x 4s).
    encoder_args : dict, optional
        Keyword overrides for timm's builder (``layers``, ``channels``, ``stem_width`` ...); this
        is how the compact variants narrow the encoder.
    in_chans : int
        Input channels (1: grey infrared frames).
    channels : int
        Width ``C`` of the reduced features, MAB, CGM and RAM (a multiple of 8).
    input_mean, input_std : float or sequence of float
        Input normalisation ``(x - mean) / std`` applied inside :meth:`forward` on [0, 1] input;
        stored as buffers and saved with the weights.
    use_cgm : bool or 3 bools
        Per level (Res2, Res3, Res4): CGM on (True) or identity (False).
    use_axial : bool or 3 bools
        Per level: axial attention in the RAM (True) or plain reverse attention (False).
    use_mab : bool
        MAB partial decoder (True) or the sum-and-1x1 stand-in (False, ours).
    cgm_mid_channels : int, optional
        CGM branch width; ``channels // 2`` by default, 1 for the literal paper reading.
    cgm_dilation, cgm_reduction : int
        CGM surrounding-context dilation (3) and global-context squeeze ratio (8).
    extra_fine_stage : bool
        Add a fourth level on Res1 (stride 4): reduction, CGM and axial RAM refining ``S_2`` into
        ``S_1``, which becomes the final map (output stride 4 instead of 8). Not in the paper;
        off by default (spec 2.7, 2.10).
    refine_head : bool
        Add a :class:`RefinementHead` at the input resolution after the last level; its output
        ``S_r`` becomes the final map. Not in the paper; off by default.
    pretrained_backbone : str or path, optional
        ImageNet weights for the encoder: a local file (timm ``res2net50d`` key names,
        safetensors or ``.pth``; nothing is downloaded), or ``"imagenet"``: timm's own weights
        for ``encoder`` (:func:`imagenet_encoder`). Not recorded in :attr:`model_args`.

    Notes
    -----
    ``forward`` takes ``(B, in_chans, H, W)`` in [0, 1] with ``H, W`` multiples of 32 and returns
    logits: in training mode the list ``[S_g, S_4, S_3, S_2]`` (coarse to final; ``S_1`` appended
    with ``extra_fine_stage``, then ``S_r`` with ``refine_head``) of ``(B, 1, H, W)`` maps, in eval mode the final map only. :meth:`forward_all` always
    returns the list.
    """

    def __init__(
        self,
        encoder: str = "res2net50d",
        encoder_args: dict[str, Any] | None = None,
        in_chans: int = 1,
        channels: int = 32,
        input_mean: float | Sequence[float] = DEFAULT_MEAN,
        input_std: float | Sequence[float] = DEFAULT_STD,
        use_cgm: bool | Sequence[bool] = True,
        use_axial: bool | Sequence[bool] = True,
        use_mab: bool = True,
        cgm_mid_channels: int | None = None,
        cgm_dilation: int = 3,
        cgm_reduction: int = 8,
        extra_fine_stage: bool = False,
        refine_head: bool = False,
        pretrained_backbone: str | None = None,
    ):
        super().__init__(in_chans, input_mean, input_std)
        in_chans = self.in_chans
        channels = int(channels)
        if channels < 8 or channels % 8:
            raise InputError(f"channels: must be a positive multiple of 8, got {channels}")
        encoder_args = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(encoder_args or {}).items()}
        use_cgm = _three(use_cgm, "use_cgm")
        use_axial = _three(use_axial, "use_axial")
        self.record_args(
            encoder=encoder,
            encoder_args=encoder_args,
            channels=channels,
            use_cgm=use_cgm,
            use_axial=use_axial,
            use_mab=bool(use_mab),
            cgm_mid_channels=None if cgm_mid_channels is None else int(cgm_mid_channels),
            cgm_dilation=int(cgm_dilation),
            cgm_reduction=int(cgm_reduction),
        )
        if extra_fine_stage:
            # Recorded only when on, so weights saved before the option existed keep their metadata.
            self.record_args(extra_fine_stage=True)
        if refine_head:
            self.record_args(refine_head=True)

        levels = (1, 2, 3, 4) if extra_fine_stage else (2, 3, 4)
        timm_args = {k: tuple(v) if isinstance(v, list) else v for k, v in encoder_args.items()}
        if pretrained_backbone == IMAGENET:
            self.encoder = imagenet_encoder(encoder, encoder_args, levels, in_chans)
        else:
            try:
                self.encoder = timm.create_model(
                    encoder, pretrained=False, features_only=True, out_indices=levels, in_chans=in_chans, **timm_args
                )
            except (RuntimeError, TypeError, ValueError) as exc:
                raise InputError(f"encoder: cannot build {encoder!r} with {encoder_args}: {exc}") from None
        widths = self.encoder.feature_info.channels()
        if pretrained_backbone is not None and pretrained_backbone != IMAGENET:
            from irstd.models.backbone import load_backbone_weights

            load_backbone_weights(self.encoder, pretrained_backbone)

        self.reduce = nn.ModuleList([ChannelReduction(w, channels) for w in widths[-3:]])
        self.cgm = nn.ModuleList(
            [
                ContextGuidedModule(channels, cgm_mid_channels, cgm_dilation, cgm_reduction) if on else nn.Identity()
                for on in use_cgm
            ]
        )
        self.mab = MultiscaleAggregation(channels) if use_mab else SumAggregation(channels)
        self.ram = nn.ModuleList([ReverseAttentionModule(channels, on) for on in use_axial])
        if extra_fine_stage:
            self.fine_reduce = ChannelReduction(widths[0], channels)
            self.fine_cgm = ContextGuidedModule(channels, cgm_mid_channels, cgm_dilation, cgm_reduction)
            self.fine_ram = ReverseAttentionModule(channels, True)
        self.refine = RefinementHead(in_chans) if refine_head else None

    @property
    def num_features(self) -> int:
        """Channels of the deepest encoder stage (what an ImageNet classifier would read)."""
        return self.encoder.feature_info.channels()[-1]

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All side outputs ``[S_g, S_4, S_3, S_2(, S_1)(, S_r)]`` as logits at the input size."""
        size = x.shape[-2:]
        x = self.normalise(x)
        *f1, f2, f3, f4 = self.encoder(x)
        r2, r3, r4 = self.reduce[0](f2), self.reduce[1](f3), self.reduce[2](f4)
        s_g = self.mab(r4, r3, r2)
        s_4 = self.ram[2](self.cgm[2](r4), s_g)
        s_3 = self.ram[1](self.cgm[1](r3), s_4)
        sides = [s_g, s_4, s_3, self.ram[0](self.cgm[0](r2), s_3)]
        if f1:
            sides.append(self.fine_ram(self.fine_cgm(self.fine_reduce(f1[0])), sides[-1]))
        sides = [_resize(s, size) for s in sides]
        if self.refine is not None:
            sides.append(self.refine(x, sides[-1]))
        return sides
