"""Tests of irstd.train and ``irstd train``: tiny model (cgrinet_test), tiny synthetic PNG datasets, CPU."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

import irstd.data  # noqa: F401 - imported here so the forked DDP workers start warm
import irstd.losses  # noqa: F401
import irstd.metrics  # noqa: F401
import irstd.models  # noqa: F401
from irstd.cli.main import app
from irstd.errors import InputError
from irstd.train import (
    TrainConfig,
    augment,
    flatten_state,
    load_state,
    poly_lr,
    CropDataset,
    random_crop,
    random_scale,
    resolve_config,
    train,
    unflatten_state,
)
from irstd.train.data import select_ids

REPO = Path(__file__).resolve().parents[1]


def write_tiny_dataset(root: Path, count: int = 12, size=(48, 64), seed: int = 0) -> Path:
    """images/ + masks/ + splits/{train,test}.txt: dim noisy frames with one bright 3×3 target each."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "splits").mkdir()
    ids = [f"frame{i:03d}" for i in range(count)]
    for image_id in ids:
        image = rng.normal(60, 8, size).clip(0, 255)
        mask = np.zeros(size, bool)
        y, x = rng.integers(4, size[0] - 4), rng.integers(4, size[1] - 4)
        mask[y - 1 : y + 2, x - 1 : x + 2] = True
        image[mask] = 230
        Image.fromarray(image.astype(np.uint8)).save(root / "images" / f"{image_id}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{image_id}.png")
    n_train = count * 2 // 3
    (root / "splits" / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "splits" / "test.txt").write_text("\n".join(ids[n_train:]) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


def config(dataset: Path, out: Path, **kw) -> TrainConfig:
    base = dict(datasets=[str(dataset)], model="cgrinet_test", epochs=2, batch_size=4, crop=32, out=str(out), seed=3)
    base.update(kw)
    return TrainConfig(**base)


def state_model(run: Path) -> dict[str, torch.Tensor]:
    return load_state(run / "state.safetensors")["model"]


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --- pure pieces -------------------------------------------------------------------------------


def test_poly_lr():
    assert poly_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert poly_lr(1e-3, 50, 100) == pytest.approx(1e-3 * 0.5**0.9)
    assert poly_lr(1e-3, 100, 100) == 0.0
    assert poly_lr(1e-3, 150, 100) == 0.0


def test_random_crop_pads_small_images_and_finds_targets():
    rng = np.random.default_rng(0)
    image = np.full((20, 30), 7, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[15, 25] = True
    for _ in range(20):
        crop_image, crop_mask = random_crop(image, mask, 32, rng, positive_prob=1.0)
        assert crop_image.shape == (32, 32) and crop_image.dtype == np.uint8
        assert crop_mask.sum() == 1
    padded, _ = random_crop(image.astype(np.float32), mask, 32, rng, positive_prob=0.0, fill=0.25)
    assert padded[20:, :].min() == padded[:, 30:].max() == 0.25 and padded[:20, :30].max() == 7  # bottom/right
    big = np.zeros((200, 200), np.uint8)
    big_mask = np.zeros((200, 200), bool)
    big_mask[190, 3] = True
    hits = [random_crop(big, big_mask, 32, rng, positive_prob=1.0)[1].any() for _ in range(50)]
    assert all(hits)
    hits = [random_crop(big, big_mask, 32, rng, positive_prob=0.0)[1].any() for _ in range(50)]
    assert sum(hits) < 25  # uniform crops rarely contain the corner target


def test_augment_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(1)
    image = np.arange(32 * 32).reshape(32, 32)
    mask = image % 7 == 0
    for _ in range(10):
        a, m = augment(image, mask, rng)
        assert np.array_equal(a % 7 == 0, m)


def test_optimizer_state_round_trip_without_pickle():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    structure, tensors = flatten_state(opt.state_dict(), "o")
    json.dumps(structure)  # the structure is plain JSON
    restored = unflatten_state(json.loads(json.dumps(structure)), tensors)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(restored)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name, value in a["state"][k].items():
            assert torch.equal(value, b["state"][k][name])


def test_sampler_shards_epochs_and_never_leaves_a_batch_of_one():
    from irstd.train import EpochSampler

    one = EpochSampler(10, seed=1)
    one.set_epoch(1)
    keys = list(one)
    assert sorted(k[0] for k in keys) == list(range(10)) and {k[1] for k in keys} == {1}
    one.set_epoch(1, start=4)
    assert list(one) == keys[4:]  # resumable mid-epoch
    one.set_epoch(2)
    assert [k[0] for k in one] != [k[0] for k in keys]  # reshuffled per epoch
    shards = [EpochSampler(10, seed=1, rank=r, world=2) for r in (0, 1)]
    for s in shards:
        s.set_epoch(1)
    assert sorted(k[0] for s in shards for k in s) == list(range(10))
    odd = EpochSampler(13, seed=1, batch_size=4)  # 4 + 4 + 4 + 1 -> the single one is left out
    odd.set_epoch(1)
    assert len(list(odd)) == 12


def test_random_scale_resizes_image_and_mask_together():
    image = np.zeros((40, 60), np.float32)
    image[10:14, 20:24] = 1.0
    mask = image > 0
    up, up_mask = random_scale(image, mask, 1.5)
    assert up.shape == up_mask.shape == (60, 90) and up.dtype == np.float32 and up_mask.dtype == bool
    assert up_mask.sum() == 36 and up[up_mask].min() > 0.5  # a 4-px square becomes 6 px, bright
    down, down_mask = random_scale(image, mask, 0.5)
    assert down.shape == (20, 30) and down_mask.sum() == 4
    same, same_mask = random_scale(image, mask, 1.0)
    assert same is image and same_mask is mask
    tiny, _ = random_scale(image[:2, :2], mask[:2, :2], 0.1)
    assert tiny.shape == (1, 1)


def test_scale_range_makes_keyed_samples_of_other_sizes():
    images = [np.full((48, 64), 100, np.uint8)]
    masks = [np.zeros((48, 64), bool)]
    masks[0][20:23, 30:33] = True
    plain = CropDataset(images, masks, 128, seed=0, positive_prob=1.0)
    scaled = CropDataset(images, masks, 128, seed=0, positive_prob=1.0, scale_range=[2.0, 2.0])  # whole image
    counts = {int(scaled[(0, 0, k)][1].sum()) for k in range(5)}
    assert counts == {36} and int(plain[(0, 0, 0)][1].sum()) == 9
    a, b = scaled[(0, 3, 1)], scaled[(0, 3, 1)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # keyed: same sample twice


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("datasets: [a]\nmodel: cgrinet_test\nepochs: 7\nlr: 0.001\n")
    cfg = resolve_config(path, epochs=3, lr=None)
    assert (cfg.epochs, cfg.lr, cfg.model, cfg.datasets) == (3, 0.001, "cgrinet_test", ["a"])
    path.write_text("model: cgrinet_test\nlearning_rate: 1\n")
    with pytest.raises(InputError, match="learning_rate"):
        resolve_config(path, datasets=["a"])


# --- training runs ------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_the_run_folder(dataset, tmp_path):
    events = []
    result = train(config(dataset, tmp_path / "run", epochs=5, lr=3e-3, val_every=2), progress=events.append)
    run = result.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "train.log", "last.safetensors", "best.safetensors",
            "state.safetensors", "state.json", "ids.json"} <= names
    rows = metrics_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert [bool(r["val_miou"]) for r in rows] == [False, True, False, True, True]  # every 2 + last
    kinds = {e.kind for e in events}
    assert {"start", "step", "epoch", "done"} <= kinds
    assert "epoch 5/5" in (run / "train.log").read_text()
    # Normalisation computed on the training images and stored in the model.
    ids = json.loads((run / "ids.json").read_text())
    assert ids["train"]["count"] + ids["val"]["count"] == 8 and ids["val"]["count"] == 1


def test_checkpoint_round_trip(dataset, tmp_path):
    from irstd.models import load_model

    result = train(config(dataset, tmp_path / "run", epochs=1))
    saved = state_model(result.run_dir)
    model = load_model(result.run_dir / "last.safetensors")
    state = model.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in state)
    assert float(state["input_mean"].flatten()[0]) != 0.0  # set from the training images
    with safe_open(str(result.run_dir / "last.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    for key in ("variant", "input_mean", "input_std", "bit_depth_rule", "train_data", "train_ids_sha256",
                "val_ids_sha256", "epoch", "seed", "versions", "command"):
        assert key in meta, key
    assert meta["variant"] == "cgrinet_test" and meta["epoch"] == "1"
    assert meta["bit_depth"] == "none"  # no --bit-depth: the default rule
    with safe_open(str(train(config(dataset, tmp_path / "bits12", epochs=1, bit_depth=12)).run_dir / "last.safetensors"),
                   framework="pt") as fh:
        assert fh.metadata()["bit_depth"] == "12"


@pytest.mark.parametrize("where", ["end_of_epoch", "mid_epoch"])
def test_resume_reproduces_the_uninterrupted_run(dataset, tmp_path, where):
    straight = train(config(dataset, tmp_path / "straight"))
    stop = threading.Event()

    def interrupt(event):
        if where == "end_of_epoch" and event.kind == "epoch" and event.epoch == 1:
            stop.set()
        if where == "mid_epoch" and event.kind == "step" and event.epoch == 2 and event.step == 1:
            stop.set()

    cfg = config(dataset, tmp_path / "resumed")
    first = train(cfg, progress=interrupt, stop=stop)
    assert first.interrupted
    cfg.resume = True
    second = train(cfg)
    assert not second.interrupted and second.epochs_done == 2
    a, b = state_model(straight.run_dir), state_model(second.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metrics_rows(straight.run_dir)[-1]["loss"] == metrics_rows(second.run_dir)[-1]["loss"]
    assert len(metrics_rows(second.run_dir)) == 2


def test_ema_weights_are_validated_saved_and_resumed_exactly(dataset, tmp_path):
    from irstd.models import load_model

    straight = train(config(dataset, tmp_path / "straight", ema=0.9))
    stop = threading.Event()
    cfg = config(dataset, tmp_path / "resumed", ema=0.9)
    first = train(cfg, progress=lambda e: stop.set() if e.kind == "step" and e.epoch == 2 and e.step == 1 else None,
                  stop=stop)
    assert first.interrupted
    cfg.resume = True
    train(cfg)
    a, b = load_state(straight.run_dir / "state.safetensors"), load_state(tmp_path / "resumed" / "state.safetensors")
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    saved = load_model(straight.run_dir / "last.safetensors").state_dict()
    assert all(torch.equal(saved[k], a["ema"][k]) for k in saved)  # last = the average, not the raw weights
    assert any(not torch.equal(a["model"][k], a["ema"][k]) for k in saved if a["model"][k].is_floating_point())
    plain = train(config(dataset, tmp_path / "plain"))
    assert all(torch.equal(a["model"][k], load_state(plain.run_dir / "state.safetensors")["model"][k])
               for k in a["model"])  # the average does not touch training
    assert load_state(plain.run_dir / "state.safetensors")["ema"] is None


def test_resume_refuses_incompatible_changes_and_allows_more_epochs(dataset, tmp_path):
    cfg = config(dataset, tmp_path / "run", epochs=1)
    train(cfg)
    changed = config(dataset, tmp_path / "run", epochs=1, lr=1e-2, resume=True)
    with pytest.raises(InputError, match="lr"):
        train(changed)
    more = resolve_config(None, out=str(tmp_path / "run"), resume=True, epochs=2)
    assert more.model == "cgrinet_test" and more.epochs == 2  # the rest comes from config.yaml
    assert train(more).epochs_done == 2
    with pytest.raises(InputError, match="not empty"):
        train(config(dataset, tmp_path / "run"))


def test_resume_keeps_the_input_range_of_runs_saved_before_it_existed(dataset, tmp_path):
    import yaml

    run = tmp_path / "run"
    train(config(dataset, run, epochs=1))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved.pop("input_range") == "auto"
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    from irstd.train import save_state

    state = load_state(run / "state.safetensors")
    del state["config"]["input_range"]
    save_state(run / "state.safetensors", state)
    more = resolve_config(None, out=str(run), resume=True, epochs=2)
    assert more.input_range == "bits"  # how the old run was trained
    assert train(more).epochs_done == 2
    with pytest.raises(InputError, match="input_range: 'bits' -> 'minmax'"):
        train(resolve_config(None, out=str(run), resume=True, epochs=3, input_range="minmax"))


def test_validation_never_reads_test_ids(dataset, tmp_path, monkeypatch):
    from irstd import data as irstd_data

    test_ids = set((dataset / "splits" / "test.txt").read_text().split())
    ds = irstd_data.open_dataset(dataset)
    read: list[str] = []
    original = type(ds).read_pair

    def spy(self, image_id, *args, **kwargs):
        read.append(image_id)
        return original(self, image_id, *args, **kwargs)

    monkeypatch.setattr(type(ds), "read_pair", spy)
    result = train(config(dataset, tmp_path / "run", epochs=1, val_fraction=0.25))
    assert read and not set(read) & test_ids
    assert len(result.val_ids) == 2 and not set(result.val_ids) & set(result.train_ids)
    with pytest.raises(InputError, match="test split"):
        train(config(dataset, tmp_path / "run2", val_split="test"))
    with pytest.raises(InputError, match="disjoint"):
        train(config(dataset, tmp_path / "run3", val_split="train"))


def test_val_seed_holds_out_the_same_images_for_any_seed(dataset):
    base = dict(datasets=[str(dataset)], model="cgrinet_test", val_fraction=0.25)
    held = {}
    for seed, val_seed in [(0, None), (1, None), (1, 0), (5, 0)]:
        cfg = TrainConfig(**base, seed=seed, val_seed=val_seed)
        held[seed, val_seed] = select_ids(cfg)[2]
    assert held[0, None] == held[1, 0] == held[5, 0]
    assert held[1, None] != held[0, None]


def test_other_split_families_do_not_block_validation(tmp_path):
    # SIRST-like: a "trainvaltest" list and another protocol's test split overlap the training ids.
    root = write_tiny_dataset(tmp_path / "sirst", count=9)
    ids = sorted(p.stem for p in (root / "images").glob("*.png"))
    (root / "splits" / "trainvaltest.txt").write_text("\n".join(ids))
    (root / "splits" / "proto").mkdir()
    (root / "splits" / "proto" / "train.txt").write_text("\n".join(ids[3:]))
    (root / "splits" / "proto" / "test.txt").write_text("\n".join(ids[:3]))
    result = train(config(root, tmp_path / "run", epochs=1, split="proto/train", val_fraction=0.5))
    assert not set(result.val_ids) & {f"sirst/{i}" for i in ids[:3]}


def test_skip_errors_leaves_out_broken_pairs(tmp_path):
    root = write_tiny_dataset(tmp_path / "broken", count=9)
    first = (root / "splits" / "train.txt").read_text().split()[0]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / f"{first}.png")  # size mismatch
    with pytest.raises(InputError):
        train(config(root, tmp_path / "strict", epochs=1))
    assert not (tmp_path / "strict").exists()
    result = train(config(root, tmp_path / "run", epochs=1, skip_errors=True))
    assert len(result.skipped) == 1 and first in result.skipped[0]
    assert f"broken/{first}" not in result.train_ids + result.val_ids


def test_ablation_switches_reach_the_saved_model(dataset, tmp_path):
    from irstd.models import load_model

    result = train(config(dataset, tmp_path / "run", epochs=1, ablation=["use_mab=false", "use_cgm=[true, false, true]"]))
    args = load_model(result.run_dir / "best.safetensors").model_args
    assert args["use_mab"] is False and args["use_cgm"] == [True, False, True]



def test_init_weights_fine_tunes_from_a_model_file(dataset, tmp_path):
    from irstd.models import load_model

    first = train(config(dataset, tmp_path / "first", epochs=1)).run_dir / "last.safetensors"
    start = load_model(first)
    # Another dataset (other normalisation statistics): the file's normalisation is kept.
    other = write_tiny_dataset(tmp_path / "other", count=9, seed=7)
    result = train(config(other, tmp_path / "tuned", model="", epochs=1, init_weights=str(first)))
    tuned = load_model(result.run_dir / "last.safetensors")
    assert tuned.model_name == "cgrinet_test"
    for key in ("input_mean", "input_std"):
        assert torch.equal(tuned.state_dict()[key], start.state_dict()[key])
    assert tuned.model_args == start.model_args
    changed = [k for k, v in start.state_dict().items() if v.is_floating_point() and not torch.equal(v, tuned.state_dict()[k])]
    assert changed, "fine-tuning left every weight as it was"
    meta = tuned.weights_metadata
    assert json.loads(meta["config"])["init_weights"] == str(first.resolve())
    import hashlib

    assert meta["init_weights_sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()



def test_init_weights_extends_the_model_with_a_refinement_head(dataset, tmp_path):
    from irstd.models import load_model

    first = train(config(dataset, tmp_path / "first", epochs=1)).run_dir / "last.safetensors"
    events = []
    result = train(config(dataset, tmp_path / "tuned", model="", epochs=1, init_weights=str(first),
                          ablation=["refine_head=true"]), progress=events.append)
    assert any(e.kind == "warning" and "start fresh" in e.message for e in events)
    tuned = load_model(result.run_dir / "last.safetensors")
    assert tuned.model_args["refine_head"] is True
    start = load_model(first).state_dict()
    assert set(start) < set(tuned.state_dict())


def test_resume_refuses_a_changed_init_weights_file(dataset, tmp_path):
    first = train(config(dataset, tmp_path / "first", epochs=1)).run_dir / "last.safetensors"
    init = tmp_path / "init.safetensors"
    init.write_bytes(first.read_bytes())
    run = tmp_path / "tuned"
    train(config(dataset, run, model="", epochs=1, init_weights=str(init)))
    other = train(config(dataset, tmp_path / "other", epochs=1, seed=11)).run_dir / "last.safetensors"
    init.write_bytes(other.read_bytes())
    with pytest.raises(InputError, match="not the file the run started from"):
        train(config(dataset, run, model="", epochs=2, init_weights=str(init), resume=True))
    init.write_bytes(first.read_bytes())
    assert train(config(dataset, run, model="", epochs=2, init_weights=str(init), resume=True)).epochs_done == 2

@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(model="cgrinet_tiny"), "holds a cgrinet_test model"),
        (dict(ablation=["use_mab=false"]), "weights do not match"),
        (dict(pretrained_backbone=__file__), "cannot be combined with --init-weights"),
    ],
)
def test_init_weights_refuses_another_architecture(dataset, tmp_path, kw, message):
    first = train(config(dataset, tmp_path / "first", epochs=1)).run_dir / "last.safetensors"
    with pytest.raises(InputError, match=message):
        train(config(dataset, tmp_path / "tuned", init_weights=str(first), **kw))
    assert not (tmp_path / "tuned").exists()

def test_input_range_trains_on_stretched_images_and_reaches_detect(dataset, tmp_path):
    from irstd.methods import get_method
    from irstd.models import load_model

    result = train(config(dataset, tmp_path / "run", epochs=1, input_range="MinMax"))
    model = load_model(result.run_dir / "last.safetensors")
    assert model.weights_metadata["input_range"] == "minmax"
    # the input normalisation is measured on the stretched images: their mean, not the 8-bit one
    images = [np.asarray(Image.open(p), np.float64) for p in sorted((dataset / "images").glob("*.png"))]
    stretched = np.mean([(i - i.min()) / (i.max() - i.min()) for i in images])
    assert abs(float(model.input_mean.flatten()[0]) - stretched) < 0.05
    assert abs(float(model.input_mean.flatten()[0]) - np.mean(images) / 255) > 0.05
    assert get_method(f"cgrinet:{result.run_dir / 'last.safetensors'}").input_range == "minmax"
    with pytest.raises(InputError, match="--input-range"):
        train(config(dataset, tmp_path / "bad", input_range="zscore"))


def test_union_of_two_datasets_namespaces_ids(dataset, tmp_path):
    other = write_tiny_dataset(tmp_path / "other", count=6, seed=5)
    result = train(config(dataset, tmp_path / "run", epochs=1, datasets=[str(dataset), str(other)]))
    prefixes = {i.split("/")[0] for i in result.train_ids + result.val_ids}
    assert prefixes == {"tiny", "other"} and len(result.train_ids) + len(result.val_ids) == 8 + 4


# --- command line -------------------------------------------------------------------------------


def test_cli_end_to_end(tmp_path):
    data = tmp_path / "synth16"
    made = CliRunner().invoke(app, ["synth", "--out", str(data), "--count", "10", "--size", "40", "72",
                                    "--seed", "1", "--bit-depth", "16"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "cli_run"
    args = ["train", "--dataset", str(data), "--model", "cgrinet_test", "--epochs", "1", "--batch-size", "2",
            "--crop", "32", "--out", str(out), "--amp", "--device", "cpu", "--scale-range", "0.5,1.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning: --amp needs CUDA" in result.output
    assert (out / "last.safetensors").is_file() and (out / "config.yaml").is_file()
    assert "scale_range:\n- 0.5\n- 1.5\n" in (out / "config.yaml").read_text()
    from irstd.models import load_model

    model = load_model(out / "last.safetensors")
    mean = float(model.input_mean.flatten()[0])
    assert 0 < mean < 1 and "uint16/(2**16-1)" in model.weights_metadata["bit_depth_rule"]
    assert model.weights_metadata["input_range"] == "auto"  # 16-bit data: stretched per image
    assert abs(mean - 0.5) < 0.4
    test_ids = set((data / "splits" / "test.txt").read_text().split())
    ids = json.loads((out / "ids.json").read_text())
    assert not {i.split("/", 1)[1] for i in ids["train"]["ids"] + ids["val"]["ids"]} & test_ids
    # --config reads the saved config back; command-line flags override it.
    again = CliRunner().invoke(app, ["train", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again"), "--epochs", "2"])
    assert again.exit_code == 0, again.output
    assert len(metrics_rows(tmp_path / "again")) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "no_such_model"], "unknown model"),
        (["--model", "cgrinet_test", "--val-split", "test"], "test split"),
        (["--model", "cgrinet_test", "--crop", "40"], "--crop"),
        (["--model", "cgrinet_test", "--scale-range", "0,2"], "--scale-range"),
        (["--model", "cgrinet_test", "--ema", "1"], "--ema"),
        (["--model", "cgrinet_test", "--scale-range", "2"], "--scale-range"),
        (["--model", "cgrinet_test", "--scale-range", "a,b"], "--scale-range"),
        (["--model", "cgrinet_test", "--ablation", "no_such_switch=1"], "--ablation"),
        (["--model", "cgrinet_test", "--batch-size", "1"], "--batch-size"),
        (["--init-weights", "no_such_file.safetensors"], "no such file"),
        (["--model", "cgrinet_test", "--val-split", "val", "--val-seed", "1"], "--val-seed"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(dataset, tmp_path, extra, message):
    result = CliRunner().invoke(app, ["train", "--dataset", str(dataset), "--out", str(tmp_path / "r"), *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("irstd: error:") and message in lines[0]
    assert not (tmp_path / "r").exists()


def test_cli_missing_dataset_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["train", "--dataset", str(tmp_path / "nope"), "--model", "cgrinet_test"])
    assert result.exit_code == 2 and "dataset folder not found" in result.output


# --- processes: DDP, SIGINT, kill -9 ------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, weights_out: Path | None = None) -> None:
    import irstd.train.loop as train_loop
    from safetensors.torch import save_file

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    seen = {}
    make_step = train_loop.make_step

    def spy(mode, net, *args, **kwargs):  # keeps this rank's model (rank 0 alone writes files)
        seen["net"] = net
        return make_step(mode, net, *args, **kwargs)

    train_loop.make_step = spy
    train(cfg)
    if weights_out is not None:
        state = seen["net"].module.state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights_out / f"rank{rank}.safetensors"))


def _ddp(cfg: TrainConfig, weights_out: Path) -> list[dict[str, torch.Tensor]]:
    """Train ``cfg`` in two forked CPU processes (gloo); each rank's final model state."""
    import multiprocessing
    import socket

    from safetensors.torch import load_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = multiprocessing.get_context("fork")  # no re-import of torch: a few seconds
    procs = [ctx.Process(target=_ddp_worker, args=(rank, 2, port, cfg, weights_out)) for rank in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    return [load_file(str(weights_out / f"rank{r}.safetensors")) for r in (0, 1)]


def _parameters(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]


@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process (Linux)")
def test_ddp_two_cpu_processes_gloo(dataset, tmp_path):
    ranks = _ddp(config(dataset, tmp_path / "ddp", epochs=1, batch_size=2, device="cpu"), tmp_path)
    run = tmp_path / "ddp"
    assert (run / "last.safetensors").is_file() and len(metrics_rows(run)) == 1
    assert "world 2" in (run / "train.log").read_text()
    assert load_state(run / "state.safetensors")["world_size"] == 2
    assert float(metrics_rows(run)[0]["val_miou"]) >= 0  # rank 0 validated (not NaN)
    # Both ranks end with the same parameters (gradients averaged); BatchNorm statistics stay per rank.
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in _parameters(ranks[0]))


@pytest.mark.slow
def test_ddp_two_cpu_processes_torchrun(dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "irstd.cli.main", "train", "--dataset", str(dataset), "--model", "cgrinet_test",
           "--epochs", "2", "--batch-size", "2", "--crop", "32", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "last.safetensors").is_file() and len(metrics_rows(out)) == 2
    assert "world 2" in (out / "train.log").read_text()
    assert load_state(out / "state.safetensors")["world_size"] == 2


def _start(dataset: Path, out: Path, tmp_path: Path, epochs: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "irstd.cli.main", "train", "--dataset", str(dataset), "--model", "cgrinet_test",
           "--epochs", str(epochs), "--batch-size", "2", "--crop", "32", "--device", "cpu", "--out", str(out),
           "--state-interval", "0"]
    return subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} not written in {timeout} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigint_saves_state_and_resume_finishes(dataset, tmp_path):
    out = tmp_path / "run"
    proc = _start(dataset, out, tmp_path, epochs=50)
    _wait_for(out / "state.safetensors", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "continue with --resume" in err
    state = load_state(out / "state.safetensors")
    done = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--epochs", str(state["epochs_done"] + 1)])
    assert done.exit_code == 0, done.output
    assert load_state(out / "state.safetensors")["epochs_done"] == state["epochs_done"] + 1


@pytest.mark.slow
def test_kill_9_loses_at_most_the_epoch_in_progress_with_state_interval_0(dataset, tmp_path):
    out = tmp_path / "run"
    proc = _start(dataset, out, tmp_path, epochs=50)
    _wait_for(out / "state.safetensors", proc)
    time.sleep(0.3)
    proc.kill()
    proc.communicate()
    state = load_state(out / "state.safetensors")  # never a half-written file
    assert state["epochs_done"] >= 1
    done = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--epochs", str(state["epochs_done"] + 1)])
    assert done.exit_code == 0, done.output
    rows = metrics_rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, state["epochs_done"] + 2))
