import subprocess
import sys

import pytest
from typer.testing import CliRunner

from irstd.cli.main import app


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "detect", "evaluate", "compare", "data", "synth", "models"):
        assert command in result.output, command


@pytest.mark.parametrize(
    "args, message",
    [
        (["detect", "x.png", "--threshold", "1.5"], "Invalid value for '--threshold'"),
        (["detect", "x.png", "--bogus"], "No such option: --bogus"),
        (["evaluate", "--method", "lcm"], "Missing option '--dataset'"),
        (["train", "--epochs", "x"], "Invalid value for '--epochs'"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("irstd: error: ") and message in lines[0], result.stderr
    assert "╭" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["detect", "evaluate", "compare"])
def test_every_running_command_takes_every_method_option(command):
    import dataclasses

    from irstd.cli._common import METHOD_OPTIONS
    from irstd.methods import MethodOptions

    assert set(METHOD_OPTIONS) == {f.name for f in dataclasses.fields(MethodOptions)}  # one CLI option per field
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in METHOD_OPTIONS:
        assert "--" + name.replace("_", "-") in result.output, (command, name)


@pytest.mark.parametrize("command", [["detect", "x.png"], ["evaluate", "--dataset", "d", "--split", "test"],
                                     ["compare", "--dataset", "d", "--split", "test", "--methods", "lcm", "--out", "o"]])
@pytest.mark.parametrize("option, value", [("--gray", "hsv"), ("--tta", "rot"), ("--input-range", "log"),
                                           ("--tile", "32"), ("--engine", "tvm")])
def test_a_bad_method_option_is_one_line_before_any_work(tmp_path, monkeypatch, command, option, value):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, option, value])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("irstd: error: " + option), result.stderr
    assert not (tmp_path / "o").exists()


def test_usage_error_from_the_installed_command():
    proc = subprocess.run([sys.executable, "-m", "irstd.cli.main", "detect", "x.png", "--threshold", "1.5"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "--threshold" in proc.stderr


def test_readme_from_python_example_runs(tmp_path, monkeypatch):
    """The README's "From Python" block, run as written on a synthetic frame."""
    import re
    from pathlib import Path

    import numpy as np

    from irstd.io import write_image
    from irstd.synth import make_scene

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## From Python\n\n```python\n(.*?)```", readme, re.S).group(1)
    scene, _ = make_scene(np.random.default_rng(1), 128, 160)
    write_image(tmp_path / "frame.png", np.round(scene * 255).astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(compile(block, "README.md", "exec"), {"print": lambda *a: printed.append(a)})
    assert printed and all(len(row) == 3 and {"x", "y"} <= set(row[0]) for row in printed)


def test_import_irstd_is_light():
    code = "import sys, irstd; print(sorted(m for m in ('torch', 'timm', 'scipy', 'onnxruntime') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr
