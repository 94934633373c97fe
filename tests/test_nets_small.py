"""The small comparison networks ACM, ALCNet, RDIAN: published parameter counts, the forward
contract, rebuilding from ``model_args``, one training step, and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irstd.errors import InputError
from irstd.losses import soft_iou_loss
from irstd.models.acm import ACM, SIRST_MEAN, SIRST_STD
from irstd.models.alcnet import ALCNet
from irstd.models.base import SegmentationNet
from irstd.models.rdian import RDIAN, DirectionAttention

#: BasicIRSTD's published counts (thop on the nets built for 1 input channel).
PUBLISHED = {ACM: 397_823, ALCNet: 426_961, RDIAN: 216_558}
NETS = list(PUBLISHED)


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(params=NETS, ids=lambda cls: cls.__name__)
def net(request) -> SegmentationNet:
    torch.manual_seed(0)
    return request.param()


def test_parameter_count_matches_basicirstd(net):
    assert net.in_chans == 1
    assert trainable(net) == PUBLISHED[type(net)]


def test_eval_forward_gives_finite_logits_at_input_size(net):
    assert isinstance(net, SegmentationNet) and 64 % net.stride == 0 and 96 % net.stride == 0
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 96))
    assert out.shape == (1, 1, 64, 96)
    assert torch.isfinite(out).all()


def test_train_forward_gives_a_list(net):
    outputs = net.train()(torch.rand(2, 1, 64, 96))
    assert isinstance(outputs, list) and len(outputs) == 1
    assert outputs[0].shape == (2, 1, 64, 96)


def test_rebuild_from_model_args(net):
    assert net.model_args["input_mean"] == [pytest.approx(SIRST_MEAN)]
    assert net.model_args["input_std"] == [pytest.approx(SIRST_STD)]
    assert all(not isinstance(v, tuple) for v in net.model_args.values())
    again = type(net)(**net.model_args)
    assert again.model_args == net.model_args
    ours, theirs = net.state_dict(), again.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_one_soft_iou_step_changes_the_weights(net):
    torch.manual_seed(1)
    x = torch.rand(2, 1, 32, 32)
    target = (torch.rand(2, 1, 32, 32) > 0.9).float()
    before = [p.detach().clone() for p in net.parameters()]
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    loss = sum(soft_iou_loss(out, target) for out in net(x))
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    changed = [not torch.equal(b, p) for b, p in zip(before, net.parameters()) if p.requires_grad]
    assert sum(changed) > 0.9 * len(changed)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_torch(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net.eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.rand(1, 1, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}})
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        expected = net(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    assert got.shape == (1, 1, 64, 96)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_three_channel_build_only_changes_the_first_layers():
    for cls in NETS:
        one, three = cls(), cls(in_chans=3)
        extra = trainable(three) - trainable(one)
        # the first 3x3 conv gains 2 input channels (and the stem's input BN 2 x 2 parameters)
        width = one.model_args["channels"][0]
        assert extra == 2 * 9 * width + (4 if cls is not RDIAN else 0)
        assert three.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_direction_attention_marks_a_point_target():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    a = DirectionAttention()(x)
    assert a[0, 0, 4, 4] == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())
    assert a[0, 0, 0, 0] == pytest.approx(0.5)


@pytest.mark.parametrize("cls, args", [
    (ACM, dict(layers=[3, 3])), (ACM, dict(channels=[8, 8, 32, 64])), (ALCNet, dict(layers=[4, 0, 4])),
    (RDIAN, dict(kernel_sizes=[1, 4])), (RDIAN, dict(blocks=[1, 2])), (RDIAN, dict(channels=[16])),
])
def test_bad_arguments_raise_input_error(cls, args):
    with pytest.raises(InputError):
        cls(**args)
