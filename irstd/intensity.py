"""Intensity mapping: how an image's values become CgriNet's ``float32`` input in [0, 1].

:func:`to_float` maps an image by the *input range* rule: ``bits`` (the default, the *bit depth
rule*: ``uint8 / 255``, ``uint16 / (2**bit_depth - 1)`` clipped, float as is), ``minmax`` (each
frame from its minimum to its maximum), ``fixed:LO,HI``, or ``auto`` (``bits`` where the sample
type states the scale, ``minmax`` for 16-bit data of unstated bit depth and for float data
outside [0, 1]); :func:`bit_depth_rule` and :func:`input_rule` state the rules as strings for
run records.
"""

from __future__ import annotations

import math

import numpy as np

from irstd.errors import InputError

__all__ = [
    "INPUT_RANGES",
    "bit_depth_rule",
    "check_bit_depth",
    "input_rule",
    "mapped_range_warning",
    "parse_input_range",
    "resolve_auto",
    "to_float",
]


def check_bit_depth(bit_depth: int | None) -> int | None:
    """``bit_depth`` as an ``int`` from 1 to 16 (``None`` stays ``None``); otherwise :class:`InputError`."""
    if bit_depth is None:
        return None
    if not isinstance(bit_depth, (int, np.integer)) or isinstance(bit_depth, bool) or not 1 <= bit_depth <= 16:
        raise InputError(f"--bit-depth: expected an integer from 1 to 16, got {bit_depth!r}")
    return int(bit_depth)


INPUT_RANGES = ("auto", "bits", "minmax", "fixed:LO,HI")

#: A frame mapped to [0, 1] whose 1st–99th percentile span is below this, or whose median lies
#: outside :data:`MAPPED_MEDIAN_RANGE`, is far from the frames CgriNet was trained on
#: (:func:`mapped_range_warning`).
MIN_MAPPED_SPAN = 0.1
MAPPED_MEDIAN_RANGE = (0.05, 0.95)


def parse_input_range(text: str | None) -> str:
    """Check an input range spec and return it in canonical form.

    Parameters
    ----------
    text : str or None
        ``"bits"`` (None too): the bit depth rule; ``"minmax"``: each frame stretched from its
        own minimum to its maximum; ``"fixed:LO,HI"``: ``(x - LO) / (HI - LO)`` clipped to
        [0, 1], ``LO < HI`` in the file's own units (e.g. raw camera counts); ``"auto"``: per
        frame, ``bits`` where the sample type says the scale and ``minmax`` where it does not
        (see :func:`to_float`).

    Returns
    -------
    str
        ``"auto"``, ``"bits"``, ``"minmax"`` or ``"fixed:LO,HI"`` with the numbers as ``%g``.

    Examples
    --------
    >>> parse_input_range(" fixed: 7000, 9500 ")
    'fixed:7000,9500'
    """
    if text is None:
        return "bits"
    spec = "".join(str(text).split()).lower()
    if spec in ("auto", "bits", "minmax"):
        return spec
    if spec.startswith("fixed:"):
        parts = spec[len("fixed:"):].split(",")
        try:
            lo, hi = (float(v) for v in parts)
        except ValueError:
            lo = hi = math.nan
        if len(parts) == 2 and math.isfinite(lo) and math.isfinite(hi) and lo < hi:
            return f"fixed:{lo:g},{hi:g}"
        raise InputError(f"--input-range: expected fixed:LO,HI with numbers LO < HI, got {text!r}")
    raise InputError(f"--input-range: expected one of {', '.join(INPUT_RANGES)}, got {text!r}")


def to_float(image: np.ndarray, bit_depth: int | None = None, input_range: str | None = None) -> np.ndarray:
    """Map an image to ``float32`` in [0, 1] by the input range rule.

    Parameters
    ----------
    image : ndarray
        ``uint8``, ``uint16``, ``bool`` or float array (any shape).
    bit_depth : int, optional
        Significant bits of 16-bit data, e.g. 14 for a 14-bit camera stored in ``uint16``
        (1 to 16; default 16, the full range). Applies to ``uint16`` data under the ``bits``
        rule only: 8-bit data is always divided by 255 and float data is used as is, so one
        setting serves a dataset that mixes 8- and 16-bit files.
    input_range : {"bits", "auto", "minmax", "fixed:LO,HI"}, optional
        ``bits`` (default): the bit depth rule above. ``minmax``: ``(x - min) / (max - min)``
        over the whole array (a constant array gives zeros), for raw frames whose counts fill
        only part of their sample type. ``fixed:LO,HI``: ``(x - LO) / (HI - LO)`` clipped to
        [0, 1]. ``auto`` (the command line's default): ``bits`` for ``bool`` and ``uint8``
        data, for ``uint16`` data when ``bit_depth`` is given and for float data within
        [0, 1]; ``minmax`` otherwise (16-bit counts of unstated depth, radiometric floats).
        See :func:`parse_input_range`.

    Returns
    -------
    out : ndarray of float32
        Under ``bits``: ``uint8 / 255``; ``uint16 / (2**bit_depth - 1)`` clipped to [0, 1];
        ``bool`` as 0/1; float data unchanged (cast to float32). See :func:`input_rule`.
    """
    image = np.asarray(image)
    dt = image.dtype
    bits = check_bit_depth(bit_depth) or 16
    spec = parse_input_range(input_range)
    if not (dt == np.bool_ or dt == np.uint8 or dt == np.uint16 or dt.kind == "f"):
        raise InputError(f"image: unsupported sample type {dt} (expected uint8, uint16 or float)")
    spec = resolve_auto(spec, image, bit_depth)
    if spec == "minmax":
        x = image.astype(np.float64)
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if hi <= lo:
            return np.zeros(image.shape, np.float32)
        return ((x - lo) / (hi - lo)).astype(np.float32)
    if spec != "bits":
        lo, hi = (float(v) for v in spec[len("fixed:"):].split(","))
        out = ((image.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
        return np.clip(out, 0.0, 1.0, out=out)
    if dt == np.bool_:
        return image.astype(np.float32)
    if dt == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if dt == np.uint16:
        out = image.astype(np.float32) / np.float32(2**bits - 1)
        if bits < 16:
            np.clip(out, 0.0, 1.0, out=out)
        return out
    return image.astype(np.float32, copy=False)


def mapped_range_warning(mapped: np.ndarray, *, min_span: float = MIN_MAPPED_SPAN,
                         median_range: tuple[float, float] = MAPPED_MEDIAN_RANGE) -> str | None:
    """Say whether a frame mapped to [0, 1] lies far from the range a network was trained on.

    A pure function of the mapped frame (:func:`to_float`'s output): it returns the problem as
    one line, or ``None``; callers report it (the library never prints).

    Parameters
    ----------
    mapped : ndarray
        The frame after :func:`to_float`.
    min_span : float, optional
        Smallest 1st–99th percentile span that passes.
    median_range : (float, float), optional
        Where the median must lie.

    Returns
    -------
    str or None
        E.g. ``"mapped to [0, 1], the frame spans only 0.0514 of [0, 1] (1st-99th percentile; ..."``.

    Notes
    -----
    Meant for frames mapped by a fixed scale (``bits`` on 16-bit or float data, ``fixed:LO,HI``):
    14-bit counts ``7000 + 10·grey`` divided by ``2**14 - 1`` fill 0.43–0.58 and the packaged
    model finds nothing in them. 8-bit frames divided by 255 are what the packaged weights were
    trained on, and 86 of SIRST's 427 frames have a span under 0.1 (dim, flat skies) without
    harm, so callers leave them out; ``minmax`` fills [0, 1] by construction.
    """
    x = np.asarray(mapped, dtype=np.float32)
    if x.size == 0:
        return None
    if x.size > 1 << 20:  # a regular sample is enough for percentiles
        x = x.ravel()[:: x.size >> 20]
    lo, med, hi = (float(v) for v in np.percentile(x, [1, 50, 99]))
    span = hi - lo
    if span >= min_span and median_range[0] <= med <= median_range[1]:
        return None
    if span < min_span:
        what = f"spans only {span:.3g} of [0, 1] (1st-99th percentile; median {med:.3g})"
    else:
        what = f"has its median at {med:.3g}, outside [{median_range[0]:g}, {median_range[1]:g}]"
    return (
        f"mapped to [0, 1], the frame {what}: far from the frames the model was trained on, so targets "
        f"may be missed; check --bit-depth and --input-range (irstd data info FILE shows the mapping; "
        f"--input-range minmax stretches each frame)"
    )


def resolve_auto(spec: str, image: np.ndarray, bit_depth: int | None) -> str:
    """The rule ``auto`` stands for on ``image``: ``bits`` where the sample type states the
    scale (8-bit, 16-bit of stated depth, float in [0, 1]), else ``minmax``; other specs as given."""
    if spec != "auto":
        return spec
    dt = image.dtype
    if dt == np.bool_ or dt == np.uint8:
        known = True
    elif dt == np.uint16:
        known = bit_depth is not None
    else:
        known = image.size == 0 or (float(image.min()) >= 0.0 and float(image.max()) <= 1.0)
    return "bits" if known else "minmax"


def input_rule(input_range: str | None = None, bit_depth: int | None = None) -> str:
    """The input range rule of :func:`to_float` as one line, for run records and outputs.

    Examples
    --------
    >>> input_rule("bits", 14)
    'bits: uint8/255, uint16/(2**14-1) clipped, float as is'
    >>> input_rule("fixed:7000,9500")
    'fixed: (x - 7000)/(9500 - 7000) clipped to [0, 1]'
    """
    spec = parse_input_range(input_range)
    if spec == "auto":
        stretch = "(x - min)/(max - min) per frame"
        if bit_depth is None:
            rest = f"uint16 and float outside [0, 1]: {stretch}"
        else:
            rest = f"uint16/(2**{check_bit_depth(bit_depth)}-1) clipped; float outside [0, 1]: {stretch}"
        return f"auto: uint8/255; {rest}; float in [0, 1] as is"
    if spec == "minmax":
        return "minmax: (x - min)/(max - min) per frame"
    if spec.startswith("fixed:"):
        lo, hi = spec[len("fixed:"):].split(",")
        return f"fixed: (x - {lo})/({hi} - {lo}) clipped to [0, 1]"
    bits = check_bit_depth(bit_depth) or 16
    return f"bits: uint8/255, uint16/(2**{bits}-1) clipped, float as is"


def bit_depth_rule(dtype: np.dtype | str, bit_depth: int | None = None) -> str:
    """The bit depth rule of :func:`to_float` for ``dtype`` as one line, for run records.

    Examples
    --------
    >>> bit_depth_rule("uint16", 14)
    'uint16 / 16383 (14-bit), clipped to [0, 1]'
    """
    dt = np.dtype(dtype)
    bits = check_bit_depth(bit_depth) or 16
    if dt == np.bool_:
        return "bool as 0/1"
    if dt == np.uint8:
        return "uint8 / 255 (8-bit full range)"
    if dt == np.uint16:
        if bits == 16:
            return "uint16 / 65535 (16-bit full range)"
        return f"uint16 / {2**bits - 1} ({bits}-bit), clipped to [0, 1]"
    if dt.kind == "f":
        return f"{dt} used as is"
    raise InputError(f"image: unsupported sample type {dt}")
