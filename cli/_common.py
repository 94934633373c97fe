"""Pieces every command shares: the stderr console, exit codes, the error-to-exit-code rule."""

from __future__ import annotations

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from irstd.errors import InputError

try:  # typer >= 0.22 vendors its own click: its main loop catches only that ClickException
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover - older typer running on the click package
    _ClickException = click.ClickException

#: Tables, progress and messages go to stderr; stdout carries only results asked for (--json ...).
console = Console(stderr=True)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # usage errors and unusable input
EXIT_SKIPPED = 3  # finished, but some inputs were skipped under --skip-errors


class InputFailure(_ClickException):
    """A one-line error about the user's input, exit status 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # noqa: D102 - click API
        typer.echo(f"irstd: error: {self.format_message()}", err=True)


class IrstdGroup(TyperGroup):
    """Typer group that turns :class:`irstd.errors.InputError` into a one-line error, exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            # Printed here and turned into typer.Exit: typer's main loop would render a
            # ClickException as a rich panel instead of one line.
            typer.echo(f"irstd: error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None


def new_app(**kwargs) -> typer.Typer:
    """A Typer app with irstd's conventions (no rich tracebacks, InputError → exit 2)."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(cls=IrstdGroup, pretty_exceptions_enable=False, add_completion=False, **kwargs)
