"""irstd.methods: one way to run CgriNet and the classical baselines on an image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irstd.models import packaged as packaged_module
from irstd import methods
from irstd.baselines import METHODS, ipi, lcm, minmax, segment
from irstd.errors import InputError
from irstd.io import write_image
from irstd.intensity import to_float
from irstd.methods import MethodOutput, classical_names, get_method, list_methods, run_method
from irstd.models import create_model, load_model, predict, save_weights
from irstd.synth import make_scene


@pytest.fixture(scope="module")
def scene():
    image, mask = make_scene(np.random.default_rng(3), 96, 112)
    return (image * 255).round().astype(np.uint8), mask


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return save_weights(create_model("cgrinet_test"), path)


#: CgriNet and every classical method (the other network families: tests/test_registry.py).
METHOD_NAMES = ["cgrinet", *classical_names()]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_runs_on_a_frame(scene, name):
    image, _ = scene
    out = get_method(name).run(image)
    assert out.scores.shape == out.mask.shape == image.shape
    assert out.scores.dtype == np.float64 and out.mask.dtype == np.bool_
    assert np.isfinite(out.scores).all() and 0 <= out.scores.min() and out.scores.max() <= 1
    assert out.seconds >= 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_classical_matches_baseline_functions(scene, name):
    image, _ = scene
    method = get_method(name)
    out = method.run(image)
    raw = METHODS[name].fn(image.astype(np.float64))
    assert isinstance(out, MethodOutput)
    assert method.kind == "classical" and method.parameters is None and method.threshold is None
    # same function; the method may run its matrix products on another number of BLAS threads
    # (irstd.baselines.matmul_threads), which rounds differently
    np.testing.assert_allclose(out.raw, raw, rtol=0, atol=1e-9 * np.abs(raw).max())
    np.testing.assert_array_equal(out.scores, minmax(out.raw))
    np.testing.assert_array_equal(out.mask, segment(out.raw, METHODS[name].k))
    assert out.scores.dtype == np.float64 and out.mask.dtype == np.bool_
    assert out.scores.shape == out.mask.shape == image.shape
    assert out.seconds >= 0
    assert f"{METHODS[name].k:g}·std" in method.mask_rule


def test_classical_runs_on_raw_16_bit_values(scene):
    image, _ = scene
    image16 = image.astype(np.uint16) * 257 + 3
    out = get_method("lcm").run(image16)
    np.testing.assert_array_equal(out.raw, lcm(image16.astype(np.float64)))
    assert not np.array_equal(out.raw, lcm(image.astype(np.float64)))


def test_classical_threshold_replaces_own_rule(scene):
    image, _ = scene
    method = get_method("ipi", threshold=0.3)
    out = method.run(image)
    np.testing.assert_array_equal(out.mask, out.scores > 0.3)
    assert method.mask_rule == "min-max score > 0.3"
    np.testing.assert_array_equal(out.raw, ipi(image.astype(np.float64)))


def test_network_method(scene, weights):
    image, _ = scene
    method = get_method(f"cgrinet:{weights}", threshold=0.4)
    assert method.name == "cgrinet:tiny" and method.kind == "network"
    out = method.run(image)
    expected = predict(load_model(weights), to_float(image))
    np.testing.assert_allclose(out.scores, expected, atol=1e-6)
    assert out.scores.dtype == np.float64 and out.raw is None
    np.testing.assert_array_equal(out.mask, out.scores.astype(np.float32) > np.float32(0.4))
    assert method.parameters == sum(p.numel() for p in load_model(weights).parameters() if p.requires_grad)
    first = method.model()
    method.run(image)
    assert method.model() is first  # loaded once
    # on the CPU the model runs in channels-last memory format (faster), same masks
    conv = next(p for p in first.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()


def test_network_bit_depth_from_metadata(tmp_path, scene):
    path = save_weights(create_model("cgrinet_test"), tmp_path / "w14.safetensors",
                        {"bit_depth_rule": "irstd.intensity.to_float(bit_depth=14): ..."})
    assert get_method(f"cgrinet:{path}").bit_depth == 14
    assert get_method(f"cgrinet:{path}", bit_depth=12).bit_depth == 12
    image16 = (scene[0].astype(np.uint16) * 64)
    out = get_method(f"cgrinet:{path}").run(image16)
    expected = predict(load_model(path), to_float(image16, 14))
    np.testing.assert_allclose(out.scores, expected, atol=1e-6)


def test_network_input_range_from_metadata_and_option(tmp_path, scene):
    plain = save_weights(create_model("cgrinet_test"), tmp_path / "plain.safetensors")
    stretched = save_weights(create_model("cgrinet_test"), tmp_path / "mm.safetensors", {"input_range": "minmax"})
    assert get_method(f"cgrinet:{plain}").input_range == "bits"
    assert get_method(f"cgrinet:{stretched}").input_range == "minmax"
    method = get_method(f"cgrinet:{plain}", input_range="fixed:1000,9000")
    assert method.input_range == "fixed:1000,9000" and "fixed: (x - 1000)/(9000 - 1000)" in method.score_rule
    raw = scene[0].astype(np.uint16) * 10 + 7000  # raw counts filling a sliver of 16 bits
    out = get_method(f"cgrinet:{stretched}").run(raw)
    expected = predict(load_model(stretched), to_float(raw, input_range="minmax"))
    np.testing.assert_allclose(out.scores, expected, atol=1e-6)
    # the stretch undoes the camera's offset and gain: same map as the 8-bit frame stretched
    np.testing.assert_allclose(out.scores, get_method(f"cgrinet:{stretched}").run(scene[0]).scores, atol=1e-5)
    with pytest.raises(InputError, match="--input-range"):
        get_method(f"cgrinet:{plain}", input_range="automatic")
    assert get_method("cgrinet").input_range == "auto"  # the packaged weights
    broken = save_weights(create_model("cgrinet_test"), tmp_path / "bad.safetensors", {"input_range": "zscore"})
    with pytest.raises(InputError, match="bad.safetensors: unusable input_range"):
        get_method(f"cgrinet:{broken}")


def test_default_weights(monkeypatch, tmp_path, weights):
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", tmp_path / "none")
    assert methods.default_weights() is None
    with pytest.raises(InputError, match="no trained cgrinet weights are packaged"):
        get_method("cgrinet")
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(weights.read_bytes())  # only the default name is the default
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", folder)
    assert methods.default_weights() is None
    (folder / methods.DEFAULT_WEIGHTS_NAME).write_bytes(weights.read_bytes())
    assert methods.default_weights() == folder / methods.DEFAULT_WEIGHTS_NAME
    assert get_method("cgrinet").name == "cgrinet"


@pytest.mark.parametrize("spec, match", [
    ("sobel", "unknown method"),
    ("cgrinet:", "file name is missing"),
    ("cgrinet:/no/such.safetensors", "no such file"),
])
def test_bad_specs(spec, match):
    with pytest.raises(InputError, match=match):
        get_method(spec)


def test_bad_threshold_and_image():
    with pytest.raises(InputError, match="--threshold"):
        get_method("lcm", threshold=1.5)
    with pytest.raises(InputError, match="2-D"):
        get_method("lcm").run(np.zeros((4, 4, 3)))
    from irstd.baselines import METHODS
    from irstd.models.registry import families

    assert list_methods()[: len(families()) + len(METHODS)] == [*families(), *METHODS]
    assert families()[:4] == ["cgrinet", "acm", "alcnet", "rdian"]


def test_run_method_in_order_with_workers(tmp_path, scene):
    image, _ = scene
    images = [np.roll(image, 7 * k, axis=1) for k in range(3)]
    paths = []
    for k, im in enumerate(images):
        paths.append(write_image(tmp_path / f"{k}.png", im))
    method = get_method("lcm")
    serial = [method.run(im) for im in images]
    parallel = list(run_method(method, paths, workers=2))
    assert len(parallel) == 3
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_run_method_errors(tmp_path, scene):
    image, _ = scene
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    method = get_method("lcm")
    results = list(run_method(method, [image, bad, image], skip_errors=True))
    assert isinstance(results[1], InputError) and "bad.png" in str(results[1])
    assert isinstance(results[2], MethodOutput)
    with pytest.raises(InputError, match="bad.png"):
        list(run_method(method, [bad]))
    with pytest.raises(InputError, match="--workers"):
        list(run_method(method, [image], workers=0))


@pytest.mark.data
def test_packaged_weights_reproduce_the_model_cards_sirst_figures():
    """docs/model_card.md: SIRST dnanet_50_50/test (213 images, Misc_111 skipped) IoU 74.66, nIoU 73.67,
    Pd 94.27, Fa 18.48 ×10⁻⁶ at probability > 0.5, on the CPU engine (ONNX Runtime)."""
    import os
    from pathlib import Path

    from irstd.data import open_dataset
    from irstd.errors import InputError
    from irstd.metrics import Evaluator

    root = Path(os.environ.get("IRSTD_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")) / "SIRST"
    if not (root / "splits" / "dnanet_50_50" / "test.txt").is_file():
        pytest.skip(f"SIRST not found under {root} (set IRSTD_DATA; the README says where to get it)")
    dataset = open_dataset(root)
    method = get_method("cgrinet", device="cpu")
    evaluator = Evaluator(threshold=0.5, sweep=None, keep_per_image=False)
    skipped = []
    for image_id in dataset.ids("dnanet_50_50/test"):
        try:
            image, mask = dataset.read_pair(image_id)
        except InputError:
            skipped.append(image_id)
            continue
        evaluator.update(method.run(image).scores, mask, image_id=image_id)
    s = evaluator.summary()
    assert skipped == ["Misc_111"]
    assert (round(s["miou"] * 100, 2), round(s["niou"] * 100, 2), round(s["pd"] * 100, 2), round(s["fa"] * 1e6, 2)) == (
        74.66, 73.67, 94.27, 18.48)


def test_paper_weights_by_name(tmp_path, monkeypatch):
    """``--weights paper`` / ``cgrinet:paper``: the packaged paper model, float16 storage (a tiny stand-in here)."""
    from typer.testing import CliRunner

    from irstd.cli.main import app
    from irstd.models.weights import main as rewrite

    with pytest.raises(InputError, match="no paper weights"):
        get_method("cgrinet:paper")  # not shipped yet in this installation
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.manual_seed(0)
    full = save_weights(create_model("cgrinet_test"), tmp_path / "full.safetensors", {"input_range": "auto"})
    rewrite([str(full), str(folder / methods.PAPER_WEIGHTS_NAME), "--float16"])
    (folder / methods.DEFAULT_WEIGHTS_NAME).write_bytes(methods.default_weights().read_bytes())
    monkeypatch.setattr(packaged_module, "WEIGHTS_DIR", folder)
    method = get_method("cgrinet:paper", engine="torch", device="cpu")
    assert method.name == "cgrinet:paper" and method.weights == folder / methods.PAPER_WEIGHTS_NAME
    assert get_method("cgrinet", device="cpu").weights == folder / methods.DEFAULT_WEIGHTS_NAME  # the default stays
    image = np.round(make_scene(np.random.default_rng(2), 64, 80)[0] * 255).astype(np.uint8)
    expected = predict(load_model(full), to_float(image))
    np.testing.assert_allclose(method.run(image).scores, expected, atol=0.02)  # float16-rounded weights
    write_image(tmp_path / "frame.png", image)
    result = CliRunner().invoke(app, ["detect", str(tmp_path / "frame.png"), "--weights", "paper", "-f", "json",
                                      "--engine", "torch"])
    assert result.exit_code == 0, result.stderr
    assert '"method": "cgrinet:paper"' in result.stdout


def test_packaged_paper_weights_load_when_shipped():
    path = methods.WEIGHTS_DIR / methods.PAPER_WEIGHTS_NAME
    if not path.is_file():
        pytest.skip(f"{path.name} is not packaged yet (trained on a GPU: issue 19)")
    assert path.stat().st_size <= 50 * 2**20
    model = load_model(path)
    assert model.model_name == "cgrinet" and model.weights_metadata.get("storage_dtype") == "float16"


# ---- MethodOptions: one checked value -------------------------------------------------------


def test_method_options_check_every_field_and_name_the_option():
    from irstd.methods import MethodOptions

    for bad, option in (({"threshold": 1.5}, "--threshold"), ({"engine": "tvm"}, "--engine"),
                        ({"bit_depth": 17}, "--bit-depth"), ({"input_range": "log"}, "--input-range"),
                        ({"gray": "hsv"}, "--gray"), ({"tile": 32}, "--tile"),
                        ({"tile": 100, "overlap": 51}, "--overlap"), ({"tta": "rot"}, "--tta")):
        with pytest.raises(InputError, match=f"^{option}"):
            MethodOptions(**bad)
    options = MethodOptions(threshold=1, input_range=" fixed: 7000, 9500 ", tile=100)
    assert options.threshold == 1.0 and isinstance(options.threshold, float)
    assert options.input_range == "fixed:7000,9500"  # canonical
    assert options.effective_overlap == 50 and MethodOptions(tile=512).effective_overlap == 64


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_options_value_and_keywords_build_the_same_method(name, weights):
    from dataclasses import replace

    from irstd.methods import MethodOptions

    spec = f"cgrinet:{weights}" if name == "cgrinet" else name
    options = MethodOptions(threshold=0.3, device="cpu", tile=64, overlap=16)
    a, b = get_method(spec, options), get_method(spec, threshold=0.3, device="cpu", tile=64, overlap=16)
    assert a.record() == b.record() and a.options == b.options == options
    assert get_method(spec, options, threshold=0.6).threshold == 0.6  # keywords change the given options
    assert get_method(spec, replace(options, tile=None)).tiling() is None


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_describes_itself(name, weights):
    spec = f"cgrinet:{weights}" if name == "cgrinet" else name
    method = get_method(spec, device="cpu", tile=64)
    record = method.record()
    assert set(record) == {"method", "kind", "score_rule", "mask_rule", "threshold", "tile", "tta", "gray",
                           "weights", "bit_depth", "input_range", "engine", "device"}
    assert record["method"] == method.name and record["tile"] == {"size": 64, "overlap": 32}
    files = method.code_files()
    assert files and all(f.is_file() for f in files) and len(set(files)) == len(files)
    names = [f.name for f in files]
    assert "tiles.py" in names
    if name == "cgrinet":
        assert record["weights"] == str(weights) and record["engine"] == "onnx" and record["device"] == "cpu"
        assert method.weights_file == weights and "cgrinet.py" in names and "intensity.py" in names
    else:
        assert record["weights"] is None and method.weights_file is None
        assert f"{name}.py" in names and "segment.py" in names and "_reference.py" not in names


def test_bit_depth_is_read_from_its_own_metadata_key(tmp_path):
    from irstd.methods.network import _bit_depth_from_metadata

    assert _bit_depth_from_metadata({"bit_depth": "14"}) == 14
    assert _bit_depth_from_metadata({"bit_depth": "none", "bit_depth_rule": "to_float(bit_depth=12)"}) is None
    assert _bit_depth_from_metadata({"bit_depth_rule": "irstd.io.to_float(bit_depth=12): ..."}) == 12  # older files
    assert _bit_depth_from_metadata({}) is None
    torch.manual_seed(0)
    path = save_weights(create_model("cgrinet_test"), tmp_path / "w.safetensors", metadata={"bit_depth": "10"})
    assert get_method(f"cgrinet:{path}").bit_depth == 10
    assert get_method(f"cgrinet:{path}", bit_depth=12).bit_depth == 12  # the option wins
