"""Pieces every command shares: the stderr console, exit codes, the error-to-exit-code rule, and
the method options (:func:`method_options`, :func:`method_spec`)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.24 vendors click; only its ClickException is handled by typer's main loop
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses the click package
    import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from irstd.errors import InputError

#: Tables, progress and messages go to stderr; stdout carries only results asked for (--json ...).
#: No emoji codes: a path or label with ``:fire:`` in it is printed as it is.
console = Console(stderr=True, emoji=False)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # usage errors and unusable input
EXIT_SKIPPED = 3  # finished, but some inputs were skipped under --skip-errors
EXIT_INTERRUPTED = 130  # Ctrl-C (the shell's convention for SIGINT)

#: Seconds between the plain progress lines printed when stderr is not a terminal.
PLAIN_PROGRESS_SECONDS = 10.0

#: Skipped inputs listed one by one (the rest are counted): :func:`print_skipped`.
MAX_SKIPPED_SHOWN = 20

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


#: Help of --threshold (detect, evaluate, compare).
THRESHOLD_HELP = (
    "Mask = score > T (in [0, 1]; lcm/ipi/nram: on their min-max normalised maps). Default: 0.5 for CgriNet "
    "and saved --predictions; the method's own rule (raw map > mean + k·std) for lcm/ipi/nram."
)
BIT_DEPTH_HELP = "CgriNet: significant bits of 16-bit images (default: from the weights, else 16)."

#: The options of a method (:class:`irstd.methods.MethodOptions`, field by field) that detect,
#: evaluate and compare take: ``name: (Annotated type, default)``. A command asks for them all
#: with one ``options`` parameter (:func:`method_options`).
METHOD_OPTIONS = {
    "threshold": (Annotated[float | None, typer.Option("--threshold", min=0.0, max=1.0, help=THRESHOLD_HELP)], None),
    "bit_depth": (Annotated[int | None, typer.Option("--bit-depth", min=1, max=16, help=BIT_DEPTH_HELP)], None),
    "input_range": (Annotated[str | None, typer.Option("--input-range", help=INPUT_RANGE_HELP)], None),
    "gray": (Annotated[str, typer.Option("--gray", help=GRAY_HELP)], "auto"),
    "device": (Annotated[str, typer.Option("--device", help=DEVICE_HELP)], "auto"),
    "engine": (Annotated[str, typer.Option("--engine", help=ENGINE_HELP)], "auto"),
    "tile": (Annotated[int | None, typer.Option("--tile", help=TILE_HELP)], None),
    "overlap": (Annotated[int | None, typer.Option("--overlap", help=OVERLAP_HELP)], None),
    "tta": (Annotated[str, typer.Option("--tta", help=TTA_HELP)], "none"),
}

#: --dataset, --split and --split-file, as evaluate and compare take them
#: (:func:`irstd.data.check_split_choice` wants exactly one of the two splits).
DatasetDir = Annotated[Path, typer.Option("--dataset", help="Dataset folder (images/, masks/, split files).")]
SplitName = Annotated[str | None, typer.Option("--split", help="Split name, e.g. test or dnanet_50_50/test.")]
SplitFile = Annotated[Path | None, typer.Option("--split-file", help="Any file with one id per line.")]

#: --method and --weights, as detect and evaluate take them (:func:`method_spec` joins them).
MethodName = Annotated[str | None, typer.Option(
    "--method", "-m",
    help="A network with packaged weights (cgrinet, acm, alcnet, rdian), NETWORK:FILE (any registered network, e.g. cgrinet:FILE, dnanet:FILE), a classical method (lcm, ipi, nram, tophat, maxmedian, mpcm, tllcm, pstnn, rlcm, wslcm, mslcm, mspcm, ript) or an installed plugin. detect's default: cgrinet.",
)]
WeightsFile = Annotated[Path | None, typer.Option(
    "--weights", help="Network weights: an irstd .safetensors file (any registered network: its --method family is read from the file), or 'paper' (if packaged).",
)]


def method_options(command):
    """Give a Typer command every option of :data:`METHOD_OPTIONS` in place of its ``options``
    parameter; the command receives them as one :class:`irstd.methods.MethodOptions` (checked:
    a bad value is a one-line error, exit 2)."""
    signature = inspect.signature(command, eval_str=True)
    params = []
    for p in signature.parameters.values():
        if p.name != "options":
            params.append(p)
            continue
        params += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind, default=default)
                   for name, (kind, default) in METHOD_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(**kwargs):
        from irstd.methods import MethodOptions

        options = MethodOptions(**{name: kwargs.pop(name) for name in METHOD_OPTIONS})
        if options.overlap is not None and options.tile is None:  # it would be ignored silently
            raise InputError("--overlap: only with --tile (it is the overlap of neighbouring tiles)")
        return command(**kwargs, options=options)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def method_spec(method: str | None, weights: Path | None) -> str | None:
    """The method specification of ``--method`` and ``--weights``: ``FAMILY:FILE`` for weights
    (``FAMILY`` from ``--method`` when it names a network family, else the architecture the file
    holds), else ``method`` (``None``: neither was given)."""
    if weights is None:
        return method
    from irstd.models.registry import families

    if method is not None and method.lower() not in families():
        raise InputError(f"--weights: only used with a network (--method {', '.join(families())}), not {method!r}")
    if method is None:
        from irstd.model_file import architecture_of, read_weights_metadata

        method = architecture_of(read_weights_metadata(weights)).lower() if Path(weights).is_file() else "cgrinet"
    return f"{method.lower()}:{weights}"


def print_skipped(reasons: list[str]) -> None:
    """List skipped inputs on stderr, one line each (at most :data:`MAX_SKIPPED_SHOWN`, then a count)."""
    for reason in reasons[:MAX_SKIPPED_SHOWN]:
        console.print(f"[yellow]skipped[/yellow] {escape(reason)}", highlight=False)
    if len(reasons) > MAX_SKIPPED_SHOWN:
        console.print(f"[yellow]... and {len(reasons) - MAX_SKIPPED_SHOWN} more skipped[/yellow]")


@contextlib.contextmanager
def progress(label: str, total: int, *, interval: float | None = None) -> Iterator[Callable[[int], None]]:
    """Progress of ``total`` items on stderr; yields ``update(done)``.

    On a terminal: a transient rich bar. Otherwise (a log file, a pipe, a CI job): a plain line
    ``<label>: <done>/<total> (<elapsed> s)`` at most every ``interval`` seconds, so that a
    long run is seen to progress (``interval`` default: :data:`PLAIN_PROGRESS_SECONDS`).
    """
    interval = PLAIN_PROGRESS_SECONDS if interval is None else interval
    if console.is_terminal:
        with Progress(TextColumn(escape(label)), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda done: bar.update(task, completed=done)
        return
    start = time.monotonic()
    last = [start]

    def update(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= interval and done < total:
            last[0] = now
            console.print(f"{label}: {done}/{total} ({now - start:.0f} s)", markup=False, highlight=False)

    yield update


def print_warnings(messages: list[str]) -> None:
    """Warn once per run: the first message on stderr, and how many more frames had one."""
    if not messages:
        return
    more = len(messages) - 1
    tail = f" ({more} more frame{'s' * (more != 1)} like this)" if more else ""
    console.print(f"irstd: warning: {messages[0]}{tail}", markup=False, highlight=False, soft_wrap=True)


def os_error_text(exc: OSError) -> str:
    """An operating-system error as ``<path>: <cause>`` (one line)."""
    cause = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {cause}"
    return cause


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
        except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): stop quietly
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            raise typer.Exit(EXIT_FAILURE) from None
        except OSError as exc:
            # A full disk, a read-only folder, a file where a folder must go: one line, exit 1.
            click.echo(f"irstd: error: {os_error_text(exc)}", err=True)
            raise typer.Exit(EXIT_FAILURE) from None


def new_app(**kwargs) -> typer.Typer:
    """A Typer app with irstd's conventions (no rich tracebacks, InputError → exit 2)."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(cls=IrstdGroup, pretty_exceptions_enable=False, add_completion=False, **kwargs)
