"""The tables of ``irstd compare``: one row per method, seed groups, Markdown and LaTeX.

:func:`table_rows` turns a :class:`~irstd.compare.CompareResult` into rows of
:data:`TABLE_FIELDS` (plain fractions); :func:`seed_groups` averages repeats of one training run;
:func:`markdown_table` and :func:`latex_table` render the paper-style table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from irstd.compare.run import CompareResult

__all__ = [
    "SEED_FIELDS",
    "TABLE_FIELDS",
    "format_number",
    "format_parameters",
    "latex_table",
    "markdown_table",
    "seed_groups",
    "table_rows",
]

#: Columns of ``metrics.csv`` (one row per method), in order.
TABLE_FIELDS = (
    "method",
    "display",
    "kind",
    "auc",
    "ap",
    "miou",
    "niou",
    "precision",
    "recall",
    "f1",
    "pd",
    "fa",
    "seconds_per_image",
    "seconds_per_200_images",
    "parameters",
    "images",
    "targets",
    "hits",
    "false_alarm_pixels",
    "score_rule",
    "mask_rule",
)

def table_rows(result: CompareResult) -> list[dict[str, Any]]:
    """One row per method with :data:`TABLE_FIELDS` (plain fractions; Fa per pixel)."""
    rows = []
    for r in result.methods:
        s = r.evaluator.summary()
        per_image = r.seconds_per_image()
        rows.append(
            {
                "method": r.label,
                "display": r.display,
                "kind": r.info.kind,
                "auc": s["auc"],
                "ap": s["ap"],
                "miou": s["miou"],
                "niou": s["niou"],
                "precision": s["precision"],
                "recall": s["recall"],
                "f1": s["f1"],
                "pd": s["pd"],
                "fa": s["fa"],
                "seconds_per_image": per_image,
                "seconds_per_200_images": 200.0 * per_image,
                "parameters": r.info.parameters,
                "images": s["images"],
                "targets": s["targets"],
                "hits": s["hits"],
                "false_alarm_pixels": s["false_alarm_pixels"],
                "score_rule": r.info.score_rule,
                "mask_rule": r.info.mask_rule,
                "best_threshold": r.evaluator.best_threshold(),
            }
        )
    return rows


#: Training options that change how a run is executed, not what it learns: weights whose configs
#: differ only in these and in the seed are repeats of one experiment.
_EXECUTION_OPTIONS = ("seed", "out", "resume", "workers", "device", "amp", "skip_errors")

#: The metrics averaged over the repeats of a :func:`seed_groups` group.
SEED_FIELDS = ("auc", "ap", "miou", "niou", "precision", "recall", "f1", "pd", "fa")


def seed_groups(result: CompareResult, rows: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Methods that repeat one training run with other seeds, with the mean and spread of their metrics.

    Two CgriNet weight files (written by ``irstd train``) belong together when the ``config`` in
    their metadata is the same but for the seed and the options of :data:`_EXECUTION_OPTIONS`,
    and they are the same checkpoint (``best`` or ``last``). A group needs two or more different
    seeds; one that lists a seed twice is left out (not a set of repeats).

    Parameters
    ----------
    result : CompareResult
    rows : sequence of dict, optional
        :func:`table_rows` of ``result`` (computed when not given).

    Returns
    -------
    list of dict
        One per group, in table order: ``label`` (``<model> × <n> seeds``), ``methods`` (their
        labels), ``seeds``, ``n``, ``mean`` and ``std`` (sample standard deviation, n − 1) of
        each :data:`SEED_FIELDS` metric.
    """
    from irstd.model_file import read_weights_metadata

    rows = table_rows(result) if rows is None else rows
    groups: dict[str, list] = {}
    for r, row in zip(result.methods, rows):
        if r.info.weights is None:
            continue
        meta = read_weights_metadata(r.info.weights)
        try:
            config = json.loads(meta["config"])
        except (KeyError, ValueError):
            continue  # not written by irstd train
        if not isinstance(config, dict) or "seed" not in config:
            continue
        what = {k: v for k, v in config.items() if k not in _EXECUTION_OPTIONS}
        what["checkpoint"] = meta.get("checkpoint")
        groups.setdefault(json.dumps(what, sort_keys=True), []).append((config["seed"], row, meta))
    out = []
    for members in groups.values():
        seeds = [seed for seed, _, _ in members]
        if len(members) < 2 or len(set(seeds)) != len(seeds):
            continue
        values = {f: np.array([float(row[f]) for _, row, _ in members]) for f in SEED_FIELDS}
        model = members[0][2].get("variant") or members[0][2].get("model") or "cgrinet"
        out.append({
            "label": f"{model} × {len(members)} seeds",
            "methods": [row["method"] for _, row, _ in members],
            "seeds": seeds,
            "n": len(members),
            "mean": {f: float(v.mean()) for f, v in values.items()},
            "std": {f: float(v.std(ddof=1)) for f, v in values.items()},
        })
    return out


def format_number(value, scale: float = 1.0, digits: int = 2) -> str:
    """``value × scale`` with ``digits`` decimals; ``"n/a"`` for None, NaN or infinity."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * scale:.{digits}f}"


def format_parameters(n: int | None) -> str:
    """A parameter count as tables show it: ``1.824 M`` from 100 000 on, ``"–"`` for None."""
    if n is None:
        return "–"
    return f"{n / 1e6:.3f} M" if n >= 1e5 else f"{n:,}"


#: Number columns of :func:`markdown_table`: (key, scale, decimals).
_MARKDOWN_COLUMNS = (
    ("auc", 1, 4), ("miou", 100, 2), ("niou", 100, 2), ("f1", 100, 2), ("pd", 100, 2), ("fa", 1e6, 2),
    ("seconds_per_image", 1, 3), ("seconds_per_200_images", 1, 1),
)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The paper-style table (Tables I–II) in Markdown."""
    head = (
        "| method | AUC | IoU (%) | nIoU (%) | F1 (%) | Pd (%) | Fa (×10⁻⁶) | s / image | s / 200 images | parameters |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        "| " + " | ".join([
            r.get("display") or r["method"],
            *(format_number(r[key], scale, digits) for key, scale, digits in _MARKDOWN_COLUMNS),
            format_parameters(r["parameters"]),
        ]) + " |\n"
        for r in rows
    )
    return head + body


def _tex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(c, c) for c in text)


def latex_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The paper-style table as a LaTeX ``tabular`` (booktabs rules), best value per column in bold.

    Columns as :func:`markdown_table` without the per-200-images time; the best value is the
    highest AUC, IoU, nIoU, F1 and Pd and the lowest Fa (ties all bold).
    """
    columns = (("auc", 1, 4, max), ("miou", 100, 2, max), ("niou", 100, 2, max), ("f1", 100, 2, max),
               ("pd", 100, 2, max), ("fa", 1e6, 2, min))
    best = {}
    for key, scale, digits, pick in columns:
        values = [round(r[key] * scale, digits) for r in rows
                  if isinstance(r[key], float | int) and math.isfinite(r[key])]
        best[key] = pick(values) if values else None
    lines = [
        "% irstd compare: AUC = pixel ROC area; IoU dataset-accumulated, nIoU per-image mean (%); F1 pixel level (%);",
        "% Pd = detected / targets (%); Fa = unmatched predicted pixels / all pixels (x 10^-6). Needs \\usepackage{booktabs}.",
        r"\begin{tabular}{lrrrrrrrr}",
        r"\toprule",
        r"Method & AUC & IoU (\%) & nIoU (\%) & F1 (\%) & $P_d$ (\%) & $F_a$ ($10^{-6}$) & s / image & Params \\",
        r"\midrule",
    ]
    for r in rows:
        cells = [_tex(str(r.get("display") or r["method"]))]
        for key, scale, digits, _ in columns:
            text = format_number(r[key], scale, digits)
            if text != "n/a" and round(r[key] * scale, digits) == best[key]:
                text = rf"\textbf{{{text}}}"
            cells.append(text)
        cells.append(format_number(r["seconds_per_image"], 1, 3))
        cells.append("--" if r["parameters"] is None else format_parameters(r["parameters"]))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
