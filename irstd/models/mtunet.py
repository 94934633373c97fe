"""MTU-Net: multilevel TransUNet for space-based infrared tiny ship detection.

A residual U-Net whose bottleneck also reads four Vision Transformers (the multilevel ViT
module): each encoder level below the bottom is cut into patches sized so that every level
yields the bottom's ``H/16 x W/16`` token grid, embedded to ``embed_dim`` channels and passed
through one transformer block. The four token maps and the bottom CNN feature are
concatenated and fused by a residual block, and a plain U-Net decoder goes back up.

Data flow (input ``H x W``, multiples of 16; widths for the default
``channels=[16, 32, 64, 128, 256]``, ``embed_dim=64``)::

    x ── normalise ── stage0 ── x0 (H, 16)    ── ViT(patch 16) ──┐
                      stage1 ── x1 (H/2, 32)  ── ViT(patch 8)  ──┤
                      stage2 ── x2 (H/4, 64)  ── ViT(patch 4)  ──┤  4 x (H/16, 64)
                      stage3 ── x3 (H/8, 128) ── ViT(patch 2)  ──┤
                      stage4 ── x4 (H/16, 256) ──────────────────┴─ cat ── fuse ── (H/16, 256)
    y = dec3(cat(x3, up(y)))  (H/8, 128)      y = dec2(cat(x2, up(y)))  (H/4, 64)
    y = dec1(cat(x1, up(y)))  (H/2, 32)       y = dec0(cat(x0, up(y)))  (H, 16)
    logits = 1x1 conv(y)      (H, 1)

Stages are residual blocks (3x3 conv with bias + BN + LeakyReLU, 3x3 conv + BN, 1x1 conv +
BN shortcut when the width changes); each stage after ``stage0`` follows a 2x2 max-pool. ``up``
is a bilinear resize to the skip's size with ``align_corners=True`` (the public code's
``Upsample(scale_factor=2, align_corners=True)``).

References
----------
.. [1] Wu, Li, Luo, Wang, Xiao, Liu, Yang, An, Guo, "MTU-Net: Multilevel TransUNet for
       Space-Based Infrared Tiny Ship Detection", IEEE TGRS 61, 2023 (code:
       https://github.com/TianhaoWu16/Multi-level-TransUNet-for-Space-based-Infrared-Tiny-ship-Detection,
       ``MTU-Net-code/model/MTU_Net.py``, ``vit.py``).
.. [2] Chen et al., "TransUNet: Transformers Make Strong Encoders for Medical Image
       Segmentation", arXiv:2102.04306, 2021.
.. [3] Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (the ViT).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irstd.errors import InputError
from irstd.models.acm import SIRST_MEAN, SIRST_STD, check_lengths
from irstd.models.base import SegmentationNet

__all__ = ["ResBlock", "res_stage", "Attention", "TransformerBlock", "PatchViT", "MTUNet"]

PATCH_LAYOUTS = ("strided", "block")
ATTN_SCALES = ("public", "standard")


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class ResBlock(nn.Module):
    """Residual block: 3x3 conv + BN + LeakyReLU, 3x3 conv + BN, plus the input (through a
    1x1 conv + BN when the width changes), then LeakyReLU. Convolutions carry biases."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.leaky_relu(y + self.shortcut(x))


def res_stage(in_channels: int, out_channels: int, blocks: int = 1) -> nn.Sequential:
    """``blocks`` residual blocks, the first one changing the width."""
    return nn.Sequential(ResBlock(in_channels, out_channels),
                         *(ResBlock(out_channels, out_channels) for _ in range(blocks - 1)))


class Attention(nn.Module):
    """Multi-head self-attention without biases (TransUNet-style ``qkv`` + output projections).

    The ``qkv`` projection's output channels are laid out as ``(head_dim, 3, num_heads)``, the
    public code's ``rearrange('b t (d k h) -> k b h t d')``, so its checkpoints load as they are.
    ``scale="public"`` multiplies the logits by ``head_dim / 2`` as the public code does (its
    ``(d // h) ** 1 / 2`` is ``d / 2`` and multiplies); ``"standard"`` divides by
    ``sqrt(head_dim)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, scale: str = "public"):
        super().__init__()
        if dim % num_heads:
            raise InputError(f"num_heads: {num_heads} does not divide embed_dim {dim}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim / 2 if scale == "public" else head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, c // self.num_heads, 3, self.num_heads).permute(3, 0, 4, 1, 2)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, T, head_dim)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).permute(0, 2, 1, 3).reshape(b, t, c))


class TransformerBlock(nn.Module):
    """Post-norm transformer encoder block (the original "Attention is all you need" order)::

        x = norm1(x + dropout(attn(x)));  x = norm2(x + mlp(x))

    ``mlp`` is Linear, GELU, dropout, Linear, dropout.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float = 0.1, scale: str = "public"):
        super().__init__()
        self.attn = Attention(dim, num_heads, scale)
        self.drop = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.mlp(x))


class PatchViT(nn.Module):
    """Patches of a feature map -> linear embedding + class token + position embedding ->
    transformer blocks -> the patch tokens as a ``(B, embed_dim, H / patch, W / patch)`` map.

    Parameters
    ----------
    in_channels, embed_dim : int
    patch : int
        Patch side.
    grid : int
        Side of the learned position-embedding grid (the public code's ``img_dim / patch``,
        64: a 1024 x 1024 frame at the bottom's stride 16); other token grids resize it
        bilinearly (the class token's embedding is kept).
    layout : {"strided", "block"}
        How pixels are gathered into tokens. ``"strided"`` reproduces the public code's
        ``rearrange('b c (p x) (q y) -> b (x y) (p q c)')``: token ``(i, j)`` takes the pixels
        ``(i + a H/patch, j + b W/patch)``, a dilated grid spanning the whole map, not a
        contiguous patch. ``"block"`` takes the contiguous ``patch x patch`` block at
        ``(i, j)`` (the ViT/paper patching). Both order a token's features as ``(p, q, c)``.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch: int, grid: int = 64, num_heads: int = 1,
                 mlp_dim: int = 4096, depth: int = 1, dropout: float = 0.1, layout: str = "strided",
                 scale: str = "public"):
        super().__init__()
        self.patch, self.grid, self.layout = patch, grid, layout
        self.projection = nn.Linear(in_channels * patch * patch, embed_dim)
        self.pos_embed = nn.Parameter(torch.rand(grid * grid + 1, embed_dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(TransformerBlock(embed_dim, num_heads, mlp_dim, dropout, scale)
                                      for _ in range(depth)))

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        b, c, h, w = x.shape
        p = self.patch
        gh, gw = h // p, w // p
        if self.layout == "strided":
            x = x.reshape(b, c, p, gh, p, gw).permute(0, 3, 5, 2, 4, 1)
        else:
            x = x.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, gh * gw, p * p * c), gh, gw

    def pos_embed_for(self, gh: int, gw: int) -> torch.Tensor:
        """Position embeddings ``(1 + gh * gw, embed_dim)`` of a ``gh x gw`` token grid: the class
        token's, then the learned grid resized bilinearly (an exact copy at ``grid x grid``)."""
        grid_pos = self.pos_embed[1:].t().reshape(1, -1, self.grid, self.grid)
        grid_pos = F.interpolate(grid_pos, size=(gh, gw), mode="bilinear", align_corners=False)
        return torch.cat([self.pos_embed[:1], grid_pos.flatten(2)[0].t()], 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, gh, gw = self._tokens(x)
        tokens = self.projection(tokens)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.drop(torch.cat([cls, tokens], 1) + self.pos_embed_for(gh, gw))
        tokens = self.blocks(tokens)[:, 1:]
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)


class MTUNet(SegmentationNet):
    """MTU-Net as the authors' code builds it (``res_UNet``, ``channel_size='three'``,
    ``backbone='resnet_18'``).

    Parameters
    ----------
    in_chans : int
        Input channels (the first residual block). The published count, 12.75 M (the CgriNet
        paper's table), is matched at either width: 12,750,134 trainable parameters at
        ``in_chans=1`` (our default) and 12,750,610 at 3 (the public code's default
        ``--in_channels 3``, a grey frame repeated).
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (BasicIRSTD's NUAA-SIRST statistics by default; the public
        code normalises NUDT-SIRST-Sea with 0.1583 / 0.0885).
    channels : list of int
        Widths of the five encoder levels ``[16, 32, 64, 128, 256]``.
    blocks : list of int
        Residual blocks of the four pooled encoder stages (``[2, 2, 2, 2]``, "resnet_18");
        ``stage0`` and the decoder stages have one block each.
    embed_dim : int
        Token width of the four ViTs (64, the public ``nb_filter[2]``).
    mlp_dim, num_heads, depth : int
        Transformer MLP width (4096), heads (1) and blocks per ViT (1).
    pos_grid : int
        Side of the learned position-embedding grid (64, i.e. trained for 1024 x 1024 frames).
    patch_layout : {"strided", "block"}
        Token gathering, see :class:`PatchViT` (``"strided"``: the public code's).
    attn_scale : {"public", "standard"}
        Attention logit scaling, see :class:`Attention` (``"public"``: the public code's).
    published_extras : bool
        Also build the three modules the public code constructs but never calls, so that the
        parameter count is the published one: a residual block ``in_chans -> in_chans``
        (``conv0_0_0``), a fifth ViT on the 256-wide bottom map (``vit1``, 3,479,552
        parameters) and an FCN head (``head``). They get no gradient and do not change the
        output; ``False`` gives the same network with 9,269,969 parameters (``in_chans=1``).

    Notes
    -----
    The network has no deep supervision: :meth:`forward_all` returns one map. Departures from
    the public code, all deliberate:

    * Any frame size that is a multiple of :attr:`stride` runs: the public code hard-codes the
      64 x 64 token grid of a 1024 x 1024 input (``rearrange(..., x=64, y=64)``). The token grid
      here is ``H/16 x W/16`` and the 64 x 64 position embedding is resized bilinearly to it
      (identical at 1024 x 1024; the public ``ViT`` itself would slice the first tokens'
      embeddings instead, which has no 2-D meaning for other widths).
    * The two public quirks are kept by default and can be switched off: tokens gathered on a
      dilated grid (``patch_layout="strided"``) and attention logits multiplied by
      ``head_dim / 2`` (``attn_scale="public"``). The paper describes standard ViT patches and
      scaled dot-product attention (``"block"``, ``"standard"``).
    * The final map is returned as logits (the public code also returns logits; its loss
      applies the sigmoid).

    Initialisation follows the public code: Xavier-normal convolution weights, the position
    embedding uniform on [0, 1), the class token standard normal. The authors train with their
    FocalIoU loss (``model/loss.py``: sigmoid squashed to ``0.5 + 0.999 (p - 0.5)``, focal BCE with
    ``alpha=0.75, gamma=2`` raised to the power ``0.5 + IoU/2`` and scaled by ``1 - IoU``, ``IoU``
    the soft IoU of the whole batch, summed over pixels), Adagrad lr 0.05, cosine to 1e-5,
    batch 1, 1024 x 1024 frames; ``irstd.losses`` has no equivalent.
    """

    stride = 16

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, channels: Sequence[int] = (16, 32, 64, 128, 256),
                 blocks: Sequence[int] = (2, 2, 2, 2), embed_dim: int = 64, mlp_dim: int = 4096, num_heads: int = 1,
                 depth: int = 1, pos_grid: int = 64, patch_layout: str = "strided", attn_scale: str = "public",
                 published_extras: bool = True):
        super().__init__(in_chans, input_mean, input_std)
        channels = check_lengths("channels", channels, 5)
        blocks = check_lengths("blocks", blocks, 4)
        embed_dim, mlp_dim, num_heads, depth, pos_grid = (int(v) for v in (embed_dim, mlp_dim, num_heads, depth,
                                                                           pos_grid))
        if min(embed_dim, mlp_dim, num_heads, depth, pos_grid) < 1:
            raise InputError("embed_dim, mlp_dim, num_heads, depth, pos_grid: must be positive integers")
        if embed_dim % num_heads or channels[4] % num_heads:
            raise InputError(f"num_heads: {num_heads} must divide embed_dim {embed_dim} and channels[4] {channels[4]}")
        if patch_layout not in PATCH_LAYOUTS:
            raise InputError(f"patch_layout: expected one of {PATCH_LAYOUTS}, got {patch_layout!r}")
        if attn_scale not in ATTN_SCALES:
            raise InputError(f"attn_scale: expected one of {ATTN_SCALES}, got {attn_scale!r}")
        self.record_args(channels=channels, blocks=blocks, embed_dim=embed_dim, mlp_dim=mlp_dim,
                         num_heads=num_heads, depth=depth, pos_grid=pos_grid, patch_layout=patch_layout,
                         attn_scale=attn_scale, published_extras=bool(published_extras))

        self.encoder = nn.ModuleList([res_stage(in_chans, channels[0])] + [
            res_stage(channels[i], channels[i + 1], blocks[i]) for i in range(4)
        ])

        def vit(width: int, dim: int, patch: int) -> PatchViT:
            return PatchViT(width, dim, patch, pos_grid, num_heads, mlp_dim, depth, layout=patch_layout,
                            scale=attn_scale)

        # one ViT per level above the bottom, finest first: patches 16, 8, 4, 2
        self.vits = nn.ModuleList(vit(channels[i], embed_dim, 2 ** (4 - i)) for i in range(4))
        self.fuse = res_stage(4 * embed_dim + channels[4], channels[4])
        self.decoder = nn.ModuleList(res_stage(channels[i] + channels[i + 1], channels[i]) for i in range(4))
        self.final = nn.Conv2d(channels[0], 1, 1)
        if published_extras:
            self.unused = nn.ModuleDict(dict(
                conv0_0_0=res_stage(in_chans, in_chans),
                vit1=vit(channels[4], channels[4], 1),
                head=nn.Sequential(
                    nn.Conv2d(channels[0], channels[0] // 4, 3, padding=1, bias=False),
                    nn.BatchNorm2d(channels[0] // 4), nn.ReLU(inplace=True), nn.Dropout(0.1),
                    nn.Conv2d(channels[0] // 4, 1, 1),
                ),
            ))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.normalise(x)
        features = []
        for i, stage in enumerate(self.encoder):
            x = stage(F.max_pool2d(x, 2) if i else x)
            features.append(x)
        # the public concatenation order: patch 2 (level 3), 4, 8, 16 (level 0), then the bottom
        tokens = [vit(f) for vit, f in zip(self.vits, features)][::-1]
        y = self.fuse(torch.cat(tokens + [features[4]], 1))
        for i in range(3, -1, -1):
            y = self.decoder[i](torch.cat([features[i], _up(y, features[i])], 1))
        return [self.final(y)]

