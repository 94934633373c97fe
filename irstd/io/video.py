"""Video frames, decoded by FFmpeg through OpenCV (8-bit frames).

Reading a video's frames in order decodes each frame once: the last opened video stays open,
positioned after the frame it returned.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from irstd.errors import InputError
from irstd.io.grey import _check_size, _to_grey, check_pixels

#: File name suffixes read as videos, frame by frame (FFmpeg through OpenCV; 8-bit frames).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")

#: Forward gaps up to this many frames are skipped by decoding instead of seeking (exact, and
#: cheaper than a seek to the previous key frame; worker processes read every N-th frame).
_VIDEO_SKIP = 64


def _video_capture(p: Path):
    """``cv2.VideoCapture`` of ``p`` with FFmpeg's own log lines silenced (they would break the
    one-line errors; set ``OPENCV_FFMPEG_LOGLEVEL`` to see them)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg starts
    import cv2

    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"{p}: not a readable video (FFmpeg cannot open it)")
    try:
        check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), p)
    except InputError:
        cap.release()
        raise
    return cap


class _VideoReader:
    """One open video, positioned after the frame it read last (reused for the next frame)."""

    def __init__(self, p: Path, key: tuple) -> None:
        self.key = key
        self.cap = _video_capture(p)
        self.next = 0  # index of the frame the next read() returns
        self.last: tuple[int, np.ndarray] | None = None  # index and BGR of the frame read last

    def frame(self, p: Path, k: int, gray: str = "auto") -> np.ndarray:
        import cv2

        if self.last is not None and self.last[0] == k:
            return _check_size(_to_grey(self.last[1], p, rgb_order=False, gray=gray), p)
        if k < self.next or k - self.next > _VIDEO_SKIP:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, k)
            self.next = k
        while self.next < k:  # a short gap: decode forward
            if not self.cap.grab():
                raise InputError(f"{p}: frame {k} out of range (the video ends at frame {self.next - 1})")
            self.next += 1
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            raise InputError(f"{p}: frame {k} out of range or not decodable")
        self.next = k + 1
        self.last = (k, bgr)
        return _check_size(_to_grey(bgr, p, rgb_order=False, gray=gray), p)

    def close(self) -> None:
        self.cap.release()


_video_reader: _VideoReader | None = None


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as a video (by its suffix, :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _read_video(p: Path, frame: int, gray: str = "auto") -> np.ndarray:
    """Frame ``frame`` of a video as 8-bit grey; sequential reads reuse one open decoder."""
    global _video_reader
    st = os.stat(p)
    key = (os.path.realpath(p), st.st_mtime_ns, st.st_size)
    if _video_reader is None or _video_reader.key != key:
        if _video_reader is not None:
            _video_reader.close()
            _video_reader = None
        _video_reader = _VideoReader(p, key)
    return _video_reader.frame(p, frame, gray)


def _count_video_frames(p: Path) -> int:
    """Frames of a video, counted by decoding (container headers are often approximate)."""
    return video_frame_counts(p)[0]


def video_frame_counts(path: str | os.PathLike) -> tuple[int, int]:
    """``(decoded, declared)``: the frames FFmpeg decodes from a video, and the count its
    container header states (0 when it states none). Fewer decoded than declared means
    frames that could not be decoded (a corrupt file): FFmpeg passes over them, so the caller
    should say so."""
    import cv2

    p = Path(path)
    cap = _video_capture(p)
    try:
        declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise InputError(f"{p}: no decodable frame in this video")
    return n, declared
