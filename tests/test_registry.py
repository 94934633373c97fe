"""Every registered network: published parameter count, odd frame sizes, one training step, weights
round trip, ONNX Runtime equal to PyTorch, and the method door (``--method FAMILY:FILE``).

Parametrised over :data:`irstd.models.registry.MODELS`, so a new network is tested by its registry
entry alone. CgriNet's variants have their own, deeper tests in ``test_models.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from irstd.errors import InputError
from irstd.losses import create_loss
from irstd.models import count_parameters, create_model, load_model, predict, save_weights
from irstd.models.registry import ARCHITECTURES, MODELS, get_spec, list_models, model_summary

#: One representative per architecture: the smallest registered name of it.
REPRESENTATIVES = [min((n for n in MODELS if MODELS[n].architecture == a), key=lambda n: len(n),
                       default=None) for a in ARCHITECTURES]
REPRESENTATIVES = [n if n != "cgrinet" else "cgrinet_test" for n in REPRESENTATIVES if n]
#: Networks too big for the fast suite (their own test files cover them there).
BIG = 5_000_000


def _param(name):
    big = get_spec(name).published_params and get_spec(name).published_params > BIG
    return pytest.param(name, marks=pytest.mark.slow) if big else name


def test_every_architecture_is_registered_once():
    assert set(MODELS[n].architecture for n in MODELS) <= set(ARCHITECTURES)
    assert len(set(list_models())) == len(list_models())
    with pytest.raises(InputError, match="unknown model 'nope'"):
        create_model("nope")


@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n].published_params])
def test_published_parameter_count(name):
    spec = get_spec(name)
    row = model_summary(name)
    assert abs(row["params_paper_convention"] - spec.published_params) <= spec.published_tolerance * spec.published_params, row


@pytest.mark.parametrize("name", [_param(n) for n in REPRESENTATIVES])
def test_odd_frame_sizes_train_step_and_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    image = np.random.default_rng(0).random((37, 53)).astype(np.float32)
    probs = predict(model, image)
    assert probs.shape == (37, 53) and np.isfinite(probs).all() and (0 <= probs).all() and (probs <= 1).all()

    model.train()
    x = torch.rand(2, 1, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.97).float()
    outputs = model(x)
    assert isinstance(outputs, list) and all(o.shape == (2, 1, 64, 64) for o in outputs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    create_loss(get_spec(name).loss)(outputs, y).backward()
    optimiser.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    model.eval()
    again = load_model(save_weights(model, tmp_path / f"{name}.safetensors"))
    assert type(again) is type(model) and again.model_name == name
    assert count_parameters(again) == count_parameters(model)
    assert np.array_equal(predict(again, image), predict(model, image))


@pytest.mark.parametrize("name", [_param(n) for n in REPRESENTATIVES])
def test_onnx_runtime_equals_pytorch(name, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from irstd.onnx_runtime import OnnxModel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = create_model(name).eval()
    weights = save_weights(model, tmp_path / f"{name}.safetensors")
    image = np.random.default_rng(1).random((45, 70)).astype(np.float32)
    onnx = OnnxModel(weights).predict(image)
    assert onnx.shape == image.shape
    assert np.abs(onnx - predict(model, image)).max() < 1e-4


@pytest.mark.parametrize("name", [n for n in REPRESENTATIVES if not n.startswith("cgrinet")])
def test_family_method_from_a_file(name, tmp_path):
    from irstd.methods import get_method

    family = get_spec(name).family
    weights = save_weights(create_model(name).eval(), tmp_path / f"{name}.safetensors")
    method = get_method(f"{family}:{weights}", engine="torch", device="cpu")
    assert method.name == f"{family}:{name}" and get_spec(name).display in method.score_rule
    out = method.run(np.full((40, 50), 90, dtype=np.uint8))
    assert out.scores.shape == (40, 50) and out.mask.dtype == bool
    with pytest.raises(InputError, match=f"holds a {get_spec(name).architecture} model, not cgrinet"):
        get_method(f"cgrinet:{weights}")


def test_a_file_whose_metadata_cannot_build_a_model_is_one_line(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    good = save_weights(create_model("acm"), tmp_path / "acm.safetensors")
    from irstd.model_file import read_weights_metadata

    meta = read_weights_metadata(good)
    args = json.loads(meta["model_args"])
    for name, value in (("huge", [100000, 16, 32, 64]), ("text", "abc")):
        bad = tmp_path / f"{name}.safetensors"
        save_file(load_file(good), bad, metadata={**meta, "model_args": json.dumps({**args, "channels": value})})
        with pytest.raises(InputError, match=rf"{name}.safetensors: (unusable model metadata|its model metadata cannot build)"):
            load_model(bad)


def test_an_altered_onnx_graph_is_not_used(tmp_path, monkeypatch):
    """A graph next to the weights whose initialisers changed after export (metadata intact) is
    exported again from the weights instead of run."""
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import numpy_helper

    from irstd.onnx_runtime import OnnxModel, export_onnx, verified
    from irstd.io import sha256_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = create_model("acm").eval()
    weights = save_weights(model, tmp_path / "acm.safetensors")
    graph = export_onnx(model, tmp_path / "acm.onnx", weights_sha256=sha256_file(weights))
    assert verified(graph, sha256_file(weights))
    assert OnnxModel(weights).path == graph  # the shipped graph is used

    proto = onnx.load(str(graph))
    init = max(proto.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(proto, str(graph))
    assert not verified(graph, sha256_file(weights))
    engine = OnnxModel(weights)
    assert engine.path != graph and engine.path.is_file()  # exported again, into the cache
    image = np.random.default_rng(0).random((40, 56)).astype(np.float32)
    assert np.abs(engine.predict(image) - predict(model, image)).max() < 1e-4


def test_weights_option_reads_the_network_family_from_the_file(tmp_path):
    from irstd.cli._common import method_spec

    weights = save_weights(create_model("rdian"), tmp_path / "mine.safetensors")
    assert method_spec(None, weights) == f"rdian:{weights}"
    assert method_spec("rdian", weights) == f"rdian:{weights}"
    with pytest.raises(InputError, match="--weights: only used with a network"):
        method_spec("lcm", weights)


PACKAGED = sorted(p.stem.removesuffix("_sirst") for p in Path(__import__("irstd").__file__).parent.glob("weights/*_sirst.safetensors"))


@pytest.mark.parametrize("family", PACKAGED)
def test_packaged_weights_run_and_ship_a_verified_graph(family):
    """Each packaged network: its graph was exported from these very weights, both engines give the
    same probabilities, and the sizes keep the budget (default ≤ 10 MB, the others ≤ 40 MB)."""
    pytest.importorskip("onnxruntime")
    from irstd.io import sha256_file
    from irstd.methods import get_method
    from irstd.models.packaged import WEIGHTS_DIR, family_weights
    from irstd.onnx_runtime import verified

    weights = family_weights(family)
    assert verified(weights.with_suffix(".onnx"), sha256_file(weights))
    image = (np.random.default_rng(2).random((50, 70)) * 60 + 80).astype(np.uint8)
    image[20:23, 30:33] = 250
    torch_out = get_method(family, engine="torch", device="cpu").run(image)
    onnx_out = get_method(family, engine="onnx").run(image)
    assert np.abs(torch_out.scores - onnx_out.scores).max() < 1e-4
    others = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*") if not p.name.startswith("cgrinet_sirst."))
    assert (WEIGHTS_DIR / "cgrinet_sirst.safetensors").stat().st_size <= 10 * 2**20 and others <= 40 * 2**20
