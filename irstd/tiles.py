"""Tiled inference for big frames: a map computed on overlapping tiles, stitched by centre crop.

A method that maps a 2-D image to a 2-D map of the same shape (CgriNet's probabilities, a
classical method's raw map) can run on ``tile × tile`` windows that overlap by ``overlap``
pixels; every output pixel is taken from the tile in which it lies farthest from the tile's
inner borders (the cut between two neighbouring tiles is the middle of their overlap), so each
kept pixel has at least ``overlap // 2`` pixels of real context on every side that is not the
frame's own border. Tiles have the full ``tile`` size (the last one along each axis is aligned
to the frame's end) unless the frame itself is smaller.

This bounds memory and patch-matrix sizes on big frames. A method whose output at a pixel
depends only on a neighbourhood of radius ``r <= overlap // 2`` (LCM: 13 pixels with its
default cells) gives exactly the whole-frame map; CgriNet (global attention along rows and
columns) and IPI/NRAM (low-rank models of the whole patch set) give a map of the tiles instead,
close to the whole-frame one with enough overlap (measured in ``docs/detect.md``).

The pattern is SAHI's sliced inference (https://github.com/obss/sahi), simpler here because
segmentation maps are stitched pixel by pixel instead of merging boxes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irstd.errors import InputError

__all__ = ["DEFAULT_OVERLAP", "MIN_TILE", "check_tiling", "map_tiled", "tile_spans"]

#: Overlap between neighbouring tiles (pixels) when only ``--tile`` is given.
DEFAULT_OVERLAP = 64
#: Smallest tile accepted (IPI and NRAM need a 50-pixel patch inside a tile).
MIN_TILE = 64


def check_tiling(tile: int | None, overlap: int = DEFAULT_OVERLAP) -> None:
    """Raise :class:`InputError` unless ``tile`` (or ``None``: no tiling) and ``overlap`` fit.

    ``tile`` must be at least :data:`MIN_TILE` and ``0 <= overlap <= tile // 2`` (a larger
    overlap would compute most pixels more than twice).
    """
    if tile is None:
        return
    if int(tile) != tile or tile < MIN_TILE:
        raise InputError(f"--tile: must be an integer of at least {MIN_TILE} pixels, got {tile}")
    if int(overlap) != overlap or not 0 <= overlap <= tile // 2:
        raise InputError(f"--overlap: must be an integer from 0 to half the tile ({tile // 2}), got {overlap}")


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis of ``length`` pixels.

    Parameters
    ----------
    length : int
        Pixels along the axis.
    tile : int
        Tile size along the axis.
    overlap : int
        Pixels shared by neighbouring tiles (at least; the last tile is aligned to the end,
        so it may share more with the one before).

    Returns
    -------
    list of (start, stop, keep_start, keep_stop)
        The tile ``[start, stop)`` and the part of it kept in the stitched map,
        ``[keep_start, keep_stop)``; the kept parts partition ``[0, length)``.

    Examples
    --------
    >>> tile_spans(100, 64, 16)
    [(0, 64, 0, 50), (36, 100, 50, 100)]
    >>> tile_spans(50, 64, 16)
    [(0, 50, 0, 50)]
    """
    if length <= tile:
        return [(0, length, 0, length)]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    cuts = [0] + [(nxt + prev + tile) // 2 for prev, nxt in zip(starts, starts[1:])] + [length]
    return [(s, s + tile, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def map_tiled(
    fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: int | None,
    overlap: int = DEFAULT_OVERLAP,
) -> np.ndarray:
    """Apply ``fn`` on overlapping tiles of ``image`` and stitch the results by centre crop.

    Parameters
    ----------
    fn : callable
        Maps a 2-D array to a 2-D array of the same shape.
    image : (H, W) ndarray
    tile : int or None
        Tile size in pixels (square tiles); ``None``, or a frame no larger than one tile, calls
        ``fn(image)`` once.
    overlap : int, optional
        Pixels shared by neighbouring tiles (see :func:`tile_spans`).

    Returns
    -------
    (H, W) ndarray
        The stitched map, of the dtype ``fn`` returns.
    """
    check_tiling(tile, overlap)
    h, w = image.shape
    if tile is None or (h <= tile and w <= tile):
        return fn(image)
    rows, cols = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    out = None
    for y0, y1, ky0, ky1 in rows:
        for x0, x1, kx0, kx1 in cols:
            part = np.asarray(fn(image[y0:y1, x0:x1]))
            if part.shape != (y1 - y0, x1 - x0):
                raise ValueError(f"map_tiled: fn returned shape {part.shape} for a tile of {(y1 - y0, x1 - x0)}")
            if out is None:
                out = np.empty((h, w), dtype=part.dtype)
            out[ky0:ky1, kx0:kx1] = part[ky0 - y0:ky1 - y0, kx0 - x0:kx1 - x0]
    return out
