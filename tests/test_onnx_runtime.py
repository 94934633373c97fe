"""``--engine onnx``: CgriNet exported once to the cache and run by ONNX Runtime."""

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
from irstd.io import to_float, write_image
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
    assert "ONNX" not in get_method(f"cgrinet:{weights}").score_rule
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
                                     "--threshold", "0.3", *extra]) for extra in ([], ["--engine", "onnx"])]
    for result in runs:
        assert result.exit_code == 0, result.stderr
    torch_run, onnx_run = (json.loads(r.stdout.splitlines()[0]) for r in runs)
    assert [t["bbox"] for t in onnx_run["targets"]] == [t["bbox"] for t in torch_run["targets"]]


def test_engine_errors(weights, cache, image, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="--engine: expected one of torch, onnx"):
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
    from irstd.compare import _code_files, method_key

    torch_method = get_method(f"cgrinet:{weights}")
    onnx_method = get_method(f"cgrinet:{weights}", engine="onnx")
    assert "onnx_runtime.py" in [f.name for f in _code_files(onnx_method)]
    assert "onnx_runtime.py" not in [f.name for f in _code_files(torch_method)]
    assert "io.py" in [f.name for f in _code_files(torch_method)]  # to_float maps the network's input
    keys = [method_key(f"cgrinet:{weights}", m, threshold=None, bit_depth=None) for m in (torch_method, onnx_method)]
    assert keys[0]["engine"] == "torch" and keys[1]["engine"] == "onnx" and keys[0] != keys[1]
