"""The one atomic writer: every file vcodec produces appears complete or not at all.

A path is written under a temporary name in the same folder
(``.NAME.XXXXXXXX.part``; same folder, so the final rename cannot cross file
systems), fsync'ed and renamed over the final name on :meth:`AtomicOutput.commit`.
:meth:`AtomicOutput.abort` (or leaving a ``with`` block through an exception)
deletes the temporary file and leaves an existing file of the final name
untouched.  The finished file gets ``0666 & ~umask`` like any ``open()``
would give it: the temporary is created with that mode directly, never with
``mkstemp``'s private 0600 that would survive the rename.

``"-"`` is standard output and a binary file object is written as it is; both
are flushed on commit, and neither can be atomic.

``in_place=True`` is for outputs meant to be followed while they grow (MOT
detection lines a user tails during a live encode): the final name is written
directly, and :meth:`AtomicOutput.abort` removes it, so a failed run still
leaves nothing behind; only the "appears complete" half is given up.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from vcodec.errors import ConfigError, OutputError

__all__ = ["AtomicOutput", "OutputTarget", "atomic_output", "make_output_folder", "temporary_name"]

#: what every writer accepts: a path, ``"-"`` for stdout, or a binary file object
OutputTarget = str | os.PathLike[str] | BinaryIO

_SUFFIX = ".part"


def temporary_name(final: Path) -> Path:
    """A fresh temporary name beside ``final`` (hidden, so a half-written file is not mistaken for output)."""
    return final.parent / f".{final.name}.{secrets.token_hex(4)}{_SUFFIX}"


class AtomicOutput:
    """Where a writer's bytes go: a temporary file renamed on :meth:`commit`, stdout, or a caller's stream.

    ``what`` names the caller in the error for an unusable ``target`` (``"Encoder output"``).
    ``in_place``: write the final name directly (see the module docstring).
    """

    def __init__(self, target: OutputTarget, *, what: str = "output", in_place: bool = False) -> None:
        self.final: Path | None = None
        self.temp: Path | None = None
        self.own = False
        self._in_place = False
        if isinstance(target, (str, os.PathLike)) and os.fspath(target) == "-":
            flush_text = getattr(sys.stdout, "flush", None)
            if flush_text is not None:
                flush_text()  # text already printed goes out before these bytes
            self.name, self.stream = "<stdout>", sys.stdout.buffer
            return
        if not isinstance(target, (str, os.PathLike)):
            if not hasattr(target, "write"):
                raise ConfigError(
                    f"{what} needs a path, '-' or a binary file object, got {type(target).__name__}")
            self.name, self.stream = str(getattr(target, "name", "<stream>")), target
            return
        final = Path(target)
        self.name = str(final)
        if final.is_dir():
            raise OutputError(f"{final}: is a directory; give a file name")
        parent = final.parent
        if not parent.is_dir():
            raise OutputError(f"{final}: cannot write: directory {parent} does not exist; create it first")
        # 0o666: the umask applies as for a plain open(), and the mode survives the rename
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        if in_place:
            self.temp = final  # what abort() removes; commit() has nothing to rename
            self.final, self.own, self._in_place = final, True, True
            self.stream = os.fdopen(self._create(final, flags | os.O_TRUNC), "wb")
            return
        for _ in range(100):
            tmp = temporary_name(final)
            try:
                fd = self._create(tmp, flags | os.O_EXCL)
                break
            except FileExistsError:
                continue
        else:
            raise OutputError(f"{final}: cannot create a temporary file in {parent}")
        self.final, self.temp, self.own = final, tmp, True
        self.stream = os.fdopen(fd, "wb")

    def _create(self, path: Path, flags: int) -> int:
        try:
            return os.open(path, flags, 0o666)
        except FileExistsError:
            raise
        except OSError as exc:
            raise OutputError(f"{self.name}: cannot write in {path.parent} ({exc.strerror or exc}); "
                              "check permissions") from None

    def flush(self) -> None:
        """Push buffered bytes on (a pipe reader sees them now); streams without ``flush`` are fine."""
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except (AttributeError, ValueError):  # no flush(), or the caller closed its stream
            pass

    def commit(self) -> None:
        """Finish: fsync and rename a temporary file to the final name; flush a stream."""
        if self.temp is None or self.final is None:
            if not self.own:
                self.flush()
            return
        try:
            if not self.stream.closed:  # (PyAV closes the file it muxed into itself)
                self.stream.flush()
                os.fsync(self.stream.fileno())
                self.stream.close()
            if not self._in_place:
                os.replace(self.temp, self.final)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.final}: cannot finish the file ({exc.strerror or exc})") from None
        self.temp = None
        _sync_folder(self.final.parent)

    def abort(self) -> None:
        """Drop the output: the temporary file is deleted, the final name is untouched."""
        if self.own and not self.stream.closed:
            try:
                self.stream.close()
            except OSError:
                pass
        if self.temp is not None:
            try:
                self.temp.unlink()
            except FileNotFoundError:
                pass
            self.temp = None

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows (POSIX); best effort."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(target: OutputTarget, *, what: str = "output") -> Iterator[BinaryIO]:
    """``with atomic_output(path) as f:`` the file appears on a clean exit, nothing on an exception."""
    with AtomicOutput(target, what=what) as out:
        yield out.stream


def make_output_folder(folder: Path, *, what: str) -> Path:
    """Create ``folder`` (and its parents) for outputs, or raise one actionable OutputError.

    ``what`` names it in the message (e.g. ``"--out"``).  An existing folder is fine; an
    existing file of that name is not: the caller would otherwise fail later, mid-run."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder} exists and is not a folder; choose a folder name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    return folder
