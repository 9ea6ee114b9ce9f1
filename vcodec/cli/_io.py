"""Helpers shared by subcommands: opening inputs/outputs with '-' for pipes, atomically."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from vcodec._atomic import atomic_output
from vcodec.errors import InputError

__all__ = ["atomic_output", "open_input", "write_json_report"]  # atomic_output: the one in vcodec._atomic


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


def write_json_report(dest: str, report: Any) -> None:
    """A command's ``--json`` report: to stderr for ``-`` (stdout may carry the stream), else a file, atomically."""
    import json

    text = json.dumps(report, indent=2, sort_keys=True)
    if dest == "-":
        print(text, file=sys.stderr)
        return
    with atomic_output(dest) as f:
        f.write((text + "\n").encode())
