"""Datasets in the community layouts, read without conversion, and their validation.

A dataset is a folder with ``images/`` (any format :mod:`irstd.io` reads) and, usually,
``masks/`` (``<id>.png`` or ``<id>_pixels0.png``, any readable format). Split files (one id per
line; blank lines, ``#`` comments, folder prefixes and image extensions tolerated) are found in
the places the community repositories put them:

=====================================  =====================================================
where                                   split names
=====================================  =====================================================
``splits/**/*.txt``                     path below ``splits/`` without ``.txt``:
                                        ``test``, ``dnanet_50_50/test``, ``idx_427/val``
``img_idx/{train,test}_<name>.txt``     ``train``, ``test`` (BasicIRSTD)
``<a>_<b>/*.txt`` e.g. ``50_50/``       ``50_50/train``, ``50_50/test`` (DNANet)
``idx_427/*.txt``, ``idx_320/*.txt``    ``idx_427/test`` ... (SIRST)
top-level ``train.txt``, ``test.txt``,  ``trainval``, ``test`` ... (MSHNet, SeRankDet)
``trainval.txt``, ``val.txt``
=====================================  =====================================================

When two places give the same name, the first in this table keeps it and the other is named by
its path relative to the dataset root (without ``.txt``, or with it when that still clashes,
e.g. a top-level ``test.txt`` beside ``splits/test.txt`` is ``test.txt``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from irstd import io
from irstd.errors import InputError

__all__ = [
    "CheckReport",
    "Dataset",
    "Problem",
    "check_dataset",
    "check_outside",
    "check_split_choice",
    "ids_hash",
    "open_dataset",
    "read_split_file",
    "split_lines",
]

_MASK_SUFFIX = "_pixels0"
_RATIO_DIR = re.compile(r"^\d+_\d+$")
_SIRST_DIR = re.compile(r"^idx_\d+$")
_TOP_SPLIT = re.compile(r"^(train|val|test|trainval|trainvaltest)([_-].*)?$", re.IGNORECASE)


def ids_hash(ids: Sequence[str]) -> str:
    """SHA-256 of the sorted ids joined by newlines: an order-independent fingerprint of a split."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def check_split_choice(split: str | None, split_file: str | os.PathLike | None) -> None:
    """Refuse both or neither of ``--split`` and ``--split-file`` (one line, :class:`InputError`)."""
    if split is not None and split_file is not None:
        raise InputError("--split/--split-file: give one of them, not both")
    if split is None and split_file is None:
        raise InputError("--split or --split-file: say which ids to use (e.g. --split test)")


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _suffix_rank(path: Path) -> int:
    s = path.suffix.lower()
    return io.IMAGE_SUFFIXES.index(s) if s in io.IMAGE_SUFFIXES else len(io.IMAGE_SUFFIXES)


def _strip_image_suffix(name: str) -> str:
    for s in io.IMAGE_SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


#: A split file larger than this is not one (16 MiB: about a million ids).
MAX_SPLIT_BYTES = 16 << 20


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Ids listed in a split file, in file order, duplicates kept.

    One id per line; surrounding white space, blank lines and ``#`` comments are ignored; a
    folder prefix (``images/a.png``) and an image extension (``a.png``) are removed.
    """
    return [image_id for image_id, _ in split_lines(path)]


def _outside(line: str) -> bool:
    """Whether a split line names a path outside the dataset (``..`` or an absolute path)."""
    line = line.replace("\\", "/")
    return line.startswith("/") or ".." in line.split("/")


def split_lines(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(id, line as written)`` for every id line of a split file (see :func:`read_split_file`):
    :func:`check_dataset` names a line by what it says (``../outside`` rather than ``outside``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such split file")
    if p.is_dir():
        raise InputError(f"{path}: is a folder, expected a split file (one id per line)")
    try:
        with open(p, "rb") as fh:  # read at most the limit: a device such as /dev/zero never ends
            data = fh.read(MAX_SPLIT_BYTES + 1)
        if len(data) > MAX_SPLIT_BYTES:
            raise InputError(f"{path}: over {MAX_SPLIT_BYTES >> 20} MiB, not a split file (one id per line)")
        if b"\0" in data:
            raise InputError(f"{path}: binary data, not a split file (one id per line)")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text split file (one id per line)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    out = []
    for raw in text.splitlines():
        raw = raw.split("#", 1)[0].strip()
        if not raw:
            continue
        line = raw.replace("\\", "/").rsplit("/", 1)[-1]
        out.append((_strip_image_suffix(line), raw))
    return out


def _unique(seq: list[str]) -> list[str]:
    return list(dict.fromkeys(seq))


class Dataset:
    """A dataset folder: ``images/``, ``masks/`` and split files in a community layout.

    Use :func:`open_dataset` to create one. Attributes: ``root``, ``images_dir``,
    ``masks_dir`` (None when there is no ``masks/`` folder), ``layout`` (one-line description of
    what was detected), ``split_files`` (split name -> file).
    """

    def __init__(self, root: Path):
        self.root = root
        self.images_dir = root / "images"
        masks_dir = root / "masks"
        self.masks_dir = masks_dir if masks_dir.is_dir() else None
        self._images: dict[str, Path] = {}
        self.duplicate_images: dict[str, list[Path]] = {}
        for f in sorted(self.images_dir.iterdir(), key=lambda q: (q.name.lower(), _suffix_rank(q))):
            if f.suffix.lower() in io.IMAGE_SUFFIXES and f.is_file() and not f.name.startswith("."):
                self._add(self._images, f.stem, f, self.duplicate_images)
        self._masks: dict[str, Path] = {}
        self.duplicate_masks: dict[str, list[Path]] = {}
        if self.masks_dir is not None:
            for f in sorted(self.masks_dir.iterdir(), key=lambda q: (q.name.lower(), _suffix_rank(q))):
                if f.suffix.lower() in io.IMAGE_SUFFIXES and f.is_file() and not f.name.startswith("."):
                    stem = f.stem[: -len(_MASK_SUFFIX)] if f.stem.endswith(_MASK_SUFFIX) else f.stem
                    self._add(self._masks, stem, f, self.duplicate_masks)
        self.split_files, self._sources = _find_splits(root)
        self.layout = self._describe_layout()

    @staticmethod
    def _add(table: dict[str, Path], key: str, f: Path, dups: dict[str, list[Path]]) -> None:
        if key in table:
            old = table[key]
            dups.setdefault(key, [old]).append(f)
            if _suffix_rank(f) < _suffix_rank(old):
                table[key] = f
        else:
            table[key] = f

    def _describe_layout(self) -> str:
        parts = ["images/ + masks/" if self.masks_dir is not None else "images/ (no masks/)"]
        if self._sources:
            counts = Counter(self._sources.values())
            parts.append("splits: " + ", ".join(f"{src} ({n})" for src, n in counts.items()))
        else:
            parts.append("no split files")
        return "; ".join(parts)

    def describe(self) -> str:
        """One line: root, number of images and masks, layout."""
        return f"{self.root}: {len(self._images)} images, {len(self._masks)} masks; {self.layout}"

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r})"

    def splits(self) -> list[str]:
        """Names of the split files found (see the module documentation)."""
        return list(self.split_files)

    def ids(self, split: str | None = None, split_file: str | os.PathLike | None = None) -> list[str]:
        """Image ids, naturally sorted (no split) or in split-file order (duplicates dropped).

        Parameters
        ----------
        split : str, optional
            A name from :meth:`splits` (``test``, ``dnanet_50_50/test``, ...).
        split_file : path, optional
            Any file with one id per line (overrides ``split``).

        Ids listed in a split are returned even when their files are missing; reading them
        raises :class:`InputError` (run :func:`check_dataset` to list such problems).
        """
        if split_file is not None:
            return _unique(read_split_file(split_file))
        if split is not None:
            name = split.strip("/")
            if name not in self.split_files and name.endswith(".txt"):
                name = name[:-4]
            if name not in self.split_files:
                avail = ", ".join(self.splits()) or "none"
                raise InputError(f"--split: unknown split {split!r} in {self.root} (available: {avail})")
            return _unique(read_split_file(self.split_files[name]))
        return sorted(self._images, key=_natural_key)

    def input_dirs(self) -> list[Path]:
        """The folders that hold the dataset's own files: ``images/``, ``masks/``, ``splits/`` and
        every other folder of a split file (``img_idx/``, ``50_50/``, ...), but not the root.
        Outputs are refused inside them (:func:`check_outside`)."""
        dirs = [self.images_dir, self.root / "masks", self.root / "splits"]
        dirs += [f.parent for f in self.split_files.values()]
        root = os.path.realpath(self.root)
        out: list[Path] = []
        for d in dirs:
            if os.path.realpath(d) != root and d not in out:
                out.append(d)
        return out

    def mask_ids(self) -> list[str]:
        """Ids that have a mask, naturally sorted."""
        return sorted(self._masks, key=_natural_key)

    def has_image(self, image_id: str) -> bool:
        return image_id in self._images

    def has_mask(self, image_id: str) -> bool:
        return image_id in self._masks

    def image_path(self, image_id: str) -> Path:
        """Path of the image of ``image_id``; :class:`InputError` when there is none."""
        try:
            return self._images[image_id]
        except KeyError:
            raise InputError(f"{self.images_dir}: no image for id {image_id!r}") from None

    def mask_path(self, image_id: str) -> Path:
        """Path of the mask of ``image_id``; :class:`InputError` when there is none."""
        try:
            return self._masks[image_id]
        except KeyError:
            where = self.masks_dir or (self.root / "masks")
            raise InputError(f"{where}: no mask for id {image_id!r}") from None

    def read_image(self, image_id: str, frame: int = 0, gray: str = "auto") -> np.ndarray:
        """The image of ``image_id`` (:func:`irstd.io.read_image`, with its ``gray`` rule)."""
        return io.read_image(self.image_path(image_id), frame=frame, gray=gray)

    def read_mask(self, image_id: str) -> np.ndarray:
        """The mask of ``image_id`` as bool (:func:`irstd.io.read_mask`)."""
        return io.read_mask(self.mask_path(image_id))

    def read_pair(self, image_id: str, gray: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """Image and bool mask of ``image_id``; :class:`InputError` when their sizes differ."""
        image = self.read_image(image_id, gray=gray)
        mask = self.read_mask(image_id)
        if image.shape != mask.shape:
            raise InputError(
                f"{self.root}: id {image_id!r}: image is {_wh(image.shape)} but mask is {_wh(mask.shape)} (WxH)"
            )
        return image, mask


def _wh(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def check_outside(out: str | os.PathLike, dataset: Dataset, option: str = "--out") -> Path:
    """Refuse an output folder inside the dataset's own folders (:meth:`Dataset.input_dirs`),
    whatever ``--overwrite`` says: writing there would replace images, masks or split files.

    Symbolic links are followed. Returns ``Path(out)``; raises :class:`InputError`.
    """
    target = Path(os.path.realpath(out))
    for d in dataset.input_dirs():
        real = Path(os.path.realpath(d))
        if target == real or real in target.parents:
            raise InputError(
                f"{out}: {option} lies inside the dataset's {d.relative_to(dataset.root).as_posix()}/ folder "
                f"(it would replace the dataset's files); choose a folder outside {d}"
            )
    return Path(out)


def _find_splits(root: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Split name -> file and split name -> source folder label, in priority order."""
    found: list[tuple[str, Path, str]] = []
    sdir = root / "splits"
    if sdir.is_dir():
        for f in sorted(sdir.rglob("*.txt"), key=lambda q: _natural_key(str(q))):
            found.append((f.relative_to(sdir).with_suffix("").as_posix(), f, "splits/"))
    idx = root / "img_idx"
    if idx.is_dir():
        files = sorted(idx.glob("*.txt"))
        by_role: dict[str, list[Path]] = {}
        for f in files:
            role = f.stem.split("_", 1)[0].lower()
            by_role.setdefault(role, []).append(f)
        for f in files:
            role = f.stem.split("_", 1)[0].lower()
            name = role if len(by_role[role]) == 1 and role in ("train", "test", "val", "trainval") else None
            found.append((name or f"img_idx/{f.stem}", f, "img_idx/ (BasicIRSTD)"))
    for d in sorted((q for q in root.iterdir() if q.is_dir()), key=lambda q: _natural_key(q.name)):
        if _RATIO_DIR.match(d.name) or _SIRST_DIR.match(d.name):
            label = f"{d.name}/ (DNANet)" if _RATIO_DIR.match(d.name) else f"{d.name}/ (SIRST)"
            for f in sorted(d.glob("*.txt")):
                found.append((f"{d.name}/{f.stem}", f, label))
    for f in sorted(root.glob("*.txt")):
        if _TOP_SPLIT.match(f.stem):
            found.append((f.stem, f, "top-level .txt (MSHNet)"))
    names: dict[str, Path] = {}
    sources: dict[str, str] = {}
    for name, f, label in found:
        if name in names:
            name = f.relative_to(root).with_suffix("").as_posix()
        if name in names:
            name = f.relative_to(root).as_posix()  # e.g. top-level test.txt beside splits/test.txt
        if name in names:
            continue
        names[name] = f
        sources[name] = label
    return names, sources


def open_dataset(root: str | os.PathLike) -> Dataset:
    """Open a dataset folder (``images/`` required, ``masks/`` and split files optional).

    Raises
    ------
    InputError
        ``root`` is missing, not a folder, has no ``images/`` folder or no image in it.
    """
    p = Path(root)
    if not p.exists():
        raise InputError(f"{root}: no such folder")
    if not p.is_dir():
        raise InputError(f"{root}: not a folder (expected a dataset folder with images/ and masks/)")
    if not (p / "images").is_dir():
        raise InputError(f"{root}: not a dataset (no images/ folder; expected images/ and masks/)")
    ds = Dataset(p)
    if not ds._images:
        raise InputError(f"{p / 'images'}: no images ({', '.join(io.IMAGE_SUFFIXES)})")
    return ds


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """One kind of problem and the ids (or files) involved.

    ``kind`` is one of ``missing_mask``, ``missing_image``, ``unreadable_image``,
    ``unreadable_mask``, ``size_mismatch``, ``non_binary_mask``, ``empty_mask``,
    ``duplicate_files``, ``duplicate_ids``, ``unknown_ids``, ``split_overlap``, ``no_masks``,
    ``empty_split``, ``split_outside`` (lines such as ``../x``, named as written),
    ``unreadable_split``.
    ``details`` maps an id to a short explanation (sizes, pixel counts, messages).
    """

    kind: str
    message: str
    ids: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`: problems found and summary facts (pure data)."""

    root: str
    layout: str
    problems: list[Problem]
    facts: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary."""
        return {"root": self.root, "layout": self.layout, "ok": self.ok,
                "problems": [asdict(p) for p in self.problems], "facts": self.facts}


def _binary_info(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(bool mask, number of pixels neither 0 nor the full value) by :func:`irstd.io.read_mask`'s rule."""
    full = io.mask_full_value(mask)
    nonbin = int(np.count_nonzero((mask != 0) & (mask != full)))
    return io.mask_from_image(mask), nonbin


def _split_role(leaf: str) -> str | None:
    leaf = leaf.lower()
    if "train" in leaf and "test" in leaf:
        return None  # trainvaltest: everything
    if leaf.startswith("test"):
        return "test"
    if leaf.startswith("train"):
        return "trainval" if leaf.startswith("trainval") else "train"
    if leaf.startswith("val"):
        return "val"
    return None


def _overlap_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of splits in the same folder that must be disjoint (train/test, trainval/test ...)."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for n in names:
        folder, _, leaf = n.rpartition("/")
        role = _split_role(leaf)
        if role:
            groups.setdefault(folder, []).append((n, role))
    pairs = []
    allowed = {frozenset({"trainval", "val"}), frozenset({"trainval", "train"})}
    for items in groups.values():
        for i, (a, ra) in enumerate(items):
            for b, rb in items[i + 1:]:
                if ra != rb and frozenset({ra, rb}) not in allowed:
                    pairs.append((a, b))
    return pairs


def _add(problems: list[Problem], kind: str, message: str, ids: list[str], details: dict | None = None) -> None:
    """Append a problem naming ``ids`` (in natural order); nothing when ``ids`` is empty."""
    if ids:
        problems.append(Problem(kind, message, sorted(ids, key=_natural_key), details or {}))


def _check_pairing(ds: Dataset, image_ids: list[str], mask_ids: list[str], problems: list[Problem]) -> None:
    """Images without masks, masks without images, several files for one id."""
    if ds.masks_dir is None:
        problems.append(Problem("no_masks", "no masks/ folder: nothing to evaluate or train on"))
    else:
        _add(problems, "missing_mask", "image without a mask", [i for i in image_ids if not ds.has_mask(i)])
    _add(problems, "missing_image", "mask without an image", [i for i in mask_ids if not ds.has_image(i)])
    dup_files = {k: [p.name for p in v] for k, v in {**ds.duplicate_images, **ds.duplicate_masks}.items()}
    _add(problems, "duplicate_files", "several files for one id (the first by extension order is used)",
         list(dup_files), dup_files)


def _check_images(
    ds: Dataset, image_ids: list[str], decode_images: bool, problems: list[Problem]
) -> tuple[dict[str, tuple[int, int]], dict[str, Any]]:
    """(H, W) of every readable image (from its header unless ``decode_images``) and the image facts."""
    sizes: dict[str, tuple[int, int]] = {}
    dtypes: Counter = Counter()
    colours: Counter = Counter()
    unreadable: dict[str, str] = {}
    for i in image_ids:
        try:
            info = io.image_info(ds.image_path(i))
            shape, dtype = (info["height"], info["width"]), info["dtype"]
            colours[info["colour"]] += 1
            if decode_images:
                img = io.read_image(ds.image_path(i))
                shape, dtype = img.shape, str(img.dtype)
        except InputError as exc:
            unreadable[i] = str(exc)
            continue
        sizes[i] = shape
        dtypes[dtype] += 1
    _add(problems, "unreadable_image", "image file cannot be read", list(unreadable), unreadable)
    hs = [s[0] for s in sizes.values()]
    ws = [s[1] for s in sizes.values()]
    facts = {
        "width_range": [min(ws), max(ws)] if ws else None,
        "height_range": [min(hs), max(hs)] if hs else None,
        "distinct_sizes": len(set(sizes.values())),
        "image_dtypes": dict(sorted(dtypes.items())),
        "image_colour": dict(sorted(colours.items())),
    }
    return sizes, facts


def _check_masks(
    ds: Dataset, both: list[str], sizes: dict[str, tuple[int, int]], problems: list[Problem], progress=None
) -> dict[str, Any]:
    """Decode the masks of ``both`` (ids with an image and a mask); the mask and target facts."""
    from scipy import ndimage

    mismatch: dict[str, str] = {}
    nonbinary: dict[str, int] = {}
    empty: list[str] = []
    unreadable: dict[str, str] = {}
    targets_per_image: Counter = Counter()
    areas: list[int] = []
    n_targets = 0
    mask_dtypes: Counter = Counter()
    structure = np.ones((3, 3), bool)
    for k, i in enumerate(both):
        if progress is not None:
            progress(k, len(both))
        try:
            raw = io.read_image(ds.mask_path(i), gray="luma")  # any colour of a mask is a value
        except InputError as exc:
            unreadable[i] = str(exc)
            continue
        mask_dtypes[str(raw.dtype)] += 1
        if i in sizes and raw.shape != sizes[i]:
            mismatch[i] = f"image {_wh(sizes[i])}, mask {_wh(raw.shape)}"
        m, nb = _binary_info(raw)
        if nb:
            nonbinary[i] = nb
        labels, n = ndimage.label(m, structure=structure)
        if n == 0:
            empty.append(i)
        else:
            areas.extend(np.bincount(labels.ravel())[1:].tolist())
        targets_per_image[n] += 1
        n_targets += n
    if progress is not None:
        progress(len(both), len(both))
    _add(problems, "unreadable_mask", "mask file cannot be read", list(unreadable), unreadable)
    _add(problems, "size_mismatch", "image and mask sizes differ (WxH)", list(mismatch), mismatch)
    _add(problems, "non_binary_mask", "mask values other than 0 and the maximum (pixel counts)",
         list(nonbinary), nonbinary)
    _add(problems, "empty_mask", "mask without any target pixel", empty)
    return {
        "mask_dtypes": dict(sorted(mask_dtypes.items())),
        "targets": n_targets,
        "targets_per_image": {str(k): v for k, v in sorted(targets_per_image.items())},
        "target_area_range": [min(areas), max(areas)] if areas else None,
        "target_area_median": float(np.median(areas)) if areas else None,
    }


def _check_splits(ds: Dataset, problems: list[Problem]) -> dict[str, int]:
    """Duplicate and unknown ids in each split file, overlap between splits; ids per split."""
    split_facts: dict[str, int] = {}
    split_sets: dict[str, set[str]] = {}
    for name, f in ds.split_files.items():
        try:
            lines = split_lines(f)
        except InputError as exc:
            problems.append(Problem("unreadable_split", str(exc), [name]))
            continue
        listed = [image_id for image_id, _ in lines]
        if not listed:
            problems.append(Problem("empty_split", f"split {name}: no ids ({f})", [name]))
        outside = [raw for _, raw in lines if _outside(raw)]
        _add(problems, "split_outside", f"split {name}: lines naming paths outside the dataset (read as their "
             f"last part, which may be another image)", outside)
        counts = Counter(listed)
        dups = {i: c for i, c in counts.items() if c > 1}
        _add(problems, "duplicate_ids", f"split {name}: ids listed more than once (counts)", list(dups), dups)
        written = {image_id: raw for image_id, raw in lines}
        unknown = [written[i] for i in counts if not ds.has_image(i)]  # as written in the file
        _add(problems, "unknown_ids", f"split {name}: ids without an image", unknown)
        split_facts[name] = len(counts)
        split_sets[name] = set(counts)
    for a, b in _overlap_pairs(list(split_sets)):
        common = split_sets[a] & split_sets[b]
        _add(problems, "split_overlap", f"splits {a} and {b} share ids", list(common))
    return split_facts


def check_dataset(root: str | os.PathLike, decode_images: bool = False, progress=None) -> CheckReport:
    """Validate a dataset and summarise it.

    Every problem is reported with the ids involved: missing image or mask, unreadable files,
    image/mask size mismatch, non-binary masks (number of pixels that are neither 0 nor the
    maximum), empty masks, duplicate files for one id, duplicate or unknown ids in split files,
    overlap between splits that must be disjoint (train/test, trainval/test, train/val, val/test
    in the same folder). Image sizes and sample types come from the file headers (fast) unless
    ``decode_images``; masks are always decoded (values and targets).

    Parameters
    ----------
    root : path
        Dataset folder (see :func:`open_dataset`).
    decode_images : bool, optional
        Decode every image too (finds truncated or corrupt pixel data; slower).
    progress : callable, optional
        Called as ``progress(done, total)`` while masks are read.

    Returns
    -------
    report : CheckReport
        ``problems`` (empty when the dataset is clean) and ``facts``: counts, image size range,
        sample types, targets (8-connected components of the masks) and their areas, splits.

    Raises
    ------
    InputError
        ``root`` is not a dataset at all.
    """
    ds = open_dataset(root)
    problems: list[Problem] = []
    image_ids = ds.ids()
    mask_ids = ds.mask_ids()
    _check_pairing(ds, image_ids, mask_ids, problems)
    sizes, image_facts = _check_images(ds, image_ids, decode_images, problems)
    both = [i for i in mask_ids if ds.has_image(i)]
    mask_facts = _check_masks(ds, both, sizes, problems, progress)
    split_facts = _check_splits(ds, problems)
    facts: dict[str, Any] = {
        "images": len(image_ids),
        "masks": len(mask_ids),
        "pairs": len(both),
        **image_facts,
        **mask_facts,
        "connectivity": 8,
        "splits": split_facts,
    }
    return CheckReport(root=str(ds.root), layout=ds.layout, problems=problems, facts=facts)
