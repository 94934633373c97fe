"""Options of a method (:class:`MethodOptions`) and where CgriNet runs (:func:`resolve_engine`)."""

from __future__ import annotations

from dataclasses import dataclass

from irstd.errors import InputError
from irstd.tiles import DEFAULT_OVERLAP, check_tiling
from irstd.tta import check_tta

#: What runs CgriNet (:func:`get_method`): ``auto`` is PyTorch on a CUDA device, ONNX Runtime on the CPU.
ENGINES = ("auto", "torch", "onnx")


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



@dataclass(frozen=True)
class MethodOptions:
    """What a user may set for any method, checked once when made.

    Parameters
    ----------
    threshold : float, optional
        Mask threshold on ``scores`` (in [0, 1]). CgriNet: 0.5 by default. Classical methods:
        by default their own rule ``raw > mean + k·std``; with a threshold, ``min–max score >
        threshold``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, optional
        Where CgriNet runs (:func:`resolve_engine`): ``auto`` (default) is the CUDA GPU when
        one is present, else the CPU; a CUDA device without a GPU is an error.
    engine : {"auto", "torch", "onnx"}, optional
        What runs CgriNet: ``auto`` (default) is PyTorch on a CUDA device (frames of one padded
        size in batches of :data:`CUDA_BATCH`) and ONNX Runtime on the CPU
        (:mod:`irstd.onnx_runtime`: no PyTorch import for the packaged weights, whose ONNX graph
        ships with them). Classical methods ignore it.
    bit_depth : int, optional
        Significant bits of 16-bit input for CgriNet's ``to_float`` (default: the value
        recorded in the weights' metadata, else 16). Classical methods run on raw values and
        ignore it.
    input_range : {"auto", "bits", "minmax", "fixed:LO,HI"}, optional
        How CgriNet maps an image to [0, 1] (:func:`irstd.intensity.to_float`; default: the
        rule recorded in the weights' metadata, ``bits`` for weights that predate it).
        ``minmax`` (and ``auto`` for 16-bit data of unstated bit depth) suits raw camera frames
        whose counts fill only part of the 16-bit range. Classical methods ignore it.
    gray : {"auto", "luma", "r", "g", "b"}, optional
        How colour files become grey when the method reads them (:func:`irstd.io.read_image`;
        ``auto`` refuses pseudo-colour frames).
    tile : int, optional
        Run on overlapping ``tile × tile`` windows of big frames, stitched by centre crop
        (:func:`irstd.tiles.map_tiled`; at least 64): bounds memory and IPI/NRAM's patch
        matrices. ``None`` (default): the whole frame at once.
    overlap : int, optional
        Pixels shared by neighbouring tiles, at most ``tile // 2`` (default: 64, or
        ``tile // 2`` for tiles under 128: :attr:`effective_overlap`).
    tta : {"none", "flip", "dihedral"}, optional
        CgriNet only: average the probabilities over the 4 flips or the 8 symmetries of the
        frame (:func:`irstd.tta.map_tta`; 4 or 8 times the work). Default: one run.

    Raises
    ------
    InputError
        A value out of its range, naming the command-line option.
    """

    threshold: float | None = None
    device: str = "auto"
    engine: str = "auto"
    bit_depth: int | None = None
    input_range: str | None = None
    gray: str = "auto"
    tile: int | None = None
    overlap: int | None = None
    tta: str = "none"

    def __post_init__(self) -> None:
        from irstd.intensity import check_bit_depth, parse_input_range
        from irstd.io import check_gray

        if self.threshold is not None:
            threshold = float(self.threshold)
            if not 0.0 <= threshold <= 1.0:
                raise InputError(f"--threshold: must lie in [0, 1], got {threshold:g}")
            object.__setattr__(self, "threshold", threshold)
        if self.engine not in ENGINES:
            raise InputError(f"--engine: expected one of {', '.join(ENGINES)}, got {self.engine!r}")
        object.__setattr__(self, "bit_depth", check_bit_depth(self.bit_depth))
        if self.input_range is not None:
            object.__setattr__(self, "input_range", parse_input_range(self.input_range))
        check_gray(self.gray)
        check_tiling(self.tile, self.effective_overlap)
        check_tta(self.tta)

    @property
    def effective_overlap(self) -> int:
        """``overlap``, or its default: 64, or ``tile // 2`` for tiles under 128."""
        if self.overlap is not None:
            return self.overlap
        return DEFAULT_OVERLAP if self.tile is None else min(DEFAULT_OVERLAP, int(self.tile) // 2)

