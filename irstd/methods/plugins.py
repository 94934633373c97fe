"""Methods from other packages: the entry point group ``irstd.methods``.

A package that declares, in its ``pyproject.toml``::

    [project.entry-points."irstd.methods"]
    mymethod = "mypackage.detector:raw_map"

is usable by name after ``pip install`` (``irstd detect --method mymethod``, ``irstd compare
--methods lcm,mymethod``). The object may be

- a :class:`~irstd.methods.Method` instance: used as it is;
- a callable ``f(image) -> raw map`` (a 2-D float64 image on its native scale in, a map of the
  same shape out), run like the classical baselines: scores = min–max normalised map, mask =
  ``map > mean + k·std`` with ``k = f.k`` when the function has that attribute, else 3 (or
  ``score > --threshold``). ``f.display`` names it in tables when set.

Built-in method names take precedence over a plugin of the same name.
"""

from __future__ import annotations

from importlib import metadata

from irstd.errors import InputError
from irstd.methods.base import Method, _tiled_rule
from irstd.methods.classical import ClassicalMethod
from irstd.methods.options import MethodOptions

__all__ = ["GROUP", "plugin_method", "plugin_names"]

#: The entry point group of method plugins.
GROUP = "irstd.methods"
#: ``k`` of a plugin function without a ``k`` attribute (LCM's paper default).
DEFAULT_K = 3.0


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name.lower(): ep for ep in metadata.entry_points(group=GROUP)}


def plugin_names() -> list[str]:
    """Names of the installed method plugins."""
    return sorted(_entry_points())


def plugin_method(name: str, options: MethodOptions) -> Method | None:
    """The plugin called ``name`` as a method, or None when no plugin has that name.

    Raises
    ------
    InputError
        The plugin cannot be loaded, or is neither a Method nor a callable.
    """
    ep = _entry_points().get(name.lower())
    if ep is None:
        return None
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin: any import error
        raise InputError(f"--method {name}: the plugin {ep.value} cannot be loaded ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, Method):
        return obj
    if not callable(obj):
        raise InputError(f"--method {name}: the plugin {ep.value} is neither an irstd Method nor a callable image -> map")
    if options.tta != "none":
        raise InputError(f"--tta {options.tta}: only with networks, not the plugin {name}")
    k = float(getattr(obj, "k", DEFAULT_K))
    display = str(getattr(obj, "display", name))
    threshold = options.threshold
    return ClassicalMethod(
        name=name.lower(),
        kind="plugin",
        score_rule=f"min-max normalised raw {display} map (plugin {ep.value}){_tiled_rule(options)}",
        mask_rule=f"raw map > mean + {k:g}·std" if threshold is None else f"min-max score > {threshold:g}",
        threshold=threshold,
        options=options,
        k=k,
        fn=obj,
    )
