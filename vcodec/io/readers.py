"""Video readers: every supported input comes out as :class:`Frame` objects, one at a time.

:func:`open_video` picks the reader from the input:

* raw planar YUV 4:2:0 (``.yuv``, ``.i420``, ``.iyuv``, ``.raw``), 8-bit or
  16-bit little-endian words above 8 bits; size/rate/depth from options or
  from the file name (see :mod:`vcodec.io.naming`);
* Y4M (``.y4m``, or any file/pipe starting with ``YUV4MPEG2``);
* an image-sequence folder (``img1/000001.jpg`` as in MOTChallenge; the folder
  itself or its parent holding ``img1/``; rate from ``seqinfo.ini``);
* anything PyAV (FFmpeg) decodes: MP4, MKV, AVI, Annex-B ``.264``/``.265``.

``path`` may also be ``"-"`` (standard input) or a binary file object: the
reader then sniffs the first bytes (Y4M magic, otherwise raw when a size is
given, otherwise a container/elementary stream handed to FFmpeg) and never
seeks.  Frames are read lazily, so memory does not grow with the clip.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from vcodec.errors import ConfigError, InputError
from vcodec.io.frame import MATRICES, Frame, VideoInfo, default_matrix
from vcodec.io.naming import ELEMENTARY_FORMATS, RAW_EXTENSIONS, parse_raw_name
from vcodec.io.y4m import MAX_HEADER, Y4M_MAGIC, Y4MHeader, parse_header

if TYPE_CHECKING:  # PyAV is imported lazily: only FFmpeg inputs need it
    import av

__all__ = [
    "open_video",
    "VideoReader",
    "RawYUVReader",
    "Y4MReader",
    "ImageFolderReader",
    "AVReader",
    "IMAGE_EXTENSIONS",
    "DEFAULT_RAW_FPS",
    "DEFAULT_ELEMENTARY_FPS",
]

PathArg = str | os.PathLike[str] | BinaryIO

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
#: rate assumed for raw YUV whose name and options say nothing (HEVC CTC habit)
DEFAULT_RAW_FPS = Fraction(30)
#: rate assumed for Annex-B elementary streams (FFmpeg's own default)
DEFAULT_ELEMENTARY_FPS = Fraction(25)
#: elementary streams larger than this are not pre-scanned to count frames
_COUNT_SCAN_LIMIT = 1 << 30


# ---------------------------------------------------------------------------
# small helpers


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, looping over the short reads pipes return; fewer only at EOF."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_line(stream: BinaryIO, limit: int) -> bytes | None:
    """One ``\\n``-terminated line (without it); ``None`` at clean EOF."""
    out = bytearray()
    while len(out) <= limit:
        c = stream.read(1)
        if not c:
            return None if not out else bytes(out)
        if c == b"\n":
            return bytes(out)
        out += c
    raise InputError(f"line longer than {limit} bytes where a Y4M header was expected")


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
    return head, _Prefixed(head, stream, name)


def _check_size(size: tuple[int, int] | None, source: str) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: size must be (width, height), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"{source}: size must be positive, got {w}x{h}")
    if w % 2 or h % 2:
        raise InputError(f"{source}: 4:2:0 needs even width and height, got {w}x{h}; pass an even --size")
    return w, h


def _check_matrix(matrix: str | None, source: str) -> str | None:
    if matrix is not None and matrix not in MATRICES:
        raise ConfigError(f"{source}: unknown colour matrix {matrix!r}; use one of {sorted(MATRICES)}")
    return matrix


def _check_fps(fps: Fraction | float | None, source: str) -> Fraction | None:
    if fps is None:
        return None
    try:
        value = Fraction(fps).limit_denominator(1001000)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: frame rate must be a number, got {fps!r}") from None
    if value <= 0:
        raise ConfigError(f"{source}: frame rate must be positive, got {fps!r}")
    return value


def _check_depth(bit_depth: int | None, source: str) -> int | None:
    if bit_depth is not None and not 8 <= int(bit_depth) <= 16:
        raise ConfigError(f"{source}: bit depth must be 8..16, got {bit_depth}")
    return None if bit_depth is None else int(bit_depth)


def _mismatch(source: str, what: str, stated: object, given: object) -> InputError:
    return InputError(
        f"{source}: the file states {what} {stated} but {given} was requested; "
        f"vcodec does not rescale on input: drop the option or convert the file"
    )


# ---------------------------------------------------------------------------
# the reader protocol


class VideoReader(ABC, Iterator[Frame]):
    """A context manager and iterator of :class:`Frame`.

    ``info`` is known before the first frame.  ``info.num_frames`` is the
    number of frames this reader will yield (after ``start``/``frames``), or
    ``None`` when the source cannot tell (pipes, some containers); the
    source's own count is in ``info.extra["source_frames"]`` when known.
    ``Frame.index`` counts from 0 at the first frame of the source, so the
    first frame yielded has index ``start``.
    """

    info: VideoInfo

    def __init__(self, source: str, start: int, frames: int | None) -> None:
        if start < 0:
            raise ConfigError(f"{source}: start frame must be >= 0, got {start}")
        if frames is not None and frames < 0:
            raise ConfigError(f"{source}: frame count must be >= 0, got {frames}")
        self.source = source
        self.start = int(start)
        self.limit = None if frames is None else int(frames)
        self._next_index = self.start
        self._skipped = False
        self._closed = False

    # subclasses: skip ``n`` frames from the current position / read the next one
    @abstractmethod
    def _skip(self, n: int) -> None: ...

    @abstractmethod
    def _read(self, index: int) -> Frame | None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def _finish_info(self, source_frames: int | None) -> None:
        """Fill ``num_frames`` from the source count and the start/frames window."""
        self.info.extra["source_frames"] = source_frames
        self.info.extra["start"] = self.start
        if source_frames is None:
            self.info.num_frames = None
            return
        if self.start > source_frames or (self.start == source_frames and source_frames > 0):
            raise InputError(
                f"{self.source}: start frame {self.start} is past the end ({source_frames} frames); "
                f"pass a smaller start"
            )
        left = source_frames - self.start
        self.info.num_frames = left if self.limit is None else min(left, self.limit)

    def __iter__(self) -> VideoReader:
        return self

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        if self.limit is not None and self._next_index - self.start >= self.limit:
            raise StopIteration
        if not self._skipped:
            self._skipped = True
            if self.start:
                self._skip(self.start)
        frame = self._read(self._next_index)
        if frame is None:
            if self._next_index < self.start or (self._next_index == self.start and self.start > 0):
                raise InputError(f"{self.source}: start frame {self.start} is past the end of the input")
            raise StopIteration
        self._next_index += 1
        return frame

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (
            f"{type(self).__name__}({self.source!r}, {i.width}x{i.height}, {i.fps} fps, "
            f"{i.bit_depth}-bit, {i.num_frames} frames)"
        )


class _StreamReader(VideoReader):
    """Shared file handling of the raw and Y4M readers."""

    def __init__(self, source: str, stream: BinaryIO, own: bool, start: int, frames: int | None) -> None:
        super().__init__(source, start, frames)
        self._stream = stream
        self._own = own  # close the stream only if we opened it

    def _close(self) -> None:
        if self._own:
            self._stream.close()


# ---------------------------------------------------------------------------
# raw planar YUV


class RawYUVReader(_StreamReader):
    """Headerless planar YUV 4:2:0: Y plane, then U, then V, frame after frame."""

    def __init__(
        self,
        source: str,
        stream: BinaryIO,
        *,
        own: bool,
        name_hint: str | None,
        size: tuple[int, int] | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        start: int,
        frames: int | None,
        file_size: int | None,
    ) -> None:
        super().__init__(source, stream, own, start, frames)
        named = parse_raw_name(name_hint) if name_hint else None
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
        if w % 2 or h % 2:
            raise InputError(f"{source}: 4:2:0 needs even width and height, got {w}x{h}; check --size")
        extra: dict[str, object] = {"format": "raw", "size_source": size_src}
        if fps is not None:
            extra["fps_source"] = "option"
        elif named is not None and named.fps is not None:
            fps, extra["fps_source"] = named.fps, "name"
        else:
            fps, extra["fps_source"] = DEFAULT_RAW_FPS, "default"
            extra["fps_note"] = f"raw YUV states no frame rate; assumed {DEFAULT_RAW_FPS} fps (pass --fps)"
        if bit_depth is None:
            bit_depth = named.bit_depth if named is not None and named.bit_depth else 8
            extra["bit_depth_source"] = "name" if named is not None and named.bit_depth else "default"
        self._w, self._h, self._depth = w, h, bit_depth
        bps = 1 if bit_depth == 8 else 2
        self.frame_bytes = (w * h + 2 * (w // 2) * (h // 2)) * bps
        self.info = VideoInfo(w, h, fps, bit_depth, None, matrix or default_matrix(w, h), source, extra)
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


# ---------------------------------------------------------------------------
# Y4M


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
        self,
        source: str,
        stream: BinaryIO,
        *,
        own: bool,
        size: tuple[int, int] | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        start: int,
        frames: int | None,
        file_size: int | None,
    ) -> None:
        super().__init__(source, stream, own, start, frames)
        try:
            line = _read_line(stream, MAX_HEADER)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        if line is None:
            raise InputError(f"{source}: the file is empty")
        hdr: Y4MHeader = parse_header(line, source)
        if size is not None and size != (hdr.width, hdr.height):
            raise _mismatch(source, "size", f"{hdr.width}x{hdr.height}", f"{size[0]}x{size[1]}")
        self.header = hdr
        extra: dict[str, object] = {"format": "y4m", "colorspace": hdr.colorspace}
        if fps is not None:
            extra["fps_source"] = "option"
        elif hdr.fps is not None:
            fps, extra["fps_source"] = hdr.fps, "header"
        else:
            fps, extra["fps_source"] = DEFAULT_RAW_FPS, "default"
            extra["fps_note"] = f"Y4M header has no F rate; assumed {DEFAULT_RAW_FPS} fps (pass --fps)"
        if hdr.interlace not in ("p", "?"):
            extra["interlace"] = hdr.interlace
        if hdr.full_range:
            extra["converted_from_full_range"] = True
        self._out_depth = bit_depth or hdr.bit_depth
        mat = matrix or hdr.matrix or default_matrix(hdr.width, hdr.height)
        self.info = VideoInfo(hdr.width, hdr.height, fps, self._out_depth, None, mat, source, extra)
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


# ---------------------------------------------------------------------------
# image-sequence folders


def _natural_key(name: str) -> list[object]:
    # "2.jpg" before "10.jpg" even without zero padding
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _image_folder(path: Path) -> tuple[Path, Path] | None:
    """(images folder, sequence folder) if ``path`` is an image sequence, else None."""
    if (path / "img1").is_dir():
        return path / "img1", path
    if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir() if p.is_file()):
        return path, path.parent if (path.parent / "seqinfo.ini").is_file() else path
    return None


class ImageFolderReader(VideoReader):
    """A folder of numbered pictures (MOTChallenge ``img1/``), read with OpenCV."""

    def __init__(
        self,
        source: str,
        folder: Path,
        *,
        size: tuple[int, int] | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        start: int,
        frames: int | None,
    ) -> None:
        super().__init__(source, start, frames)
        found = _image_folder(folder)
        if found is None:
            raise InputError(
                f"{source}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                f"and no img1/ subfolder"
            )
        images, seq = found
        self.files = sorted(
            (p for p in images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda p: _natural_key(p.name),
        )
        if not self.files:
            raise InputError(f"{source}: {images} holds no images")
        extra: dict[str, object] = {"format": "images", "images": str(images)}
        seq_fps: Fraction | None = None
        ini = seq / "seqinfo.ini"
        if ini.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read(ini, encoding="utf-8")
                for section in cp.sections():
                    if cp.has_option(section, "frameRate"):
                        seq_fps = Fraction(cp.get(section, "frameRate")).limit_denominator(1001000)
            except (configparser.Error, ValueError) as exc:
                raise InputError(
                    f"{ini}: cannot read frameRate ({exc}); fix the file or pass --fps"
                ) from None
        if fps is not None:
            extra["fps_source"] = "option"
        elif seq_fps is not None and seq_fps > 0:
            fps, extra["fps_source"] = seq_fps, "seqinfo"
        else:
            fps, extra["fps_source"] = DEFAULT_RAW_FPS, "default"
            extra["fps_note"] = f"no seqinfo.ini frameRate; assumed {DEFAULT_RAW_FPS} fps (pass --fps)"
        first = self._load(self.files[0])
        h, w = first.shape[:2]
        if w % 2 or h % 2:
            raise InputError(
                f"{self.files[0]}: 4:2:0 needs even width and height, got {w}x{h}; crop the images "
                f"to {w - w % 2}x{h - h % 2}"
            )
        if size is not None and size != (w, h):
            raise _mismatch(source, "size", f"{w}x{h}", f"{size[0]}x{size[1]}")
        self._depth = bit_depth or 8
        self.info = VideoInfo(w, h, fps, self._depth, None, matrix or default_matrix(w, h), source, extra)
        self._pos = 0
        self._finish_info(len(self.files))

    def _load(self, path: Path) -> np.ndarray:
        import cv2

        # imdecode from bytes: cv2.imread cannot report why it failed and
        # mishandles non-ASCII paths on some platforms
        try:
            buf = np.frombuffer(path.read_bytes(), np.uint8)
        except OSError as exc:
            raise InputError(f"{path}: cannot read image ({exc.strerror})") from None
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{path}: OpenCV cannot decode this image; replace or remove it")
        return bgr

    def _skip(self, n: int) -> None:
        self._pos += n

    def _read(self, index: int) -> Frame | None:
        if self._pos >= len(self.files):
            return None
        path = self.files[self._pos]
        self._pos += 1
        bgr = self._load(path)
        if bgr.shape[1] != self.info.width or bgr.shape[0] != self.info.height:
            raise InputError(
                f"{path}: image is {bgr.shape[1]}x{bgr.shape[0]} but the sequence is "
                f"{self.info.width}x{self.info.height}; all images must have one size"
            )
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        return Frame.from_rgb(rgb, self._depth, self.info.matrix, index)


# ---------------------------------------------------------------------------
# PyAV / FFmpeg

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
        *,
        fmt: str | None,
        size: tuple[int, int] | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        start: int,
        frames: int | None,
        count_file: Path | None,
    ) -> None:
        super().__init__(source, start, frames)
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
            self._setup(fmt, size, fps, bit_depth, matrix, count_file)
        except BaseException:
            self._container.close()
            raise
        self._reformatter = VideoReformatter()
        self._frames_iter: Iterator[object] | None = None

    def _setup(
        self,
        fmt: str | None,
        size: tuple[int, int] | None,
        fps: Fraction | None,
        bit_depth: int | None,
        matrix: str | None,
        count_file: Path | None,
    ) -> None:
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
        if w % 2 or h % 2:
            raise InputError(
                f"{source}: decoded pictures are {w}x{h}; 4:2:0 needs even sizes: crop first, e.g. "
                f"`ffmpeg -i IN -vf crop={w - w % 2}:{h - h % 2}:0:0 OUT.mp4`"
            )
        if size is not None and size != (w, h):
            raise _mismatch(source, "size", f"{w}x{h}", f"{size[0]}x{size[1]}")
        fmt_name = self._container.format.name
        elementary = fmt_name in ("h264", "hevc") or fmt in ("h264", "hevc")
        extra: dict[str, object] = {"format": fmt_name, "codec": cc.name}
        if fps is not None:
            extra["fps_source"] = "option"
        elif not elementary and stream.average_rate:
            fps, extra["fps_source"] = Fraction(stream.average_rate), "container"
        elif not elementary and stream.guessed_rate:
            fps, extra["fps_source"] = Fraction(stream.guessed_rate), "container"
        else:
            fps, extra["fps_source"] = DEFAULT_ELEMENTARY_FPS, "default"
            what = "an elementary stream carries" if elementary else "the container states"
            extra["fps_note"] = f"{what} no frame rate; assumed {DEFAULT_ELEMENTARY_FPS} fps (pass --fps)"
        src_bits = 8
        if cc.format is not None and cc.format.components:
            src_bits = int(cc.format.components[0].bits)
        extra["source_pix_fmt"] = cc.format.name if cc.format is not None else None
        self._depth = bit_depth or _target_depth(src_bits)
        self._av_depth = self._depth if self._depth in _TARGET_FORMATS else _target_depth(self._depth)
        stated = _AV_MATRIX.get(int(cc.colorspace or 2))
        mat = matrix or stated or default_matrix(w, h)
        extra["matrix_source"] = "option" if matrix else ("container" if stated else "default")
        self.info = VideoInfo(w, h, fps, self._depth, None, mat, source, extra)
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

    def _decoded(self) -> Iterator[object]:
        av = self._av
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError as exc:
            raise InputError(f"{self.source}: decoding failed ({exc}); the stream is damaged") from None

    def _next_av_frame(self) -> object | None:
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
        kwargs: dict[str, object] = {"format": _TARGET_FORMATS[self._av_depth]}
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
            view = np.frombuffer(p, dtype=src_dtype, count=row * ph).reshape(ph, row)[:, :pw]
            planes.append(view.astype(dst_dtype))
        frame = Frame(planes[0], planes[1], planes[2], self._av_depth, index, self.info.matrix)
        return frame.with_bit_depth(self._depth)

    def _close(self) -> None:
        self._frames_iter = None
        self._container.close()


# ---------------------------------------------------------------------------
# dispatch


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

    ``size`` (width, height), ``fps`` and ``bit_depth`` describe raw YUV (they
    override what the name says).  For formats with a header, ``fps``
    overrides the stated rate, ``bit_depth`` converts the samples and ``size``
    must match the stated size (vcodec never rescales on input).  ``start``
    skips that many frames; ``frames`` caps how many are yielded.  ``matrix``
    ("bt601"/"bt709") overrides the colour matrix the input states.
    """
    if isinstance(path, (str, os.PathLike)) and os.fspath(path) == "-":
        return _open_stream(sys.stdin.buffer, "<stdin>", False, size, fps, bit_depth, start, frames, matrix)
    if not isinstance(path, (str, os.PathLike)):
        if not hasattr(path, "read"):
            raise ConfigError(
                f"open_video needs a path, '-' or a binary file object, got {type(path).__name__}"
            )
        name = str(getattr(path, "name", "<stream>"))
        return _open_stream(path, name, False, size, fps, bit_depth, start, frames, matrix)

    p = Path(path)
    source = str(p)
    size = _check_size(size, source)
    fps_f = _check_fps(fps, source)
    depth = _check_depth(bit_depth, source)
    matrix = _check_matrix(matrix, source)
    if not p.exists():
        raise InputError(f"{source}: no such file or folder")
    if p.is_dir():
        return ImageFolderReader(
            source, p, size=size, fps=fps_f, bit_depth=depth, matrix=matrix, start=start, frames=frames
        )
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
            return Y4MReader(
                source, fh, own=True, size=size, fps=fps_f, bit_depth=depth, matrix=matrix,
                start=start, frames=frames, file_size=file_size,
            )
        if suffix == ".y4m":
            raise InputError(f"{source}: not a Y4M file (it does not start with YUV4MPEG2)")
        if suffix in RAW_EXTENSIONS:
            return RawYUVReader(
                source, fh, own=True, name_hint=p.name, size=size, fps=fps_f, bit_depth=depth,
                matrix=matrix, start=start, frames=frames, file_size=file_size,
            )
    except BaseException:
        fh.close()
        raise
    fh.close()
    if file_size == 0:
        raise InputError(f"{source}: the file is empty")
    fmt = ELEMENTARY_FORMATS.get(p.suffix.lower())
    return AVReader(
        source, str(p), fmt=fmt, size=size, fps=fps_f, bit_depth=depth, matrix=matrix,
        start=start, frames=frames, count_file=p,
    )


def _looks_like_container(head: bytes) -> str | None:
    """FFmpeg demuxer for a stream prefix, '' to let FFmpeg probe, None if unknown."""
    if head.startswith(b"\x00\x00\x00\x01") or head.startswith(b"\x00\x00\x01"):
        # Annex-B start code: H.264 NAL types sit in the low 5 bits, HEVC's in bits 1..6
        nal = head[4] if head.startswith(b"\x00\x00\x00\x01") else head[3]
        return "hevc" if (nal >> 1) & 0x3F in (32, 33, 34, 35) and (nal & 0x81) == 0 else "h264"
    if head[4:8] == b"ftyp" or head.startswith((b"\x1a\x45\xdf\xa3", b"RIFF", b"\x00\x00\x01\xba", b"G")):
        return ""
    return None


def _open_stream(
    stream: BinaryIO,
    name: str,
    own: bool,
    size: tuple[int, int] | None,
    fps: Fraction | float | None,
    bit_depth: int | None,
    start: int,
    frames: int | None,
    matrix: str | None,
) -> VideoReader:
    size = _check_size(size, name)
    fps_f = _check_fps(fps, name)
    depth = _check_depth(bit_depth, name)
    matrix = _check_matrix(matrix, name)
    head, wrapped = _sniff(stream, name)
    if not head:
        raise InputError(f"{name}: the input is empty")
    common = dict(size=size, fps=fps_f, bit_depth=depth, matrix=matrix, start=start, frames=frames)
    if head.startswith(Y4M_MAGIC):
        return Y4MReader(name, wrapped, own=own, file_size=None, **common)  # type: ignore[arg-type]
    if size is not None:
        # on a pipe, --size means headerless raw YUV
        return RawYUVReader(
            name, wrapped, own=own, name_hint=None, file_size=None, **common  # type: ignore[arg-type]
        )
    fmt = _looks_like_container(head)
    if fmt is None:
        raise InputError(
            f"{name}: cannot tell the format of this stream; pass --size WxH for raw YUV, or send Y4M"
        )
    return AVReader(name, wrapped, fmt=fmt or None, count_file=None, **common)  # type: ignore[arg-type]
