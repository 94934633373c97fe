"""The training step (:mod:`irstd.train.steps`), distillation (:mod:`irstd.train.distill`), the GPU data path,
``--ema`` from scratch, ``--pretrained-backbone imagenet`` and the resume-state interval.

Everything runs on the CPU; the real CUDA-graph capture is checked by the test marked for CUDA
(skipped without a GPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import irstd.train.loop as train_loop
from irstd import methods
from irstd.cli.main import app
from irstd.errors import InputError
from irstd.losses import create_loss
from irstd.models import create_model, load_model, save_weights
from irstd.train import load_state, train
from irstd.train.distill import Teachers, load_teachers
from irstd.train.steps import EagerStep, GraphStep, make_step, prepare_optimizer, step_loss, train_step
from test_train import config, dataset  # noqa: F401 - the tiny dataset fixture and the run config of test_train


def _batches(count, batch=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(count):
        n = batch if k < count - 1 else batch - 1  # the last one shorter, as an epoch's last batch
        x = torch.rand(n, 1, size, size, generator=g)
        y = (torch.rand(n, 1, size, size, generator=g) > 0.97).float()
        out.append((x, y))
    return out


def _model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = create_model("cgrinet_test").train()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)


def _teacher_file(tmp_path: Path, seed: int, name: str, **meta) -> Path:
    torch.manual_seed(seed)
    return save_weights(create_model("cgrinet_test"), tmp_path / name, {"input_range": "auto", **meta})


# --- the step ------------------------------------------------------------------------------------


def test_graph_step_bookkeeping_matches_the_plain_step():
    """Static inputs, tensor learning rate, warm-up, capture point and a short last batch: the same
    losses and weights as ``train_step`` (the recording itself needs CUDA; see the CUDA test)."""
    batches = _batches(7)
    plain, plain_opt = _model_and_optimizer()
    fast, fast_opt = _model_and_optimizer()
    loss_fn = create_loss("unite")
    prepare_optimizer(fast_opt, False, torch.device("cpu"))
    step = GraphStep(fast, loss_fn, fast_opt, warmup=2, capture=False)
    for k, (x, y) in enumerate(batches):
        lr = 1e-3 * (1 - k / 10)
        expected = train_step(plain, loss_fn, plain_opt, x, y, lr)
        got = float(step(x, y, lr))
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6), k
    a, b = plain.state_dict(), fast.state_dict()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-5
    grads = [(p.grad, q.grad) for p, q in zip(plain.parameters(), fast.parameters()) if p.grad is not None]
    assert grads and max(float((g - h).abs().max()) for g, h in grads) < 1e-5


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled")  # no GPU here: the scaler disables itself
def test_make_step_falls_back_to_eager_where_it_cannot_capture(monkeypatch):
    model, optimizer = _model_and_optimizer()
    loss_fn = create_loss("unite")
    step, note = make_step("auto", model, loss_fn, optimizer, torch.device("cpu"))
    assert isinstance(step, EagerStep) and note is None
    step, note = make_step("graph", model, loss_fn, optimizer, torch.device("cpu"))
    assert isinstance(step, EagerStep) and "need a CUDA device" in note
    step, note = make_step("graph", model, loss_fn, optimizer, torch.device("cuda"), world=2)
    assert isinstance(step, EagerStep) and "DDP" in note
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    step, note = make_step("graph", model, loss_fn, optimizer, torch.device("cuda"), amp=True)
    assert isinstance(step, EagerStep) and "float16" in note
    with pytest.raises(ValueError, match="step mode"):
        make_step("fast", model, loss_fn, optimizer, torch.device("cpu"))


def test_graph_step_trains_on_eagerly_when_the_capture_fails(monkeypatch):
    model, optimizer = _model_and_optimizer()
    prepare_optimizer(optimizer, False, torch.device("cpu"))
    warnings = []
    step = GraphStep(model, create_loss("unite"), optimizer, warmup=1, capture=False, warn=warnings.append)

    def refuse():
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(step, "_capture", refuse)
    before = [p.detach().clone() for p in model.parameters()]
    for x, y in _batches(3):
        assert np.isfinite(float(step(x, y, 1e-3)))
    assert len(warnings) == 1 and "running it eagerly" in warnings[0] and step.failed
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_optimizer_state_moves_between_step_kinds():
    model, optimizer = _model_and_optimizer()
    x, y = _batches(1)[0]
    EagerStep(model, create_loss("unite"), optimizer)(x, y, 1e-3)
    prepare_optimizer(optimizer, False, torch.device("cpu"))
    group = optimizer.param_groups[0]
    assert group["capturable"] is False and isinstance(group["lr"], float)
    state = next(iter(optimizer.state.values()))
    assert state["step"].device.type == "cpu" and float(state["step"]) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CUDA-graph capture)")
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_graph_step_equals_the_eager_step(amp, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    device = torch.device("cuda")
    batches = [(x.to(device), y.to(device)) for x, y in _batches(8)]
    loss_fn = create_loss("unite")
    runs = []
    for mode in ("eager", "graph"):
        model, optimizer = _model_and_optimizer()
        model.to(device)
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        step, note = make_step(mode, model, loss_fn, optimizer, device, amp=amp)
        assert note is None and step.kind == mode
        losses = [float(step(x, y, 1e-3)) for x, y in batches]
        runs.append((model.state_dict(), losses))
    (a, la), (b, lb) = runs
    assert step.graph is not None and not step.failed  # the last 4 full batches were replays
    tol = 2e-2 if amp else 1e-4
    np.testing.assert_allclose(lb, la, rtol=tol, atol=tol)
    keys = [k for k in a if a[k].is_floating_point()]

    def norm(x, y):
        return sum(float((x[k].float() - y[k].float()).norm()) for k in keys)

    # Adam's first steps are about lr in size whatever the gradient: compare the two runs' distance
    # with how far they moved, not element by element.
    assert norm(a, b) < (0.1 if amp else 0.01) * norm(a, start)


# --- distillation ------------------------------------------------------------------------------


def test_teachers_average_their_probabilities(tmp_path):
    files = [_teacher_file(tmp_path, s, f"t{s}.safetensors") for s in (1, 2)]
    teachers = load_teachers(files, "auto", torch.device("cpu"))
    x = torch.rand(2, 1, 32, 32)
    by_hand = sum(torch.sigmoid(load_model(f)(x)) for f in files) / 2
    assert torch.allclose(teachers(x), by_hand, atol=1e-6)
    teachers.train()
    assert not any(m.training for m in teachers.modules())  # stay in eval mode
    assert not any(p.requires_grad for p in teachers.parameters())


def test_distillation_adds_the_weighted_loss_against_the_teachers(tmp_path):
    teachers = load_teachers([_teacher_file(tmp_path, 1, "t.safetensors")], "auto", torch.device("cpu"))
    model, _ = _model_and_optimizer()
    loss_fn = create_loss("unite")
    x, y = _batches(1)[0]
    soft = teachers(x)
    assert 0 < float(soft.min()) and float(soft.max()) < 1
    outputs = model(x)
    expected = loss_fn(outputs, y) + 0.5 * loss_fn(outputs, soft)
    assert torch.allclose(step_loss(model, loss_fn, x, y, teachers, 0.5), expected)
    assert torch.allclose(step_loss(model, loss_fn, x, y, teachers, 0.0), loss_fn(outputs, y))


def test_train_with_a_teacher_records_it_and_resume_checks_it(dataset, tmp_path):
    teacher = _teacher_file(tmp_path, 1, "t.safetensors")
    plain = train(config(dataset, tmp_path / "plain", epochs=1))
    taught = train(config(dataset, tmp_path / "taught", epochs=1, teachers=[str(teacher)], distill_weight=2.0))
    a, b = load_state(plain.run_dir / "state.safetensors"), load_state(taught.run_dir / "state.safetensors")
    assert b["teachers_sha256"] and b["config"]["teachers"] == [str(teacher.resolve())]
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # the soft targets count
    meta = load_model(taught.run_dir / "last.safetensors").weights_metadata
    assert json.loads(meta["config"])["distill_weight"] == 2.0
    save_weights(create_model("cgrinet_test"), teacher, {"input_range": "auto"})  # the file changes
    with pytest.raises(InputError, match="--teacher"):
        train(config(dataset, tmp_path / "taught", epochs=2, teachers=[str(teacher)], distill_weight=2.0, resume=True))


def test_teacher_with_another_input_range_is_refused(dataset, tmp_path):
    teacher = _teacher_file(tmp_path, 1, "t.safetensors", input_range="minmax")
    with pytest.raises(InputError, match="input range 'minmax'"):
        train(config(dataset, tmp_path / "run", epochs=1, teachers=[str(teacher)]))


def test_cli_teacher_packaged_and_bad_teacher(dataset, tmp_path):
    runner = CliRunner()
    base = ["train", "--dataset", str(dataset), "--model", "cgrinet_test", "--epochs", "1", "--batch-size", "4", "--crop", "32"]
    result = runner.invoke(app, [*base, "--teacher", "packaged", "--distill-weight", "0.5", "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "--teacher", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and "missing.safetensors" in result.output
    result = runner.invoke(app, [*base, "--distill-weight", "-1", "--out", str(tmp_path / "neg")])
    assert result.exit_code == 2 and "--distill-weight" in result.output
    if not (methods.WEIGHTS_DIR / methods.PAPER_WEIGHTS_NAME).is_file():
        result = runner.invoke(app, [*base, "--teacher", "paper", "--out", str(tmp_path / "paper")])
        assert result.exit_code == 2 and "--teacher paper: this installation holds no paper weights" in result.output


# --- the GPU data path, EMA from scratch, state interval --------------------------------------------


def test_training_on_device_crops_equals_training_on_the_dataloader(dataset, tmp_path, monkeypatch):
    loader = train(config(dataset, tmp_path / "loader"))
    monkeypatch.setattr(train_loop, "_crops_on_device", lambda device: True)
    device = train(config(dataset, tmp_path / "device"))
    a, b = load_state(loader.run_dir / "state.safetensors"), load_state(device.run_dir / "state.safetensors")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_ema_from_scratch_follows_the_first_steps(dataset, tmp_path):
    torch.manual_seed(3)
    initial = create_model("cgrinet_test").state_dict()
    result = train(config(dataset, tmp_path / "run", epochs=3, lr=3e-3, ema=0.999))
    state = load_state(result.run_dir / "state.safetensors")
    raw, ema = state["model"], state["ema"]
    keys = [k for k in raw if raw[k].is_floating_point() and not k.startswith("input_")]

    def distance(a, b):
        return sum(float((a[k].float() - b[k].float()).norm()) for k in keys)

    # A constant 0.999 over these 6 steps would keep ~99% of the random start; the warm-up follows
    # the training instead.
    assert distance(ema, raw) < 0.5 * distance(ema, initial)
    one = train(config(dataset, tmp_path / "one", epochs=1, ema=0.999, batch_size=8, val_fraction=0.0))
    first = load_state(one.run_dir / "state.safetensors")  # one step: the average is the model
    assert first["iteration"] == 1
    assert all(torch.equal(first["model"][k], first["ema"][k]) for k in first["model"])


def test_state_is_written_by_time_and_at_the_end(dataset, tmp_path):
    seen = []

    def watch(event):
        if event.kind == "epoch":
            path = Path(event.run_dir) / "state.json"
            seen.append(json.loads(path.read_text())["epochs_done"] if path.is_file() else None)

    train(config(dataset, tmp_path / "hour", epochs=3, state_interval=3600), progress=watch)
    assert seen == [None, None, 3]
    seen.clear()
    train(config(dataset, tmp_path / "every", epochs=3, state_interval=0), progress=watch)
    assert seen == [1, 2, 3]


# --- ImageNet encoder weights the way timm finds them --------------------------------------------


def _hub_cache(root: Path) -> dict[str, torch.Tensor]:
    """A Hugging Face cache holding timm's res2net50d.in1k weights (random values, real layout)."""
    import timm

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model("res2net50d").state_dict().items()}
    repo = root / "models--timm--res2net50d.in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(state, str(repo / "snapshots" / commit / "model.safetensors"))
    return state


def test_imagenet_backbone_comes_from_timms_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    state = _hub_cache(tmp_path / "hub")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = create_model("cgrinet", pretrained_backbone="imagenet")
    encoder = model.encoder.state_dict()
    assert torch.equal(encoder["layer3.2.conv1.weight"], state["layer3.2.conv1.weight"])
    assert torch.allclose(encoder["conv1.0.weight"], state["conv1.0.weight"].sum(1, keepdim=True))  # grey input
    with pytest.raises(InputError, match="narrowed"):
        create_model("cgrinet_test", pretrained_backbone="imagenet")


def test_cli_imagenet_backbone_missing_is_one_line_exit_2(dataset, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = CliRunner().invoke(app, ["train", "--dataset", str(dataset), "--model", "cgrinet", "--epochs", "1",
                                      "--pretrained-backbone", "imagenet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "timm found no res2net50d ImageNet weights" in line and str(tmp_path / "empty") in line
    assert not (tmp_path / "run").exists()


def test_teacher_tta_averages_the_views_mapped_back(tmp_path):
    file = _teacher_file(tmp_path, 1, "t.safetensors")
    model = load_model(file)
    x = torch.rand(2, 1, 32, 64)
    views = [x, x.flip(-1), x.flip(-2), x.flip(-2, -1)]
    backs = [lambda p: p, lambda p: p.flip(-1), lambda p: p.flip(-2), lambda p: p.flip(-2, -1)]
    by_hand = sum(back(torch.sigmoid(model(v))) for v, back in zip(views, backs)) / 4
    flip = load_teachers([file], "auto", torch.device("cpu"), tta="flip")
    assert torch.allclose(flip(x), by_hand, atol=1e-6)
    square = torch.rand(2, 1, 32, 32)
    dihedral = load_teachers([file], "auto", torch.device("cpu"), tta="dihedral")(square)
    transposed = load_teachers([file], "auto", torch.device("cpu"), tta="dihedral")(square.transpose(-1, -2))
    assert torch.allclose(dihedral, transposed.transpose(-1, -2), atol=1e-6)  # invariant to the symmetries
    with pytest.raises(InputError, match="--tta"):
        Teachers([model], tta="rotate")


def test_imagenet_backbone_offline_machine_fails_at_once(tmp_path, monkeypatch):
    import socket

    from huggingface_hub import constants

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(InputError, match="does not resolve") as info:
        create_model("cgrinet", pretrained_backbone="imagenet")
    assert "\n" not in str(info.value) and str(tmp_path / "empty") in str(info.value)
    assert constants.HF_HUB_OFFLINE is False  # restored
