"""``irstd detect``: parse options, call :mod:`irstd.detect`, render the targets found."""

from __future__ import annotations

import csv
import json
import sys
from enum import Enum
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from irstd.cli._common import (EXIT_INTERRUPTED, EXIT_SKIPPED, MethodName, WeightsFile, console, method_options, method_spec,
                               print_skipped, print_warnings, progress)
from irstd.errors import InputError

#: Frames above this many pixels (2048²) without --tile get a hint about it (docs/detect.md).
_TILE_HINT_PIXELS = 2048 * 2048

CSV_FIELDS = ("image", "frame", "width", "height", "method", "threshold", "rule", "tile", "overlap", "tta",
              "target", "x", "y", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "area", "peak", "mean")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _choose_method(method: str | None, weights: Path | None) -> str:
    from irstd.methods import classical_names, default_weights

    spec = method_spec(method, weights)
    if spec is None:
        if default_weights() is None:
            raise InputError(
                "--method is required until trained CgriNet weights are packaged "
                f"(choose {', '.join(classical_names())}, or cgrinet with --weights FILE)"
            )
        return "cgrinet"
    return spec


class _Renderer:
    """Writes each detection as it comes (json, csv) or collects rows for one table."""

    def __init__(self, fmt: Format, method) -> None:
        self.fmt = fmt
        self.method = method
        self.rows: list[tuple] = []
        self.images = 0
        self.targets = 0
        self.seconds = 0.0
        self.largest = 0  # pixels of the largest frame
        self.writer = None
        if fmt is Format.csv:
            self.writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
            self.writer.writeheader()

    def add(self, det) -> None:
        from irstd.targets import flatten_target

        self.images += 1
        self.largest = max(self.largest, det.width * det.height)
        self.targets += len(det.targets)
        self.seconds += det.output.seconds
        if self.fmt is Format.json:
            sys.stdout.write(json.dumps(det.record(self.method), allow_nan=False) + "\n")
            sys.stdout.flush()
        elif self.fmt is Format.csv:
            tiling = self.method.tiling() or {}
            head = {"image": str(det.item.path), "frame": det.item.frame, "width": det.width,
                    "height": det.height, "method": self.method.name,
                    "threshold": "" if self.method.threshold is None else self.method.threshold,
                    "rule": self.method.mask_rule,
                    "tile": tiling.get("size", ""), "overlap": tiling.get("overlap", ""),
                    "tta": self.method.tta}
            for t in det.targets:
                row = {**head, **flatten_target(t)}
                row["x"], row["y"] = f"{row['x']:.3f}", f"{row['y']:.3f}"
                row["peak"], row["mean"] = f"{row['peak']:.6g}", f"{row['mean']:.6g}"
                self.writer.writerow(row)
            sys.stdout.flush()
        else:
            where = det.item.label
            if not det.targets:
                self.rows.append((where, f"{det.width}×{det.height}", "–", "", "", "", "", "", ""))
            for t in det.targets:
                b = t["bbox"]
                self.rows.append((
                    where if t["id"] == 1 else "", f"{det.width}×{det.height}" if t["id"] == 1 else "",
                    str(t["id"]), f"{t['centroid']['x']:.1f}", f"{t['centroid']['y']:.1f}",
                    f"{b['x']},{b['y']} {b['width']}×{b['height']}", str(t["area"]),
                    f"{t['peak']:.3f}", f"{t['mean']:.3f}",
                ))

    def finish(self) -> None:
        if self.fmt is not Format.table:
            return
        rule = self.method.mask_rule
        table = Table(title=escape(f"{self.method.name}: {rule}"), title_justify="left", box=box.SIMPLE_HEAD)
        for name, justify in (("image", "left"), ("size", "right"), ("target", "right"), ("x", "right"),
                              ("y", "right"), ("bbox x,y w×h", "left"), ("area", "right"),
                              ("peak", "right"), ("mean", "right")):
            table.add_column(name, justify=justify, no_wrap=name != "image", overflow="fold")
        for row in self.rows:
            table.add_row(*(escape(c) for c in row))
        # On stderr with the progress and the messages: stdout carries only --format json|csv.
        out = Console(stderr=True, emoji=False)
        if not out.is_terminal:  # a file or a pipe: no 80-column squeeze
            out.width = max(out.width, 200)
        out.print(table)


@method_options
def detect(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT",
        help="Image files, videos (mp4, avi, mov, mkv, ...: every frame), folders, glob patterns (quoted is fine), "
        "multi-page TIFFs, or - for paths on stdin.",
    ),
    method: MethodName = None,
    weights: WeightsFile = None,
    options=None,  # the method options (cli._common.METHOD_OPTIONS)
    out: Path = typer.Option(None, "--out", help="Folder for saved files: masks/, scores/, overlays/ (<stem>[_f<frame>].png)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table (for people), json (one object per image per line) or csv (one row per target)."),
    save_mask: bool = typer.Option(False, "--save-mask", help="Write masks/<name>.png (0/255, native size)."),
    save_scores: bool = typer.Option(False, "--save-scores", help="Write scores/<name>.png (16-bit, score × 65535)."),
    save_overlay: bool = typer.Option(False, "--save-overlay", help="Write overlays/<name>.png (image with a box per target)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes for lcm/ipi/nram (results stay in input order)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also read images in sub-folders of folder inputs."),
    skip_errors: bool = typer.Option(False, "--skip-errors", help="Go on past unreadable images, list them at the end, exit 3."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files (never an input)."),
) -> None:
    """Find small targets in your own infrared images: centroid, box, area, peak and mean score.

    Examples: irstd detect frames/ --out out --save-overlay;  irstd detect frames/ --method ipi;  irstd detect 'clip_*.tif' --method lcm --format json | jq .targets;
    find . -name '*.png' | irstd detect - --method nram --format csv > targets.csv

    Exit status: 0 done; 2 unusable input or options; 3 some images skipped under --skip-errors.
    """
    from irstd.detect import collect_inputs, detect as run_detect, plan_items, plan_outputs, save_outputs, Skipped
    from irstd.methods import get_method
    from irstd.methods.run import worker_count

    kinds = [k for k, on in (("mask", save_mask), ("scores", save_scores), ("overlay", save_overlay)) if on]
    if kinds and out is None:
        raise InputError("--out: needed with --save-mask, --save-scores or --save-overlay")
    if out is not None and not kinds:
        raise InputError("--out: nothing would be written there; add --save-mask, --save-scores or --save-overlay")
    spec = _choose_method(method, weights)
    meth = get_method(spec, options)
    stdin_lines = sys.stdin if "-" in inputs else None
    missing: list[str] = []
    paths = collect_inputs(inputs, recursive=recursive, stdin_lines=stdin_lines,
                           missing=missing if skip_errors else None)
    notes: list[str] = []
    items, skipped = plan_items(paths, skip_errors=skip_errors, notes=notes)
    for note in notes:  # frames a corrupt video lost
        console.print(f"irstd: warning: {note}", markup=False, highlight=False, soft_wrap=True)
    skipped[:0] = [Skipped(name, f"{name}: no such file or folder") for name in missing]
    if not items:
        print_skipped([s.reason for s in skipped])
        raise InputError(f"INPUT: no usable image ({len(skipped)} skipped)")
    plan = plan_outputs(items, out, kinds, overwrite=overwrite)
    renderer = _Renderer(fmt, meth)

    warnings: list[str] = []
    done = 0
    try:
        with progress(f"detecting ({meth.name})", len(items)) as update:
            for result in run_detect(meth, items, workers=worker_count(workers, len(items)), skip_errors=skip_errors):
                if isinstance(result, Skipped):
                    skipped.append(result)
                else:
                    save_outputs(result, plan[result.item], overwrite=overwrite, gray=meth.gray)
                    renderer.add(result)
                    warnings += result.output.warnings
                done += 1
                update(done)
    except KeyboardInterrupt:
        console.print(f"irstd: interrupted after {done} of {len(items)} frames (the files written are kept)",
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    renderer.finish()
    print_warnings(warnings)

    done = renderer.images
    console.print(
        escape(f"{meth.name}: {renderer.targets} target{'s' * (renderer.targets != 1)} in {done} "
               f"image{'s' * (done != 1)}; mask: {meth.mask_rule}; method time {renderer.seconds:.2f} s"),
        style="dim", highlight=False,
    )
    if meth.tile is None and renderer.largest > _TILE_HINT_PIXELS:
        console.print("tip: frames this large run faster and in far less memory with --tile 512 (docs/detect.md)",
                      style="dim", highlight=False)
    if kinds and done:
        console.print(escape(f"wrote {', '.join(f'{k}s' if k != 'scores' else k for k in kinds)} to {out}"),
                      highlight=False)
    if skipped:
        print_skipped([s.reason for s in skipped])
        console.print(f"[yellow]{len(skipped)} input{'s' * (len(skipped) != 1)} skipped[/yellow]")
        raise typer.Exit(EXIT_SKIPPED)
