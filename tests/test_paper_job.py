"""Tests of benchmarks/paper_job.py, issue 19's GPU job: its epoch fit, the written rule, the parts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from irstd.synth import write_dataset

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("paper_job", ROOT / "benchmarks" / "paper_job.py")
paper_job = sys.modules["paper_job"] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
spec.loader.exec_module(paper_job)


def rows(times, miou=None):
    return [{"epoch": str(e), "time_s": str(t), "val_miou": str(miou[e]) if miou and e in miou else ""}
            for e, t in enumerate(times, start=1)]


def test_fit_epochs_fills_the_budget_from_the_calibration():
    # epochs 2-3 train in 1 s, 4-5 also validate in 1 s more; 20 s of wall -> 13 s of start-up
    epochs, val_every = paper_job.fit_epochs(rows([5, 1, 1, 2, 2]), wall=20, budget=113)
    usable = 0.85 * (113 - 13)
    assert val_every == round(usable / paper_job.VALIDATIONS)  # 85 epochs without validation -> every 3
    assert epochs == int(usable / (1 + 1 / val_every)) == 63
    assert epochs * (1 + 1 / val_every) + 13 <= 113


def test_fit_epochs_needs_the_whole_calibration():
    with pytest.raises(ValueError, match="calibration wrote 3 of 5 epochs"):
        paper_job.fit_epochs(rows([5, 1, 1]), wall=20, budget=100)


def test_run_score_is_the_mean_over_the_last_quarter():
    r = rows([1] * 8, miou={2: 0.1, 4: 0.2, 6: 0.4, 7: 0.6, 8: 0.8})
    assert paper_job.run_score(r) == pytest.approx(0.7)  # epochs 7 and 8 (> 6 of 8)
    assert paper_job.run_score(r[:6]) == pytest.approx(0.4)  # a run stopped after 6 epochs: epoch 6 (> 4.5)
    assert paper_job.run_score(rows([1] * 4)) is None


def test_choose_follows_the_written_rule():
    assert paper_job.choose({"r128": [0.70, 0.72], "r256": [0.74, 0.75]}) == "r256"
    assert paper_job.choose({"r128": [0.70, 0.72], "r256": [0.70, 0.73]}) == "r128"  # within 0.5 points: first
    assert paper_job.choose({"r128": [0.70, None], "r256": [0.60, 0.61]}) == "r256"  # a run never validated
    assert paper_job.choose({"r128": [None], "r256": []}) is None


def test_write_parts_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(paper_job, "PART_BYTES", 10)
    source = tmp_path / "w.safetensors"
    source.write_bytes(bytes(range(95)))
    parts = paper_job.write_parts(source, tmp_path / "p.safetensors")
    assert [p.name for p in parts] == [f"p.safetensors.part-a{c}" for c in "abcdefghij"]
    assert b"".join(p.read_bytes() for p in parts) == source.read_bytes()


def test_job_refuses_a_folder_without_the_split_and_a_used_out(tmp_path):
    script = str(ROOT / "benchmarks" / "paper_job.py")
    done = subprocess.run([sys.executable, script, str(tmp_path), str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and "no splits/dnanet_50_50/train.txt" in done.stderr.splitlines()[-1]
    (tmp_path / "splits" / "dnanet_50_50").mkdir(parents=True)
    (tmp_path / "splits" / "dnanet_50_50" / "train.txt").write_text("a\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    done = subprocess.run([sys.executable, script, str(tmp_path), str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and "out: not empty" in done.stderr.splitlines()[-1]
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep"


@pytest.mark.slow
def test_quick_job_end_to_end(tmp_path):
    """The whole job on the CPU with one tiny recipe and one seed: a candidate in parts and the archive."""
    data = tmp_path / "data"
    write_dataset(data, count=16, size=(48, 64), seed=3, test_fraction=0.25)
    (data / "splits" / "dnanet_50_50").mkdir()
    (data / "splits" / "train.txt").rename(data / "splits" / "dnanet_50_50" / "train.txt")
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "benchmarks" / "paper_job.py"), str(data), str(out), "--quick",
               "--total", "60", "--val-seeds", "0", "--recipe", "q:--crop 32 --batch-size 4", "--work", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cgrinet_paper.safetensors.part-aa", "runs.tar.gz"]
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
        decision = json.load(tar.extractfile("decision.json"))
        val_ids = tar.extractfile("q-v0.val.txt").read().decode().split()
    assert {"q-v0/metrics.csv", "q-v0/ids.json", "q-v0.log", "q-v0.cal.log"} <= set(names)
    assert val_ids and set(val_ids) <= set((data / "splits" / "dnanet_50_50" / "train.txt").read_text().split())
    assert decision["chosen"] == "q" and decision["candidate"]["run"] == "q-v0"
    run = decision["runs"]["q-v0"]
    assert run["epochs_done"] >= 1 and run["score"] is not None
    from irstd.models import load_model

    joined = tmp_path / "paper.safetensors"
    joined.write_bytes((out / "cgrinet_paper.safetensors.part-aa").read_bytes())
    assert load_model(joined).weights_metadata["storage_dtype"] == "float16"
