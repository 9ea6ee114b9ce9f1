"""Reading the shared real clips as BGR pictures (training, evaluation, benchmarks).

This is deliberately small: raw planar I420 files whose name carries the size
(``name_320x240...yuv``/``.i420``) and anything PyAV can decode.  The general
reader of the project is ``vcodec.io.open_video``; this module exists so that
detector training and its tests depend only on numpy, OpenCV and PyAV.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame

__all__ = ["ClipFrames", "iter_clip_bgr", "load_clip", "list_clips", "split_holdout", "shared_dir"]

_RAW_SUFFIXES = {".yuv", ".i420"}
_VIDEO_SUFFIXES = {".yuv", ".i420", ".264", ".h264", ".265", ".hevc", ".mp4", ".mkv", ".webm", ".ivf", ".y4m"}


def shared_dir() -> Path:
    """``../shared`` next to the repository root (may not exist)."""
    return Path(__file__).resolve().parents[2].parent / "shared"


def raw_size_from_name(path: Path) -> tuple[int, int]:
    m = re.search(r"(\d+)x(\d+)", path.name)
    if not m:
        raise InputError(f"raw video {str(path)!r}: cannot tell its size; name it like clip_416x240.yuv")
    return int(m.group(1)), int(m.group(2))


def iter_clip_bgr(
    path: str | Path, step: int = 1, max_frames: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR uint8 picture) for every ``step``-th frame of a clip."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"clip {str(p)!r} does not exist")
    count = 0
    if p.suffix.lower() in _RAW_SUFFIXES:
        w, h = raw_size_from_name(p)
        size = w * h * 3 // 2
        n = p.stat().st_size // size
        with open(p, "rb") as f:
            for i in range(n):
                data = f.read(size)
                if i % step:
                    continue
                yield i, Frame.from_bytes(data, w, h, index=i).to_bgr()
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        return
    import av  # decoded formats only

    try:
        container = av.open(str(p))
    except av.error.FFmpegError as exc:
        raise InputError(f"clip {str(p)!r} cannot be decoded: {exc}") from None
    with container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step:
                continue
            yield i, frame.to_ndarray(format="bgr24")
            count += 1
            if max_frames is not None and count >= max_frames:
                return


@dataclass
class ClipFrames:
    name: str
    indices: list[int]
    pictures: list[np.ndarray]


def load_clip(path: str | Path, step: int = 1, max_frames: int | None = None) -> ClipFrames:
    pairs = list(iter_clip_bgr(path, step, max_frames))
    return ClipFrames(Path(path).name, [i for i, _ in pairs], [b for _, b in pairs])


def list_clips(folder: str | Path | None = None) -> list[Path]:
    """Video files in the shared clips folder, sorted by name."""
    d = Path(folder) if folder is not None else shared_dir() / "data" / "clips"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix.lower() in _VIDEO_SUFFIXES)


def split_holdout(n: int, holdout: float = 0.2) -> tuple[range, range]:
    """(training, held-out) index ranges: the last ``holdout`` fraction is held out."""
    cut = n - max(1, int(round(n * holdout))) if n > 1 else n
    return range(0, cut), range(cut, n)
