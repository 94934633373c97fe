"""What ``irstd compare`` writes: the table files, the curves, the figures and ``report.md``.

:func:`write_outputs` writes :data:`~irstd.compare.OUTPUT_FILES` into the run folder;
:func:`select_images` picks the hard cases the figures show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irstd import io
from irstd.compare.run import CompareResult
from irstd.compare.tables import (
    TABLE_FIELDS,
    format_number,
    latex_table,
    markdown_table,
    seed_groups,
    table_rows,
)
from irstd.errors import InputError
from irstd.evaluate import csv_text, write_per_image_csv
from irstd.protocol import check_compat, resize_for_compat

__all__ = ["DEFAULT_DPI", "DEFAULT_FIGURE_IMAGES", "FIGURE_FORMATS", "check_figure_options", "select_images", "write_outputs"]

#: How many images the figures show when ``--images`` is not given.
DEFAULT_FIGURE_IMAGES = 3
#: File formats of the figures (``--figure-format``): raster PNG, vector PDF and SVG.
FIGURE_FORMATS = ("png", "pdf", "svg")
#: Resolution of PNG figures unless ``--dpi`` says otherwise.
DEFAULT_DPI = 150


def check_figure_options(figure_format: str, dpi: float) -> None:
    """Refuse a figure format outside :data:`FIGURE_FORMATS` or a resolution outside 20–1200 dpi."""
    if figure_format not in FIGURE_FORMATS:
        raise InputError(f"--figure-format {figure_format}: choose {', '.join(FIGURE_FORMATS)}")
    if not 20 <= dpi <= 1200:
        raise InputError(f"--dpi {dpi:g}: choose a resolution from 20 to 1200")


def select_images(result: CompareResult, count: int = DEFAULT_FIGURE_IMAGES) -> list[tuple[str, str]]:
    """The default pick of hard cases for the figures: ``(id, why)`` pairs.

    In turn, without repeating an id: the image where the methods disagree most (largest
    spread max − min of per-image IoU across methods), the image with the lowest mean per-image
    IoU, and the image with the smallest target (fewest ground-truth pixels per target); then
    again by lowest mean IoU until ``count`` images. Ties go to the earlier id of the split.
    """
    rows = {r.label: {row["id"]: row for row in r.evaluator.per_image} for r in result.methods}
    ids = [i for i in result.evaluated if all(i in v for v in rows.values())]
    if not ids:
        return []
    order = {i: k for k, i in enumerate(ids)}
    ious = {i: [v[i]["iou"] for v in rows.values()] for i in ids}
    first = next(iter(rows.values()))
    spread = {i: max(ious[i]) - min(ious[i]) for i in ids}
    mean = {i: float(np.mean(ious[i])) for i in ids}
    size = {i: first[i]["gt_pixels"] / max(first[i]["targets"], 1) if first[i]["targets"] else math.inf for i in ids}
    rules = [
        ("methods disagree most (IoU spread {v:.2f})", lambda i: (-spread[i], order[i]), spread),
        ("lowest mean IoU ({v:.2f})", lambda i: (mean[i], order[i]), mean),
        ("smallest targets ({v:.0f} px per target)", lambda i: (size[i], order[i]), size),
    ]
    chosen: list[tuple[str, str]] = []
    taken = set()
    k = 0
    while len(chosen) < min(count, len(ids)):
        why, key, values = rules[k] if k < len(rules) else rules[1]
        k += 1
        if len(result.methods) < 2 and why.startswith("methods disagree"):
            continue
        for i in sorted(ids, key=key):
            if i not in taken:
                chosen.append((i, why.format(v=values[i])))
                taken.add(i)
                break
    return chosen


def _figure_rows(result: CompareResult, images: Sequence[str]):
    """``(id, image, gt, {label: (scores, mask)})`` per id shown, at the protocol's size."""
    rows = []
    for image_id in images:
        image = result.dataset.read_image(image_id, gray=result.protocol.get("gray", "auto"))
        gt = result.dataset.read_mask(image_id)
        size, _ = check_compat(result.protocol.get("compat"))
        if size is not None:  # the maps are at the protocol's size
            image = resize_for_compat(image, size)
            gt = resize_for_compat(gt, size, mask=True)
        digest = io.sha256_file(result.dataset.image_path(image_id))
        outputs = {r.label: r.info.output(image_id, digest) for r in result.methods}
        rows.append((image_id, image, gt, outputs))
    return rows


def write_outputs(
    result: CompareResult,
    *,
    images: Sequence[str] | None = None,
    command: str | None = None,
    figure_format: str = "png",
    dpi: float = DEFAULT_DPI,
) -> list[Path]:
    """Write the table, curves, figures and ``report.md`` into ``result.out``.

    Parameters
    ----------
    result : CompareResult
    images : sequence of str, optional
        Ids shown in ``surfaces`` and ``qualitative`` (default: :func:`select_images`).
    command : str, optional
        The command line, quoted in the report.
    figure_format : {"png", "pdf", "svg"}, optional
        The figures' file format (PDF and SVG are vector figures a paper can print).
    dpi : float, optional
        Resolution of PNG figures (and of the images inside vector ones).

    Returns
    -------
    list of Path
        Files written (atomically), in :data:`OUTPUT_FILES` order.
    """
    from irstd.figures import plot_qualitative, plot_surfaces
    from irstd.metrics.plots import plot_pd_fa, plot_pr, plot_roc

    check_figure_options(figure_format, dpi)
    out = result.out
    ext = f".{figure_format}"
    shown = {r.label: r.display for r in result.methods}
    if images:
        unknown = [i for i in images if i not in result.evaluated]
        if unknown:
            raise InputError(
                f"--images: {', '.join(map(repr, unknown))} not among the evaluated ids of the split"
            )
        picks = [(i, "chosen with --images") for i in images]
    else:
        picks = select_images(result)
    rows = table_rows(result)
    groups = seed_groups(result, rows)
    document = {
        "protocol": result.protocol,
        "command": command,
        "methods": [
            dict(row, **{"info": r.info.as_dict(), "computed": len(r.computed), "cached": len(r.cached)})
            for row, r in zip(rows, result.methods)
        ],
        "seed_groups": groups,
        "figure_images": [{"id": i, "why": why} for i, why in picks],
        "skipped": [{"id": i, "error": e} for i, e in result.skipped],
        "pd_fa_curves": {
            r.label: {"thresholds": c.thresholds, "pd": c.pd, "fa": c.fa}
            for r in result.methods
            if r.evaluator.sweep is not None
            for c in [r.evaluator.pd_fa_curve()]
        },
    }
    per_image = [dict(row, method=r.label) for r in result.methods for row in r.evaluator.per_image]
    written = [
        io.write_text(out / "metrics.csv", csv_text(rows, TABLE_FIELDS)),
        io.write_text(out / "metrics.tex", latex_table(rows)),
        io.write_json(out / "metrics.json", document),
        write_per_image_csv(out / "per_image.csv", per_image, method=True),
        plot_roc({r.display: r.evaluator.roc() for r in result.methods}, out / f"roc{ext}", dpi=dpi),
        plot_pr({r.display: r.evaluator.pr() for r in result.methods}, out / f"pr{ext}", dpi=dpi),
    ]
    if all(r.evaluator.sweep is not None for r in result.methods):
        written.append(plot_pd_fa({r.display: r.evaluator.pd_fa_curve() for r in result.methods}, out / f"pd_fa{ext}",
                                  dpi=dpi))
    figure_rows = _figure_rows(result, [i for i, _ in picks])
    if figure_rows:
        written.append(
            plot_surfaces(
                [(i, image, {shown[m]: s for m, (s, _) in o.items()}) for i, image, _, o in figure_rows],
                out / f"surfaces{ext}", dpi=dpi,
            )
        )
        written.append(
            plot_qualitative(
                [(i, image, gt, {shown[m]: k for m, (_, k) in o.items()}) for i, image, gt, o in figure_rows],
                out / f"qualitative{ext}", dpi=dpi,
            )
        )
    written.append(io.write_text(out / "report.md", _report_md(result, rows, picks, command, written, groups)))
    return written


def _best_threshold_md(rows) -> list[str]:
    """The best-threshold table of ``report.md`` (no lines without a Pd–Fa sweep)."""
    best = [(r["method"], r["best_threshold"]) for r in rows if r.get("best_threshold")]
    if not best:
        return []
    lines = [
        "## At each method's best threshold (optimistic)",
        "",
        "Dai et al.'s protocol for classical methods, for comparison with papers that report it: "
        "scores (min–max maps, probabilities) > τ, τ the sweep threshold with the highest IoU on "
        "these very images — chosen on the test data, so an upper bound, not a deployable setting.",
        "",
        "| method | τ | IoU (%) | nIoU (%) | F1 (%) | Pd (%) | Fa (×10⁻⁶) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m} | {b['threshold']:.2f} | "
        + " | ".join(format_number(b[key], scale) for key, scale in
                     (("miou", 100), ("niou", 100), ("f1", 100), ("pd", 100), ("fa", 1e6)))
        + " |"
        for m, b in best
    ]
    return lines + [""]


def _seed_groups_md(groups) -> list[str]:
    """The mean ± std table of ``report.md`` (no lines without groups)."""
    if not groups:
        return []
    lines = [
        "## Repeats with other seeds (mean ± std)",
        "",
        "Weights from the same training configuration but for the seed (and how the run was executed), "
        "same checkpoint kind; std = sample standard deviation (n − 1).",
        "",
        "| group | seeds | AUC | IoU (%) | nIoU (%) | F1 (%) | Pd (%) | Fa (×10⁻⁶) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in groups:
        cells = [f"{format_number(g['mean'][f], s, d)} ± {format_number(g['std'][f], s, d)}"
                 for f, s, d in (("auc", 1, 4), ("miou", 100, 2), ("niou", 100, 2), ("f1", 100, 2), ("pd", 100, 2),
                                 ("fa", 1e6, 2))]
        lines.append(f"| {g['label']} ({', '.join(g['methods'])}) | {', '.join(map(str, g['seeds']))} | "
                     + " | ".join(cells) + " |")
    return [*lines, ""]


def _figures_md(names, picks) -> list[str]:
    """The figures section of ``report.md`` (``names``: the files written; ``picks``: the ids shown)."""
    from irstd.figures import SURFACE_SIDE
    from irstd.metrics.plots import DEGENERATE_FA, MARKED_THRESHOLDS

    ext = next((Path(n).suffix for n in names if n.startswith("roc.")), ".png")
    lines = ["## Figures", ""]
    if f"roc{ext}" in names:
        lines += ["Pixel-level ROC (AUC in the legend) and precision–recall (AP in the legend):", "",
                  f"![ROC](roc{ext}) ![PR](pr{ext})", ""]
    if f"pd_fa{ext}" in names:
        lines += [f"Target-level Pd–Fa over thresholds 0 to 1 on the scores, points in Fa order, thresholds "
                  f"{', '.join(f'{m:g}' for m in MARKED_THRESHOLDS)} marked; sweep points whose false alarms "
                  f"cover {DEGENERATE_FA:.0%} of the frame or more (threshold 0) are left out:", "",
                  f"![Pd-Fa](pd_fa{ext})", ""]
    if picks:
        lines += ["Images shown in the two figures below:", ""]
        lines += [f"- `{i}`: {why}" for i, why in picks]
        lines += [
            "",
            "3-D grey-level surfaces of the input (min–max scaled) and of each method's scores "
            "(min–max maps of classical methods, probabilities of networks; block maximum down to "
            f"at most {SURFACE_SIDE} × {SURFACE_SIDE} samples so that small peaks survive):",
            "",
            f"![surfaces](surfaces{ext})",
            "",
            "Qualitative results: input, ground truth, each method's mask; green = predicted "
            "components matched to a target, orange = false-alarm components, red circle = missed "
            "target (same matching as Pd/Fa); each panel's inset magnifies the outlined window around "
            "the row's first target:",
            "",
            f"![qualitative](qualitative{ext})",
            "",
        ]
    return lines


def _report_md(result: CompareResult, rows, picks, command, written, groups=()) -> str:
    """The text of ``report.md``: run, table, rules (from ``result.protocol``), figures, skips.

    Parameters
    ----------
    result : CompareResult
    rows : list of dict
        :func:`~irstd.compare.table_rows` of ``result``.
    picks : list of (str, str)
        Ids of the figures and why each was chosen.
    command : str or None
        The command line.
    written : list of Path
        Files written so far (the figures that exist are shown).
    groups : list of dict, optional
        :func:`~irstd.compare.seed_groups`.
    """
    p = result.protocol
    names = {w.name for w in written}
    where = f"split `{result.split}`" if result.split else f"split file `{result.split_file}`"
    lines = [
        "# irstd compare",
        "",
        f"- Command: `{command}`" if command else "- Command: (library call)",
        f"- Dataset: `{p['dataset']}`, {where}: {p['ids']} ids (SHA-256 of the id list `{p['ids_sha256'][:16]}…`), "
        f"{p['evaluated']} evaluated, {len(result.skipped)} skipped",
        f"- Masks: {p['mask_protocol']}; threshold option: {'none' if p['threshold'] is None else p['threshold']}"
        + ("" if p["bit_depth"] is None else f"; bit depth {p['bit_depth']}")
        + ("" if p.get("input_range") is None else f"; input range {p['input_range']}"),
        f"- Resolution: {p['resolution']}",
        f"- Date: {p['date']}; versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items() if v),
        "",
        "## Results",
        "",
        markdown_table(rows),
        f"Images: {rows[0]['images']}, targets: {rows[0]['targets']}. AUC = area under the pixel ROC of the "
        "scores; IoU = dataset-accumulated, nIoU = mean per image; F1 = pixel level; Pd = targets "
        f"detected / targets; Fa = {p['fa_rule']}. "
        f"Time: {p['time_rule']}.",
        "",
        *_seed_groups_md(groups),
        *_best_threshold_md(rows),
        "## Rules per method",
        "",
        p["score_protocol"] + " The table states which rule each row used:",
        "",
        "| method | kind | score rule (curves) | mask rule (IoU, F1, Pd, Fa) | weights |",
        "|---|---|---|---|---|",
    ]
    for r in result.methods:
        sha = r.info.key.get("weights_sha256")
        weights = f"`{r.info.weights}` (SHA-256 `{sha[:16]}…`)" if r.info.weights and sha else "–"
        lines.append(f"| {r.display} | {r.info.kind} | {r.info.score_rule} | {r.info.mask_rule} | {weights} |")
    lines += [
        "",
        f"Target matching: {p['matching']}. Fa: {p['fa_rule']}. Curves: {p['curves']}. "
        f"Ground truth: {p['gt_binarisation']}.",
        "",
    ]
    lines += _figures_md(names, picks)
    lines += ["## Skipped images", ""]
    if result.skipped:
        lines += [f"- `{i}`: {e}" for i, e in result.skipped]
    else:
        lines.append("None.")
    lines += [
        "",
        "## Files",
        "",
        "`metrics.csv`, `metrics.tex` (the table as a LaTeX tabular, booktabs), `metrics.json` (table, "
        "protocol, Pd–Fa curves), `per_image.csv` (per method "
        "and image), the figures above; `cache/` holds every method's scores (`.npy`, lossless), "
        "masks (`.png`) and times per image, reused by a rerun.",
        "",
    ]
    return "\n".join(lines)
