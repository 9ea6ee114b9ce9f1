"""The files of a results folder, written through the one atomic writer (:mod:`vcodec._atomic`).

A run interrupted mid-write leaves the previous file (or none), never a truncated one that a
resumed run would have to recognise as damaged."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vcodec._atomic import atomic_output
from vcodec.eval.points import METRIC_COLUMNS, EvalPoint

__all__ = ["as_json", "write_csv", "write_json", "write_text"]


def write_text(path: Path, text: str) -> None:
    """``text`` (UTF-8) at ``path``: the whole file or, on any failure, nothing new."""
    with atomic_output(path, what="vcodec eval output") as f:
        f.write(text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON with sorted keys (stable diffs between runs)."""
    write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")


def as_json(obj: Any) -> Any:
    """``obj`` as it reads back from its JSON file (tuples as lists, numpy numbers as Python's)."""
    return json.loads(json.dumps(obj, default=_jsonable))


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Fraction):
        return str(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_csv(path: Path, rows: Sequence[EvalPoint]) -> None:
    """One line of :data:`METRIC_COLUMNS` per point (results.csv, points/<id>.csv)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow(r.csv_row())
    write_text(path, buf.getvalue())
