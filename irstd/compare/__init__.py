"""Compare methods on a dataset split: the library behind ``irstd compare``.

:func:`compare` runs every method on every image of a split, caches each output under the run
folder, evaluates all methods with the one metrics engine (:class:`irstd.metrics.Evaluator`, the
method's own-rule mask passed as ``pred``) and returns a :class:`CompareResult`;
:func:`write_outputs` writes the table (``metrics.csv``, ``metrics.tex``, ``metrics.json``),
``per_image.csv``, the curves, the figures and ``report.md``. Nothing here prints: progress goes
through a callback.

The package:

- :mod:`irstd.compare.run`: :func:`compare`, the method list (:func:`parse_methods`) and the
  result classes;
- :mod:`irstd.compare.cache`: the run folder (:func:`prepare_out`) and the per-method cache
  (:func:`method_key`; its layout is documented there);
- :mod:`irstd.compare.tables`: the table rows, seed groups, Markdown and LaTeX tables;
- :mod:`irstd.compare.report`: the files of a run (:func:`write_outputs`) and ``report.md``.

The rules recorded in ``protocol`` come from :mod:`irstd.protocol`.
"""

from irstd.compare.cache import CACHE_DIR, CACHE_FORMAT, MARKER, OUTPUT_FILES, method_key, prepare_out, run_identity
from irstd.compare.report import (DEFAULT_DPI, DEFAULT_FIGURE_IMAGES, FIGURE_FORMATS, check_figure_options, select_images,
                                  write_outputs)
from irstd.compare.run import (
    CompareResult,
    MethodInfo,
    MethodResult,
    Progress,
    compare,
    parse_labels,
    parse_methods,
)
from irstd.compare.saved import SavedMethod
from irstd.compare.tables import (
    SEED_FIELDS,
    TABLE_FIELDS,
    format_number,
    format_parameters,
    latex_table,
    markdown_table,
    seed_groups,
    table_rows,
)

# Not public: tests build the methods as a compare run does.
from irstd.compare.run import _build_methods  # noqa: F401

__all__ = [
    "CACHE_DIR",
    "CACHE_FORMAT",
    "DEFAULT_DPI",
    "DEFAULT_FIGURE_IMAGES",
    "FIGURE_FORMATS",
    "check_figure_options",
    "MARKER",
    "OUTPUT_FILES",
    "SEED_FIELDS",
    "TABLE_FIELDS",
    "CompareResult",
    "MethodInfo",
    "MethodResult",
    "Progress",
    "SavedMethod",
    "compare",
    "format_number",
    "format_parameters",
    "latex_table",
    "markdown_table",
    "method_key",
    "parse_labels",
    "parse_methods",
    "prepare_out",
    "run_identity",
    "seed_groups",
    "select_images",
    "table_rows",
    "write_outputs",
]
