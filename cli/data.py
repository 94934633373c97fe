"""``irstd data check`` and ``irstd synth``: parse, call :mod:`irstd.data` / :mod:`irstd.synth`, render."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from irstd.cli._common import EXIT_FAILURE, EXIT_OK, console, new_app

data_app = new_app(help="Inspect and validate datasets.")

_MAX_IDS_SHOWN = 12


def _fmt_ids(ids: list[str], details: dict) -> str:
    shown = []
    for i in ids[:_MAX_IDS_SHOWN]:
        shown.append(f"{i} ({details[i]})" if i in details and not str(details[i]).startswith(i) else i)
    more = len(ids) - len(shown)
    return ", ".join(shown) + (f", ... (+{more} more)" if more > 0 else "")


@data_app.command("check")
def check(
    root: Path = typer.Argument(..., help="Dataset folder with images/, masks/ and split files."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON on stdout."),
    decode: bool = typer.Option(False, "--decode", help="Decode every image too (finds corrupt pixel data; slower)."),
) -> None:
    """Validate a dataset: missing files, size mismatches, non-binary or empty masks, split problems.

    Exit status: 0 when no problem was found, 1 when problems were found (listed), 2 when ROOT is
    not a usable dataset.
    """
    from irstd.data import check_dataset

    with console.status(escape(f"checking {root}")):
        report = check_dataset(root, decode_images=decode)
    f = report.facts
    summary = Table(title=escape(f"{report.root}"), show_header=False, title_justify="left")
    summary.add_column("fact", style="bold")
    summary.add_column("value")
    summary.add_row("layout", escape(report.layout))
    summary.add_row("images / masks / pairs", f"{f['images']} / {f['masks']} / {f['pairs']}")
    if f["width_range"]:
        summary.add_row(
            "size (W x H)",
            f"{f['width_range'][0]}-{f['width_range'][1]} x {f['height_range'][0]}-{f['height_range'][1]}"
            f" ({f['distinct_sizes']} distinct)",
        )
    summary.add_row("image types", ", ".join(f"{k}: {v}" for k, v in f["image_dtypes"].items()) or "-")
    summary.add_row("stored as", ", ".join(f"{k}: {v}" for k, v in f["image_colour"].items()) or "-")
    summary.add_row("mask types", ", ".join(f"{k}: {v}" for k, v in f["mask_dtypes"].items()) or "-")
    per = ", ".join(f"{k}: {v}" for k, v in f["targets_per_image"].items())
    summary.add_row("targets (8-connected)", f"{f['targets']} (per image {per})" if per else str(f["targets"]))
    if f["target_area_range"]:
        summary.add_row(
            "target area (px)",
            f"{f['target_area_range'][0]}-{f['target_area_range'][1]}, median {f['target_area_median']:g}",
        )
    summary.add_row("splits", escape(", ".join(f"{k} ({v})" for k, v in f["splits"].items())) or "none")
    console.print(summary)
    if report.problems:
        table = Table(title=f"{len(report.problems)} problem(s)", title_justify="left")
        table.add_column("problem", style="bold red")
        table.add_column("count", justify="right")
        table.add_column("ids")
        for p in report.problems:
            table.add_row(escape(p.message), str(len(p.ids)), escape(_fmt_ids(p.ids, p.details)))
        console.print(table)
    else:
        console.print("[green]no problems found[/green]")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)


@data_app.command("info")
def info(
    files: list[Path] = typer.Argument(..., help="Image files (PNG, TIFF, JPEG, BMP)."),
    bit_depth: int = typer.Option(None, "--bit-depth", help="Significant bits of 16-bit data (e.g. 14)."),
    input_range: str = typer.Option("auto", "--input-range", help="CgriNet's input mapping to show (auto, bits, minmax, fixed:LO,HI; default auto, the packaged weights' rule)."),
    as_json: bool = typer.Option(False, "--json", help="Print the facts as JSON on stdout."),
) -> None:
    """Show how irstd reads image files: size, frames, sample type, value range, and how CgriNet maps them to [0, 1].

    Exit status 2 with a one-line message at the first file that cannot be read.
    """
    from irstd.io import image_facts

    rows = [image_facts(f, bit_depth=bit_depth, input_range=input_range) for f in files]
    table = Table(title_justify="left")
    for col in ("file", "format", "W x H", "frames", "type", "min..max", "to [0, 1]"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["path"]), r["format"], f"{r['width']} x {r['height']}", str(r["frames"]), r["dtype"],
                      f"{r['min']:g}..{r['max']:g}", escape(r["input_rule"]))
    console.print(table)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))


def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (images/, masks/, splits/, synth.json)."),
    count: int = typer.Option(..., "--count", min=1, help="Number of scenes."),
    size: tuple[int, int] = typer.Option(..., "--size", help="Scene size: HEIGHT WIDTH."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (same seed, byte-identical files)."),
    bit_depth: int = typer.Option(8, "--bit-depth", help="Image bit depth: 8 or 16."),
    targets: tuple[int, int] = typer.Option((1, 4), "--targets", help="Number of targets per scene: MIN MAX."),
    scr: tuple[float, float] = typer.Option((3.0, 10.0), "--scr", help="Signal-to-clutter ratio range: LOW HIGH."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the synthetic dataset in a non-empty OUT."),
) -> None:
    """Write synthetic infrared-like scenes with small targets and exact masks, as a dataset."""
    from irstd.synth import write_dataset

    with console.status(escape(f"writing {count} scene(s) to {out}")):
        record = write_dataset(out, count, size, seed, bit_depth=bit_depth, targets=targets, scr=scr,
                               overwrite=overwrite)
    n_targets = sum(len(r["targets"]) for r in record["images"])
    console.print(
        f"wrote {count} scene(s) of {size[0]}x{size[1]} ({bit_depth}-bit), {n_targets} target(s), "
        f"splits train {record['splits']['train']} / test {record['splits']['test']} to {out}",
        markup=False, highlight=False, soft_wrap=True,
    )
