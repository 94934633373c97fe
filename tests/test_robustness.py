"""Bad input, lost runs and silent wrong answers (issue 28): each test fails without its fix.

Tiny synthetic data in tmp_path only (``irstd.synth.write_dataset``, ``irstd.io.write_image``).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from irstd import io
from irstd.cli.main import app
from irstd.errors import InputError
from irstd.synth import write_dataset


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def one_line(result, code=2, needle="", alone=True):
    """The run ended with ``code`` and one ``irstd: error:`` line holding ``needle``, no traceback
    (``alone``: nothing else on stderr; else the error is the last line)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert len(lines) == 1 or not alone, result.stderr
    assert lines[-1].startswith("irstd: error: ") and needle in lines[-1], result.stderr
    assert "Traceback" not in result.output and sum("irstd: error" in ln for ln in lines) == 1


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def ds(tmp_path) -> Path:
    """A synthetic dataset: 6 scenes of 48x48, test = the last 3."""
    root = tmp_path / "D"
    write_dataset(root, 6, (48, 48), seed=1)
    return root


# --- 1. outputs never replace a dataset -------------------------------------------------------


@pytest.mark.parametrize("option, sub", [("--save-predictions", "images"), ("--save-predictions", "masks"),
                                         ("--out", "splits"), ("--out", "masks/deeper")])
def test_evaluate_refuses_outputs_inside_the_dataset_even_with_overwrite(ds, option, sub):
    before = snapshot(ds)
    result = run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", option, ds / sub, "--overwrite")
    one_line(result, 2, "inside the dataset's")
    assert "--overwrite" not in result.stderr  # no hint at the destructive flag
    assert snapshot(ds) == before


def test_synth_overwrites_only_a_dataset_it_wrote(tmp_path, ds):
    real = tmp_path / "real"
    io.write_image(real / "images" / "a.png", np.full((32, 32), 7, np.uint8))
    io.write_image(real / "masks" / "a.png", np.zeros((32, 32), np.uint8))
    io.write_text(real / "splits" / "test.txt", "a\n")
    before = snapshot(real)
    one_line(run("synth", "--out", real, "--count", "2", "--size", "32", "32", "--overwrite"), 2, "did not write")
    assert snapshot(real) == before
    result = run("synth", "--out", ds, "--count", "2", "--size", "32", "32", "--overwrite")  # its own: replaced
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (ds / "images").iterdir()) == ["synth_0000.png", "synth_0001.png"]


# --- 2. non-finite pixels, input range -------------------------------------------------------


@pytest.fixture()
def nan_tif(tmp_path) -> Path:
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    image[5, 5], image[7, 9] = np.nan, np.inf
    return io.write_image(tmp_path / "nan.tif", image)


@pytest.mark.parametrize("method", ["lcm", "ipi", "nram"])
def test_non_finite_pixels_are_refused_naming_the_file(tmp_path, nan_tif, method):
    one_line(run("detect", nan_tif, "--method", method), 2, f"{nan_tif}: 2 non-finite pixels")
    good = io.write_image(tmp_path / "good.png", np.random.default_rng(1).integers(0, 255, (64, 64), np.uint8))
    result = run("detect", nan_tif, good, "--method", method, "--skip-errors", "--out", tmp_path / "o",
                 "--save-scores", "-f", "json")
    assert result.exit_code == 3, result.stderr
    assert [json.loads(line)["image"] for line in result.stdout.splitlines()] == [str(good)]
    assert sorted(p.name for p in (tmp_path / "o" / "scores").iterdir()) == ["good.png"]  # nothing of nan.tif


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_network_refuses_non_finite_pixels_before_its_model_loads(engine):
    from irstd.methods.network import NetworkMethod

    image = np.ones((32, 32), np.float32)
    image[0, 0] = np.nan
    method = NetworkMethod(name="cgrinet", kind="network", score_rule="", mask_rule="", threshold=0.5,
                           weights=Path("no-such.safetensors"), engine=engine)
    with pytest.raises(InputError, match="1 non-finite pixel"):
        method.run(image)


def test_data_info_says_a_non_finite_frame_is_refused(nan_tif):
    result = run("data", "info", nan_tif, "--json")
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)[0]
    assert facts["non_finite"] == 2 and facts["input_rule"].startswith("refused: 2 non-finite pixels")
    assert np.isfinite([facts["min"], facts["max"]]).all()


def test_a_14_bit_frame_under_a_fixed_scale_is_warned_about(tmp_path):
    from irstd.intensity import mapped_range_warning, to_float
    from irstd.methods.base import Method, MethodOutput
    from irstd.methods.run import run_method

    grey = np.random.default_rng(0).normal(80, 12, (64, 64)).clip(0, 255).astype(np.uint16)  # a dim sky
    counts = 7000 + 10 * grey  # as 14-bit camera counts: 0.43-0.58 of [0, 1] under --bit-depth 14
    assert "spans only" in mapped_range_warning(to_float(counts, 14, "bits"))
    assert mapped_range_warning(to_float(grey.astype(np.uint8))) is None
    assert mapped_range_warning(to_float(counts, None, "minmax")) is None

    class Stub(Method):  # stands for CgriNet: only the mapping attributes matter
        bit_depth = 14
        input_range = "bits"

        def run(self, image):
            return MethodOutput(np.zeros(image.shape), np.zeros(image.shape, bool), None, 0.0)

    path = io.write_image(tmp_path / "raw14.png", counts)
    stub = Stub(name="stub", kind="network", score_rule="", mask_rule="", threshold=0.5)
    (out,) = run_method(stub, [path])
    assert len(out.warnings) == 1 and out.warnings[0].startswith(f"{path}: mapped to [0, 1]")
    stub.input_range = "minmax"
    assert next(run_method(stub, [path])).warnings == []


# --- 3. lost runs -----------------------------------------------------------------------------


def test_train_never_restarts_over_a_run_and_a_failed_start_blocks_nothing(tmp_path, ds):
    pytest.importorskip("torch")
    common = ["--dataset", ds, "--model", "cgrinet_test", "--batch-size", "2", "--crop", "32", "--val-fraction", "0"]
    run1 = tmp_path / "run1"
    assert run("train", *common, "--epochs", "1", "--out", run1).exit_code == 0
    metrics = (run1 / "metrics.csv").read_bytes()
    state = (run1 / "state.safetensors").read_bytes()

    (run1 / "state.safetensors").unlink()  # lost state: refused, the run's files untouched
    one_line(run("train", "--out", run1, "--resume", "--epochs", "2"), 2, "no saved state")
    assert (run1 / "metrics.csv").read_bytes() == metrics
    (run1 / "state.safetensors").write_bytes(state[: len(state) // 3])  # truncated: one line
    one_line(run("train", "--out", run1, "--resume", "--epochs", "2"), 2, "not a readable training state")

    run2 = tmp_path / "run2"  # a teacher it cannot use fails after the folder was made: nothing is left
    bad_teacher = ["--teacher", run1 / "last.safetensors", "--input-range", "minmax"]
    one_line(run("train", *common, "--epochs", "1", "--out", run2, *bad_teacher), 2, "--teacher")
    assert not run2.exists()

    import json as _json

    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(run1 / "last.safetensors"), "numpy") as fh:
        meta = fh.metadata()
    tensors = load_file(str(run1 / "last.safetensors"))
    for value, needle in ((100000, "at most"), ("abc", "cannot build")):
        args = _json.loads(meta["model_args"])
        args["channels"] = value
        save_file(tensors, str(tmp_path / "w.safetensors"), metadata={**meta, "model_args": _json.dumps(args)})
        one_line(run("train", *common, "--epochs", "1", "--out", run2, "--init-weights", tmp_path / "w.safetensors",
                     "--model", ""), 2, needle)
        assert not run2.exists()


def test_an_output_folder_is_claimed_by_one_run(tmp_path):
    from irstd.evaluate import LOCK_FILE, claim_out_dir

    out = tmp_path / "ev"
    with claim_out_dir(out):
        with pytest.raises(InputError, match="another irstd run"):
            with claim_out_dir(out, overwrite=True):
                pass
        (out / "metrics.json").write_text("{}")
    assert (out / "metrics.json").exists() and not (out / LOCK_FILE).exists()
    (out / "metrics.json").unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_FILE).write_text(dead.stdout)  # left by a run that was killed: taken over
    with pytest.raises(RuntimeError):
        with claim_out_dir(out):
            (out / "half.json").write_text("{")
            raise RuntimeError("failed half-way")
    assert list(out.iterdir()) == []  # nothing half-written blocks a re-run


# --- 4. work thrown away ----------------------------------------------------------------------


def test_evaluate_checks_every_pair_before_any_work(ds, tmp_path):
    last = (ds / "splits" / "test.txt").read_text().split()[-1]
    io.write_image(ds / "masks" / f"{last}.png", np.zeros((40, 48), np.uint8))  # size mismatch on the last id
    saved = tmp_path / "saved"
    one_line(run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--save-predictions", saved),
             2, "is 48x48 but its mask")
    assert not saved.exists()  # refused before the method ran on the first image
    result = run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--skip-errors")
    assert result.exit_code == 3 and f"skipped {last}" in result.stderr


def test_ctrl_c_in_evaluate_says_what_was_done_and_keeps_saved_maps(ds, tmp_path, monkeypatch):
    from irstd.metrics import Evaluator

    update = Evaluator.update
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return update(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "update", interrupted)
    saved, out = tmp_path / "saved", tmp_path / "ev"
    result = run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--save-predictions", saved,
                 "--out", out)
    assert result.exit_code == 130
    assert "interrupted after 1 of 3 images" in result.stderr and "2 score map(s) saved are kept" in result.stderr
    assert len(list(saved.glob("*.png"))) == 2 and not out.exists()


def test_evaluate_finds_an_unusable_out_before_any_work(ds, tmp_path):
    (tmp_path / "file").write_text("")
    saved = tmp_path / "saved"
    result = run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--save-predictions", saved,
                 "--out", tmp_path / "file" / "ev")
    one_line(result, 1, "file")
    assert not saved.exists() or not any(saved.iterdir())


# --- 5. memory --------------------------------------------------------------------------------


def test_a_tiff_declaring_too_many_pixels_is_refused_from_its_header(tmp_path):
    import tifffile

    side, tile = 13440, 1344  # 180.6 M pixels, just over the limit; ~130 KB on disk
    path = tmp_path / "bomb.tif"
    zeros = np.zeros((tile, tile), np.uint8)
    tifffile.imwrite(path, (zeros for _ in range((side // tile) ** 2)), shape=(side, side), dtype=np.uint8,
                     tile=(tile, tile), compression="zlib")
    assert path.stat().st_size < 2_000_000 and side * side > io.MAX_PIXELS
    for reader in (io.read_image, io.image_info, lambda p: next(io.read_frames(p))):
        with pytest.raises(InputError, match="over irstd's limit"):
            reader(path)
    one_line(run("detect", path, "--method", "lcm"), 2, "over irstd's limit")


def test_workers_are_capped_at_cpus_and_items():
    from irstd.methods.run import worker_count

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert worker_count(60) == min(60, cpus)
    assert worker_count(60, 1) == 1 and worker_count(2, 0) == 1
    with pytest.raises(InputError):
        worker_count(0)


def test_bad_config_and_split_files_are_one_line(tmp_path, ds):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)) * 8)
    text = tmp_path / "epochs.yaml"
    text.write_text("epochs: abc\n")
    one_line(run("train", "--config", binary, "--dataset", ds, "--out", tmp_path / "r"), 2, "not a config file")
    one_line(run("train", "--config", text, "--dataset", ds, "--out", tmp_path / "r"), 2, "epochs: expected int")
    one_line(run("train", "--config", "/dev/zero", "--dataset", ds, "--out", tmp_path / "r"), 2, "/dev/zero")
    if Path("/dev/zero").exists():
        one_line(run("evaluate", "--dataset", ds, "--split-file", "/dev/zero", "--method", "lcm"), 2, "/dev/zero")


# --- 6. operating-system errors ---------------------------------------------------------------


def test_os_errors_are_one_line_exit_1(ds, tmp_path, monkeypatch):
    image = ds / "images" / "synth_0000.png"
    (tmp_path / "o1").mkdir()
    (tmp_path / "o1" / "masks").write_text("a file where a folder must go")
    one_line(run("detect", image, "--method", "lcm", "--out", tmp_path / "o1", "--save-mask"), 1,
             "masks: exists and is not a folder")
    (tmp_path / "o2" / "masks" / "synth_0000.png").mkdir(parents=True)  # a folder where a file must go
    one_line(run("detect", image, "--method", "lcm", "--out", tmp_path / "o2", "--save-mask", "--overwrite"), 1,
             "synth_0000.png: is a folder")

    import irstd.evaluate

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(irstd.evaluate, "write_per_image_csv", full_disk)
    out = tmp_path / "ev"
    one_line(run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--out", out), 1,
             "per_image.csv: No space left on device", alone=False)
    assert not out.exists()  # no half-written run folder blocks the re-run
    monkeypatch.undo()
    assert run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--out", out).exit_code == 0


# --- 7. smaller -------------------------------------------------------------------------------


def test_paths_are_printed_literally(ds, tmp_path):
    out = tmp_path / "x:fire:[red]y"
    result = run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert f"to {out}" in result.stderr.replace("\n", "")
    tiny = io.write_image(tmp_path / "one:smile:.png", np.zeros((1, 1), np.uint8))
    one_line(run("detect", tiny, "--method", "ipi"), 2, f"{tiny}: ")  # the file, not "image:"


def test_data_check_reports_split_lines_as_written_and_empty_splits(ds):
    (ds / "splits" / "val.txt").write_text("../outside\n")
    (ds / "splits" / "extra.txt").write_text("# nothing\n")
    result = run("data", "check", ds, "--json")
    assert result.exit_code == 1
    problems = {p["kind"]: p for p in json.loads(result.stdout)["problems"]}
    assert problems["split_outside"]["ids"] == ["../outside"] and problems["unknown_ids"]["ids"] == ["../outside"]
    assert problems["empty_split"]["ids"] == ["extra"]


def test_detect_refuses_options_it_would_ignore_and_skips_missing_stdin_paths(ds, tmp_path):
    image = ds / "images" / "synth_0000.png"
    one_line(run("detect", image, "--method", "lcm", "--overlap", "16"), 2, "--overlap: only with --tile")
    one_line(run("detect", image, "--method", "lcm", "--out", tmp_path / "o"), 2, "--out: nothing would be written")
    assert not (tmp_path / "o").exists()
    result = run("detect", "-", "--method", "lcm", "--skip-errors", "-f", "json", input=f"{image}\nmissing.png\n")
    assert result.exit_code == 3 and "missing.png" in result.stderr
    assert len(result.stdout.splitlines()) == 1
    table = run("detect", image, "--method", "lcm")  # tables go to stderr; stdout only for --format json|csv
    assert table.exit_code == 0 and table.stdout == "" and "bbox" in table.stderr


def test_progress_lines_when_stderr_is_not_a_terminal(ds, monkeypatch):
    import irstd.cli._common as common

    monkeypatch.setattr(common, "PLAIN_PROGRESS_SECONDS", 0.0)  # a line at every image, not every 10 s
    result = run("evaluate", "--dataset", ds, "--split", "test", "--method", "lcm")
    assert result.exit_code == 0
    assert "running lcm: 1/3" in result.stderr and "running lcm: 2/3" in result.stderr


def test_frames_a_corrupt_video_loses_are_counted_and_reported(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(np.repeat(rng.integers(0, 255, (48, 64, 1), np.uint8), 3, axis=2))
    writer.release()
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4000] = bytes(4000)  # a damaged stretch in the middle
    path.write_bytes(bytes(data))
    decoded, declared = io.video_frame_counts(path)
    assert declared == 30 and decoded < declared
    result = run("detect", path, "--method", "lcm", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert f"{declared - decoded} of the 30 frames its header declares could not be decoded" in result.stderr
    assert len(result.stdout.splitlines()) == decoded
