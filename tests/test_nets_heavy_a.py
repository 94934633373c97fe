"""DNANet, ISNet, ISTDU-Net: published parameter counts, the forward contract, rebuilding from
``model_args``, one training step, and ISNet's deformable convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from irstd.losses import create_loss
from irstd.models.acm import SIRST_MEAN, SIRST_STD
from irstd.models.base import SegmentationNet
from irstd.models.dnanet import DNANet
from irstd.models.isnet import DeformConv2d, GatedConv, ISNet
from irstd.models.istdunet import ISTDUNet

#: BasicIRSTD's published counts (thop on the nets built for 1 input channel).
PUBLISHED = {DNANet: 4_696_568, ISNet: 965_746, ISTDUNet: 2_751_873}
#: Our trainable counts: ISNet's adds the weights thop cannot see (see ISNet's docstring).
TRAINABLE = {DNANet: 4_696_568, ISNet: 985_810, ISTDUNet: 2_751_873}
#: The training loss each net is used with (its own, BasicIRSTD's choice).
LOSS = {DNANet: "iou", ISNet: "isnet", ISTDUNet: "iou"}
OUTPUTS = {DNANet: 4, ISNet: 2, ISTDUNet: 1}
NETS = list(PUBLISHED)


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def thop_visible(model: torch.nn.Module) -> int:
    """Parameters held by standard layers, the ones thop counts (ISNet's deformable and gated
    convolution kernels are held by custom modules)."""
    hidden = {id(m.weight) for m in model.modules() if isinstance(m, DeformConv2d)}
    hidden |= {id(m.bias) for m in model.modules() if isinstance(m, DeformConv2d)}
    hidden |= {id(m.conv.weight) for m in model.modules() if isinstance(m, GatedConv)}
    return sum(p.numel() for p in model.parameters() if id(p) not in hidden)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These nets run many small ops: on a shared, loaded CPU one thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=NETS, ids=lambda cls: cls.__name__)
def net(request) -> SegmentationNet:
    torch.manual_seed(0)
    return request.param()


def test_parameter_count_matches_basicirstd(net):
    assert net.in_chans == 1
    assert trainable(net) == TRAINABLE[type(net)]
    assert thop_visible(net) == PUBLISHED[type(net)]


def test_eval_forward_gives_finite_logits_at_input_size(net):
    assert 64 % net.stride == 0 and 96 % net.stride == 0
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 96))
    assert out.shape == (1, 1, 64, 96)
    assert torch.isfinite(out).all()


def test_train_forward_gives_the_side_outputs(net):
    net.train()
    with torch.no_grad():
        outputs = net(torch.rand(2, 1, 32, 48))
    assert isinstance(outputs, list) and len(outputs) == OUTPUTS[type(net)]
    assert all(o.shape == (2, 1, 32, 48) for o in outputs)


def test_rebuild_from_model_args(net):
    assert net.model_args["input_mean"] == [pytest.approx(SIRST_MEAN)]
    assert net.model_args["input_std"] == [pytest.approx(SIRST_STD)]
    assert all(not isinstance(v, tuple) for v in net.model_args.values())
    again = type(net)(**net.model_args)
    assert again.model_args == net.model_args
    ours, theirs = net.state_dict(), again.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_one_sgd_step(net):
    torch.manual_seed(1)
    net.train()
    x = torch.rand(2, 1, 16, 32)
    y = torch.zeros(2, 1, 16, 32)
    y[:, :, 5:8, 20:22] = 1
    loss_fn = create_loss(LOSS[type(net)])
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    loss = loss_fn(net(x), y)
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def test_three_channel_input():
    net = DNANet(in_chans=3).eval()
    assert trainable(net) == 4_696_568 + 320  # the first conv and shortcut of conv0_0
    with torch.no_grad():
        assert net(torch.rand(1, 3, 16, 32)).shape == (1, 1, 16, 32)


def test_deform_conv_without_offsets_is_a_convolution():
    torch.manual_seed(0)
    dcn = DeformConv2d(4, 5, (3, 1))
    x = torch.randn(2, 4, 6, 7)
    expected = F.conv2d(x, dcn.weight, dcn.bias, padding=(1, 0))
    assert torch.allclose(dcn(x), expected, atol=1e-5)


def test_deform_conv_matches_torchvision():
    ops = pytest.importorskip("torchvision.ops")
    torch.manual_seed(0)
    dcn = DeformConv2d(4, 3, (1, 3))
    torch.nn.init.normal_(dcn.conv_offset.weight, 0, 0.5)
    torch.nn.init.normal_(dcn.conv_offset.bias, 0, 1.0)
    x = torch.randn(2, 4, 5, 6)
    expected = ops.deform_conv2d(x, dcn.conv_offset(x), dcn.weight, dcn.bias, padding=(0, 1))
    assert torch.allclose(dcn(x), expected, atol=1e-5)
