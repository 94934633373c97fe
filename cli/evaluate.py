"""``irstd evaluate``: parse options, call :mod:`irstd.evaluate`, render (table on stderr)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from irstd.cli._common import (COMPAT_HELP, EXIT_INTERRUPTED, EXIT_SKIPPED, DatasetDir, MethodName, SplitFile, SplitName,
                               WeightsFile, console, method_options, method_spec, print_skipped, print_warnings,
                               progress)
from irstd.errors import InputError


def _pct(value) -> str:
    from irstd.compare import format_number

    return format_number(value, 100, 2)


def _num(value, scale=1.0, digits=4) -> str:
    from irstd.compare import format_number

    return format_number(value, scale, digits)


def _table(summary: dict, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("IoU %", "nIoU %", "Pd %", "Fa ×10⁻⁶", "Prec %", "Rec %", "F1 %", "AUC", "AP"):
        table.add_column(name, justify="right")
    table.add_row(
        _pct(summary["miou"]),
        _pct(summary["niou"]),
        _pct(summary["pd"]),
        _num(summary["fa"], 1e6, 2),
        _pct(summary["precision"]),
        _pct(summary["recall"]),
        _pct(summary["f1"]),
        _num(summary["auc"]),
        _num(summary["ap"]),
    )
    return table


@method_options
def evaluate(
    dataset: DatasetDir,
    split: SplitName = None,
    split_file: SplitFile = None,
    predictions: Path = typer.Option(
        None, "--predictions", help="Folder of score maps: <id>.png (8/16-bit, value/max) or <id>.npy (float in [0, 1])."
    ),
    method: MethodName = None,
    weights: WeightsFile = None,
    options=None,  # the method options (cli._common.METHOD_OPTIONS)
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes for lcm/ipi/nram."),
    save_predictions: Path = typer.Option(
        None, "--save-predictions", help="With --method: also write each score map as <id>.png (16-bit) into this folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics (plain fractions) and protocol as JSON on stdout."),
    out: Path = typer.Option(
        None, "--out", help="Run folder for metrics.json, per_image.csv, roc.png, pr.png, pd_fa.png."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of an existing --out folder."),
    skip_errors: bool = typer.Option(
        False, "--skip-errors", help="Skip unusable ids (missing/bad/size-mismatched maps), list them, exit 3."
    ),
    compat: str = typer.Option(None, "--compat", help=COMPAT_HELP),
    pd_fa_step: float = typer.Option(
        0.01, "--pd-fa-step", min=0.0, max=1.0, help="Threshold step of the Pd-Fa curve and of the best-threshold search (1/STEP must be whole); 0 skips both (faster)."
    ),
) -> None:
    """Score saved prediction maps, or run a method, against a dataset split (IoU, nIoU, Pd, Fa, P/R/F1, ROC, PR).

    Give --predictions DIR (saved score maps) or --method M (run on the split's images now).
    Classical methods (lcm, ipi, nram) make their masks by their own rule (raw > mean + k·std)
    unless --threshold is given; their curves use the min-max normalised raw map.
    Definitions follow BasicIRSTD at native resolution (docs/metrics.md).

    Exit status: 0 done; 2 unusable input; 3 some ids skipped under --skip-errors.
    """
    from irstd.data import check_outside, check_split_choice, open_dataset
    from irstd.evaluate import check_out_dir, check_pairs, claim_out_dir, jsonable, protocol, report, sweep_thresholds, write_report
    from irstd.protocol import check_compat

    check_split_choice(split, split_file)
    method = method_spec(method, weights)
    _check_choices(predictions, method, save_predictions, options)
    sweep = sweep_thresholds(pd_fa_step)
    size, fa_rule = check_compat(compat)
    meth = None
    if method is not None:
        from irstd.methods import get_method

        meth = get_method(method, options)
    if out is not None and save_predictions is not None and out.resolve() == save_predictions.resolve():
        raise InputError(f"{out}: --out and --save-predictions must be two folders (the report would mix with the maps)")
    ds = open_dataset(dataset)
    for folder, option in ((out, "--out"), (save_predictions, "--save-predictions")):
        if folder is not None:  # never inside images/, masks/ or the split folders, whatever --overwrite says
            check_outside(folder, ds, option)
            check_out_dir(folder, overwrite)
    ids = ds.ids(split=split, split_file=split_file)
    if not ids:
        raise InputError(f"{split_file or split}: no ids in this split")
    saved = None if meth is not None else _saved_predictions(predictions, options.gray)
    problems = check_pairs(ds, ids, predictions=saved, sizes=size is None)  # header checks, before any work
    if problems and not skip_errors:
        raise InputError(next(iter(problems.values())))
    with contextlib.ExitStack() as stack:
        # Both folders are claimed (created, locked against a second run) before any work: an
        # unwritable folder fails now, and a failed or interrupted run leaves no half-written --out.
        if out is not None:
            stack.enter_context(claim_out_dir(out, overwrite))
        if save_predictions is not None:
            stack.enter_context(claim_out_dir(save_predictions, overwrite, option="--save-predictions", keep=True))
        if meth is None:
            source = saved
            threshold = 0.5 if options.threshold is None else options.threshold
        else:
            from irstd.evaluate import MethodScores
            from irstd.methods.run import worker_count

            workers = worker_count(workers, len(ids) - len(problems))
            source = MethodScores(ds, ids, meth, workers=workers, save_to=save_predictions, overwrite=overwrite,
                                  resize=size, problems=problems)
            threshold = 0.5 if meth.threshold is None else meth.threshold  # own rule: the evaluator's τ is unused for masks
        result = _run(ds, ids, source, meth, threshold=threshold, sweep=sweep, fa_rule=fa_rule, resize=size,
                      skip_errors=skip_errors, problems=problems, save_predictions=save_predictions)
        print_warnings(getattr(source, "warnings", []))

        print_skipped([f"{image_id}: {reason}" for image_id, reason in result.skipped])
        if result.evaluator.images == 0:
            raise InputError(f"{predictions or method}: no image could be evaluated ({len(result.skipped)} skipped)")

        proto = protocol(
            dataset=dataset, split=split, split_file=split_file, predictions=predictions, threshold=threshold,
            method=meth, workers=None if meth is None else workers, compat=compat, gray=options.gray,
        )
        extra = None if meth is None else source.timing()
        where = split if split_file is None else str(split_file)
        _print_results(result, f"{dataset} ({where})", meth, threshold, extra, workers, compat)
        if out is not None:
            name = meth.name if meth is not None else (predictions.name or "predictions")
            files = write_report(result, proto, out, name=name, overwrite=overwrite, extra=extra)
            console.print(f"wrote {', '.join(f.name for f in files)} to {out}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(jsonable(report(result, proto, extra)), indent=2, allow_nan=False))
    if result.skipped:
        console.print(f"{len(result.skipped)} of {len(ids)} ids skipped", style="yellow", markup=False)
        raise typer.Exit(EXIT_SKIPPED)


def _saved_predictions(predictions: Path, gray: str):
    from irstd.evaluate import SavedPredictions

    return SavedPredictions(predictions, gray=gray)


def _check_choices(predictions, method, save_predictions, options) -> None:
    """Refuse option combinations that need --method, or neither/both score sources."""
    if (predictions is None) == (method is None):
        raise InputError("--predictions/--method: give exactly one (saved score maps, or a method to run)")
    if save_predictions is not None and method is None:
        raise InputError("--save-predictions: only with --method")
    if options.tile is not None and method is None:
        raise InputError("--tile: only with --method (saved predictions are already computed)")
    if options.tta != "none" and method is None:
        raise InputError("--tta: only with --method (saved predictions are already computed)")


def _run(ds, ids, source, meth, *, threshold, sweep, fa_rule, resize, skip_errors, problems, save_predictions):
    """:func:`irstd.evaluate.evaluate` under a progress display; the method's workers stopped
    after. Ctrl-C: what was done is said, exit 130 (score maps already saved are kept)."""
    from irstd.evaluate import evaluate as run_evaluation
    from irstd.metrics import Evaluator

    done = [0]

    def tick(n, total, _id, update):
        done[0] = n
        update(n)

    label = "evaluating" if meth is None else f"running {meth.name}"
    try:
        with progress(label, len(ids)) as update:
            result = run_evaluation(
                ds,
                ids,
                source,
                threshold=threshold,
                sweep=sweep,
                skip_errors=skip_errors,
                progress=lambda n, total, image_id: tick(n, total, image_id, update),
                evaluator=Evaluator(threshold, sweep=sweep, fa_rule=fa_rule),
                resize=resize,
                problems=problems,
            )
    except KeyboardInterrupt:
        if meth is not None:
            source.close()
        kept = ""
        if save_predictions is not None and meth is not None:
            kept = f"; the {source.saved} score map(s) saved are kept in {save_predictions}"
        console.print(f"irstd: interrupted after {done[0]} of {len(ids)} images evaluated; no report written{kept}",
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if meth is not None:
        source.close()
    return result


def _print_results(result, title: str, meth, threshold: float, timing: dict | None, workers: int,
                   compat: str | None) -> None:
    """The metrics table, the method's time, the best-threshold line and the protocol, on stderr."""
    from irstd.protocol import summary_line

    summary = result.evaluator.summary()
    rule = f"τ = {threshold:g}" if meth is None else f"{meth.name}, mask: {meth.mask_rule}"
    console.print(
        _table(summary, escape(f"{title}: {summary['images']} images, {summary['targets']} targets, {rule}")),
    )
    if meth is not None:
        console.print(
            escape(f"curves: {meth.score_rule}; method time {timing['method_seconds']:.2f} s "
                   f"({1000 * (timing['method_seconds_per_image'] or 0):.1f} ms/image, "
                   f"{workers} worker{'s' * (workers != 1)})"),
            style="dim", highlight=False,
        )
    best = result.evaluator.best_threshold()
    if best is not None:
        console.print(escape(
            f"best threshold (chosen on these images, optimistic): score > {best['threshold']:g}: "
            f"IoU {_pct(best['miou'])}, nIoU {_pct(best['niou'])}, Pd {_pct(best['pd'])}, "
            f"Fa {_num(best['fa'], 1e6, 2)} ×10⁻⁶, F1 {_pct(best['f1'])} %"
        ), highlight=False)
    console.print(escape(summary_line(compat)), style="dim", highlight=False)
