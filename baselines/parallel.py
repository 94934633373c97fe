"""Run a baseline over many images in worker processes."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import lru_cache, wraps
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "IRSTD_BLAS_THREADS")
#: Environment variable that sets :func:`default_blas_threads` (e.g. ``IRSTD_BLAS_THREADS=1``).
BLAS_THREADS_VAR = "IRSTD_BLAS_THREADS"


def default_blas_threads() -> int:
    """NumPy BLAS threads IPI and NRAM use when not told: ``$IRSTD_BLAS_THREADS``, else
    ``min(2, os.cpu_count())`` (more threads gain little on these matrix sizes)."""
    value = os.environ.get(BLAS_THREADS_VAR, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            from irstd.errors import InputError

            raise InputError(f"{BLAS_THREADS_VAR}={value!r}: expected a whole number of threads") from None
    return min(2, os.cpu_count() or 1)


class _thread_env:
    """Set the BLAS/OpenMP thread variables while worker processes are spawned.

    A ``spawn`` worker is a fresh interpreter that inherits the parent's environment; the
    variables must be set before NumPy (and its OpenBLAS) loads there. An initializer is too
    late: unpickling it imports this package, hence NumPy, first. So the variables are set in
    the parent around the pool's lifetime (workers start at submission) and restored after;
    the parent's own, already loaded BLAS is not affected.
    """

    def __init__(self, threads: int):
        self.threads = str(threads)
        self.saved: dict[str, str | None] = {}

    def __enter__(self):
        for var in _THREAD_VARS:
            self.saved[var] = os.environ.get(var)
            os.environ[var] = self.threads
        return self

    def __exit__(self, *exc):
        for var, val in self.saved.items():
            if val is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = val
        return False


@lru_cache(maxsize=1)
def _thread_pools():
    """threadpoolctl controller, NumPy's BLAS file(s) and the other libraries' files."""
    import numpy.linalg  # noqa: F401 - make sure the BLAS libraries are loaded
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController

    ctl = ThreadpoolController()
    blas = [lib for lib in ctl.lib_controllers if lib.user_api == "blas"]
    ours = [lib.filepath for lib in blas if "numpy" in os.path.basename(os.path.dirname(lib.filepath))]
    if not ours and len(blas) == 1:
        ours = [blas[0].filepath]
    others = [lib.filepath for lib in ctl.lib_controllers if lib.filepath not in ours]
    return ctl, ours, others


@contextmanager
def matmul_threads(threads: int | None = None):
    """Run NumPy's matrix products on ``threads`` BLAS threads, every other BLAS/LAPACK on one.

    IPI and NRAM spend most of their time in two kinds of calls: NumPy matrix products (the Gram
    matrix and the low-rank update, compute-bound, faster on 2 threads) and SciPy's
    ``eigh`` (LAPACK ``syevd``, many small calls that a second thread slows down). Wheels of
    NumPy and SciPy carry separate OpenBLAS copies with separate thread pools; with both at 2
    threads their spinning workers fight over the cores (IPI several times slower; docs/baselines.md). This keeps
    NumPy's pool at ``threads`` and the others at 1 for the duration, then restores them. Where
    NumPy and SciPy share one BLAS, that one gets ``threads``. :func:`irstd.baselines.ipi` and
    :func:`irstd.baselines.nram` run under it, so a call from Python is as fast as the command
    line whatever the process's BLAS settings (scikit-learn's KMeans does the same).

    Parameters
    ----------
    threads : int, optional
        Threads for NumPy's BLAS; default :func:`default_blas_threads` (``$IRSTD_BLAS_THREADS``,
        else ``min(2, os.cpu_count())``).
    """
    threads = default_blas_threads() if threads is None else max(1, int(threads))
    try:
        ctl, ours, others = _thread_pools()
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency; an install without it runs as is
        yield
        return
    with ExitStack() as stack:
        if ours:
            stack.enter_context(ctl.select(filepath=ours).limit(limits=threads))
        if others:
            stack.enter_context(ctl.select(filepath=others).limit(limits=1))
        yield


def with_blas_threads(fn):
    """Run ``fn`` under :func:`matmul_threads`, adding a keyword-only ``blas_threads`` argument."""

    @wraps(fn)
    def wrapper(*args, blas_threads: int | None = None, **kwargs):
        with matmul_threads(blas_threads):
            return fn(*args, **kwargs)

    return wrapper


def _read(item):
    if isinstance(item, (str, os.PathLike)):
        try:
            from irstd.io import read_image  # the toolkit's reader (grey conversion rule)
        except ImportError:  # pragma: no cover - before irstd.io exists
            from PIL import Image

            from irstd.errors import InputError

            try:
                with Image.open(item) as im:
                    if im.mode not in ("L", "I", "I;16", "F"):
                        im = im.convert("L")
                    return np.asarray(im)
            except OSError as exc:
                raise InputError(f"{item}: cannot read image ({exc})") from None
        return read_image(Path(item))
    return item


def _call(fn, item, kwargs):
    return fn(_read(item), **kwargs)


def map_images(fn: Callable[..., np.ndarray], images: Iterable, workers: int = 1,
               blas_threads: int = 1, **kwargs) -> list[np.ndarray]:
    """Apply ``fn(image, **kwargs)`` to many images, optionally in worker processes.

    Parameters
    ----------
    fn : callable
        A picklable (module-level) map function, e.g. :func:`irstd.baselines.ipi`.
    images : iterable of array_like or path
        Arrays, or paths read with ``irstd.io.read_image`` inside the worker.
    workers : int, optional
        Number of processes; 1 (default) runs in this process, in order.
    blas_threads : int, optional
        BLAS/OpenMP threads per worker process (default 1: one image per core gives close to
        ``workers``× throughput, more than the 1.1–1.5× of a multithreaded BLAS on these sizes).
        Workers are started with the ``spawn`` method with ``OMP_NUM_THREADS``,
        ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``… and ``IRSTD_BLAS_THREADS`` set in their
        environment, so the limit holds before NumPy loads there and inside IPI and NRAM.
    **kwargs
        Passed to ``fn`` (picklable values).

    Returns
    -------
    list of ndarray
        Results in input order. The first exception raised by ``fn`` (e.g. ``InputError``) is
        re-raised here.
    """
    items = list(images)
    if workers < 1:
        from irstd.errors import InputError

        raise InputError(f"--workers: must be at least 1, got {workers}")
    if workers == 1 or len(items) <= 1:
        return [_call(fn, it, kwargs) for it in items]
    ctx = mp.get_context("spawn")
    with _thread_env(blas_threads), ProcessPoolExecutor(
            max_workers=min(workers, len(items)), mp_context=ctx) as pool:
        futures = [pool.submit(_call, fn, it, kwargs) for it in items]
        return [f.result() for f in futures]
