"""ONNX Runtime, the CPU engine: the packaged graph, exports to the cache, engine and device choice,
and PyTorch's batched runs on the GPU path (checked on the CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from irstd.cli.main import app
from irstd.errors import InputError
from irstd.io import write_image
from irstd.intensity import to_float
from irstd.methods import get_method
from irstd.models import create_model, load_model, predict, save_weights
from irstd import onnx_runtime
from irstd.synth import make_scene


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(create_model("cgrinet_test"), tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "irstd" / "onnx"


@pytest.fixture(scope="module")
def image():
    scene, _ = make_scene(np.random.default_rng(5), 75, 101)  # not multiples of 32: padding
    return np.round(scene * 255).astype(np.uint8)


def test_onnx_engine_matches_torch_and_is_cached(weights, cache, image, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    method = get_method(f"cgrinet:{weights}", engine="onnx")
    assert method.score_rule.endswith("; run by ONNX Runtime")
    assert "ONNX" not in get_method(f"cgrinet:{weights}", engine="torch").score_rule
    out = method.run(image)
    expected = predict(load_model(weights), to_float(image))
    assert out.scores.shape == image.shape
    np.testing.assert_allclose(out.scores, expected, atol=1e-4)
    sure = np.abs(expected - 0.5) > 1e-3
    np.testing.assert_array_equal(out.mask[sure], (expected > 0.5)[sure])
    (exported,) = cache.glob("tiny-*.onnx")
    assert list(cache.glob(".*tmp")) == []  # written atomically

    def no_export(*args):
        raise AssertionError("the cached file should be reused")

    monkeypatch.setattr(onnx_runtime, "export_onnx", no_export)
    again = get_method(f"cgrinet:{weights}", engine="onnx")
    np.testing.assert_array_equal(again.run(image).scores, out.scores)
    assert again.parameters == method.parameters == sum(
        p.numel() for p in load_model(weights).parameters() if p.requires_grad)


def test_damaged_cache_file_is_exported_again(weights, cache, image):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    first = get_method(f"cgrinet:{weights}", engine="onnx").run(image)
    (exported,) = cache.glob("tiny-*.onnx")
    exported.write_bytes(b"not an onnx file")
    again = get_method(f"cgrinet:{weights}", engine="onnx").run(image)
    np.testing.assert_array_equal(again.scores, first.scores)
    assert exported.stat().st_size > 1000


def test_cached_onnx_model_runs_without_torch(weights, cache, image):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    get_method(f"cgrinet:{weights}", engine="onnx").run(image)  # exports into the cache
    code = ("import sys, numpy as np; from irstd.methods import get_method; "
            f"out = get_method('cgrinet:' + {str(weights)!r}, engine='onnx').run(np.zeros((40, 50), np.uint8)); "
            "print(out.scores.shape, 'torch' in sys.modules, 'timm' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["(40,", "50)", "False", "False"], result.stderr


def test_onnx_engine_from_the_command_line(weights, cache, image, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = write_image(tmp_path / "frame.png", image)
    runs = [CliRunner().invoke(app, ["detect", str(path), "--weights", str(weights), "-f", "json",
                                     "--threshold", "0.3", *extra]) for extra in (["--engine", "torch"], [])]
    for result in runs:
        assert result.exit_code == 0, result.stderr
    torch_run, onnx_run = (json.loads(r.stdout.splitlines()[0]) for r in runs)
    assert [t["bbox"] for t in onnx_run["targets"]] == [t["bbox"] for t in torch_run["targets"]]


def test_engine_errors(weights, cache, image, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="--engine: expected one of auto, torch, onnx"):
        get_method(f"cgrinet:{weights}", engine="tensorrt")
    with pytest.raises(InputError, match="runs on the CPU"):
        get_method(f"cgrinet:{weights}", engine="onnx", device="cuda")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    method = get_method(f"cgrinet:{weights}", engine="onnx")
    with pytest.raises(InputError, match="pip install onnx onnxruntime"):
        method.run(np.zeros((40, 40), np.uint8))
    path = write_image(tmp_path / "frame.png", image)
    result = CliRunner().invoke(app, ["detect", str(path), "--weights", str(weights), "--engine", "onnx"])
    assert result.exit_code == 2
    assert "pip install onnx onnxruntime" in result.stderr


def test_unwritable_cache_is_a_clear_error(weights, tmp_path, monkeypatch, image):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(InputError, match="cannot write the ONNX export.*XDG_CACHE_HOME"):
        get_method(f"cgrinet:{weights}", engine="onnx").run(image)


def test_compare_cache_key_covers_the_onnx_engine(weights):
    from irstd.compare import method_key

    torch_method = get_method(f"cgrinet:{weights}", engine="torch")
    onnx_method = get_method(f"cgrinet:{weights}")  # auto: ONNX Runtime on the CPU
    assert "onnx_runtime.py" in [f.name for f in onnx_method.code_files()]
    assert "onnx_runtime.py" not in [f.name for f in torch_method.code_files()]
    assert "intensity.py" in [f.name for f in torch_method.code_files()]  # to_float maps the network's input
    keys = [method_key(f"cgrinet:{weights}", m) for m in (torch_method, onnx_method)]
    assert keys[0]["engine"] == "torch" and keys[1]["engine"] == "onnx" and keys[0] != keys[1]


def test_packaged_onnx_graph_matches_the_packaged_weights(monkeypatch, cache):
    from irstd.io import sha256_file
    from irstd.methods import default_weights

    weights = default_weights()
    graph = weights.with_suffix(".onnx")
    assert graph.is_file(), "export it: python -m irstd.onnx_runtime irstd/weights/cgrinet_sirst.safetensors --overwrite"

    def no_export(*args, **kwargs):
        raise AssertionError("the packaged graph should be used")

    monkeypatch.setattr(onnx_runtime, "export_onnx", no_export)
    model = onnx_runtime.OnnxModel(weights)
    assert model.path == graph  # not the cache
    meta = model.session.get_modelmeta().custom_metadata_map
    assert meta["weights_sha256"] == sha256_file(weights), "stale graph: re-export it (see above)"
    scene = make_scene(np.random.default_rng(3), 100, 130)[0].astype(np.float32)  # not multiples of 32
    reference = predict(load_model(weights), scene)
    np.testing.assert_allclose(model.predict(scene), reference, atol=1e-4)


def test_a_graph_of_other_weights_next_to_a_file_is_not_used(weights, cache, image, tmp_path):
    pytest.importorskip("onnx")  # exports (a GPU machine may hold onnxruntime alone)
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_weights(create_model("cgrinet_test"), other)
    onnx_runtime.main([str(other)])
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(weights.read_bytes())
    (tmp_path / "copy.onnx").write_bytes((tmp_path / "other.onnx").read_bytes())  # a stale graph
    model = onnx_runtime.OnnxModel(copy)
    assert model.path.parent == cache
    np.testing.assert_allclose(model.predict(to_float(image)), predict(load_model(weights), to_float(image)), atol=1e-4)
    with pytest.raises(SystemExit):
        onnx_runtime.main([str(other)])  # refuses to replace without --overwrite


def test_auto_engine_and_device(monkeypatch, weights):
    from irstd import methods

    monkeypatch.setattr(methods.options, "cuda_available", lambda: False)
    assert methods.resolve_engine("auto", "auto") == ("onnx", "cpu")
    assert methods.resolve_engine("torch", None) == ("torch", "cpu")
    with pytest.raises(InputError, match="--device cuda: no CUDA GPU is available"):
        methods.resolve_engine("auto", "cuda")
    with pytest.raises(InputError, match="--device: expected"):
        methods.resolve_engine("auto", "tpu")
    monkeypatch.setattr(methods.options, "cuda_available", lambda: True)
    assert methods.resolve_engine("auto", "auto") == ("torch", "cuda")
    assert methods.resolve_engine("onnx", "auto") == ("onnx", "cpu")
    assert methods.resolve_engine("auto", "cpu") == ("onnx", "cpu")
    method = get_method(f"cgrinet:{weights}", device="cuda")
    assert (method.engine, method.device, method.batch_size) == ("torch", "cuda", methods.CUDA_BATCH)
    assert get_method(f"cgrinet:{weights}", device="cpu").batch_size == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without a CUDA GPU")
def test_device_cuda_without_a_gpu_is_one_line_exit_2(weights, image, tmp_path):
    path = write_image(tmp_path / "frame.png", image)
    result = CliRunner().invoke(app, ["detect", str(path), "--device", "cuda"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "irstd: error: --device cuda: no CUDA GPU is available here (use --device auto or cpu)"


@pytest.mark.parametrize("command", ["detect", "evaluate", "compare"])
def test_cgrinet_on_the_cpu_imports_no_torch(command, tmp_path):
    from irstd.synth import write_dataset

    write_dataset(tmp_path / "ds", count=2, size=(64, 80), seed=1)
    args = {
        "detect": ["detect", str(tmp_path / "ds" / "images"), "-f", "json"],
        "evaluate": ["evaluate", "--method", "cgrinet", "--dataset", str(tmp_path / "ds"), "--split", "test", "--json"],
        "compare": ["compare", "--methods", "cgrinet", "--dataset", str(tmp_path / "ds"), "--split", "test",
                    "--out", str(tmp_path / "cmp")],
    }[command]
    code = ("import atexit, sys; atexit.register(lambda: print('torch' in sys.modules, 'timm' in sys.modules, file=sys.stderr)); "
            f"sys.argv = ['irstd', *{args!r}, '--device', 'cpu']; from irstd.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "False False"


def test_batched_runs_equal_one_at_a_time(weights):
    from dataclasses import replace

    from irstd.methods import run_method

    rng = np.random.default_rng(4)
    frames = [np.round(make_scene(rng, h, w)[0] * 255).astype(np.uint8) for h, w in  # (60, 70): padded as (64, 80)
              [(64, 80), (60, 70), (75, 101), (64, 80), (75, 101), (64, 80), (40, 40), (33, 64), (62, 93)]]
    items = [*frames[:3], InputError("broken.png: cannot read"), *frames[3:]]
    single = get_method(f"cgrinet:{weights}", engine="torch", device="cpu")
    batched = replace(single, batch_size=3)
    one = list(run_method(single, items, skip_errors=True))
    many = list(run_method(batched, items, skip_errors=True))
    assert [type(o) for o in one] == [type(m) for m in many] and isinstance(many[3], InputError)
    for a, b in zip(one, many):
        if not isinstance(a, InputError):
            np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
            np.testing.assert_array_equal(b.mask, a.mask)
    with pytest.raises(InputError, match="broken.png"):
        list(run_method(batched, items))
