"""Running a method over many images (:func:`run_method`): in order, in worker processes for
classical methods, in batches for CgriNet on a GPU."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from irstd.errors import InputError
from irstd.methods.base import Method, MethodOutput
from irstd.methods.network import NetworkMethod


def worker_count(workers: int, items: int | None = None) -> int:
    """``workers`` capped at the CPUs this process may use and at the number of work items
    (more processes than either only add memory: each holds its own copy of the libraries)."""
    if workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    cap = min(workers, max(1, cpus))
    if items is not None:
        cap = min(cap, max(1, items))
    return cap


def _label(item) -> str | None:
    """How messages name an item: its file (and frame), or None for an array."""
    if isinstance(item, tuple):
        path, frame = item
        return f"{path} [frame {frame}]" if frame else str(path)
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return None


def _named(exc: InputError, item) -> InputError:
    """``exc`` with its ``image:`` prefix (a method's message about an array) replaced by the file."""
    label = _label(item)
    text = str(exc)
    if label is None or not text.startswith("image: "):
        return exc
    return InputError(f"{label}: {text.removeprefix('image: ')}")


def _range_warning(method: Method, image: np.ndarray, item) -> str | None:
    """:func:`irstd.intensity.mapped_range_warning` of a network's input, for frames it maps by a
    fixed scale (16-bit or float data under ``bits`` or ``fixed:LO,HI``); 8-bit frames (the
    packaged weights' own data) and ``minmax`` are left out."""
    if method.kind != "network" or image.dtype in (np.uint8, np.bool_):
        return None
    from irstd.intensity import mapped_range_warning, parse_input_range, resolve_auto, to_float

    bit_depth = getattr(method, "bit_depth", None)
    input_range = getattr(method, "input_range", "bits")
    if resolve_auto(parse_input_range(input_range), image, bit_depth) == "minmax":
        return None
    message = mapped_range_warning(to_float(image, bit_depth, input_range))
    if message is None:
        return None
    return f"{_label(item) or 'image'}: {message}"


def _with_warning(output: MethodOutput, method: Method, image: np.ndarray, item) -> MethodOutput:
    message = _range_warning(method, image, item)
    if message is not None:
        output.warnings.append(message)
    return output


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
        image = _load(item, gray)
        return _with_warning(method.run(image), method, image, item)
    except InputError as exc:
        exc = _named(exc, item)
        if not capture:
            raise exc from None
        return exc


def _run_batched(method: NetworkMethod, items: Iterable, capture: bool, gray: str):
    """:func:`run_method` for a network method with ``batch_size > 1``: read ``4 × batch_size``
    items, run the readable ones together (:meth:`NetworkMethod.run_batch`), yield in order."""
    it = iter(items)
    window = 4 * method.batch_size  # read ahead, so that frames of one padded size meet
    while True:
        chunk, sources = [], []
        for item in it:
            try:
                chunk.append(_load(item, gray))
            except InputError as exc:
                if not capture:
                    raise _named(exc, item) from None
                chunk.append(_named(exc, item))
            sources.append(item)
            if len(chunk) == window:
                break
        if not chunk:
            return
        kept = [(c, item) for c, item in zip(chunk, sources) if not isinstance(c, InputError)]
        try:
            outputs = iter([_with_warning(out, method, image, item)
                            for out, (image, item) in zip(method.run_batch([c for c, _ in kept]), kept)])
        except InputError:  # e.g. a frame of an unusable dtype: one at a time, to name it
            outputs = iter([_run_named(method, image, item, capture) for image, item in kept])
        for c in chunk:
            yield c if isinstance(c, InputError) else next(outputs)


def _run_named(method: Method, image: np.ndarray, item, capture: bool):
    """:meth:`Method.run` on an image read from ``item``; an error names the item's file."""
    try:
        return _with_warning(method.run(image), method, image, item)
    except InputError as exc:
        if not capture:
            raise _named(exc, item) from None
        return _named(exc, item)


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
        :func:`irstd.baselines.map_images`), capped by :func:`worker_count` at the CPUs and
        the items. CgriNet runs in this process whatever the value (PyTorch uses its own threads).
    skip_errors : bool, optional
        Yield the :class:`InputError` of a bad item instead of raising it. A method's message
        about the array (``image: ...``, e.g. the non-finite pixel rule of every method) names
        the item's file instead.
    prefetch : int, optional
        Items queued per worker ahead of the one being yielded (bounds memory).
    Yields
    ------
    MethodOutput or InputError
    """
    workers = worker_count(workers, len(items) if hasattr(items, "__len__") else None)
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
    with _thread_env(1), ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint) as pool:
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


def _ignore_sigint() -> None:
    """Worker processes leave Ctrl-C to the parent, which stops them after their current image
    (no traceback from every worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
