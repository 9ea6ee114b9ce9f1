"""Helpers shared by subcommands: opening inputs/outputs with '-' for pipes, atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from vcodec.errors import InputError, OutputError


@contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    """A binary input: a file, or stdin for ``-``."""
    if path == "-":
        yield sys.stdin.buffer
        return
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        f = open(p, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with f:
        yield f


@contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A binary output written to a temporary name and renamed on success.

    On any exception the temporary file is removed, so no partial output is
    left behind pretending to be complete.  ``-`` is stdout (no atomicity).
    """
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({exc.strerror or exc}); check the directory "
                          "exists and is writable") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_report(dest: str, report: Any) -> None:
    """A command's ``--json`` report: to stderr for ``-`` (stdout may carry the stream), else a file, atomically."""
    import json

    text = json.dumps(report, indent=2, sort_keys=True)
    if dest == "-":
        print(text, file=sys.stderr)
        return
    with atomic_output(dest) as f:
        f.write((text + "\n").encode())
