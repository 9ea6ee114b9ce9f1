"""YUV4MPEG2 input (``.y4m``, or any file or pipe that starts with ``YUV4MPEG2``).

The header itself is parsed by :mod:`vcodec.io.y4m`; full-range input is
moved to the limited range of vcodec's :class:`~vcodec.io.frame.Frame`.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame, InputFacts, VideoInfo
from vcodec.io.readers.base import ReadOptions, _read_exact, _read_line, _StreamReader, resolve_fps
from vcodec.io.y4m import MAX_HEADER, Y4MHeader, parse_header

__all__ = ["Y4MReader"]


def _full_to_limited(frame: Frame) -> Frame:
    """Rescale full-range samples to the limited range of vcodec's Frame (integer rounding)."""
    depth = frame.bit_depth
    s = 1 << (depth - 8)
    top = 255 * s

    def conv(p: np.ndarray, lo: int, span: int, mid: int | None) -> np.ndarray:
        x = p.astype(np.int64)
        if mid is None:
            y = (x * span + top // 2) // top + lo
        else:  # chroma: scale around the mid point, round half away from zero
            d = (x - mid) * span
            y = np.where(d >= 0, (d + top // 2) // top, -((-d + top // 2) // top)) + mid
        return np.clip(y, 0, (1 << depth) - 1).astype(p.dtype)

    mid = 128 * s
    return Frame(
        conv(frame.y, 16 * s, 219 * s, None), conv(frame.u, 0, 224 * s, mid),
        conv(frame.v, 0, 224 * s, mid), depth, frame.index, frame.matrix,
    )


class Y4MReader(_StreamReader):
    """YUV4MPEG2: a text header, then ``FRAME`` lines each followed by one picture."""

    def __init__(
        self, source: str, stream: BinaryIO, options: ReadOptions | None = None, *, own: bool,
        file_size: int | None = None, **legacy: Any,
    ) -> None:
        super().__init__(source, stream, own, options, legacy)
        try:
            line = _read_line(stream, MAX_HEADER)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        if line is None:
            raise InputError(f"{source}: the file is empty")
        hdr: Y4MHeader = parse_header(line, source)
        self._check_stated_size(hdr.width, hdr.height)
        self.header = hdr
        rate = resolve_fps(self.options.fps, hdr.fps, "header", missing="Y4M header has no F rate")
        facts = InputFacts(
            format="y4m", colorspace=hdr.colorspace, fps_source=rate.source, fps_note=rate.note,
            interlace=None if hdr.interlace in ("p", "?") else hdr.interlace,
            converted_from_full_range=hdr.full_range,
        )
        self._out_depth = self.options.bit_depth or hdr.bit_depth
        mat = self._pick_matrix(hdr.width, hdr.height, hdr.matrix)
        self.info = VideoInfo(hdr.width, hdr.height, rate.fps, self._out_depth, None, mat, source, facts)
        self._data_start = len(line) + 1
        count = self._scan(file_size) if file_size is not None else None
        self._finish_info(count)

    def _scan(self, file_size: int) -> int:
        """Count frames by hopping over FRAME headers (no sample data is read)."""
        fb = self.header.frame_bytes
        pos = self._data_start
        n = 0
        stream = self._stream
        while pos < file_size:
            stream.seek(pos)
            head = stream.read(min(MAX_HEADER, file_size - pos))
            nl = head.find(b"\n")
            if not head.startswith(b"FRAME") or nl < 0:
                raise InputError(
                    f"{self.source}: expected a FRAME header at byte {pos} (frame {n}); the file is damaged"
                )
            end = pos + nl + 1 + fb
            if end > file_size:
                raise InputError(
                    f"{self.source}: truncated: frame {n} has {file_size - pos - nl - 1} of {fb} bytes"
                )
            pos, n = end, n + 1
        stream.seek(self._data_start)
        return n

    def _next_payload(self, index: int) -> bytes | None:
        try:
            line = _read_line(self._stream, MAX_HEADER)
        except InputError:
            raise InputError(
                f"{self.source}: frame {index}: FRAME header too long; the file is damaged"
            ) from None
        if line is None:
            return None
        if not line.startswith(b"FRAME"):
            raise InputError(f"{self.source}: frame {index}: expected a FRAME header, got {line[:16]!r}")
        fb = self.header.frame_bytes
        data = _read_exact(self._stream, fb)
        if len(data) < fb:
            raise InputError(f"{self.source}: truncated: frame {index} has {len(data)} of {fb} bytes")
        return data

    def _skip(self, n: int) -> None:
        for i in range(n):
            if self._next_payload(i) is None:
                return

    def _read(self, index: int) -> Frame | None:
        data = self._next_payload(index)
        if data is None:
            return None
        h = self.header
        frame = Frame.from_bytes(data, h.width, h.height, h.bit_depth, index, self.info.matrix)
        if h.full_range:
            frame = _full_to_limited(frame)
        return frame.with_bit_depth(self._out_depth)
