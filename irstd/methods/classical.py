"""LCM, IPI and NRAM as methods: :class:`ClassicalMethod`."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irstd.errors import InputError
from irstd.methods.base import Method, MethodOutput, _check_image, _tiled_rule
from irstd.methods.options import MethodOptions
from irstd.tiles import map_tiled



def classical_names() -> tuple[str, ...]:
    """The classical methods, by name: the keys of :data:`irstd.baselines.METHODS`."""
    from irstd.baselines import METHODS

    return tuple(METHODS)


@dataclass
class ClassicalMethod(Method):
    """A map method (:mod:`irstd.baselines`, or a plugin's function) with its segmentation ``k``.

    ``fn`` is the raw-map function ``fn(image) -> map``; ``None`` for a registered baseline
    (looked up by name in :data:`irstd.baselines.METHODS`, so that the method pickles light).
    """

    k: float = 3.0
    fn: Callable[[np.ndarray], np.ndarray] | None = None
    #: NumPy BLAS threads for IPI/NRAM matrix products (:func:`irstd.baselines.matmul_threads`;
    #: ``None``: up to 2). Worker processes of :func:`run_method` use 1.
    blas_threads: int | None = None

    def code_files(self) -> list[Path]:
        """Adds the method's module in ``irstd.baselines`` and the shared helpers (``segment``,
        ``_common``, ``_linalg``, ``_patches``, ...); not ``_reference.py`` (test implementations)."""
        if self.fn is not None:  # a plugin's function: its own module
            source = inspect.getsourcefile(self.fn)
            return [*super().code_files(), Path(__file__).resolve(), *([Path(source)] if source else [])]
        import irstd.baselines  # installed from the project's baselines/ folder: found by import

        base = Path(irstd.baselines.__file__).parent
        helpers = [f for f in sorted(base.glob("_*.py")) if f.name not in ("__init__.py", "_reference.py")]
        return [*super().code_files(), Path(__file__).resolve(), base / f"{self.name}.py", base / "segment.py", *helpers]

    def run(self, image: np.ndarray) -> MethodOutput:
        from irstd.baselines import METHODS, matmul_threads, minmax, segment
        from irstd.metrics import threshold_scores

        image = _check_image(image)
        fn = self.fn if self.fn is not None else METHODS[self.name].fn
        threads = 1 if self.name == "lcm" else self.blas_threads  # LCM has no matrix products
        start = time.perf_counter()
        with matmul_threads(threads):
            raw = map_tiled(lambda a: np.asarray(fn(a), dtype=np.float64), np.asarray(image, dtype=np.float64),
                            self.tile, self.overlap)
        scores = minmax(raw)
        if self.threshold is None:
            mask = segment(raw, self.k)
        else:
            mask = threshold_scores(scores, self.threshold)
        seconds = time.perf_counter() - start
        return MethodOutput(scores=scores, mask=mask, raw=raw, seconds=seconds)



def _classical(name: str, options: MethodOptions) -> ClassicalMethod:
    if options.tta != "none":
        raise InputError(f"--tta {options.tta}: only with cgrinet (it averages the network's probabilities), not {name}")
    from irstd.baselines import METHODS  # here: CgriNet alone needs neither SciPy's LAPACK nor the baselines

    base = METHODS[name]
    threshold = options.threshold
    return ClassicalMethod(
        name=name,
        kind="classical",
        score_rule=f"min-max normalised raw {base.display or name.upper()} map{_tiled_rule(options)}",
        mask_rule=f"raw map > mean + {base.k:g}·std" if threshold is None else f"min-max score > {threshold:g}",
        threshold=threshold,
        options=options,
        k=base.k,
    )

