"""Headerless planar YUV 4:2:0 (``.yuv``, ``.i420``, ``.iyuv``, ``.raw``).

Size, rate and bit depth come from options or the file name
(:mod:`vcodec.io.naming`); samples above 8 bits are 16-bit little-endian words.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from vcodec.errors import InputError
from vcodec.io.frame import Frame, InputFacts, VideoInfo, require_even
from vcodec.io.naming import parse_raw_name
from vcodec.io.readers.base import ReadOptions, _read_exact, _StreamReader, resolve_fps

__all__ = ["RawYUVReader"]


class RawYUVReader(_StreamReader):
    """Headerless planar YUV 4:2:0: Y plane, then U, then V, frame after frame."""

    def __init__(
        self, source: str, stream: BinaryIO, options: ReadOptions | None = None, *, own: bool,
        name_hint: str | None = None, file_size: int | None = None, **legacy: Any,
    ) -> None:
        super().__init__(source, stream, own, options, legacy)
        opts = self.options
        named = parse_raw_name(name_hint) if name_hint else None
        size = opts.size
        if size is None and named is not None and named.width is not None and named.height is not None:
            size, size_src = (named.width, named.height), "name"
        else:
            size_src = "option"
        if size is None:
            raise InputError(
                f"{source}: raw YUV has no header and its name states no WxH size; "
                f"pass --size WxH (size=(width, height)), or name it like clip_416x240_30.yuv"
            )
        w, h = size
        require_even(w, h, source, "check --size")
        rate = resolve_fps(opts.fps, named.fps if named is not None else None, "name",
                           missing="raw YUV states no frame rate")
        bit_depth, depth_src = opts.bit_depth, "option"
        if bit_depth is None:
            named_depth = named.bit_depth if named is not None else None
            bit_depth, depth_src = (named_depth, "name") if named_depth else (8, "default")
        facts = InputFacts(format="raw", size_source=size_src, bit_depth_source=depth_src,
                           fps_source=rate.source, fps_note=rate.note)
        self._w, self._h, self._depth = w, h, bit_depth
        bps = 1 if bit_depth == 8 else 2
        self.frame_bytes = (w * h + 2 * (w // 2) * (h // 2)) * bps
        self.info = VideoInfo(w, h, rate.fps, bit_depth, None, self._pick_matrix(w, h), source, facts)
        count: int | None = None
        if file_size is not None:
            count, rem = divmod(file_size, self.frame_bytes)
            if file_size == 0:
                raise InputError(f"{source}: the file is empty")
            if rem:
                raise InputError(
                    f"{source}: file length {file_size} bytes is not a multiple of the frame size "
                    f"{self.frame_bytes} bytes ({w}x{h} 4:2:0 {bit_depth}-bit); {count} whole frames "
                    f"and a remainder of {rem} bytes: check --size and --bit-depth"
                )
        self._seekable = file_size is not None
        self._finish_info(count)

    def _skip(self, n: int) -> None:
        if self._seekable:
            self._stream.seek(n * self.frame_bytes, io.SEEK_CUR)
            return
        for _ in range(n):
            if len(_read_exact(self._stream, self.frame_bytes)) < self.frame_bytes:
                break

    def _read(self, index: int) -> Frame | None:
        data = _read_exact(self._stream, self.frame_bytes)
        if not data:
            return None
        if len(data) < self.frame_bytes:
            raise InputError(
                f"{self.source}: truncated: frame {index} has {len(data)} of {self.frame_bytes} bytes "
                f"({self._w}x{self._h} 4:2:0 {self._depth}-bit); check --size and --bit-depth"
            )
        frame = Frame.from_bytes(data, self._w, self._h, self._depth, index, self.info.matrix)
        if self._depth > 8:
            top = max(int(p.max()) for p in frame.planes)
            if top > frame.max_value:
                raise InputError(
                    f"{self.source}: frame {index} has sample value {top} > {frame.max_value}, "
                    f"impossible at {self._depth} bits; pass the right --bit-depth (8?)"
                )
        return frame
