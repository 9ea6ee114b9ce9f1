"""Video writers: Y4M, raw planar YUV, and MP4/MKV (H.264/H.265 through PyAV).

:func:`open_writer` picks the writer from ``format`` or the file extension:

* ``.y4m``: YUV4MPEG2, lossless, keeps size/rate/bit depth/matrix;
* ``.yuv`` / ``.i420`` / ``.raw``: headerless planar 4:2:0 (16-bit little-endian
  words above 8 bits), lossless; the reader needs the size (put it in the name);
* ``.mp4`` / ``.mkv``: H.264 (libx264, default) or H.265 (libx265), lossy, for
  viewing; colour matrix and limited range are tagged in the stream.

Writers are atomic: a file is written under a temporary name in the target
directory and renamed on a successful :meth:`VideoWriter.close`.  When the
``with`` block raises, the temporary file is deleted, so nothing is left that
looks complete but is not.  ``path="-"`` (or a binary file object) streams
Y4M (default) or raw YUV to it instead.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from vcodec._atomic import AtomicOutput
from vcodec.errors import CodecUnavailableError, ConfigError, EncoderError, InputError, OutputError
from vcodec.io.frame import Frame, VideoInfo, require_same_format
from vcodec.io.naming import RAW_EXTENSIONS
from vcodec.io.y4m import format_header

__all__ = [
    "open_writer",
    "VideoWriter",
    "Y4MWriter",
    "RawYUVWriter",
    "AVWriter",
    "CODEC_ALIASES",
    "DEFAULT_CRF",
]

#: user-facing codec names -> FFmpeg encoder
CODEC_ALIASES: dict[str, str] = {
    "h264": "libx264", "x264": "libx264", "avc": "libx264", "libx264": "libx264",
    "h265": "libx265", "x265": "libx265", "hevc": "libx265", "libx265": "libx265",
}
#: each encoder's own default quality (visually good, small files)
DEFAULT_CRF: dict[str, int] = {"libx264": 23, "libx265": 28}
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_FORMAT_NAMES = {
    "y4m": "y4m", "yuv": "yuv", "raw": "yuv", "i420": "yuv",
    "mp4": "mp4", "mkv": "matroska", "matroska": "matroska", "mov": "mov",
}
_PIX_FMT = {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}
# FFmpeg colour codes: (colorspace, primaries, transfer) per matrix; range 1 = limited ("MPEG")
_AV_COLOUR = {"bt709": (1, 1, 1), "bt601": (6, 6, 6)}


class VideoWriter(ABC):
    """A context manager that takes :class:`Frame` objects via :meth:`write`.

    Every frame must have the size and bit depth of ``info``; the writer never
    rescales.  :meth:`close` finishes the file (atomic rename); leaving the
    ``with`` block through an exception calls :meth:`abort` instead.
    """

    def __init__(self, target: AtomicOutput, info: VideoInfo) -> None:
        self._target = target
        self.info = info
        self.path = target.name
        self.frames_written = 0
        self._done = False

    def _check(self, frame: Frame) -> None:
        if self._done:
            raise OutputError(f"{self.path}: the writer is closed")
        require_same_format(frame, f"{self.path}: frame {frame.index}", self.info, "the output is",
                            size_fix="writers do not rescale",
                            depth_fix=f"convert with frame.with_bit_depth({self.info.bit_depth})")

    def write(self, frame: Frame) -> None:
        self._check(frame)
        try:
            self._write(frame)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): the CLI ends quietly
        except OSError as exc:
            raise OutputError(f"{self.path}: write failed ({exc.strerror or exc})") from None
        self.frames_written += 1

    @abstractmethod
    def _write(self, frame: Frame) -> None: ...

    def _finish(self) -> None:  # noqa: B027 - optional hook (flush encoders)
        pass

    def close(self) -> None:
        """Finish the output and move it to its final name."""
        if self._done:
            return
        self._done = True
        try:
            self._finish()
        except BaseException:
            self._target.abort()
            raise
        self._target.commit()  # removes the temporary file itself when the rename fails

    def abort(self) -> None:
        """Drop the output: the temporary file is deleted, the final name is untouched."""
        if self._done:
            return
        self._done = True
        try:
            self._abort()
        finally:
            self._target.abort()

    def _abort(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # a writer dropped without close() never publishes a half-written file
        if not getattr(self, "_done", True):
            try:
                self.abort()
            except Exception:  # noqa: BLE001 - nothing useful to do in a finalizer
                pass


class RawYUVWriter(VideoWriter):
    """Headerless planar 4:2:0 (``Frame.to_bytes``)."""

    def _write(self, frame: Frame) -> None:
        self._target.stream.write(frame.to_bytes())


class Y4MWriter(VideoWriter):
    """YUV4MPEG2 with vcodec's matrix tag (see :mod:`vcodec.io.y4m`)."""

    def __init__(self, target: AtomicOutput, info: VideoInfo) -> None:
        super().__init__(target, info)
        try:
            header = format_header(info.width, info.height, info.fps, info.bit_depth, info.matrix)
        except InputError as exc:
            target.abort()
            raise ConfigError(f"{self.path}: {exc}") from None
        try:
            target.stream.write(header)
        except BrokenPipeError:
            target.abort()
            raise
        except OSError as exc:
            target.abort()
            raise OutputError(f"{self.path}: write failed ({exc.strerror or exc})") from None

    def _write(self, frame: Frame) -> None:
        self._target.stream.write(b"FRAME\n")
        self._target.stream.write(frame.to_bytes())


class AVWriter(VideoWriter):
    """H.264/H.265 in MP4/MKV/MOV through PyAV, for viewing (lossy)."""

    def __init__(
        self,
        target: AtomicOutput,
        info: VideoInfo,
        container_format: str,
        codec: str,
        crf: int | None,
        preset: str | None,
        options: dict[str, str] | None,
    ) -> None:
        super().__init__(target, info)
        import av

        self._av = av
        try:
            self._setup(container_format, codec, crf, preset, options)
        except BaseException:
            self._done = True  # nothing to finish or abort later
            if hasattr(self, "_container"):
                self._container.close()
            target.abort()
            raise

    def _setup(
        self, container_format: str, codec: str, crf: int | None, preset: str | None,
        options: dict[str, str] | None,
    ) -> None:
        av, info = self._av, self.info
        encoder = CODEC_ALIASES.get(codec.lower(), codec)
        if encoder not in av.codecs_available:
            raise CodecUnavailableError(
                f"{self.path}: encoder {codec!r} is not in this FFmpeg build; use one of "
                f"{sorted(set(CODEC_ALIASES) & set(av.codecs_available) | {'h264', 'h265'})}"
            )
        pix_fmt = _PIX_FMT.get(info.bit_depth)
        supported = {f.name for f in av.codec.Codec(encoder, "w").video_formats or []}
        if pix_fmt is None or pix_fmt not in supported:
            depths = sorted(d for d, f in _PIX_FMT.items() if f in supported)
            raise ConfigError(
                f"{self.path}: {encoder} cannot encode {info.bit_depth}-bit 4:2:0; it takes {depths}-bit: "
                f"convert frames with with_bit_depth() or write Y4M"
            )
        if crf is not None and not 0 <= crf <= 51:
            raise ConfigError(f"{self.path}: crf must be 0..51, got {crf}")
        opts: dict[str, str] = {"crf": str(DEFAULT_CRF.get(encoder, 23) if crf is None else crf)}
        if preset:
            opts["preset"] = preset
        if encoder == "libx265":
            # x265 prints a banner and per-file statistics on stderr otherwise
            opts["x265-params"] = "log-level=none"
        opts.update(options or {})
        self._stream_target = self._target.stream
        try:
            self._container = av.open(self._target.stream, mode="w", format=container_format)
            stream = self._container.add_stream(encoder, rate=info.fps)
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"{self.path}: cannot start {encoder} in {container_format} ({exc})") from None
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, pix_fmt
        stream.time_base = 1 / info.fps
        cc = stream.codec_context
        spc, prim, trc = _AV_COLOUR[info.matrix]
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = spc, prim, trc, 1
        stream.options = opts
        self._avstream = stream
        self._pix_fmt = pix_fmt
        self.encoder = encoder

    def _encode(self, avframe: object | None) -> None:
        av = self._av
        try:
            for packet in self._avstream.encode(avframe):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            raise EncoderError(f"{self.path}: {self.encoder} failed ({exc})") from None

    def _write(self, frame: Frame) -> None:
        av = self._av
        avf = av.VideoFrame(frame.width, frame.height, self._pix_fmt)
        # copy each plane into FFmpeg's buffer, whose rows are padded to line_size
        # (from_ndarray would do this too, but not for every bit depth)
        dtype = np.dtype(np.uint8) if frame.bit_depth == 8 else np.dtype("<u2")
        for plane, data in zip(avf.planes, frame.planes, strict=False):
            row = plane.line_size // dtype.itemsize
            ph, pw = data.shape
            dst = np.frombuffer(plane, dtype=dtype, count=row * ph).reshape(ph, row)
            dst[:, :pw] = data
        spc, prim, trc = _AV_COLOUR[self.info.matrix]
        avf.colorspace, avf.color_range = spc, 1
        avf.pts = self.frames_written
        self._encode(avf)

    def _finish(self) -> None:
        try:
            self._encode(None)
        finally:
            try:
                self._container.close()
            except self._av.FFmpegError as exc:
                raise EncoderError(f"{self.path}: cannot finish the container ({exc})") from None

    def _abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the output is being thrown away anyway
            pass


def open_writer(
    path: str | os.PathLike[str] | BinaryIO,
    info: VideoInfo,
    *,
    codec: str | None = None,
    crf: int | None = None,
    format: str | None = None,  # noqa: A002 - mirrors FFmpeg's -f
    preset: str | None = None,
    options: dict[str, str] | None = None,
) -> VideoWriter:
    """Open a video for writing frames shaped like ``info``.

    ``format`` ("y4m", "yuv", "mp4", "mkv") overrides the extension; for
    ``"-"`` or a file object the default is Y4M.  ``codec`` ("h264"/"libx264",
    "h265"/"libx265") and ``crf``/``preset``/``options`` apply to MP4/MKV only.
    """
    if info.width % 2 or info.height % 2 or info.width <= 0 or info.height <= 0:
        raise ConfigError(f"output size must be even and positive for 4:2:0, got {info.width}x{info.height}")
    is_path = isinstance(path, (str, os.PathLike)) and os.fspath(path) != "-"
    if format is not None:
        kind = _FORMAT_NAMES.get(format.lower())
        if kind is None:
            raise ConfigError(f"unknown output format {format!r}; use one of {sorted(_FORMAT_NAMES)}")
    elif is_path:
        suffix = Path(path).suffix.lower()  # type: ignore[arg-type]
        if suffix == ".y4m":
            kind = "y4m"
        elif suffix in RAW_EXTENSIONS:
            kind = "yuv"
        elif suffix in _CONTAINERS:
            kind = _CONTAINERS[suffix]
        else:
            raise ConfigError(
                f"{path}: cannot tell the output format from the extension {suffix!r}; use .y4m, .yuv, "
                f".mp4 or .mkv (or pass format=)"
            )
    else:
        kind = "y4m"
    if kind in ("y4m", "yuv") and (crf is not None or codec not in (None, "rawvideo")):
        raise ConfigError(f"{path}: codec/crf apply to MP4/MKV output, not {kind}")
    if kind in ("mp4", "mov", "matroska") and codec is None:
        codec = "libx264"
    if kind in ("mp4", "mov") and not is_path:
        # MP4/MOV write their index after the data and must seek back
        raise OutputError(f"{path}: MP4/MOV cannot be streamed to a pipe; write a file, or use format='mkv'")
    target = AtomicOutput(path, what="open_writer")
    if kind == "y4m":
        return Y4MWriter(target, info)
    if kind == "yuv":
        return RawYUVWriter(target, info)
    return AVWriter(target, info, kind, codec or "libx264", crf, preset, options)
