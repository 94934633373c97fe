"""The evaluation protocol, written once: every rule that ``irstd evaluate`` and ``irstd compare``
record next to their numbers, and the ``--compat`` protocols of other code bases.

Each rule string is built from the constant it states (:data:`irstd.metrics.MATCH_DISTANCE`,
:data:`irstd.metrics.CURVE_BINS`, ...), so that what is recorded is what was computed.
:func:`rules` gives the fields common to both commands; :func:`source` the dataset and split
fields. :data:`COMPAT` lists the other protocols; :func:`check_compat`, :func:`resize_for_compat`
and :func:`read_for_compat` apply them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from irstd import io
from irstd.errors import InputError
from irstd.metrics import CURVE_BINS, MATCH_DISTANCE

__all__ = [
    "COMPAT",
    "GT_BINARISATION",
    "MIOU_RULE",
    "NATIVE_FA_RULE",
    "SCORE_PROTOCOL",
    "TIME_RULE",
    "check_compat",
    "curves_rule",
    "fa_rule_text",
    "input_scale_rule",
    "mask_protocol",
    "matching_rule",
    "read_for_compat",
    "resize_for_compat",
    "resolution_rule",
    "rules",
    "source",
    "summary_line",
    "threshold_rule",
]

#: Other code bases' evaluation protocols that ``--compat NAME`` reproduces, only to compare with
#: their published tables: the evaluation size (images and masks resized to size × size) and
#: the false-alarm rule (:data:`irstd.metrics.FA_RULES`).
COMPAT = {"dnanet": {"size": 256, "fa_rule": "dnanet"}}

#: The false-alarm rule (:data:`irstd.metrics.FA_RULES`) of the native protocol (BasicIRSTD's).
NATIVE_FA_RULE = "basicirstd"

#: How a ground-truth mask is binarised (:func:`irstd.metrics.as_mask`).
GT_BINARISATION = (
    "mask > half its full value (0/255 masks: > 127; 0/65535 masks: > 32767; float masks: > 0.5; "
    "0/1 masks: value 1)"
)

#: The dataset IoU (``miou``; :data:`irstd.metrics.EPS` is ``np.spacing(1)``).
MIOU_RULE = "dataset-accumulated intersection / (union + eps), eps = np.spacing(1)"

#: Which output of a method each metric of ``irstd compare`` uses.
SCORE_PROTOCOL = (
    "Classical maps are min-max normalised for curves and thresholded by their own rule for "
    "masks; CgriNet scores are its probabilities. IoU, nIoU, precision, recall, F1, Pd and Fa "
    "come from each method's mask; AUC, AP and the curves from its scores."
)

#: How ``irstd compare`` times the methods.
TIME_RULE = (
    "method wall time per image (file reading excluded), mean over the evaluated images, "
    "as measured when the output was computed (cached times are reused; with several worker "
    "processes the workers share the CPU); per 200 images = 200 x mean"
)


def check_compat(compat: str | None) -> tuple[int | None, str]:
    """The evaluation size and false-alarm rule of a protocol.

    Parameters
    ----------
    compat : str or None
        None for the native protocol (BasicIRSTD's), else a :data:`COMPAT` name.

    Returns
    -------
    size : int or None
        Images and masks are resized to ``size × size``; None: native resolution.
    fa_rule : str
        One of :data:`irstd.metrics.FA_RULES`.

    Raises
    ------
    irstd.errors.InputError
        An unknown protocol name.
    """
    if compat is None:
        return None, NATIVE_FA_RULE
    if compat not in COMPAT:
        raise InputError(f"--compat: expected one of {', '.join(COMPAT)}, got {compat!r}")
    return COMPAT[compat]["size"], COMPAT[compat]["fa_rule"]


def resize_for_compat(array: np.ndarray, size: int, *, mask: bool = False) -> np.ndarray:
    """DNANet's test geometry: an image resized to ``size × size`` bilinearly, a mask by nearest
    neighbour (Pillow's ``BILINEAR`` / ``NEAREST``, as DNANet's data loader).

    Parameters
    ----------
    array : (H, W) ndarray
        A grey image (uint8, uint16 or float32; DNANet resizes its RGB copy of 8-bit frames, the
        same values up to rounding) or, with ``mask``, a boolean mask.
    size : int
    mask : bool, optional

    Returns
    -------
    (size, size) ndarray
        Same dtype as the input (uint16 rounded back), boolean for a mask.
    """
    from PIL import Image

    a = np.asarray(array)
    if mask:
        m = Image.fromarray(a.astype(np.uint8) * np.uint8(255), "L").resize((size, size), Image.NEAREST)
        return np.asarray(m) > 127
    if a.dtype == np.uint8:
        return np.asarray(Image.fromarray(a, "L").resize((size, size), Image.BILINEAR))
    out = np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((size, size), Image.BILINEAR))
    if a.dtype == np.uint16:
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return out.astype(np.float32)


def read_for_compat(item, size: int, gray: str = "auto"):
    """An image path read (:func:`irstd.io.read_image`) and resized by :func:`resize_for_compat`.

    Made as an item for :func:`irstd.methods.run_method`: an error (raised, or passed in as
    ``item``) is returned, so that the method's run reports it in the image's place.
    """
    if isinstance(item, InputError):
        return item
    try:
        return resize_for_compat(io.read_image(item, gray=gray), size)
    except InputError as exc:
        return exc


def resolution_rule(compat: str | None) -> str:
    """How a protocol treats image sizes (``compat``: None or a :data:`COMPAT` name)."""
    if compat is None:
        return "native"
    size = COMPAT[compat]["size"]
    return (f"resized to {size}x{size} ({compat}: bilinear image, nearest-neighbour mask; Pd's distance "
            "and Fa's denominator in resized pixels)")


def fa_rule_text(compat: str | None) -> str:
    """The false-alarm rule of a protocol (``compat``: None or a :data:`COMPAT` name)."""
    if check_compat(compat)[1] == NATIVE_FA_RULE:
        return "pixels of unmatched predicted components / all pixels (BasicIRSTD)"
    return ("pixels of unmatched predicted components whose area differs from every matched component's "
            f"/ all pixels ({compat}'s code)")


def matching_rule() -> str:
    """How predicted components are matched to targets (Pd, and which pixels Fa counts)."""
    return (
        f"8-connected components; unweighted centroids; Euclidean centroid distance < "
        f"{MATCH_DISTANCE:g} px; greedy first-found in label order, each component used once"
    )


def curves_rule() -> str:
    """How the pixel ROC and PR curves are computed (:data:`irstd.metrics.CURVE_BINS` levels)."""
    return (f"pixel ROC/PR over {CURVE_BINS} score levels k/{CURVE_BINS - 1} "
            "(exact for 8- and 16-bit maps)")


def threshold_rule(method=None) -> str:
    """Which pixels are predicted: ``score > threshold`` for saved maps, else the method's rules.

    Parameters
    ----------
    method : irstd.methods.Method, optional
    """
    if method is None:
        return "score > threshold (strict); PNG maps as value / max of their dtype"
    return f"masks: {method.mask_rule}; curves: {method.score_rule}"


def mask_protocol(threshold: float | None) -> str:
    """How ``irstd compare`` makes every method's masks (``threshold``: the ``--threshold`` option)."""
    return "own rule per method" if threshold is None else f"score > {threshold:g} for every method"


def input_scale_rule(kind: str) -> str:
    """The input values a method of ``kind`` (``"classical"`` or ``"network"``) works on."""
    if kind == "classical":
        return "native values (0-255 for 8-bit, raw counts for 16-bit)"
    return "irstd.intensity.to_float (input range rule)"


def source(
    dataset: str | os.PathLike | None,
    split: str | None = None,
    split_file: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The ``dataset``, ``split`` and ``split_file`` fields (a split file wins over a split name)."""
    return {
        "dataset": None if dataset is None else str(dataset),
        "split": split if split_file is None else None,
        "split_file": None if split_file is None else str(split_file),
    }


def rules(compat: str | None = None, gray: str = "auto") -> dict[str, Any]:
    """The protocol fields common to ``irstd evaluate`` and ``irstd compare``.

    Parameters
    ----------
    compat : str, optional
        A :data:`COMPAT` name; None for the native protocol.
    gray : str, optional
        How colour images or maps became grey (:data:`irstd.io.GRAY_RULES`).

    Returns
    -------
    dict
        ``compat``, ``resolution``, ``gray``, ``gt_binarisation``, ``matching``, ``fa_rule``,
        ``miou_rule`` and ``curves``.
    """
    check_compat(compat)
    return {
        "compat": compat,
        "resolution": resolution_rule(compat),
        "gray": gray,
        "gt_binarisation": GT_BINARISATION,
        "matching": matching_rule(),
        "fa_rule": fa_rule_text(compat),
        "miou_rule": MIOU_RULE,
        "curves": curves_rule(),
    }


def summary_line(compat: str | None = None) -> str:
    """The protocol in one line, as ``irstd evaluate`` states it under its table."""
    if compat is None:
        return (f"native resolution; 8-connected targets, centroid distance < {MATCH_DISTANCE:g} px, "
                f"greedy first-found; Fa = {fa_rule_text(None)}")
    return (f"--compat {compat}: {resolution_rule(compat)}; Fa: {fa_rule_text(compat)}; reproduces their "
            "tables, not the BasicIRSTD protocol")
