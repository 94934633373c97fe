"""``irstd compare``: parse options, call :mod:`irstd.compare`, render (table on stderr)."""

from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from irstd.cli._common import COMPAT_HELP, DatasetDir, EXIT_SKIPPED, SplitFile, SplitName, console, method_options, print_skipped


def _table(rows: list[dict], title: str) -> Table:
    """The comparison table (customary units: %, 10⁻⁶, seconds)."""
    from irstd.compare import format_number as _num, format_parameters as _params

    table = Table(title=title, title_justify="left")
    table.add_column("method")
    for name in ("AUC", "IoU %", "nIoU %", "F1 %", "Pd %", "Fa ×10⁻⁶", "s/image", "s/200 img", "params"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            escape(r["display"]),
            _num(r["auc"], 1, 4),
            _num(r["miou"], 100),
            _num(r["niou"], 100),
            _num(r["f1"], 100),
            _num(r["pd"], 100),
            _num(r["fa"], 1e6),
            _num(r["seconds_per_image"], 1, 3),
            _num(r["seconds_per_200_images"], 1, 1),
            _params(r["parameters"]),
        )
    return table


class _Reporter:
    """Progress per method and image: a rich bar on a terminal, one plain line per method
    otherwise (logs, CI)."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self.tasks: dict[str, int] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.evaluating = None

    def __call__(self, label: str, done: int, total: int, image_id: str, status: str) -> None:
        if status == "evaluating":
            if self.bar is not None:
                if self.evaluating is None:
                    self.evaluating = self.bar.add_task("evaluating", total=total)
                self.bar.update(self.evaluating, completed=done)
            return
        if status == "start":
            self.counts[label] = {"computed": 0, "cached": 0, "skipped": 0}
            if self.bar is not None:
                self.tasks[label] = self.bar.add_task(escape(label), total=total)
            return
        self.counts[label][status] += 1
        if self.bar is not None:
            self.bar.update(self.tasks[label], completed=done)
            if status == "skipped":
                self.bar.console.print(f"[yellow]{escape(label)}: skipped {escape(image_id)}[/yellow]")
        elif done == total:
            c = self.counts[label]
            console.print(
                escape(f"{label}: {total} images ({c['computed']} computed, {c['cached']} cached, {c['skipped']} skipped)"),
                highlight=False,
            )


@method_options
def compare(
    dataset: DatasetDir,
    split: SplitName = None,
    split_file: SplitFile = None,
    methods: str = typer.Option(
        ..., "--methods",
        help="Comma-separated: classical methods (lcm, ipi, nram, tophat, maxmedian, mpcm, tllcm, pstnn, ...), "
             "networks with packaged weights (cgrinet, acm, alcnet, rdian), NETWORK:FILE (weights of irstd train), "
             "NAME=DIR (your own method's saved maps, one <id>.png/.npy/.tif per image, read as irstd evaluate "
             "--predictions reads them), or a plugin's name (entry point group irstd.methods).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: table, curves, figures, report.md and the cache a rerun reuses."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json (plain fractions) on stdout."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for the classical methods."),
    images: str = typer.Option(
        None, "--images", help="Comma-separated ids shown in the surfaces and qualitative figures (default: hard cases)."
    ),
    label: Optional[list[str]] = typer.Option(
        None, "--label", help='Name of a method in tables, legends and figures, METHOD=TEXT (repeatable), e.g. --label mine="Ours" (default: LCM, Top-Hat, CgriNet, ...).'
    ),
    figure_format: str = typer.Option("png", "--figure-format", help="Figures as png, or as vector pdf or svg (for a paper)."),
    dpi: float = typer.Option(150, "--dpi", help="Resolution of PNG figures (and of images inside vector ones)."),
    options=None,  # the method options (cli._common.METHOD_OPTIONS)
    compat: str = typer.Option(None, "--compat", help=COMPAT_HELP),
    skip_errors: bool = typer.Option(
        False, "--skip-errors", help="Skip images that fail (any method), list them, exit 3."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite",
        help="Replace the outputs of another compare run in --out (other methods, split or options; its cache is kept and reused where it applies), or write into a non-empty other folder.",
    ),
) -> None:
    """Compare methods on a dataset split: the papers' table (AUC, IoU, nIoU, F1, Pd, Fa, time, parameters), ROC/PR/Pd-Fa curves, 3-D surfaces, a qualitative grid and report.md.

    Outputs are cached per method and image under --out: a rerun computes only what is missing, and a killed run resumes. An --out holding another run (other methods, split or options) is refused unless --overwrite, which replaces its outputs and reuses its cache where it applies.

    Classical methods keep their own mask rule (raw map > mean + k·std) unless --threshold is given; their curves use min-max normalised maps. Saved maps (NAME=DIR) and networks: score > --threshold (0.5 by default).

    Exit status: 0 done; 2 unusable input; 3 some images skipped under --skip-errors.
    """
    from irstd.data import check_split_choice
    from irstd.compare import check_figure_options, compare as run_compare, parse_labels, parse_methods, write_outputs

    check_split_choice(split, split_file)
    specs = parse_methods(methods)
    labels = parse_labels(label)
    check_figure_options(figure_format, dpi)  # before any work
    picks = [i.strip() for i in images.split(",") if i.strip()] if images else None

    with _progress() as reporter:  # the folder is checked (and another run's refused) before any work
        result = run_compare(
            dataset, specs, out, split=split, split_file=split_file, options=options, compat=compat,
            workers=workers, skip_errors=skip_errors, overwrite=overwrite, labels=labels, progress=reporter,
        )
    command = shlex.join(["irstd", *sys.argv[1:]]) if sys.argv and Path(sys.argv[0]).name == "irstd" else None
    written = write_outputs(result, images=picks, command=command, figure_format=figure_format, dpi=dpi)

    print_skipped([f"{image_id}: {reason}" for image_id, reason in result.skipped])
    where = split if split_file is None else str(split_file)
    _print_results(result, f"{dataset} ({where})", options.threshold)
    console.print(escape(f"wrote {', '.join(f.name for f in written)} to {out}"), highlight=False, style="dim")
    if as_json:
        typer.echo((out / "metrics.json").read_text().rstrip("\n"))
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} of {len(result.ids)} images skipped[/yellow]")
        raise typer.Exit(EXIT_SKIPPED)


@contextmanager
def _progress():
    """A :class:`_Reporter` for :func:`irstd.compare.compare`, with a live bar on a terminal."""
    if not console.is_terminal:
        yield _Reporter(None)
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:
        yield _Reporter(bar)


def _print_results(result, title: str, threshold: float | None) -> None:
    """The table of the run and the mean ± std of each seed group, on stderr."""
    from irstd.compare import seed_groups, table_rows

    rows = table_rows(result)
    rule = "own rule per method" if threshold is None else f"score > {threshold:g}"
    table = _table(rows, escape(f"{title}: {rows[0]['images']} images, {rows[0]['targets']} targets; masks: {rule}"))
    # In logs (not a terminal) rich assumes 80 columns: print the table unsqueezed.
    (console if console.is_terminal else Console(stderr=True, width=max(console.width, 140))).print(table)
    for g in seed_groups(result, rows):
        m, s = g["mean"], g["std"]
        console.print(escape(
            f"{g['label']} (seeds {', '.join(map(str, g['seeds']))}), mean ± std: IoU {100 * m['miou']:.2f} ± "
            f"{100 * s['miou']:.2f} %, nIoU {100 * m['niou']:.2f} ± {100 * s['niou']:.2f} %, Pd {100 * m['pd']:.2f} ± "
            f"{100 * s['pd']:.2f} %, Fa {1e6 * m['fa']:.2f} ± {1e6 * s['fa']:.2f} ×10⁻⁶"
        ), highlight=False)
