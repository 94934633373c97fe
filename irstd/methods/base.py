"""What every method is: :class:`Method`, and what it returns for one image, :class:`MethodOutput`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irstd.errors import InputError
from irstd.methods.options import MethodOptions

@dataclass
class MethodOutput:
    """What :meth:`Method.run` returns for one image (see the module docstring).

    ``warnings`` holds one-line facts about the input a caller may want to report (e.g. a frame
    whose [0, 1] mapping is far from what the weights were trained on,
    :func:`irstd.intensity.mapped_range_warning`); the library never prints them.
    """

    scores: np.ndarray
    mask: np.ndarray
    raw: np.ndarray | None
    seconds: float
    warnings: list[str] = field(default_factory=list)



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
    options : MethodOptions
        The options it was made with; ``tile``, ``overlap``, ``tta`` and ``gray`` read them.
    """

    name: str
    kind: str
    score_rule: str
    mask_rule: str
    threshold: float | None
    options: MethodOptions = field(default_factory=MethodOptions)

    @property
    def tile(self) -> int | None:
        """Tile size of tiled inference (:func:`irstd.tiles.map_tiled`); ``None``: whole frames."""
        return self.options.tile

    @property
    def overlap(self) -> int:
        """Pixels shared by neighbouring tiles (:attr:`MethodOptions.effective_overlap`)."""
        return self.options.effective_overlap

    @property
    def tta(self) -> str:
        """Test-time augmentation (:mod:`irstd.tta`); ``"none"`` for classical methods."""
        return self.options.tta

    @property
    def gray(self) -> str:
        """How colour files become grey when this method reads them (:func:`irstd.io.read_image`)."""
        return self.options.gray

    @property
    def parameters(self) -> int | None:
        """Trainable parameters (network), ``None`` for classical methods."""
        return None

    @property
    def weights_file(self) -> Path | None:
        """The model file (network), ``None`` for classical methods."""
        return None

    def tiling(self) -> dict[str, int] | None:
        """``{"size": tile, "overlap": overlap}`` for tiled inference, else ``None``."""
        return None if self.tile is None else {"size": self.tile, "overlap": self.overlap}

    def record(self) -> dict[str, Any]:
        """What run records, JSON and CSV outputs say of this method (plain values).

        Keys: ``method``, ``kind``, ``score_rule``, ``mask_rule``, ``threshold``, ``tile``
        (:meth:`tiling`), ``tta``, ``gray``, and for CgriNet's benefit ``weights``,
        ``bit_depth``, ``input_range``, ``engine``, ``device`` (``None`` for classical methods).
        """
        return {
            "method": self.name,
            "kind": self.kind,
            "score_rule": self.score_rule,
            "mask_rule": self.mask_rule,
            "threshold": self.threshold,
            "tile": self.tiling(),
            "tta": self.tta,
            "gray": self.gray,
            "weights": None,
            "bit_depth": None,
            "input_range": None,
            "engine": None,
            "device": None,
        }

    def code_files(self) -> list[Path]:
        """The source files this method's outputs depend on (for cache keys): ``methods/base.py``,
        ``methods/options.py`` and ``tiles.py``, and what the subclass adds. Found by path, so
        nothing is imported."""
        return [_PACKAGE / "methods" / "base.py", _PACKAGE / "methods" / "options.py", _PACKAGE / "tiles.py"]

    def run(self, image: np.ndarray) -> MethodOutput:  # pragma: no cover - abstract
        """Run on one 2-D grey image (``irstd.io.read_image`` output, native dtype)."""
        raise NotImplementedError


#: The ``irstd`` package folder (source files of :meth:`Method.code_files`).
_PACKAGE = Path(__file__).resolve().parent.parent


def _check_image(image) -> np.ndarray:
    """The one check every method makes of a frame before running (messages start ``image:``;
    :func:`irstd.methods.run_method` names the file instead).

    The non-finite pixel rule: a frame with any NaN or infinite pixel is refused, by every
    method and engine, with the count of such pixels (under ``--skip-errors`` the frame is
    skipped). Nothing is filled in or ignored, so that no method's answer depends on how it
    treats NaN (docs/data.md).
    """
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"image: expected a 2-D grey image, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"image: empty image of shape {arr.shape}")
    if arr.dtype.kind in "fc":
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise InputError(
                f"image: {bad} non-finite pixel{'s' * (bad != 1)} (NaN or infinite) of {arr.size}; "
                f"irstd refuses frames with non-finite values (docs/data.md)"
            )
    return arr



def _tiled_rule(options: MethodOptions) -> str:
    if options.tile is None:
        return ""
    return f"; on {options.tile}-pixel tiles overlapping by {options.effective_overlap}"

