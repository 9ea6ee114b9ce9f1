"""``open_video``: which reader an input needs (by file type, or by sniffing a pipe's first bytes)."""

from __future__ import annotations

import io
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, cast

from vcodec.errors import ConfigError, InputError
from vcodec.io.naming import ELEMENTARY_FORMATS, RAW_EXTENSIONS
from vcodec.io.readers.base import ReadOptions, VideoReader, _read_exact
from vcodec.io.readers.ffmpeg import AVReader
from vcodec.io.readers.images import ImageFolderReader
from vcodec.io.readers.raw import RawYUVReader
from vcodec.io.readers.y4m import Y4MReader
from vcodec.io.y4m import Y4M_MAGIC

__all__ = ["open_video", "PathArg"]

PathArg = str | os.PathLike[str] | BinaryIO


class _Prefixed(io.RawIOBase):
    """A non-seekable stream that replays sniffed bytes before the rest of ``raw``."""

    def __init__(self, prefix: bytes, raw: BinaryIO, name: str) -> None:
        super().__init__()
        self._prefix = prefix
        self._raw = raw
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        mv = memoryview(b).cast("B")
        if self._prefix:
            n = min(len(mv), len(self._prefix))
            mv[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._raw.read(len(mv))
        if not data:
            return 0
        mv[: len(data)] = data
        return len(data)


def _sniff(stream: BinaryIO, name: str, n: int = 16) -> tuple[bytes, BinaryIO]:
    head = _read_exact(stream, n)
    # a binary file object like the stream it wraps (typeshed's io.RawIOBase is no typing.BinaryIO)
    return head, cast(BinaryIO, _Prefixed(head, stream, name))


def open_video(
    path: PathArg,
    *,
    size: tuple[int, int] | None = None,
    fps: Fraction | float | None = None,
    bit_depth: int | None = None,
    start: int = 0,
    frames: int | None = None,
    matrix: str | None = None,
) -> VideoReader:
    """Open a video for reading; see the module docstring for the accepted inputs.

    The keywords are those of :class:`~vcodec.io.readers.base.ReadOptions`
    (what each one means is said there), built and checked once here and
    handed to the reader the input needs.
    """
    requested = ReadOptions(size, fps, bit_depth, matrix, start, frames)
    if isinstance(path, (str, os.PathLike)) and os.fspath(path) == "-":
        return _open_stream(sys.stdin.buffer, "<stdin>", False, requested.checked("<stdin>"))
    if not isinstance(path, (str, os.PathLike)):
        if not hasattr(path, "read"):
            raise ConfigError(
                f"open_video needs a path, '-' or a binary file object, got {type(path).__name__}"
            )
        name = str(getattr(path, "name", "<stream>"))
        return _open_stream(path, name, False, requested.checked(name))

    p = Path(path)
    source = str(p)
    options = requested.checked(source)
    if not p.exists():
        raise InputError(f"{source}: no such file or folder")
    if p.is_dir():
        return ImageFolderReader(source, p, options)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - the reader owns and closes it
    except OSError as exc:
        raise InputError(f"{source}: cannot open ({exc.strerror}); check the path and permissions") from None
    try:
        file_size = os.fstat(fh.fileno()).st_size
        magic = fh.read(len(Y4M_MAGIC))
        fh.seek(0)
        suffix = p.suffix.lower()
        if magic == Y4M_MAGIC:
            return Y4MReader(source, fh, options, own=True, file_size=file_size)
        if suffix == ".y4m":
            raise InputError(f"{source}: not a Y4M file (it does not start with YUV4MPEG2)")
        if suffix in RAW_EXTENSIONS:
            return RawYUVReader(source, fh, options, own=True, name_hint=p.name, file_size=file_size)
    except BaseException:
        fh.close()
        raise
    fh.close()
    if file_size == 0:
        raise InputError(f"{source}: the file is empty")
    fmt = ELEMENTARY_FORMATS.get(p.suffix.lower())
    return AVReader(source, str(p), options, fmt=fmt, count_file=p)


def _looks_like_container(head: bytes) -> str | None:
    """FFmpeg demuxer for a stream prefix, '' to let FFmpeg probe, None if unknown."""
    if head.startswith(b"\x00\x00\x00\x01") or head.startswith(b"\x00\x00\x01"):
        # Annex-B start code: H.264 NAL types sit in the low 5 bits, HEVC's in bits 1..6
        nal = head[4] if head.startswith(b"\x00\x00\x00\x01") else head[3]
        return "hevc" if (nal >> 1) & 0x3F in (32, 33, 34, 35) and (nal & 0x81) == 0 else "h264"
    if head[4:8] == b"ftyp" or head.startswith((b"\x1a\x45\xdf\xa3", b"RIFF", b"\x00\x00\x01\xba", b"G")):
        return ""
    return None


def _open_stream(stream: BinaryIO, name: str, own: bool, options: ReadOptions) -> VideoReader:
    head, wrapped = _sniff(stream, name)
    if not head:
        raise InputError(f"{name}: the input is empty")
    if head.startswith(Y4M_MAGIC):
        return Y4MReader(name, wrapped, options, own=own)
    if options.size is not None:
        # on a pipe, --size means headerless raw YUV
        return RawYUVReader(name, wrapped, options, own=own)
    fmt = _looks_like_container(head)
    if fmt is None:
        raise InputError(
            f"{name}: cannot tell the format of this stream; pass --size WxH for raw YUV, or send Y4M"
        )
    return AVReader(name, wrapped, options, fmt=fmt or None)
