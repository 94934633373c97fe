"""``irstd models``: list the CgriNet variants with their parameter counts."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from irstd.cli._common import console


def models_command(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON on stdout."),
) -> None:
    """List the CgriNet variants that --model accepts, with parameter counts.

    'params' counts the trainable parameters as built (1 input channel); 'paper count' builds the variant with 3 input channels and adds the unused ImageNet classifier, the way the CgriNet paper counts (26.12M for cgrinet).

    Example: irstd models --json
    """
    from irstd.models import list_models, model_summary

    rows = [model_summary(name) for name in list_models()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="CgriNet variants (irstd train/detect --model NAME)")
    table.add_column("name")
    table.add_column("params", justify="right")
    table.add_column("paper count", justify="right")
    table.add_column("description")
    for r in rows:
        table.add_row(r["name"], f"{r['params']:,}", f"{r['params_paper_convention']:,}", r["description"])
    console.print(table)
