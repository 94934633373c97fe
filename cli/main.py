"""Entry point: ``irstd train | detect | evaluate | compare | data | synth``.

Command functions live in one module each and only parse options, call library code and render.
"""

from __future__ import annotations

import os

# One BLAS thread per process unless the user says otherwise (set before NumPy loads): NumPy's
# and SciPy's OpenBLAS copies both on 2 threads fight over the cores (docs/baselines.md).
# IPI/NRAM raise NumPy's pool alone for their matrix products (irstd.baselines.matmul_threads);
# --workers N runs images in parallel processes, one thread each.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer

from irstd import __version__
from irstd.cli import models as models_cli
from irstd.cli import train as _train
from irstd.cli._common import new_app
from irstd.cli.data import data_app, synth
from irstd.cli.compare import compare
from irstd.cli.detect import detect
from irstd.cli.evaluate import evaluate

app = new_app(help="Infrared small target detection: CgriNet, LCM, IPI, NRAM and the community metrics.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"irstd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Infrared small target detection: CgriNet, LCM, IPI, NRAM and the community metrics."""


# Commands are registered below, one line each (module functions only parse, call and render).
app.command("train")(_train.train)
app.command("detect")(detect)
app.command("evaluate")(evaluate)
app.command("compare")(compare)
app.add_typer(data_app, name="data")
app.command("synth")(synth)
app.command("models")(models_cli.models_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
