"""What every reader shares: the options, the :class:`VideoReader` protocol, the frame-rate rule.

The caller's options are one typed value, :class:`ReadOptions`, checked once
by :meth:`ReadOptions.checked` (size, rate, depth, matrix, frame window) and
handed to every reader.  Each other rule is written once here too: "the file
says otherwise" (:meth:`VideoReader._check_stated_size`), which colour matrix
wins (:meth:`VideoReader._pick_matrix`) and where the frame rate comes from
(:func:`resolve_fps`).  The 4:2:0 size rule is
:func:`vcodec.io.frame.require_even`.
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple

from vcodec.errors import ConfigError, InputError
from vcodec.io.frame import MATRICES, Frame, VideoInfo, default_matrix, require_even

__all__ = [
    "VideoReader", "ReadOptions", "FpsChoice", "DEFAULT_RAW_FPS", "DEFAULT_ELEMENTARY_FPS", "resolve_fps",
]

#: rate assumed for raw YUV whose name and options say nothing (HEVC CTC habit)
DEFAULT_RAW_FPS = Fraction(30)
#: rate assumed for Annex-B elementary streams (FFmpeg's own default)
DEFAULT_ELEMENTARY_FPS = Fraction(25)
_PACKAGE = __name__.rpartition(".")[0]


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


def _check_size(size: tuple[int, int] | None, source: str) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: size must be (width, height), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"{source}: size must be positive, got {w}x{h}")
    require_even(w, h, source, "pass an even --size")
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


def _check_window(start: int, frames: int | None, source: str) -> tuple[int, int | None]:
    if start < 0:
        raise ConfigError(f"{source}: start frame must be >= 0, got {start}")
    if frames is not None and frames < 0:
        raise ConfigError(f"{source}: frame count must be >= 0, got {frames}")
    return int(start), None if frames is None else int(frames)


@dataclass(frozen=True)
class ReadOptions:
    """What the caller says about an input: every reader takes this one value.

    ``size`` (width, height), ``fps`` and ``bit_depth`` describe raw YUV (they
    override what the name says).  For formats with a header, ``fps``
    overrides the stated rate, ``bit_depth`` converts the samples and ``size``
    must match the stated size (vcodec never rescales on input).  ``matrix``
    ("bt601"/"bt709") overrides the colour matrix the input states.  ``start``
    skips that many frames; ``frames`` caps how many are yielded.  ``None``
    means "whatever the input says".
    """

    size: tuple[int, int] | None = None
    fps: Fraction | float | None = None  # any number; a Fraction once checked()
    bit_depth: int | None = None
    matrix: str | None = None
    start: int = 0
    frames: int | None = None

    def checked(self, source: str) -> ReadOptions:
        """These options checked and normalised (``fps`` a Fraction); a ConfigError names ``source``."""
        start, frames = _check_window(self.start, self.frames, source)
        return ReadOptions(
            size=_check_size(self.size, source),
            fps=_check_fps(self.fps, source),
            bit_depth=_check_depth(self.bit_depth, source),
            matrix=_check_matrix(self.matrix, source),
            start=start,
            frames=frames,
        )


def _reader_options(options: ReadOptions | None, legacy: dict[str, Any]) -> ReadOptions:
    """The options a reader was given: a :class:`ReadOptions`, or the old keywords (kept one release).

    The keywords (``size=``, ``fps=``, ...) are the readers' API before
    ReadOptions; they still work, with a DeprecationWarning.
    """
    if not legacy:
        return options if options is not None else ReadOptions()
    if options is not None:
        raise ConfigError(
            f"pass the reader options either as ReadOptions or as keywords, not both (got {sorted(legacy)})"
        )
    options = ReadOptions(**legacy)  # an unknown keyword is a TypeError, as before
    # point the warning at the first caller outside the readers (subclass chains differ in depth)
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        "reader keywords size=/fps=/bit_depth=/matrix=/start=/frames= are deprecated; "
        "pass options=ReadOptions(...) (or use open_video)",
        DeprecationWarning,
        stacklevel=level,
    )
    return options


def _mismatch(source: str, what: str, stated: object, given: object) -> InputError:
    return InputError(
        f"{source}: the file states {what} {stated} but {given} was requested; "
        f"vcodec does not rescale on input: drop the option or convert the file"
    )


class FpsChoice(NamedTuple):
    """The frame rate a reader reports and where it came from (:class:`~vcodec.io.frame.InputFacts`)."""

    fps: Fraction
    source: str  # "option", the input's own word for where it states one, or "default"
    note: str | None  # set when the rate was assumed: what is missing and what to pass


def resolve_fps(
    requested: Fraction | float | None,
    stated: Fraction | None,
    stated_source: str,
    *,
    missing: str,
    default: Fraction = DEFAULT_RAW_FPS,
) -> FpsChoice:
    """The frame rate a reader reports: the option, else what the input states, else ``default``.

    The source is ``"option"``, ``stated_source`` or ``"default"``; an assumed
    rate also gets a note that starts with ``missing`` and says what to pass.
    """
    if requested is not None:
        return FpsChoice(Fraction(requested), "option", None)
    if stated is not None:
        return FpsChoice(stated, stated_source, None)
    return FpsChoice(default, "default", f"{missing}; assumed {default} fps (pass --fps)")


# ---------------------------------------------------------------------------
# the reader protocol


class VideoReader(ABC, Iterator[Frame]):
    """A context manager and iterator of :class:`Frame`.

    ``info`` is known before the first frame.  ``info.num_frames`` is the
    number of frames this reader will yield (after ``start``/``frames``), or
    ``None`` when the source cannot tell (pipes, some containers); the
    source's own count is ``info.facts.source_frames`` when known.
    ``Frame.index`` counts from 0 at the first frame of the source, so the
    first frame yielded has index ``start``.
    """

    info: VideoInfo

    def __init__(self, source: str, options: ReadOptions | None = None, **legacy: Any) -> None:
        self.options = _reader_options(options, legacy).checked(source)
        self.source = source
        self.start = self.options.start
        self.limit = self.options.frames
        self._next_index = self.start
        self._skipped = False
        self._closed = False

    def _check_stated_size(self, width: int, height: int) -> None:
        """Refuse a ``size`` option that differs from the size the input states."""
        size = self.options.size
        if size is not None and size != (width, height):
            raise _mismatch(self.source, "size", f"{width}x{height}", f"{size[0]}x{size[1]}")

    def _pick_matrix(self, width: int, height: int, stated: str | None = None) -> str:
        """The colour matrix: the option, else what the input states, else the size's default."""
        return self.options.matrix or stated or default_matrix(width, height)

    # subclasses: skip ``n`` frames from the current position / read the next one
    @abstractmethod
    def _skip(self, n: int) -> None: ...

    @abstractmethod
    def _read(self, index: int) -> Frame | None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def _finish_info(self, source_frames: int | None) -> None:
        """Fill ``num_frames`` from the source count and the start/frames window."""
        self.info.facts.source_frames = source_frames
        self.info.facts.start = self.start
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

    def __init__(
        self, source: str, stream: BinaryIO, own: bool, options: ReadOptions | None, legacy: dict[str, Any]
    ) -> None:
        super().__init__(source, options, **legacy)
        self._stream = stream
        self._own = own  # close the stream only if we opened it

    def _close(self) -> None:
        if self._own:
            self._stream.close()
