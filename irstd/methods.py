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

With ``tile`` set, the map (CgriNet's probabilities, a classical raw map) is computed on
overlapping tiles and stitched (:mod:`irstd.tiles`); the mask and the min–max scores are then
made from the stitched map, and the score rule says so. With ``tta`` (CgriNet only), the
probabilities are averaged over flipped copies of the frame (:mod:`irstd.tta`), each tiled
the same way.

Classical methods run on the image's native scale (0–255 for 8-bit data, raw counts for 16-bit
data, float data as is), as the authors' code does. CgriNet takes ``irstd.intensity.to_float(image,
bit_depth, input_range)`` with the bit depth and the input range recorded in the weights'
metadata unless given.

Specifications: ``lcm``, ``ipi``, ``nram``, ``cgrinet`` (the packaged weights, see
:func:`default_weights`) and ``cgrinet:FILE`` (any irstd model file, safetensors).

:func:`run_method` runs a method over many images (paths, ``(path, frame)`` pairs or arrays),
in worker processes for classical methods, yielding results in input order.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from irstd.errors import InputError
from irstd.tiles import DEFAULT_OVERLAP, check_tiling, map_tiled
from irstd.tta import TTA_MODES, check_tta, map_tta

__all__ = [
    "CLASSICAL",
    "WEIGHTS_DIR",
    "ClassicalMethod",
    "cuda_available",
    "packaged_weights",
    "resolve_engine",
    "Method",
    "MethodOutput",
    "NetworkMethod",
    "default_weights",
    "get_method",
    "list_methods",
    "run_method",
]

#: The classical methods, by name (see :data:`irstd.baselines.METHODS`).
CLASSICAL = ("lcm", "ipi", "nram")
#: What runs CgriNet (:func:`get_method`): ``auto`` is PyTorch on a CUDA device, ONNX Runtime on the CPU.
ENGINES = ("auto", "torch", "onnx")
#: Frames per batch of CgriNet on a CUDA device (frames of one padded size are grouped; :func:`run_method`).
CUDA_BATCH = 16

#: Where packaged CgriNet weights live: ``irstd/weights/*.safetensors`` inside the package.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: The preferred packaged file when the folder holds more than one.
DEFAULT_WEIGHTS_NAME = "cgrinet_sirst.safetensors"
#: The paper model (full ``cgrinet``, trained on a GPU, float16 storage) when packaged.
PAPER_WEIGHTS_NAME = "cgrinet_paper.safetensors"
#: Names of packaged weights accepted wherever a model file is (``--weights paper``, ``cgrinet:paper``).
PACKAGED_NAMES = {"packaged": DEFAULT_WEIGHTS_NAME, "paper": PAPER_WEIGHTS_NAME}


@dataclass
class MethodOutput:
    """What :meth:`Method.run` returns for one image (see the module docstring)."""

    scores: np.ndarray
    mask: np.ndarray
    raw: np.ndarray | None
    seconds: float


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU, without importing PyTorch where no NVIDIA driver is loaded.

    On Linux, a machine without ``/proc/driver/nvidia/version`` (or ``/dev/nvidiactl``) has no
    CUDA device, so the answer costs nothing there; elsewhere PyTorch is asked.
    """
    import os
    import sys
    from importlib.util import find_spec

    if sys.platform.startswith("linux") and not (
        os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")
    ):
        return False
    if find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_engine(engine: str = "auto", device: str | None = "auto") -> tuple[str, str]:
    """The ``(engine, device)`` that run CgriNet for the options ``--engine`` and ``--device``.

    ``device`` ``auto`` (or None) is CUDA when a GPU is present and the engine is not ``onnx``,
    else the CPU; ``engine`` ``auto`` is PyTorch on a CUDA device and ONNX Runtime on the CPU.

    Raises
    ------
    InputError
        Unknown engine, ``--device cuda`` on a machine without a CUDA GPU, ``onnx`` with a GPU.
    """
    if engine not in ENGINES:
        raise InputError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    device = "auto" if device is None else str(device).strip().lower()
    if engine == "onnx" and device not in ("auto", "cpu"):
        raise InputError(f"--engine onnx runs on the CPU; --device {device} needs --engine torch or auto")
    if device == "auto":
        device = "cuda" if engine != "onnx" and cuda_available() else "cpu"
    elif device.startswith("cuda"):
        if not cuda_available():
            raise InputError(f"--device {device}: no CUDA GPU is available here (use --device auto or cpu)")
    elif device != "cpu":
        raise InputError(f"--device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    if engine == "auto":
        engine = "onnx" if device == "cpu" else "torch"
    return engine, device


def default_weights() -> Path | None:
    """The packaged CgriNet weights, or ``None`` when none are packaged.

    Looks in ``irstd/weights/``: ``cgrinet_sirst.safetensors`` when present, else the single
    ``*.safetensors`` file there. Several candidates without that name raise
    :class:`InputError` (the choice would be arbitrary).
    """
    if not WEIGHTS_DIR.is_dir():
        return None
    preferred = WEIGHTS_DIR / DEFAULT_WEIGHTS_NAME
    if preferred.is_file():
        return preferred
    files = sorted(p for p in WEIGHTS_DIR.glob("*.safetensors") if p.is_file())
    if not files:
        return None
    if len(files) > 1:
        raise InputError(
            f"{WEIGHTS_DIR}: several packaged weight files ({', '.join(p.name for p in files)}); "
            f"name the default one {DEFAULT_WEIGHTS_NAME}"
        )
    return files[0]


def packaged_weights(name: str) -> Path:
    """The packaged weights called ``name`` (:data:`PACKAGED_NAMES`: ``packaged``, ``paper``).

    Raises
    ------
    InputError
        Unknown name, or weights of that name not shipped with this installation.
    """
    if name not in PACKAGED_NAMES:
        raise InputError(f"{name}: not a packaged weights name (known: {', '.join(PACKAGED_NAMES)})")
    path = default_weights() if name == "packaged" else WEIGHTS_DIR / PACKAGED_NAMES[name]
    if path is None or not path.is_file():
        raise InputError(
            f"{name}: this installation holds no {name} weights ({WEIGHTS_DIR / PACKAGED_NAMES[name]}); "
            "pass a weights file instead"
        )
    return path


def list_methods() -> list[str]:
    """The method names :func:`get_method` accepts (``cgrinet:FILE`` takes any model file)."""
    return ["cgrinet", *CLASSICAL]


@dataclass
class Method:
    """A detection method, ready to run on single images.

    Attributes
    ----------
    name : str
        ``lcm``, ``ipi``, ``nram``, ``cgrinet`` (packaged weights) or ``cgrinet:<file stem>``.
    kind : str
        ``classical`` or ``network``.
    score_rule, mask_rule : str
        How ``scores`` and ``mask`` of :class:`MethodOutput` are made, as one line each.
    threshold : float or None
        Threshold of the mask on ``scores``; ``None`` when the method's own rule decides.
    tile, overlap : int or None, int
        Tiled inference (:func:`irstd.tiles.map_tiled`); ``tile=None``: the whole frame at once.
    tta : str
        Test-time augmentation (:mod:`irstd.tta`); ``"none"`` for classical methods.
    """

    name: str
    kind: str
    score_rule: str
    mask_rule: str
    threshold: float | None
    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    tta: str = "none"

    @property
    def parameters(self) -> int | None:
        """Trainable parameters (network), ``None`` for classical methods."""
        return None

    def tiling(self) -> dict[str, int] | None:
        """``{"size": tile, "overlap": overlap}`` for tiled inference, else ``None``."""
        return None if self.tile is None else {"size": self.tile, "overlap": self.overlap}

    def run(self, image: np.ndarray) -> MethodOutput:  # pragma: no cover - abstract
        """Run on one 2-D grey image (``irstd.io.read_image`` output, native dtype)."""
        raise NotImplementedError


def _check_image(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"image: expected a 2-D grey image, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"image: empty image of shape {arr.shape}")
    return arr


@dataclass
class ClassicalMethod(Method):
    """LCM, IPI or NRAM (:mod:`irstd.baselines`) with its default segmentation ``k``."""

    k: float = 3.0
    #: NumPy BLAS threads for IPI/NRAM matrix products (:func:`irstd.baselines.matmul_threads`;
    #: ``None``: up to 2). Worker processes of :func:`run_method` use 1.
    blas_threads: int | None = None

    def run(self, image: np.ndarray) -> MethodOutput:
        from irstd.baselines import METHODS, matmul_threads, minmax, segment
        from irstd.metrics import threshold_scores

        image = _check_image(image)
        fn = METHODS[self.name].fn
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


_BIT_DEPTH_META = re.compile(r"bit_depth=(None|\d+)")


def _bit_depth_from_metadata(meta: dict[str, str]) -> int | None:
    """The ``bit_depth`` the weights were trained with (``None``: the default rule)."""
    rule = meta.get("bit_depth_rule", "")
    found = _BIT_DEPTH_META.search(rule)
    if not found or found.group(1) == "None":
        return None
    return int(found.group(1))


@dataclass
class NetworkMethod(Method):
    """CgriNet from an irstd model file; the model is loaded on first use and reused."""

    weights: Path = field(default_factory=Path)
    device: str | None = None
    bit_depth: int | None = None
    input_range: str = "bits"
    engine: str = "torch"
    #: Frames of one padded size run together (PyTorch engine, without tiles or tta): :meth:`run_batch`.
    batch_size: int = 1
    _model: Any = field(default=None, init=False, repr=False, compare=False)
    _onnx: Any = field(default=None, init=False, repr=False, compare=False)
    _parameters: int | None = field(default=None, init=False, repr=False, compare=False)

    def model(self):
        """The loaded PyTorch model (loaded once).

        On the CPU its tensors are put in channels-last memory format: measured on the packaged
        weights, 1.2-1.3x faster per SIRST frame and 1.3-1.4x on 1024² and 2048² frames, masks
        unchanged (probabilities within 5e-6; ``benchmarks/infer_speed.py``).
        """
        if self._model is None:
            import torch

            from irstd.models import count_parameters, load_model

            model = load_model(self.weights, device=self.device)
            if next(model.parameters()).device.type == "cpu":
                model = model.to(memory_format=torch.channels_last)
            self._model = model
            self._parameters = int(count_parameters(model))
        return self._model

    def onnx_model(self):
        """The ONNX Runtime model (``engine="onnx"``; exported on first use, loaded once)."""
        if self._onnx is None:
            from irstd.onnx_runtime import OnnxModel

            self._onnx = OnnxModel(self.weights)
            self._parameters = self._onnx.parameters
        return self._onnx

    @property
    def parameters(self) -> int | None:  # noqa: D102 - documented on Method
        if self._parameters is None:
            if self.engine == "onnx":
                self.onnx_model()
            else:
                self.model()
        return self._parameters

    def run(self, image: np.ndarray) -> MethodOutput:
        from irstd.intensity import to_float
        from irstd.metrics import threshold_scores

        image = _check_image(image)
        if self.engine == "onnx":
            run = self.onnx_model().predict
        else:
            from irstd.models import predict

            model = self.model()
            run = lambda x: predict(model, x)  # noqa: E731
        x = to_float(image, self.bit_depth, self.input_range)
        start = time.perf_counter()
        probs = map_tta(lambda v: map_tiled(run, v, self.tile, self.overlap), x, self.tta)
        seconds = time.perf_counter() - start
        mask = threshold_scores(probs, self.threshold)
        return MethodOutput(scores=probs.astype(np.float64), mask=mask, raw=None, seconds=seconds)

    def run_batch(self, images: list[np.ndarray]) -> list[MethodOutput]:
        """:meth:`run` on several images; frames of one padded size go through the network together.

        The network pads every frame at the bottom and right to multiples of its stride (32)
        with its input mean; frames whose padded sizes agree are stacked so padded, in batches of
        at most ``batch_size`` frames of 256² worth of pixels (``batch_size`` frames of 256×256,
        fewer of bigger ones), and each output is cropped back: the probabilities equal
        one-at-a-time runs within float tolerance. Only the PyTorch engine without tiles or
        test-time augmentation batches (otherwise one image at a time). Each output's
        ``seconds`` is its share of its batch.
        """
        if self.engine != "torch" or self.tile is not None or self.tta != "none" or len(images) < 2:
            return [self.run(image) for image in images]
        import torch

        from irstd.intensity import to_float
        from irstd.metrics import threshold_scores
        from irstd.models import predict_batch
        from irstd.models.cgrinet import STRIDE
        from irstd.models.predict import pad_to_multiple

        images = [_check_image(image) for image in images]
        model = self.model()
        mean, chans = model.input_mean.detach().cpu(), int(model.input_mean.shape[1])
        outputs: list[MethodOutput | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, image in enumerate(images):
            h, w = image.shape
            groups.setdefault((-(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE), []).append(k)
        for (hp, wp), members in groups.items():
            per_batch = max(1, min(self.batch_size, self.batch_size * 256 * 256 // (hp * wp)))
            for first in range(0, len(members), per_batch):
                chunk = members[first : first + per_batch]
                start = time.perf_counter()
                x = torch.cat([  # each frame padded as the network pads it alone
                    pad_to_multiple(torch.from_numpy(to_float(images[k], self.bit_depth, self.input_range))[None, None]
                                    .expand(-1, chans, -1, -1), mean)
                    for k in chunk
                ])
                probs = predict_batch(model, x)[:, 0].float().cpu().numpy()
                seconds = (time.perf_counter() - start) / len(chunk)
                for row, k in enumerate(chunk):
                    h, w = images[k].shape
                    p = np.ascontiguousarray(probs[row, :h, :w])
                    outputs[k] = MethodOutput(scores=p.astype(np.float64), mask=threshold_scores(p, self.threshold),
                                              raw=None, seconds=seconds)
        return outputs

    def __getstate__(self):  # a pickled method reloads its model in the worker
        state = dict(self.__dict__)
        state["_model"] = None
        state["_onnx"] = None
        return state


def get_method(
    spec: str,
    *,
    threshold: float | None = None,
    device: str | None = None,
    bit_depth: int | None = None,
    input_range: str | None = None,
    engine: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    tta: str = "none",
) -> Method:
    """Build a method from its specification.

    Parameters
    ----------
    spec : str
        ``lcm``, ``ipi``, ``nram``, ``cgrinet`` (the packaged weights, :func:`default_weights`),
        ``cgrinet:paper`` (the packaged paper model, :func:`packaged_weights`) or
        ``cgrinet:FILE`` (an irstd model file written by :func:`irstd.models.save_weights`).
    threshold : float, optional
        Mask threshold on ``scores`` (in [0, 1]). CgriNet: 0.5 by default. Classical methods:
        by default their own rule ``raw > mean + k·std``; with a threshold, ``min–max score >
        threshold``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, optional
        Where CgriNet runs (:func:`resolve_engine`): ``auto`` (default) is the CUDA GPU when
        one is present, else the CPU; a CUDA device without a GPU is an error.
    bit_depth : int, optional
        Significant bits of 16-bit input for CgriNet's ``to_float`` (default: the value
        recorded in the weights' metadata, else 16). Classical methods run on raw values and
        ignore it.
    input_range : {"auto", "bits", "minmax", "fixed:LO,HI"}, optional
        How CgriNet maps an image to [0, 1] (:func:`irstd.intensity.to_float`; default: the rule
        recorded in the weights' metadata, ``bits`` for weights that predate it). ``minmax``
        (and ``auto`` for 16-bit data of unstated bit depth) suits raw camera frames whose
        counts fill only part of the 16-bit range. Classical methods ignore it.
    engine : {"auto", "torch", "onnx"}, optional
        What runs CgriNet: ``auto`` (default) is PyTorch on a CUDA device (frames of one padded size
        in batches of :data:`CUDA_BATCH`) and ONNX Runtime on the CPU
        (:mod:`irstd.onnx_runtime`: about 2x PyTorch's speed there, and no PyTorch import for
        the packaged weights, whose ONNX graph ships with them). Classical methods ignore it.
    tile : int, optional
        Run on overlapping ``tile × tile`` windows of big frames, stitched by centre crop
        (:func:`irstd.tiles.map_tiled`; at least 64): bounds memory and IPI/NRAM's patch
        matrices. ``None`` (default): the whole frame at once.
    overlap : int, optional
        Pixels shared by neighbouring tiles, at most ``tile // 2`` (default: 64, or
        ``tile // 2`` for tiles under 128).
    tta : {"none", "flip", "dihedral"}, optional
        CgriNet only: average the probabilities over the 4 flips or the 8 symmetries of the
        frame (:func:`irstd.tta.map_tta`; 4 or 8 times the work). Default: one run.

    Returns
    -------
    Method

    Raises
    ------
    InputError
        Unknown method, missing or unusable weights, threshold outside [0, 1], unusable tiling,
        ``tta`` with a classical method.
    """
    if threshold is not None:
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"--threshold: must lie in [0, 1], got {threshold:g}")
    if overlap is None:
        overlap = DEFAULT_OVERLAP if tile is None else min(DEFAULT_OVERLAP, int(tile) // 2)
    check_tiling(tile, overlap)
    tiled = "" if tile is None else f"; on {tile}-pixel tiles overlapping by {overlap}"
    text = str(spec).strip()
    name, sep, file = text.partition(":")
    name = name.lower()
    check_tta(tta)
    if name in CLASSICAL and not sep and tta != "none":
        raise InputError(f"--tta {tta}: only with cgrinet (it averages the network's probabilities), not {name}")
    if name in CLASSICAL and not sep:
        from irstd.baselines import METHODS  # here: CgriNet alone needs neither SciPy's LAPACK nor the baselines

        base = METHODS[name]
        if threshold is None:
            mask_rule = f"raw map > mean + {base.k:g}·std"
        else:
            mask_rule = f"min-max score > {threshold:g}"
        return ClassicalMethod(
            name=name,
            kind="classical",
            score_rule=f"min-max normalised raw {name.upper()} map{tiled}",
            mask_rule=mask_rule,
            threshold=threshold,
            tile=tile,
            overlap=overlap,
            k=base.k,
        )
    if name == "cgrinet":
        engine, device = resolve_engine(engine, device)
        if sep:
            if not file:
                raise InputError("--method cgrinet:FILE: the file name is missing")
            weights = packaged_weights(file) if file in PACKAGED_NAMES else Path(file)
            label = f"cgrinet:{file if file in PACKAGED_NAMES else weights.stem}"
        else:
            weights = default_weights()
            if weights is None:
                raise InputError(
                    "--method cgrinet: no trained weights are packaged yet; pass --weights FILE (or cgrinet:FILE)"
                )
            label = "cgrinet"
        from irstd.intensity import check_bit_depth, input_rule, parse_input_range
        from irstd.model_file import read_weights_metadata

        meta = read_weights_metadata(weights)  # checks the file before any image is read
        bits = check_bit_depth(bit_depth) if bit_depth is not None else _bit_depth_from_metadata(meta)
        if input_range is None:
            try:
                rng = parse_input_range(meta.get("input_range", "bits"))
            except InputError as exc:
                raise InputError(f"{weights}: unusable input_range in the metadata ({exc})") from None
        else:
            rng = parse_input_range(input_range)
        t = 0.5 if threshold is None else threshold
        return NetworkMethod(
            name=label,
            kind="network",
            score_rule=f"sigmoid probability of CgriNet ({meta.get('model', 'CgriNet')}); "
            f"input {input_rule(rng, bits)}" + ("; run by ONNX Runtime" if engine == "onnx" else "") + tiled
            + ("" if tta == "none" else f"; mean over {TTA_MODES[tta]} {tta} views (--tta {tta})"),
            mask_rule=f"probability > {t:g}",
            threshold=t,
            tile=tile,
            overlap=overlap,
            weights=weights,
            device=device,
            bit_depth=bits,
            input_range=rng,
            engine=engine,
            tta=tta,
            batch_size=CUDA_BATCH if device.startswith("cuda") else 1,
        )
    raise InputError(
        f"--method: unknown method {spec!r} (choose from {', '.join(list_methods())}, or cgrinet:FILE)"
    )


# --------------------------------------------------------------------------------------------
# many images
# --------------------------------------------------------------------------------------------


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
    gray: str = "auto",
) -> Iterator[MethodOutput | InputError]:
    """Run ``method`` on many images; results in input order.

    Parameters
    ----------
    method : Method
    items : iterable
        Image arrays, paths (read with :func:`irstd.io.read_image`), or ``(path, frame)``
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
    gray : {"auto", "luma", "r", "g", "b"}, optional
        How files in colour become grey (:func:`irstd.io.read_image`; ``auto`` refuses
        pseudo-colour frames).

    Yields
    ------
    MethodOutput or InputError
    """
    if workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    from irstd.io import check_gray

    check_gray(gray)
    if getattr(method, "batch_size", 1) > 1:
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
