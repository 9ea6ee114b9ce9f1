"""Pictures a person looks at: detections drawn and labelled, annotated videos, contact sheets.

* :func:`draw_detections` -- boxes with ``class score`` labels on a BGR picture;
* :class:`AnnotatedOutput` -- annotated pictures to an MP4/MKV (x264) or a folder of PNGs
  (``vcodec decode/detect --annotate OUT.mp4|DIR``, ``vcodec demo``);
* :func:`contact_sheet` -- a PNG with one row per chosen frame and one column per picture
  (``vcodec demo``: original | base picture | full decode, the base layer's detections on each);
* :func:`pick_frames` -- which frames make a contact sheet worth looking at.

Pictures are ``H x W x 3`` uint8 BGR arrays (OpenCV's order); a :class:`~vcodec.io.Frame`
is converted with :meth:`~vcodec.io.Frame.to_bgr`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from vcodec.errors import ConfigError, OutputError
from vcodec.io.frame import Frame, VideoInfo

__all__ = ["VIDEO_SUFFIXES", "AnnotatedOutput", "ByIndex", "SheetRow", "contact_sheet", "draw_detections",
           "caption", "pick_frames", "to_bgr"]

#: --annotate targets written as a video; anything else is a folder of PNGs
VIDEO_SUFFIXES = (".mp4", ".mkv")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# one colour per class (BGR), cycling; person and car get the two most distinct ones
_PALETTE = [(0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255), (0, 128, 255), (255, 255, 0),
            (128, 0, 255), (0, 255, 255)]


def to_bgr(picture: Frame | np.ndarray) -> np.ndarray:
    """A picture as a contiguous BGR uint8 array (a copy, safe to draw on)."""
    if isinstance(picture, Frame):
        return picture.to_bgr()
    arr = np.asarray(picture)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ConfigError(f"expected an H x W x 3 uint8 picture, got {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr).copy()


def _colour(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)] if class_id >= 0 else (200, 200, 200)


def _label(img: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int], scale: float) -> None:
    """``text`` on a filled box whose bottom-left corner is (x, y), kept inside the picture."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    h, w = img.shape[:2]
    x = int(min(max(x, 0), max(w - tw - 4, 0)))
    y = int(min(max(y, th + base + 2), h))
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 4, y), colour, thickness=-1)
    # dark text on light colours, white on dark: readable on any palette entry
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(img, text, (x + 2, y - base - 1), _FONT, scale, ink, 1, cv2.LINE_AA)


def draw_detections(picture: Frame | np.ndarray, detections: Any, *, scale: float = 1.0,
                    min_score: float = 0.0) -> np.ndarray:
    """A BGR copy of ``picture`` with each detection boxed and labelled ``class score``.

    ``detections``: a :class:`~vcodec.detection.Detections` (boxes in the source picture's
    pixels); ``scale``: how much smaller or larger ``picture`` is than that source.
    """
    img = to_bgr(picture)
    if detections is None:
        return img
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4) * scale
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    ids = np.asarray(detections.class_ids).reshape(-1)
    names = detections.class_names
    thickness = max(1, round(min(img.shape[:2]) / 240))
    text_scale = max(0.35, min(img.shape[:2]) / 900)
    for box, score, cid, name in zip(boxes, scores, ids, names, strict=True):
        if score < min_score:
            continue
        colour = _colour(int(cid))
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, thickness)
        _label(img, f"{name} {score:.2f}", x0, y0, colour, text_scale)
    return img


def caption(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` with a strip of text above it."""
    scale = max(0.4, img.shape[1] / 1100)
    (_, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    strip = np.full((th + base + 10, img.shape[1], 3), 32, np.uint8)
    cv2.putText(strip, text, (6, th + 4), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, img])


class AnnotatedOutput:
    """Annotated pictures to ``OUT.mp4``/``OUT.mkv`` (x264, the source's frame rate) or to a folder.

    A folder gets ``frame_NNNNNN.png`` per picture (N = the frame index). Written under a
    temporary name and completed on :meth:`close`; removed if the ``with`` block fails.
    """

    def __init__(self, target: str | os.PathLike[str], fps: Fraction | float = Fraction(25), *,
                 crf: int = 23) -> None:
        self.target = Path(target)
        self.fps = Fraction(fps).limit_denominator(1001000) if fps else Fraction(25)
        self.crf = crf
        self.frames = 0
        self.is_video = self.target.suffix.lower() in VIDEO_SUFFIXES
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        if not self.is_video:
            if self.target.exists() and not self.target.is_dir():
                raise OutputError(f"--annotate {self.target}: exists and is not a folder; give OUT.mp4 or a "
                                  "folder name")
            if self.target.suffix and not self.target.exists():
                raise ConfigError(f"--annotate {self.target}: unknown video extension; use .mp4 or .mkv, or "
                                  "a folder name for PNGs")
            try:
                self.target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"--annotate {self.target}: cannot create the folder "
                                  f"({exc.strerror or exc})") from None

    def write(self, bgr: np.ndarray, index: int | None = None) -> None:
        index = self.frames if index is None else index
        if self.is_video:
            h, w = bgr.shape[:2]
            if self._writer is None:
                from vcodec.io import open_writer

                self._size = (w + w % 2, h + h % 2)  # 4:2:0 needs even sizes
                info = VideoInfo(self._size[0], self._size[1], fps=self.fps)
                self._writer = open_writer(self.target, info, crf=self.crf)
            pw, ph = self._size  # type: ignore[misc]
            if (w, h) != (pw, ph):
                bgr = cv2.copyMakeBorder(bgr, 0, max(ph - h, 0), 0, max(pw - w, 0), cv2.BORDER_REPLICATE)
                bgr = bgr[:ph, :pw]
            self._writer.write(Frame.from_rgb(np.ascontiguousarray(bgr[..., ::-1]), index=self.frames))
        else:
            path = self.target / f"frame_{index:06d}.png"
            if not cv2.imwrite(str(path), bgr):
                raise OutputError(f"--annotate {self.target}: cannot write {path.name}")
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            abort = getattr(self._writer, "abort", None)
            (abort or self._writer.close)()
            self._writer = None

    def __enter__(self) -> AnnotatedOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class SheetRow:
    """One row of a contact sheet: the frame index, its pictures (None: not available), detections."""

    index: int
    pictures: list[Frame | np.ndarray | None]
    detections: Any = None
    notes: list[str] = field(default_factory=list)


def pick_frames(counts: Sequence[int], rows: int = 4) -> list[int]:
    """Up to ``rows`` frame indices spread over the clip, preferring frames with detections."""
    if rows <= 0 or not counts:
        return []
    pool = [i for i, c in enumerate(counts) if c > 0] or list(range(len(counts)))
    if len(pool) <= rows:
        return pool
    step = (len(pool) - 1) / (rows - 1) if rows > 1 else 0
    return sorted({pool[round(k * step)] for k in range(rows)})


def contact_sheet(rows: Sequence[SheetRow], titles: Sequence[str], path: str | os.PathLike[str], *,
                  panel_width: int = 480) -> Path:
    """Write a PNG: one row per :class:`SheetRow`, its pictures side by side, detections drawn.

    Each picture is scaled to ``panel_width`` pixels wide (never up) and boxed with the row's
    detections; a missing picture is a grey panel saying so. Returns the path.
    """
    if not rows:
        raise ConfigError("a contact sheet needs at least one row")
    out_rows: list[np.ndarray] = []
    for row in rows:
        ref = next((p for p in row.pictures if p is not None), None)
        if ref is None:
            continue
        src_h, src_w = to_bgr(ref).shape[:2]
        scale = min(1.0, panel_width / src_w)
        pw, ph = max(2, round(src_w * scale)), max(2, round(src_h * scale))
        panels = []
        for col, picture in enumerate(row.pictures):
            title = titles[col] if col < len(titles) else ""
            if picture is None:
                panel = np.full((ph, pw, 3), 64, np.uint8)
                _label(panel, "no picture in this layer", 8, ph // 2, (160, 160, 160), 0.5)
            else:
                small = cv2.resize(to_bgr(picture), (pw, ph), interpolation=cv2.INTER_AREA)
                panel = draw_detections(small, row.detections, scale=pw / src_w)
            n = len(row.detections) if row.detections is not None else 0
            note = f"frame {row.index}" + (f", {n} detection{'s' * (n != 1)}" if col == 0 else "")
            panels.append(caption(panel, f"{title}  |  {note}" if title else note))
        gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
        line = [panels[0]]
        for p in panels[1:]:
            line += [gap, p]
        out_rows.append(np.hstack(line))
    if not out_rows:
        raise ConfigError("a contact sheet needs at least one picture")
    width = max(r.shape[1] for r in out_rows)
    sheet = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in out_rows]
    path = Path(path)
    if not cv2.imwrite(str(path), np.vstack(sheet)):
        raise OutputError(f"cannot write the contact sheet {path}")
    return path


class ByIndex:
    """Items of an ``(index, item)`` iterator in increasing index order, looked up by index.

    Pairs pictures with detections made by another decoder of the same stream: a frame
    lost to damage has no detections (``None``), and nothing is kept for long.
    """

    def __init__(self, items: Iterator[tuple[int, Any]]) -> None:
        self._items = items
        self._pending: dict[int, Any] = {}
        self._last = -1

    def get(self, index: int) -> Any:
        while self._last < index:
            try:
                i, item = next(self._items)
            except StopIteration:
                break
            self._last = int(i)
            self._pending[self._last] = item
        for old in [k for k in self._pending if k < index]:
            del self._pending[old]
        return self._pending.pop(index, None)
