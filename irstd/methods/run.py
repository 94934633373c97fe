"""Running a method over many images (:func:`run_method`): in order, in worker processes for
classical methods, in batches for CgriNet on a GPU."""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from irstd.errors import InputError
from irstd.methods.base import Method, MethodOutput
from irstd.methods.network import NetworkMethod


def _load(item, gray: str = "auto") -> np.ndarray:
    """An item of :func:`run_method` as an image array."""
    from irstd.io import read_image

    if isinstance(item, InputError):  # an input that failed before it could be read
        raise item
    if isinstance(item, np.ndarray):
        return item
    if isinstance(item, tuple):
        path, frame = item
        return read_image(path, frame=frame, gray=gray)
    return read_image(item, gray=gray)


def _run_one(method: Method, item, capture: bool, gray: str = "auto"):
    try:
        return method.run(_load(item, gray))
    except InputError as exc:
        if not capture:
            raise
        return exc


def _run_batched(method: NetworkMethod, items: Iterable, capture: bool, gray: str):
    """:func:`run_method` for a network method with ``batch_size > 1``: read ``4 × batch_size``
    items, run the readable ones together (:meth:`NetworkMethod.run_batch`), yield in order."""
    it = iter(items)
    window = 4 * method.batch_size  # read ahead, so that frames of one padded size meet
    while True:
        chunk = []
        for item in it:
            try:
                chunk.append(_load(item, gray))
            except InputError as exc:
                if not capture:
                    raise
                chunk.append(exc)
            if len(chunk) == window:
                break
        if not chunk:
            return
        images = [c for c in chunk if not isinstance(c, InputError)]
        try:
            outputs = iter(method.run_batch(images))
        except InputError:  # e.g. a frame of an unusable dtype: one at a time, to name it
            if not capture:
                raise
            outputs = iter([_run_one(method, image, True, gray) for image in images])
        for c in chunk:
            yield c if isinstance(c, InputError) else next(outputs)


def run_method(
    method: Method,
    items: Iterable,
    workers: int = 1,
    *,
    skip_errors: bool = False,
    prefetch: int = 2,
) -> Iterator[MethodOutput | InputError]:
    """Run ``method`` on many images; results in input order.

    Parameters
    ----------
    method : Method
    items : iterable
        Image arrays, paths (read with :func:`irstd.io.read_image` by the method's ``gray``
        rule), or ``(path, frame)``
        pairs for pages of a multi-page TIFF. Files are read in the worker. An
        :class:`InputError` item stands for an input that already failed (it is raised, or
        yielded under ``skip_errors``, in its place).
    workers : int, optional
        Worker processes (classical methods; ``spawn`` start, 1 BLAS thread each, as
        :func:`irstd.baselines.map_images`). CgriNet runs in this process whatever the value
        (PyTorch uses its own threads).
    skip_errors : bool, optional
        Yield the :class:`InputError` of a bad item instead of raising it.
    prefetch : int, optional
        Items queued per worker ahead of the one being yielded (bounds memory).
    Yields
    ------
    MethodOutput or InputError
    """
    if workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    gray = method.gray  # how files in colour become grey (MethodOptions.gray)
    if isinstance(method, NetworkMethod) and method.batch_size > 1:
        yield from _run_batched(method, items, skip_errors, gray)
        return
    if workers == 1 or method.kind != "classical":
        for item in items:
            yield _run_one(method, item, skip_errors, gray)
        return
    from irstd.baselines.parallel import _thread_env

    method = replace(method, blas_threads=1)  # one core per worker
    ctx = mp.get_context("spawn")
    window = max(1, workers * (1 + max(0, prefetch)))
    pending: deque = deque()
    it = iter(items)
    with _thread_env(1), ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            for item in it:
                pending.append(pool.submit(_run_one, method, item, skip_errors, gray))
                if len(pending) >= window:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, _END)
                if nxt is not _END:
                    pending.append(pool.submit(_run_one, method, nxt, skip_errors, gray))
                yield result
        finally:  # an error or a consumer that stops early: drop the queued work
            for fut in pending:
                fut.cancel()


_END = object()
