"""Detection on the user's own images: the library behind ``irstd detect``.

Steps, each a function the CLI calls:

1. :func:`collect_inputs` turns the command line's inputs (files, folders, glob patterns, a
   list of paths) into image files, in order.
2. :func:`plan_items` expands multi-page TIFFs and videos into one :class:`Item` per frame.
3. :func:`plan_outputs` names the files to write under ``--out`` and refuses, before any work,
   an output that would replace an input or an existing file (without ``overwrite``).
4. :func:`detect` runs a :class:`irstd.methods.Method` on every item (in worker processes for
   classical methods) and yields a :class:`Detection` (targets found, see
   :func:`irstd.targets.find_targets`) or a :class:`Skipped` per item, in input order.
5. :func:`save_outputs` writes the mask, score map and overlay of a detection atomically.

Files written under ``--out`` (``<name>`` is the image's file stem, with ``_f<k>`` appended for
frame ``k`` of a multi-page TIFF or a video):

``masks/<name>.png``
    The method's mask, 8-bit 0/255, native size.
``scores/<name>.png``
    The [0, 1] score map as a 16-bit PNG (``value / 65535``), native size; the folder can be
    given to ``irstd evaluate --predictions`` as is.
``overlays/<name>.png``
    Colour PNG: the grey image min–max stretched to 8 bits, a box around every target.
"""

from __future__ import annotations

import glob as _glob
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irstd import io
from irstd.errors import InputError
from irstd.methods import Method, MethodOutput, run_method
from irstd.targets import find_targets

__all__ = [
    "OUTPUT_KINDS",
    "Detection",
    "Item",
    "Skipped",
    "collect_inputs",
    "detect",
    "overlay",
    "plan_items",
    "plan_outputs",
    "save_outputs",
]

#: Sub-folders of ``--out``, by output kind.
OUTPUT_KINDS = {"mask": "masks", "scores": "scores", "overlay": "overlays"}

_GLOB_CHARS = set("*?[")
#: What folder and pattern inputs pick up: images and videos.
_INPUT_SUFFIXES = io.IMAGE_SUFFIXES + io.VIDEO_SUFFIXES


def _natural_key(path: Path):
    """Sort key: path parts with runs of digits compared as numbers (img2 before img10)."""
    return [[int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", part)] for part in path.parts]


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    found = [
        p for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in _INPUT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(folder)))


def collect_inputs(
    inputs: Sequence[str | os.PathLike],
    *,
    recursive: bool = False,
    stdin_lines: Iterable[str] | None = None,
    missing: list[str] | None = None,
) -> list[Path]:
    """The image and video files named by ``inputs``, in order, each once.

    Parameters
    ----------
    inputs : sequence of str or path
        Image and video files; folders (every image, ``.png .tif .tiff .jpg .jpeg .bmp``, and
        video, :data:`irstd.io.VIDEO_SUFFIXES`, inside; hidden files skipped, natural sort
        order; sub-folders only with ``recursive``); glob patterns
        (``*``, ``?``, ``[...]``, ``**``), expanded here so quoted patterns work; ``-`` for the
        lines of ``stdin_lines`` (one path per line, blank lines ignored, no pattern
        expansion).
    recursive : bool, optional
        Descend into the sub-folders of folder inputs.
    stdin_lines : iterable of str, optional
        What ``-`` stands for.
    missing : list, optional
        When given, a line of ``stdin_lines`` naming nothing is appended to it instead of
        raising (``--skip-errors``: a list of paths made before some files went away).

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        A name that is neither a file, a folder nor a pattern matching something; a folder
        without images; no input at all.
    """
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    def add_name(name: str, expand: bool) -> None:
        p = Path(name)
        if p.is_dir():
            images = _folder_images(p, recursive)
            if not images:
                raise InputError(f"{name}: no images or videos ({', '.join(_INPUT_SUFFIXES)}) in this folder"
                                 + ("" if recursive else " (sub-folders need --recursive)"))
            for q in images:
                add(q)
        elif p.exists() or os.path.lexists(p):
            add(p)
        elif expand and _GLOB_CHARS & set(name):
            matches = sorted(_glob.glob(name, recursive=True), key=lambda s: _natural_key(Path(s)))
            files = [Path(m) for m in matches if Path(m).is_file()
                     and Path(m).suffix.lower() in _INPUT_SUFFIXES]
            for m in matches:
                if Path(m).is_dir():
                    files.extend(_folder_images(Path(m), recursive))
            if not files:
                raise InputError(f"{name}: no image file matches this pattern")
            for q in files:
                add(q)
        else:
            raise InputError(f"{name}: no such file or folder")

    for entry in inputs:
        name = os.fspath(entry)
        if name == "-":
            if stdin_lines is None:
                raise InputError("-: no list of paths on standard input")
            for line in stdin_lines:
                line = line.strip()
                if not line:
                    continue
                if missing is not None and not os.path.lexists(line):
                    missing.append(line)
                    continue
                add_name(line, expand=False)
        else:
            add_name(name, expand=True)
    if not out:
        if missing:
            raise InputError(f"INPUT: no usable image ({len(missing)} path{'s' * (len(missing) != 1)} on stdin not found, "
                             f"e.g. {missing[0]})")
        raise InputError("INPUT: no images given")
    return out


@dataclass(frozen=True)
class Item:
    """One image to run: a file and a frame (page of a multi-page TIFF, frame of a video)."""

    path: Path
    frame: int = 0
    frames: int = 1

    @property
    def name(self) -> str:
        """Output file stem: ``<stem>``, or ``<stem>_f<frame>`` in a multi-frame file."""
        return self.path.stem if self.frames == 1 else f"{self.path.stem}_f{self.frame}"

    @property
    def label(self) -> str:
        """How messages name the item: the path, with ``[frame k]`` in a multi-frame file."""
        return str(self.path) if self.frames == 1 else f"{self.path} [frame {self.frame}]"


@dataclass(frozen=True)
class Skipped:
    """An input that could not be used, with the one-line reason."""

    label: str
    reason: str


def plan_items(paths: Sequence[Path], *, skip_errors: bool = False,
               notes: list[str] | None = None) -> tuple[list[Item], list[Skipped]]:
    """One :class:`Item` per frame of every file (every page of a multi-page TIFF, every frame
    of a video).

    Parameters
    ----------
    paths : sequence of Path
    skip_errors : bool, optional
        Record a file whose frames cannot be counted (missing, corrupt) instead of raising.
    notes : list, optional
        Receives one line per video with fewer decodable frames than its header declares
        (corrupt frames, which FFmpeg passes over): they are not in the items.

    Returns
    -------
    items : list of Item
    skipped : list of Skipped
    """
    items: list[Item] = []
    skipped: list[Skipped] = []
    for p in paths:
        try:
            if io.is_video(p):
                n, declared = io.video_frame_counts(p)
                if declared > n and notes is not None:
                    notes.append(f"{p}: {declared - n} of the {declared} frames its header declares could not be "
                                 f"decoded (corrupt?); {n} frames are used")
            else:
                n = io.count_frames(p)
            if n < 1:
                raise InputError(f"{p}: no image in this file")
        except InputError as exc:
            if not skip_errors:
                raise
            skipped.append(Skipped(str(p), str(exc)))
            continue
        items.extend(Item(p, k, n) for k in range(n))
    return items, skipped


def plan_outputs(
    items: Sequence[Item],
    out: str | os.PathLike | None,
    kinds: Sequence[str],
    *,
    overwrite: bool = False,
) -> dict[Item, dict[str, Path]]:
    """The files each item will write under ``out``, checked before any work.

    Parameters
    ----------
    items : sequence of Item
    out : path-like or None
        Output folder; ``None`` with ``kinds`` is an error.
    kinds : sequence of str
        Among ``mask``, ``scores``, ``overlay`` (:data:`OUTPUT_KINDS`).
    overwrite : bool, optional
        Allow replacing existing output files (never an input file).

    Returns
    -------
    dict
        ``item -> {kind: path}`` (empty dicts without ``kinds``).

    Raises
    ------
    InputError
        ``--out`` is a file; an output would replace an input; two inputs would write the same
        file (same stem); an output exists and ``overwrite`` is False.
    """
    kinds = list(kinds)
    if not kinds:
        return {item: {} for item in items}
    if out is None:
        raise InputError("--out: needed to save masks, scores or overlays")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    inputs = {os.path.realpath(item.path) for item in items}
    plan: dict[Item, dict[str, Path]] = {}
    owner: dict[str, Item] = {}
    for item in items:
        files = {}
        for kind in kinds:
            path = out / OUTPUT_KINDS[kind] / f"{item.name}.png"
            key = os.path.realpath(path)
            if key in inputs:
                raise InputError(f"{path}: --out would write onto an input image; choose another --out")
            if key in owner:
                raise InputError(
                    f"{path}: written for both {owner[key].label} and {item.label} (same file name); "
                    f"detect them in separate runs or rename one"
                )
            owner[key] = item
            if path.exists() and not overwrite:
                raise InputError(f"{path}: already exists (use --overwrite to replace it)")
            files[kind] = path
        plan[item] = files
    return plan


@dataclass
class Detection:
    """The result of one item: its size, the method's output and the targets found."""

    item: Item
    width: int
    height: int
    output: MethodOutput
    targets: list[dict] = field(default_factory=list)

    def record(self, method: Method) -> dict[str, Any]:
        """The JSON line of ``irstd detect --format json`` for this item."""
        return {
            "image": str(self.item.path),
            "frame": self.item.frame,
            "width": self.width,
            "height": self.height,
            "method": method.name,
            "threshold": method.threshold,
            "rule": method.mask_rule,
            "tile": method.tiling(),
            "tta": method.tta,
            "seconds": round(self.output.seconds, 6),
            "targets": self.targets,
        }


def detect(
    method: Method,
    items: Sequence[Item],
    *,
    workers: int = 1,
    skip_errors: bool = False,
) -> Iterator[Detection | Skipped]:
    """Run ``method`` on every item and find its targets, in input order.

    Parameters
    ----------
    method : Method
        From :func:`irstd.methods.get_method`; its ``gray`` option says how colour frames
        become grey (:func:`irstd.io.read_image`).
    items : sequence of Item
    workers : int, optional
        Worker processes for classical methods (see :func:`irstd.methods.run_method`).
    skip_errors : bool, optional
        Yield a :class:`Skipped` for an unreadable image instead of raising.
    Yields
    ------
    Detection or Skipped
    """
    jobs = [(item.path, item.frame) for item in items]
    for item, result in zip(items, run_method(method, jobs, workers=workers, skip_errors=skip_errors)):
        if isinstance(result, InputError):
            yield Skipped(item.label, str(result))
            continue
        h, w = result.scores.shape
        yield Detection(item, w, h, result, find_targets(result.mask, result.scores))


def overlay(image: np.ndarray, targets: Sequence[dict], color=(255, 40, 40), margin: int = 2) -> np.ndarray:
    """An RGB picture of the targets: the grey image min–max stretched to 8 bits, a box each.

    Parameters
    ----------
    image : (H, W) ndarray
        The grey image (any dtype).
    targets : sequence of dict
        From :func:`irstd.targets.find_targets`.
    color : (int, int, int), optional
        Box colour (RGB).
    margin : int, optional
        Pixels left between a target and its box.

    Returns
    -------
    (H, W, 3) ndarray of uint8
    """
    import cv2

    grey = np.asarray(image, dtype=np.float64)
    lo, hi = float(grey.min()), float(grey.max())
    grey8 = np.zeros(grey.shape, np.uint8) if hi <= lo else np.rint((grey - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    rgb = np.ascontiguousarray(np.repeat(grey8[..., None], 3, axis=2))
    h, w = grey8.shape
    for t in targets:
        b = t["bbox"]
        x0, y0 = max(b["x"] - margin, 0), max(b["y"] - margin, 0)
        x1 = min(b["x"] + b["width"] - 1 + margin, w - 1)
        y1 = min(b["y"] + b["height"] - 1 + margin, h - 1)
        cv2.rectangle(rgb, (x0, y0), (x1, y1), color, 1)
    return rgb


def save_outputs(detection: Detection, files: dict[str, Path], *, overwrite: bool = False,
                 image: np.ndarray | None = None, gray: str = "auto") -> list[Path]:
    """Write the files planned by :func:`plan_outputs` for one detection (atomically).

    Parameters
    ----------
    detection : Detection
    files : dict
        ``{kind: path}`` from :func:`plan_outputs`.
    overwrite : bool, optional
    image : ndarray, optional
        The grey image for the overlay (read again from the file when not given, by the
        ``gray`` rule of :func:`irstd.io.read_image`).
    gray : str, optional

    Returns
    -------
    list of Path
    """
    out = detection.output
    arrays = {}
    for kind in files:  # every array first: a failure leaves no file of this detection half-done
        if kind == "mask":
            arrays[kind] = (out.mask, None)
        elif kind == "scores":
            arrays[kind] = (np.clip(out.scores, 0.0, 1.0), 16)
        elif kind == "overlay":
            if image is None:
                image = io.read_image(detection.item.path, frame=detection.item.frame, gray=gray)
            arrays[kind] = (overlay(image, detection.targets), None)
        else:
            raise ValueError(f"unknown output kind {kind!r}")
    return [io.write_image(path, *arrays[kind], overwrite=overwrite) for kind, path in files.items()]
