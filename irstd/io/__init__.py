"""Image input and output: one reader for every input, atomic writers.

Reading
-------
:func:`read_image` returns a 2-D grey array with the file's sample type kept (``uint8``,
``uint16`` or ``float32``). The rules:

* 8-bit colour, palette and alpha images (PNG, JPEG, BMP, 8-bit TIFF) become grey with the
  ITU-R 601-2 luma transform exactly as Pillow's ``Image.convert('L')`` does,
  ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``; alpha is ignored, palette images go
  through their palette, grey+alpha keeps the grey channel. Results are bit-identical to Pillow,
  which the classical reference implementations use.
* 16-bit data is never truncated to 8 bits: 16-bit PNG is decoded with OpenCV
  (``IMREAD_UNCHANGED``), TIFF with tifffile. 16-bit colour uses the same luma weights
  (0.299, 0.587, 0.114) in floating point, rounded to ``uint16``.
* Float TIFF (32 or 64 bit) is returned as ``float32``; colour float data uses the same weights.
* Multi-page TIFF: one page per frame (:func:`read_frames`, :func:`count_frames`).
* Pseudo-colour frames are refused: when more than :data:`PSEUDO_COLOUR_FRACTION` of a colour
  frame's pixels differ from the mean colour of the pixels with the same luma (a palette whose
  brightness is not monotonic in the value, such as jet or rainbow), luma would map different
  temperatures to one grey, so :func:`read_image` raises :class:`~irstd.errors.InputError`
  unless ``gray`` says how to collapse the colours (``luma`` anyway, or one channel ``r``,
  ``g``, ``b``). Grey stored as RGB, tinted grey and palettes of monotonic brightness (inferno,
  hot, ironbow-like) pass, and are converted by luma.

Every unreadable input (missing, a folder, empty, truncated, corrupt, not an image, zero-sized,
a frame over :data:`MAX_PIXELS` pixels, checked from the header)
raises :class:`irstd.errors.InputError` with a one-line message naming the file.

How an image's values become CgriNet's input is :mod:`irstd.intensity`.

Writing
-------
:func:`atomic_write` (temporary file in the same folder, then ``os.replace``),
:func:`write_image`, :func:`write_json` and :func:`write_text`.

Modules
-------
:mod:`~irstd.io.images` (the reading API), :mod:`~irstd.io.decoders` (file checks and the
still-image decoders), :mod:`~irstd.io.grey` (colour to grey), :mod:`~irstd.io.video`,
:mod:`~irstd.io.masks` (masks and score maps) and :mod:`~irstd.io.writers`. Every public name
is importable from :mod:`irstd.io` itself.
"""

from irstd.io.grey import (
    GRAY_RULES,
    LUMA_WEIGHTS,
    MAX_PIXELS,
    PSEUDO_COLOUR_FRACTION,
    PSEUDO_COLOUR_TOLERANCE,
    check_gray,
    pseudo_colour_fraction,
)
from irstd.io.images import IMAGE_SUFFIXES, count_frames, image_facts, image_info, read_frames, read_image
from irstd.io.masks import mask_from_image, mask_full_value, read_mask, read_scores
from irstd.io.video import VIDEO_SUFFIXES, is_video, video_frame_counts
from irstd.io.writers import atomic_write, sha256_file, write_bytes, write_image, write_json, write_text

__all__ = [
    "GRAY_RULES",
    "IMAGE_SUFFIXES",
    "LUMA_WEIGHTS",
    "MAX_PIXELS",
    "PSEUDO_COLOUR_FRACTION",
    "PSEUDO_COLOUR_TOLERANCE",
    "VIDEO_SUFFIXES",
    "atomic_write",
    "check_gray",
    "count_frames",
    "image_facts",
    "image_info",
    "is_video",
    "mask_from_image",
    "mask_full_value",
    "pseudo_colour_fraction",
    "read_frames",
    "read_image",
    "read_mask",
    "read_scores",
    "sha256_file",
    "video_frame_counts",
    "write_bytes",
    "write_image",
    "write_json",
    "write_text",
]
