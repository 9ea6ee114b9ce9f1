"""Anything FFmpeg (through PyAV) demuxes and decodes: MP4, MKV, AVI, Annex-B ``.264``/``.265``.

Pictures are converted to limited-range YUV 4:2:0 at the nearest supported
bit depth (or the one asked for).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame, InputFacts, VideoInfo, require_even
from vcodec.io.readers.base import DEFAULT_ELEMENTARY_FPS, ReadOptions, VideoReader, resolve_fps

if TYPE_CHECKING:  # PyAV is imported lazily: only FFmpeg inputs need it
    import av

__all__ = ["AVReader"]

#: elementary streams larger than this are not pre-scanned to count frames
_COUNT_SCAN_LIMIT = 1 << 30
# FFmpeg AVColorSpace codes -> vcodec matrix (1 = BT.709; 5/6 = BT.470BG/SMPTE170M = BT.601)
_AV_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601"}
_TARGET_FORMATS = {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le", 16: "yuv420p16le"}


def _target_depth(src_bits: int) -> int:
    for d in (8, 10, 12, 16):
        if src_bits <= d:
            return d
    return 16


class AVReader(VideoReader):
    """Anything FFmpeg demuxes and decodes, converted to limited-range YUV 4:2:0."""

    def __init__(
        self,
        source: str,
        target: str | BinaryIO,
        options: ReadOptions | None = None,
        *,
        fmt: str | None = None,
        count_file: Path | None = None,
        **legacy: Any,
    ) -> None:
        super().__init__(source, options, **legacy)
        import av
        from av.video.reformatter import VideoReformatter

        self._av = av
        try:
            self._container = av.open(target, mode="r", format=fmt)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(
                f"{source}: cannot open as a video container ({exc}); supported inputs are MP4/MKV/AVI, "
                f"Annex-B .264/.265, raw .yuv (with --size), .y4m and image folders"
            ) from None
        try:
            self._setup(fmt, count_file)
        except BaseException:
            self._container.close()
            raise
        self._reformatter = VideoReformatter()
        self._frames_iter: Iterator[av.VideoFrame] | None = None

    def _setup(self, fmt: str | None, count_file: Path | None) -> None:
        source = self.source
        if not self._container.streams.video:
            raise InputError(f"{source}: the container has no video stream")
        stream = self._container.streams.video[0]
        self._stream = stream
        cc = stream.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            raise InputError(
                f"{source}: FFmpeg reports no picture size; the stream is damaged or unsupported"
            )
        require_even(w, h, f"{source}: decoded pictures", f"crop first, e.g. "
                     f"`ffmpeg -i IN -vf crop={w - w % 2}:{h - h % 2}:0:0 OUT.mp4`")
        self._check_stated_size(w, h)
        fmt_name = self._container.format.name
        elementary = fmt_name in ("h264", "hevc") or fmt in ("h264", "hevc")
        stated_rate = None if elementary else (stream.average_rate or stream.guessed_rate)
        what = "an elementary stream carries" if elementary else "the container states"
        rate = resolve_fps(self.options.fps, Fraction(stated_rate) if stated_rate else None, "container",
                           missing=f"{what} no frame rate", default=DEFAULT_ELEMENTARY_FPS)
        src_bits = 8
        if cc.format is not None and cc.format.components:
            src_bits = int(cc.format.components[0].bits)
        self._depth = self.options.bit_depth or _target_depth(src_bits)
        self._av_depth = self._depth if self._depth in _TARGET_FORMATS else _target_depth(self._depth)
        stated = _AV_MATRIX.get(int(cc.colorspace or 2))
        facts = InputFacts(
            format=fmt_name, codec=cc.name, fps_source=rate.source, fps_note=rate.note,
            source_pix_fmt=cc.format.name if cc.format is not None else None,
            matrix_source="option" if self.options.matrix else ("container" if stated else "default"),
        )
        mat = self._pick_matrix(w, h, stated)
        self.info = VideoInfo(w, h, rate.fps, self._depth, None, mat, source, facts)
        count: int | None = int(stream.frames) if stream.frames else None
        if count is None and count_file is not None and count_file.stat().st_size <= _COUNT_SCAN_LIMIT:
            count = self._count_packets(count_file, fmt)
        self._finish_info(count)

    def _count_packets(self, path: Path, fmt: str | None) -> int | None:
        """Demux (without decoding) to count pictures: cheap for elementary streams."""
        av = self._av
        try:
            with av.open(str(path), mode="r", format=fmt) as c:
                s = c.streams.video[0]
                return sum(1 for p in c.demux(s) if p.size)
        except av.FFmpegError:
            return None

    def _decoded(self) -> Iterator[av.VideoFrame]:
        av = self._av
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError as exc:
            raise InputError(f"{self.source}: decoding failed ({exc}); the stream is damaged") from None

    def _next_av_frame(self) -> av.VideoFrame | None:
        if self._frames_iter is None:
            self._frames_iter = self._decoded()
        return next(self._frames_iter, None)

    def _skip(self, n: int) -> None:
        for _ in range(n):
            if self._next_av_frame() is None:
                return

    def _read(self, index: int) -> Frame | None:
        avf = self._next_av_frame()
        if avf is None:
            return None
        return self._convert(avf, index)

    def _convert(self, avf: av.VideoFrame, index: int) -> Frame:
        w, h = self.info.width, self.info.height
        if avf.width != w or avf.height != h:
            raise InputError(
                f"{self.source}: frame {index} is {avf.width}x{avf.height} but the stream "
                f"started at {w}x{h}; vcodec needs one size per clip: split or rescale the input"
            )
        src_name = avf.format.name
        full = src_name.startswith("yuvj") or int(avf.color_range or 0) == 2
        kwargs: dict[str, Any] = {"format": _TARGET_FORMATS[self._av_depth]}
        if full:
            kwargs.update(src_color_range="JPEG", dst_color_range="MPEG")
        if not src_name.startswith(("yuv", "nv", "p0", "gray")):
            # RGB-family source: the conversion itself applies our matrix
            kwargs.update(dst_colorspace="ITU709" if self.info.matrix == "bt709" else "ITU601",
                          dst_color_range="MPEG")
        out = self._reformatter.reformat(avf, **kwargs)
        src_dtype = np.dtype(np.uint8) if self._av_depth == 8 else np.dtype("<u2")
        dst_dtype = np.uint8 if self._av_depth == 8 else np.uint16
        planes = []
        for i, (pw, ph) in enumerate(((w, h), (w // 2, h // 2), (w // 2, h // 2))):
            p = out.planes[i]
            # rows are padded to line_size; astype makes the one owned, native-order copy
            row = p.line_size // src_dtype.itemsize
            # numpy's stubs for Python 3.10 refuse PyAV planes, which export the buffer protocol
            view = np.frombuffer(  # type: ignore[call-overload]
                p, dtype=src_dtype, count=row * ph).reshape(ph, row)[:, :pw]
            planes.append(view.astype(dst_dtype))
        frame = Frame(planes[0], planes[1], planes[2], self._av_depth, index, self.info.matrix)
        return frame.with_bit_depth(self._depth)

    def _close(self) -> None:
        self._frames_iter = None
        self._container.close()
