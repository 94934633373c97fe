"""ALCNet as BasicIRSTD builds it: a ResNet feature pyramid with asymmetric bi-directional fusion.

Data flow of :class:`ALCNet` (input ``H x W``, multiples of 16; widths for the default
``channels=[8, 16, 32, 64]``, ``layers=[4, 4, 4]``)::

    x ── normalise ── stem (H/4, 16) ── layer1 ── c1 (H/4, 16)
                                        layer2 ── c2 (H/8, 32)
                                        layer3 ── c3 (H/16, 64)
    f2 = AsymBi(deconv2(c3), c2)            (H/8, 32)
    f1 = AsymBi(deconv1(f2), c1)            (H/4, 16)
    logits = bilinear x2 (FCN head(deconv0(f1)))   (H/2, 8 -> H, 1)

The blocks (stem, residual stages, fusion, head) are those of :mod:`irstd.models.acm`.

References
----------
.. [1] Dai, Wu, Zhou, Barnard, "Attentional Local Contrast Networks for Infrared Small Target
       Detection", IEEE TGRS 59(11), 2021 (open-alcnet, MXNet:
       https://github.com/YimianDai/open-alcnet).
.. [2] Ying et al., BasicIRSTD (``model/ACM/model_ALCnet.py``, class ``ASKCResNetFPN``),
       https://github.com/XinyiYing/BasicIRSTD.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from irstd.errors import InputError
from irstd.models.acm import (
    SIRST_MEAN, SIRST_STD, AsymBiFusion, FCNHead, Stem, check_lengths, deconv, make_stage, resize,
)
from irstd.models.base import SegmentationNet

__all__ = ["ALCNet"]


class ALCNet(SegmentationNet):
    """ALCNet (ASKCResNetFPN) exactly as BasicIRSTD builds and counts it.

    Parameters
    ----------
    in_chans : int
        Input channels. BasicIRSTD builds the net for 1 (grey) channel; its published count,
        426,961 parameters, is for ``in_chans=1`` and is matched exactly.
    input_mean, input_std : float or sequence of float
        Input normalisation on [0, 1] (NUAA-SIRST statistics of BasicIRSTD by default).
    layers : list of int
        Basic blocks per encoder stage.
    channels : list of int
        Stem width (also the width after ``deconv0``, read by the head), then the three
        stage widths; ``channels[1]`` must be ``2 * channels[0]``.
    fuse_reduction : int
        Bottleneck ratio ``r`` of the fusion's gating MLPs.

    Notes
    -----
    This is the network BasicIRSTD reports as ALCNet, not the paper's: the paper's
    attentional local contrast (a multiscale cyclic-shift local-contrast module with bottom-up
    local attention, open-alcnet's ``BottomUpLocal`` fusion) is absent; BasicIRSTD uses ACM's
    AsymBi fusion and transposed-convolution upsampling (open-alcnet resizes bilinearly) with
    one more 2x upsampling (``deconv0``) before the head. The count must match BasicIRSTD's, so
    its build is followed. Further departures:

    * BasicIRSTD's constructor also builds ``uplayer1``, ``uplayer2`` (92,928 parameters) that
      its forward never uses; thop, which produced the published count, skips them, and so do
      we (they are not built).
    * Its bilinear resizes of the stage outputs to ``H/16``, ``H/8`` are identities at sizes
      that are multiples of :attr:`stride` and are left out; the last one (to the input size)
      is kept.
    * The final sigmoid is left off (logits out); BatchNorm momentum is PyTorch's default 0.1
      everywhere and the stem's input BN is affine, as explained in :class:`irstd.models.acm.ACM`.

    BasicIRSTD trains it with its SoftIoU loss (one ratio over the whole batch), Adam, lr 5e-4.

    References
    ----------
    .. [1] Dai, Wu, Zhou, Barnard, "Attentional Local Contrast Networks for Infrared Small
           Target Detection", IEEE TGRS 2021.
    .. [2] BasicIRSTD ``model/ACM/model_ALCnet.py`` (https://github.com/XinyiYing/BasicIRSTD).
    """

    stride = 16

    def __init__(self, in_chans: int = 1, input_mean: float | Sequence[float] = SIRST_MEAN,
                 input_std: float | Sequence[float] = SIRST_STD, layers: Sequence[int] = (4, 4, 4),
                 channels: Sequence[int] = (8, 16, 32, 64), fuse_reduction: int = 4):
        super().__init__(in_chans, input_mean, input_std)
        layers = check_lengths("layers", layers, 3)
        channels = check_lengths("channels", channels, 4)
        if channels[1] != 2 * channels[0]:
            raise InputError(f"channels: channels[1] must be 2 * channels[0], got {channels}")
        self.record_args(layers=layers, channels=channels, fuse_reduction=int(fuse_reduction))
        c0, c1, c2, c3 = channels
        self.stem = Stem(self.in_chans, c0)
        self.layer1 = make_stage(c1, c1, layers[0])
        self.layer2 = make_stage(c1, c2, layers[1], stride=2)
        self.layer3 = make_stage(c2, c3, layers[2], stride=2)
        self.deconv2 = deconv(c3, c2)
        self.fuse23 = AsymBiFusion(c2, fuse_reduction)
        self.deconv1 = deconv(c2, c1)
        self.fuse12 = AsymBiFusion(c1, fuse_reduction)
        self.deconv0 = deconv(c1, c0)
        self.head = FCNHead(c0)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[-2:]
        c1 = self.layer1(self.stem(self.normalise(x)))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        out = self.fuse23(self.deconv2(c3), c2)
        out = self.fuse12(self.deconv1(out), c1)
        return [resize(self.head(self.deconv0(out)), size)]
