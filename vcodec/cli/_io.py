"""Helpers shared by subcommands: opening inputs/outputs with '-' for pipes, atomically."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from vcodec._atomic import atomic_output
from vcodec.errors import ConfigError, InputError

# atomic_output: the one in vcodec._atomic
__all__ = ["atomic_output", "open_input", "refuse_in_place", "write_json_report"]

#: argparse destinations holding a command's input and its output paths (every subcommand uses these)
_INPUTS = ("input", "stream")
_OUTPUTS = (("output", "-o"), ("json", "--json"), ("annotate", "--annotate"))


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
    """A command's ``--json`` report: to stderr for ``-`` (stdout may carry the stream), else a file,
    atomically."""
    import json

    text = json.dumps(report, indent=2, sort_keys=True)
    if dest == "-":
        print(text, file=sys.stderr)
        return
    with atomic_output(dest) as f:
        f.write((text + "\n").encode())


def refuse_in_place(args: Any) -> None:
    """Refuse, before any work, outputs that would destroy the input or could not be written.

    An output naming the input file (the same file through another spelling, a symlink or a hard
    link: ``os.path.samefile``) is a usage error (exit 2): writing it would replace the data being
    read.  A file output whose folder does not exist is refused up front too, so a command never
    does its work (and leaves a finished stream behind) only to fail on its last report.
    """
    import os

    inputs = [v for k in _INPUTS if isinstance(v := getattr(args, k, None), str) and v != "-"]
    for dest, flag in _OUTPUTS:
        out = getattr(args, dest, None)
        if not isinstance(out, str) or out == "-" or "://" in out:
            continue
        for src in inputs:
            try:
                same = os.path.samefile(src, out)
            except OSError:  # one of them does not exist (yet): not the same file
                same = False
            if same:
                raise ConfigError(f"{flag} {out} is the input file {src}; writing it would destroy the "
                                  "input: choose another output name")
        parent = Path(out).resolve().parent
        if dest == "json":  # (other outputs are opened before any work)
            if not parent.is_dir():
                raise ConfigError(f"{flag} {out}: folder {parent} does not exist; create it first")
            if not os.access(parent, os.W_OK):
                raise ConfigError(f"{flag} {out}: folder {parent} is not writable; choose another place")
