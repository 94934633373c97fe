"""CgriNet: shapes, parameter budget, axial attention, ablations, predict, weight files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from irstd.errors import InputError
from irstd.losses import create_loss
from irstd.models import (
    CgriNet,
    count_parameters,
    create_model,
    list_models,
    load_model,
    predict,
    predict_batch,
    read_weights_metadata,
    save_weights,
)
from irstd.models.cgrinet import (
    AxialAttention,
    ChannelReduction,
    ContextGuidedModule,
    MultiscaleAggregation,
    ReverseAttentionModule,
)
from irstd.models.inference import pad_to_multiple

TEST_ENCODER = dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------------------------
# registry and shapes


def test_registry_names():
    assert list_models("cgrinet") == ["cgrinet", "cgrinet_small", "cgrinet_tiny", "cgrinet_test"]
    with pytest.raises(InputError, match="unknown model 'nope'"):
        create_model("nope")


@pytest.mark.parametrize("name", list_models("cgrinet"))
def test_every_variant_trains_predicts_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.rand(2, 1, 64, 96)
    outputs = model.train()(x)
    assert isinstance(outputs, list) and all(o.shape == (2, 1, 64, 96) for o in outputs)
    sum(o.mean() for o in outputs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        final = model(x)
    assert final.shape == (2, 1, 64, 96) and torch.isfinite(final).all()
    again = load_model(save_weights(model, tmp_path / f"{name}.safetensors"))
    with torch.no_grad():
        assert torch.equal(again(x), final)
    assert again.model_name == name


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("size", [(64, 64), (96, 96), (128, 128), (64, 96)])
def test_shapes_train_and_eval(in_chans, size):
    model = create_model("cgrinet_test", in_chans=in_chans)
    x = torch.rand(2, in_chans, *size)
    outputs = model(x)
    assert isinstance(outputs, list) and len(outputs) == 4
    assert all(o.shape == (2, 1, *size) for o in outputs)
    model.eval()
    with torch.no_grad():
        final = model(x)
        assert isinstance(final, torch.Tensor) and final.shape == (2, 1, *size)
        assert torch.equal(final, model.forward_all(x)[-1])


def test_extra_fine_stage_adds_stride4_output(tmp_path):
    torch.manual_seed(0)
    plain = create_model("cgrinet_test")
    fine = create_model("cgrinet_test", extra_fine_stage=True)
    assert "extra_fine_stage" not in plain.model_args and fine.model_args["extra_fine_stage"] is True
    x = torch.rand(2, 1, 64, 96)
    outs = fine(x)
    assert len(outs) == 5 and all(o.shape == (2, 1, 64, 96) for o in outs)
    assert fine.fine_reduce[0].in_channels == fine.encoder.feature_info.channels()[0]
    path = tmp_path / "fine.safetensors"
    save_weights(fine, path)
    back = load_model(path)
    fine.eval()
    back.eval()
    with torch.inference_mode():
        assert torch.equal(back(x), fine(x))
        assert torch.equal(fine(x), fine.forward_all(x)[-1])



def test_refine_head_starts_as_identity_and_extends_saved_weights(tmp_path):
    torch.manual_seed(0)
    base = create_model("cgrinet_test", extra_fine_stage=True)
    path = tmp_path / "base.safetensors"
    save_weights(base, path)
    extended = load_model(path, overrides={"refine_head": True})
    assert extended.model_args["refine_head"] is True and "refine_head" not in base.model_args
    assert extended.new_tensors and all(k.startswith("refine.") for k in extended.new_tensors)
    x = torch.rand(2, 1, 64, 96)
    base.eval()
    with torch.no_grad():
        outs = extended.forward_all(x)
        assert len(outs) == 6 and all(o.shape == (2, 1, 64, 96) for o in outs)
        # Zero-initialised last convolution: the head changes nothing until it is trained ...
        assert torch.equal(outs[-1], outs[-2]) and torch.equal(extended(x), base(x))
        # ... and once its output layer is non-zero it refines the final map.
        torch.nn.init.normal_(extended.refine.out.weight, std=0.1)
        assert not torch.equal(extended(x), base(x))
    back_path = tmp_path / "ext.safetensors"
    save_weights(extended, back_path)
    back = load_model(back_path)
    with torch.no_grad():
        assert torch.equal(back(x), extended(x))
    with pytest.raises(InputError, match="weights do not match"):
        load_model(path, overrides={"use_mab": False})  # a removed module is not an extension

def test_overrides_merge_encoder_args():
    model = create_model("cgrinet_test", encoder_args=dict(stem_width=16), channels=16)
    assert model.model_args["encoder_args"] == {**TEST_ENCODER, "stem_width": 16}
    assert model.model_args["channels"] == 16
    assert model.model_name == "cgrinet_test"


def test_bad_construction_arguments():
    with pytest.raises(InputError, match="channels"):
        create_model("cgrinet_test", channels=12)
    with pytest.raises(InputError, match="input_std"):
        create_model("cgrinet_test", input_std=0.0)
    with pytest.raises(InputError, match="input_mean"):
        create_model("cgrinet_test", in_chans=3, input_mean=[0.1, 0.2])
    with pytest.raises(InputError, match="use_cgm"):
        create_model("cgrinet_test", use_cgm=[True, False])


# ----------------------------------------------------------------------------------------------
# parameter budget (docs/cgrinet.md, "Variants")


def test_component_parameter_counts():
    assert sum(n_params(ChannelReduction(c, 32)) for c in (512, 1024, 2048)) == 114_976
    assert n_params(MultiscaleAggregation(32)) == 277_473
    assert n_params(ContextGuidedModule(32)) == 1_236
    assert n_params(AxialAttention(32)) == 1_321
    assert n_params(ReverseAttentionModule(32)) == 2_931


def test_paper_model_parameter_count():
    # The paper's 26.12M counts the unused ImageNet classifier (2,049,000) at in_chans=3.
    rgb = create_model("cgrinet", in_chans=3)
    assert count_parameters(rgb) == 24_074_302
    assert count_parameters(rgb, include_classifier=True) == 26_123_302
    # The default grey model: the stem's first conv (3x3, 32 filters) loses 2 x 32 x 9 = 576.
    grey = create_model("cgrinet")
    assert count_parameters(grey) == 24_074_302 - 576
    assert n_params(grey.encoder) == 23_669_352 - 576


def test_compact_variants_are_smaller():
    counts = [count_parameters(create_model(n)) for n in ("cgrinet_small", "cgrinet_tiny", "cgrinet_test")]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] < 2_000_000 and counts[-1] < 200_000


# ----------------------------------------------------------------------------------------------
# axial attention and reverse attention


@pytest.mark.parametrize("axis", ["height", "width"])
def test_axial_attention_is_identity_at_init(axis):
    att = AxialAttention(16, axis)
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(att(x), x)


def test_axial_locality():
    x = torch.randn(1, 16, 6, 7)
    height, width = AxialAttention(16, "height"), AxialAttention(16, "width")
    with torch.no_grad():
        height.gamma.fill_(1.0)
        width.gamma.fill_(1.0)
        # change one column: after height attention only that column changes (all its rows do)
        x_col = x.clone()
        x_col[..., 3] += torch.randn(1, 16, 6)
        diff = (height(x_col) - height(x)).abs().amax(dim=(0, 1))
        assert (diff[:, 3] > 1e-4).all()
        assert diff[:, [0, 1, 2, 4, 5, 6]].max() == 0
        # change one pixel: height attention spreads it over its column only
        x_pix = x.clone()
        x_pix[..., 2, 3] += 5.0
        diff = (height(x_pix) - height(x)).abs().amax(dim=(0, 1))
        assert (diff[:, 3] > 1e-4).all() and diff[:, [0, 1, 2, 4, 5, 6]].max() == 0
        # change one row: after width attention only that row changes
        x_row = x.clone()
        x_row[..., 2, :] += torch.randn(1, 16, 7)
        diff = (width(x_row) - width(x)).abs().amax(dim=(0, 1))
        assert (diff[2, :] > 1e-4).all()
        assert diff[[0, 1, 3, 4, 5], :].max() == 0


def test_axial_height_differs_from_width_on_square_maps():
    # The CaraNet idiom (view instead of permute) makes both modes equal for H == W; ours are not.
    att_h, att_w = AxialAttention(16, "height"), AxialAttention(16, "width")
    att_w.load_state_dict(att_h.state_dict())
    with torch.no_grad():
        att_h.gamma.fill_(1.0)
        att_w.gamma.fill_(1.0)
        x = torch.randn(1, 16, 6, 6)
        assert not torch.allclose(att_h(x), att_w(x))


def test_reverse_attention_erases_found_regions():
    ram = ReverseAttentionModule(16).eval()
    f = torch.randn(1, 16, 8, 8)
    coarser = torch.full((1, 1, 4, 4), 50.0)  # everything already found: 1 - sigmoid = 0
    out = ram(f, coarser)
    assert torch.allclose(out, 50.0 + ram.out.bias.detach().view(1, 1, 1, 1), atol=1e-4)


# ----------------------------------------------------------------------------------------------
# ablation switches (docs/cgrinet.md, "Ablation switches")


def test_ablation_cgm_per_level():
    full = create_model("cgrinet_test")
    for level in range(3):
        flags = [True, True, True]
        flags[level] = False
        ablated = create_model("cgrinet_test", use_cgm=flags)
        assert isinstance(ablated.cgm[level], torch.nn.Identity)
        assert count_parameters(full) - count_parameters(ablated) == n_params(full.cgm[level]) > 0
        names = {n for n, _ in full.named_parameters()} - {n for n, _ in ablated.named_parameters()}
        assert names and all(n.startswith(f"cgm.{level}.") for n in names)
        assert len(ablated(torch.rand(2, 1, 64, 64))) == 4


def test_ablation_axial_per_level():
    full = create_model("cgrinet_test")
    ablated = create_model("cgrinet_test", use_axial=[True, False, True])
    removed = {n for n, _ in full.named_parameters()} - {n for n, _ in ablated.named_parameters()}
    assert removed and all(n.startswith("ram.1.attention.") for n in removed)
    assert count_parameters(full) - count_parameters(ablated) == 2 * n_params(AxialAttention(8))
    assert n_params(ablated.ram[1]) == n_params(ablated.ram[1].out)  # plain reverse attention + conv


def test_ablation_mab():
    full = create_model("cgrinet_test")
    ablated = create_model("cgrinet_test", use_mab=False)
    c = full.model_args["channels"]
    assert count_parameters(full) - count_parameters(ablated) == n_params(full.mab) - (c + 1)
    assert all(o.shape == (2, 1, 64, 64) for o in ablated(torch.rand(2, 1, 64, 64)))


# ----------------------------------------------------------------------------------------------
# training signal


def _synthetic_batch(n=4, size=64):
    g = torch.Generator().manual_seed(1)
    x = 0.3 + 0.05 * torch.rand(n, 1, size, size, generator=g)
    y = torch.zeros(n, 1, size, size)
    for i in range(n):
        r, c = torch.randint(4, size - 4, (2,), generator=g).tolist()
        y[i, 0, r - 1 : r + 2, c - 1 : c + 2] = 1
        x[i, 0, r - 1 : r + 2, c - 1 : c + 2] += 0.5
    return x, y


def test_every_parameter_receives_a_gradient():
    model = create_model("cgrinet_test")
    with torch.no_grad():
        # Zero-initialised gates block some gradients at init, by design: the axial gamma (q/k)
        # and timm's zero_init_last (last BN of each Res2Net block at 0). Open them.
        for m in model.modules():
            if isinstance(m, AxialAttention):
                m.gamma.fill_(0.5)
            if isinstance(m, torch.nn.BatchNorm2d) and not m.weight.any():
                m.weight.fill_(1.0)
            # At C = 8 the CGM's global-context MLP has one hidden ReLU unit, which can start dead
            # for a whole batch; a positive bias keeps it alive for this check.
            if isinstance(m, ContextGuidedModule):
                m.glob[1].bias.fill_(1.0)
    x, y = _synthetic_batch(2)
    create_loss("unite")(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name.endswith("key.bias"):
            # softmax(q . (k + b)) does not depend on b (a constant per query): the key bias is
            # kept only because the paper's parameter budget counts it; its gradient is zero.
            assert p.grad.abs().max() < 1e-5, name
        else:
            assert p.grad.abs().sum() > 0, name


def test_loss_falls_on_a_tiny_batch():
    model = create_model("cgrinet_test")
    loss_fn = create_loss("unite")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = _synthetic_batch(4)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


# ----------------------------------------------------------------------------------------------
# predict


def test_predict_odd_size_pads_and_crops():
    model = create_model("cgrinet_test")
    image = np.random.default_rng(0).random((37, 53), dtype=np.float32)
    probs = predict(model, image)
    assert probs.shape == (37, 53) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    assert model.training  # mode restored
    # same as running the model on the mean-padded 64x64 input and cropping
    model.eval()
    padded = torch.full((1, 1, 64, 64), model.input_mean.item())
    padded[0, 0, :37, :53] = torch.from_numpy(image)
    with torch.no_grad():
        expected = torch.sigmoid(model(padded))[0, 0, :37, :53].numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_pad_fills_with_the_mean():
    x = torch.rand(1, 3, 10, 40)
    mean = torch.tensor([0.1, 0.2, 0.3])
    out = pad_to_multiple(x, mean)
    assert out.shape == (1, 3, 32, 64)
    assert torch.equal(out[..., :10, :40], x)
    assert torch.equal(out[0, :, 20, 50], mean)


def test_predict_batch_and_grey_to_rgb():
    model = create_model("cgrinet_test", in_chans=3)
    x = torch.rand(2, 45, 70)
    probs = predict_batch(model, x)
    assert probs.shape == (2, 1, 45, 70)
    single = predict(model, x[1].numpy(), device="cpu")
    np.testing.assert_allclose(probs[1, 0].numpy(), single, atol=1e-5)


def test_predict_rejects_bad_images():
    model = create_model("cgrinet_test")
    with pytest.raises(InputError, match="2-D"):
        predict(model, np.zeros((2, 32, 32), np.float32))
    with pytest.raises(InputError, match="float"):
        predict(model, np.zeros((32, 32), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        predict(model, np.full((32, 32), np.nan, np.float32))


# ----------------------------------------------------------------------------------------------
# weight files


def test_save_load_round_trip(tmp_path):
    model = create_model("cgrinet_test", input_mean=0.3, input_std=0.1, use_cgm=[True, False, True])
    model(torch.rand(2, 1, 64, 64))  # move the BN running statistics away from their init
    model.eval()
    path = save_weights(model, tmp_path / "m.safetensors", metadata={"epoch": 7, "dataset": "SIRST"})
    assert not list(tmp_path.glob("*.tmp"))
    loaded = load_model(path)
    assert loaded.model_name == "cgrinet_test" and not loaded.training
    assert loaded.model_args == model.model_args
    assert torch.equal(loaded.input_mean, model.input_mean)
    meta = read_weights_metadata(path)
    assert meta["epoch"] == "7" and meta["dataset"] == "SIRST" and meta["model"] == "cgrinet_test"
    assert json.loads(meta["model_args"])["use_cgm"] == [True, False, True]
    x = torch.rand(1, 1, 96, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.safetensors: no such file"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file")
    with pytest.raises(InputError, match="junk.safetensors: not a safetensors file"):
        load_model(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(InputError, match="foreign.safetensors: not an irstd model file"):
        load_model(foreign)
    # metadata of one architecture, tensors of another
    small = create_model("cgrinet_test")
    wide = create_model("cgrinet_test", channels=16)
    path = tmp_path / "mismatch.safetensors"
    save_weights(wide, path)
    meta = read_weights_metadata(path)
    tensors = {k: v.contiguous() for k, v in small.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(InputError, match="mismatch.safetensors: weights do not match"):
        load_model(path)


def test_save_weights_rejects_reserved_metadata(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_weights(create_model("cgrinet_test"), tmp_path / "m.safetensors", metadata={"model": "x"})


# ----------------------------------------------------------------------------------------------
# pretrained backbone from a local file


@pytest.fixture
def imagenet_like(tmp_path):
    """A timm res2net50d (narrow, cgrinet_test widths) classifier state dict at 3 channels."""
    net = timm.create_model("res2net50d", pretrained=False, in_chans=3, **TEST_ENCODER)
    state = {k: v.clone().contiguous() for k, v in net.state_dict().items()}
    st, pth = tmp_path / "r2n.safetensors", tmp_path / "r2n.pth"
    save_file(state, str(st))
    torch.save({"state_dict": state}, str(pth))
    return state, st, pth


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("which", ["safetensors", "pth"])
def test_pretrained_backbone_loads_and_sums_rgb(imagenet_like, which):
    state, st, pth = imagenet_like
    model = create_model("cgrinet_test", pretrained_backbone=st if which == "safetensors" else pth)
    enc = model.encoder.state_dict()
    assert torch.allclose(enc["conv1.0.weight"], state["conv1.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(enc["layer4.0.convs.0.weight"], state["layer4.0.convs.0.weight"])
    assert torch.equal(enc["bn1.running_var"], state["bn1.running_var"])
    assert "pretrained_backbone" not in model.model_args
    rgb = create_model("cgrinet_test", in_chans=3, pretrained_backbone=st)
    assert torch.equal(rgb.encoder.state_dict()["conv1.0.weight"], state["conv1.0.weight"])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pretrained_backbone_errors(tmp_path, imagenet_like):
    _, st, _ = imagenet_like
    with pytest.raises(InputError, match="nothere.pth: no such file"):
        create_model("cgrinet_test", pretrained_backbone=tmp_path / "nothere.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match="corrupt.pth: not a readable weights file"):
        create_model("cgrinet_test", pretrained_backbone=corrupt)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    with pytest.raises(InputError, match="bad.safetensors: not a safetensors file"):
        create_model("cgrinet_test", pretrained_backbone=bad_st)
    # keys of another architecture
    other = tmp_path / "other.safetensors"
    save_file({"features.0.weight": torch.zeros(3)}, str(other))
    with pytest.raises(InputError, match="other.safetensors: weights do not match encoder"):
        create_model("cgrinet_test", pretrained_backbone=other)
    # same keys, other widths
    wider = dict(TEST_ENCODER, channels=[16, 32, 64, 128], stem_width=16)
    with pytest.raises(InputError, match="r2n.safetensors: weights do not match encoder.*shapes"):
        create_model("cgrinet_test", encoder_args=wider, pretrained_backbone=st)


# ----------------------------------------------------------------------------------------------
# CLI and export


def test_cli_models_json():
    from irstd.cli.main import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert list(rows) == list_models()
    assert rows["cgrinet"]["params_paper_convention"] == 26_123_302
    assert rows["cgrinet"]["params"] == 24_073_726
    assert rows["cgrinet_test"]["params"] == count_parameters(create_model("cgrinet_test"))


@pytest.mark.slow
def test_torch_export_with_dynamic_sizes():
    model = create_model("cgrinet_test").eval()
    auto = torch.export.Dim.AUTO
    program = torch.export.export(model, (torch.rand(2, 1, 64, 96),), dynamic_shapes={"x": {0: auto, 2: auto, 3: auto}})
    for shape in [(3, 1, 128, 64), (2, 1, 96, 160)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_cgrinet_class_directly_is_saveable(tmp_path):
    model = CgriNet(encoder_args=TEST_ENCODER, channels=8).eval()
    path = save_weights(model, tmp_path / "direct.safetensors")
    loaded = load_model(path)
    assert loaded.model_name is None
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    from irstd.models.weights import main as rewrite

    torch.manual_seed(0)
    model = create_model("cgrinet_tiny").eval()
    full = save_weights(model, tmp_path / "full.safetensors", {"epoch": "3"})
    assert rewrite([str(full), str(tmp_path / "half.safetensors"), "--float16"]) == 0
    half = tmp_path / "half.safetensors"
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded = load_model(half)
    meta = read_weights_metadata(half)
    assert meta["storage_dtype"] == "float16" and meta["epoch"] == "3"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    state, original = loaded.state_dict(), model.state_dict()
    for k, v in original.items():
        if k.startswith("input_") or not v.is_floating_point():
            assert torch.equal(state[k], v), k  # the normalisation stays exact
        else:
            assert torch.equal(state[k], v.half().float()), k
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert float((loaded(x) - model(x)).abs().max()) < 0.05
    with pytest.raises(SystemExit):
        rewrite([str(full), str(half), "--float16"])  # never replaces a file
