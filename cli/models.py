"""``irstd models``: list the registered networks with their parameter counts."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from irstd.cli._common import console


def models_command(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON on stdout."),
) -> None:
    """List the networks that --model accepts (CgriNet's variants and the field's networks), with parameter counts.

    'params' counts the trainable parameters as built (1 input channel); 'as published' builds the network the way its published count was made (3 input channels where the public code takes RGB; for CgriNet also the unused ImageNet classifier, as the CgriNet paper counts: 26.12M), next to that published count and its source.

    Example: irstd models --json
    """
    from irstd.models import list_models, model_summary

    rows = [model_summary(name) for name in list_models()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Networks (irstd train --model NAME; irstd detect --method FAMILY:FILE)")
    table.add_column("name")
    table.add_column("params", justify="right")
    table.add_column("as published", justify="right")
    table.add_column("published", justify="right")
    table.add_column("loss")
    table.add_column("description")
    for r in rows:
        published = f"{r['published_params']:,}" if r["published_params"] else "-"
        table.add_row(r["name"], f"{r['params']:,}", f"{r['params_paper_convention']:,}", published, r["loss"], r["description"])
    console.print(table)
