"""One way to run any detection method on one image: CgriNet and the classical baselines.

:func:`get_method` turns a method specification into a :class:`Method`; ``Method.run(image)``
returns a :class:`MethodOutput` with

``scores``
    float64 (H, W) map in [0, 1] for score curves: CgriNet's sigmoid probabilities, or the
    min–max normalised raw map of a classical method (:func:`irstd.baselines.minmax`).
``mask``
    The method's own decision: ``probability > threshold`` (0.5 by default) for CgriNet;
    ``raw > mean + k·std`` with the method's default ``k`` for LCM/IPI/NRAM
    (:func:`irstd.baselines.segment`), or ``min–max score > threshold`` when a threshold is
    given.
``raw``
    The classical raw map (float64), ``None`` for CgriNet.
``seconds``
    Wall time of the method on this image (file reading excluded).

Every option a user sets for a method lives in one :class:`MethodOptions` value (threshold,
device, engine, bit depth, input range, grey rule, tiling, test-time augmentation), checked when
it is made; ``get_method(spec, options)`` builds the method from it. A method describes itself:
:meth:`Method.record` (what run records, JSON and CSV outputs say of it) and
:meth:`Method.code_files` (the source files its outputs depend on, for caches).

With ``tile`` set, the map (CgriNet's probabilities, a classical raw map) is computed on
overlapping tiles and stitched (:mod:`irstd.tiles`); the mask and the min–max scores are then
made from the stitched map, and the score rule says so. With ``tta`` (CgriNet only), the
probabilities are averaged over flipped copies of the frame (:mod:`irstd.tta`), each tiled
the same way.

Classical methods run on the image's native scale (0–255 for 8-bit data, raw counts for 16-bit
data, float data as is), as the authors' code does. CgriNet takes ``irstd.intensity.to_float(image,
bit_depth, input_range)`` with the bit depth and the input range recorded in the weights'
metadata (keys ``bit_depth`` and ``input_range``) unless given.

Specifications: a classical method (``lcm``, ``ipi``, ``nram`` ...: :data:`irstd.baselines.METHODS`),
a network family with its packaged weights (``cgrinet``, see :func:`default_weights`; ``acm`` ...)
and ``FAMILY:FILE`` (an irstd model file of that family, safetensors).

:func:`run_method` runs a method over many images (paths, ``(path, frame)`` pairs or arrays),
in worker processes for classical methods, yielding results in input order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from irstd.errors import InputError
from irstd.methods.base import Method, MethodOutput
from irstd.methods.classical import ClassicalMethod, _classical, classical_names
from irstd.methods.network import CUDA_BATCH, NetworkMethod, _network
from irstd.models.packaged import (
    DEFAULT_WEIGHTS_NAME,
    PACKAGED_NAMES,
    PAPER_WEIGHTS_NAME,
    WEIGHTS_DIR,
    default_weights,
    packaged_weights,
)
from irstd.models.registry import families
from irstd.methods.options import ENGINES, MethodOptions, cuda_available, resolve_engine
from irstd.methods.run import run_method

__all__ = [
    "classical_names",
    "CUDA_BATCH",
    "DEFAULT_WEIGHTS_NAME",
    "ENGINES",
    "PACKAGED_NAMES",
    "PAPER_WEIGHTS_NAME",
    "WEIGHTS_DIR",
    "ClassicalMethod",
    "cuda_available",
    "packaged_weights",
    "resolve_engine",
    "Method",
    "MethodOptions",
    "MethodOutput",
    "NetworkMethod",
    "default_weights",
    "get_method",
    "list_methods",
    "run_method",
]



def list_methods() -> list[str]:
    """The method names :func:`get_method` accepts (``cgrinet:FILE`` takes any model file)."""
    return [*families(), *classical_names()]



def get_method(spec: str, options: MethodOptions | None = None, **changes: Any) -> Method:
    """Build a method from its specification and options.

    Parameters
    ----------
    spec : str
        A classical method (``lcm``, ``ipi``, ``nram``, ``tophat`` ...), a network family with
        its packaged weights (``cgrinet``: :func:`default_weights`; ``acm`` ...),
        ``cgrinet:paper`` (the packaged paper model, :func:`packaged_weights`) or
        ``FAMILY:FILE`` (an irstd model file of that family written by
        :func:`irstd.models.save_weights`, e.g. ``cgrinet:run/best.safetensors``).
    options : MethodOptions, optional
        Threshold, device, engine, input mapping, tiling, test-time augmentation (default:
        ``MethodOptions()``).
    **changes
        Fields of :class:`MethodOptions` to set on ``options``, e.g. ``threshold=0.4``.

    Returns
    -------
    Method

    Raises
    ------
    InputError
        Unknown method, missing or unusable weights, an unusable option, ``tta`` with a
        classical method.

    Examples
    --------
    >>> get_method("lcm", threshold=0.5).mask_rule
    'min-max score > 0.5'
    """
    options = replace(options or MethodOptions(), **changes) if changes else options or MethodOptions()
    name, sep, file = str(spec).strip().partition(":")
    name = name.lower()
    if name in families():
        if sep and not file:
            raise InputError(f"--method {name}:FILE: the file name is missing")
        return _network(name, file or None, options)
    if not sep and name in classical_names():
        return _classical(name, options)
    if not sep:
        from irstd.methods.plugins import plugin_method

        method = plugin_method(name, options)
        if method is not None:
            return method
    raise InputError(
        f"--method: unknown method {spec!r} (choose from {', '.join(list_methods())}, or NETWORK:FILE)"
    )

