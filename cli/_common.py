"""Pieces every command shares: the stderr console, exit codes, the error-to-exit-code rule."""

from __future__ import annotations

import typer

try:  # typer >= 0.24 vendors click; only its ClickException is handled by typer's main loop
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses the click package
    import click
from rich.console import Console
from typer.core import TyperGroup

from irstd.errors import InputError

#: Tables, progress and messages go to stderr; stdout carries only results asked for (--json ...).
console = Console(stderr=True)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # usage errors and unusable input
EXIT_SKIPPED = 3  # finished, but some inputs were skipped under --skip-errors

#: Help of --engine (detect, evaluate, compare).
ENGINE_HELP = "What runs CgriNet: auto (PyTorch on a CUDA GPU, ONNX Runtime on the CPU), torch, or onnx (CPU)."
#: Help of --device (detect, evaluate, compare).
DEVICE_HELP = "Where CgriNet runs: auto (the CUDA GPU when present, else the CPU), cpu, cuda or cuda:N."

#: Help of --tile and --overlap (detect, evaluate).
TILE_HELP = (
    "Run on overlapping N×N tiles of bigger frames, stitched by centre crop (at least 64): bounds memory "
    "and IPI/NRAM patch matrices. LCM's map is unchanged (overlap >= 26); CgriNet, IPI and NRAM see tiles "
    "instead of the frame (docs/detect.md)."
)
OVERLAP_HELP = "Pixels shared by neighbouring tiles with --tile, at most half a tile (default 64, or half a smaller tile)."

#: Help of --tta (detect, evaluate, compare).
TTA_HELP = (
    "CgriNet: average the probabilities over flipped copies of each frame: none, flip (4 runs) or "
    "dihedral (8 runs, flips of the frame and of its transpose). Slower; see docs/detect.md for what it gains."
)

#: Help of --gray (detect, evaluate, compare, train).
GRAY_HELP = (
    "How colour frames become grey: auto (luma, but pseudo-colour frames such as jet or rainbow palettes "
    "are refused), luma (always), or r, g, b (one channel)."
)

#: Help of --compat (evaluate, compare).
COMPAT_HELP = (
    "Reproduce another code base's protocol, only to compare with its tables: dnanet (images and masks "
    "resized to 256x256, DNANet's false-alarm count). Default: BasicIRSTD's, at native resolution."
)

#: Help of --input-range (detect, evaluate, compare).
INPUT_RANGE_HELP = (
    "CgriNet input mapping to [0, 1]: auto (8-bit /255; 16-bit /(2**bit-depth - 1) when --bit-depth is "
    "given, else minmax), bits (uint8/255, uint16/(2**bit-depth - 1)), minmax (each frame from its own "
    "min to max: raw camera counts) or fixed:LO,HI. Default: from the weights (packaged: auto)."
)


class InputFailure(click.ClickException):
    """A one-line error about the user's input, exit status 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # noqa: D102 - click API
        click.echo(f"irstd: error: {self.format_message()}", err=True)


def _usage_error(exc: click.exceptions.UsageError) -> typer.Exit:
    """Print a click usage error (bad value, missing or unknown option) as one line; exit 2."""
    where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
    click.echo(f"irstd: error: {exc.format_message()}{where}", err=True)
    return typer.Exit(EXIT_USAGE)


class IrstdGroup(TyperGroup):
    """Typer group with one-line errors, exit 2: :class:`irstd.errors.InputError` and click's usage
    errors (out-of-range values, missing or unknown options; typer would draw a box)."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.exceptions.UsageError as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            # Printed here: typer renders a raised ClickException as a rich box, not one line.
            click.echo(f"irstd: error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.exceptions.UsageError as exc:
            raise _usage_error(exc) from None


def new_app(**kwargs) -> typer.Typer:
    """A Typer app with irstd's conventions (no rich tracebacks, InputError → exit 2)."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(cls=IrstdGroup, pretty_exceptions_enable=False, add_completion=False, **kwargs)
