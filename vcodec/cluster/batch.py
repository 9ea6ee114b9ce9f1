"""Fleet encoding (``vcodec encode-batch``): many inputs, one task per input or per GOP of long inputs.

A whole-input task runs the serial :class:`~vcodec.codec.Encoder` in the
worker, which reads the input and writes the output itself (atomic: a
temporary name renamed when complete), so on a cluster both the inputs and
``--out-dir`` must be reachable from every node.  Inputs longer than
``split_frames`` are cut into GOP tasks (closed GOPs, as ``vcodec encode
--workers``) and merged by the driver.  Outputs that exist and verify
(:func:`verify_stream`) are skipped, which makes a batch resumable.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcodec.cluster.gop import base_layer
from vcodec.cluster.plan import EncodeOptions, GopTask, InputSpec
from vcodec.errors import BitstreamError, ConfigError, InputError, VcodecError

__all__ = ["FileTask", "BatchItem", "expand_inputs", "plan_items", "encode_file", "verify_stream",
           "run_batch_task"]


@dataclass(frozen=True)
class FileTask:
    """One whole input coded by one worker into ``output``."""

    input: InputSpec
    output: str
    options: EncodeOptions
    frames: int | None = None

    def describe(self) -> str:
        return f"input {self.input.path}"


@dataclass
class BatchItem:
    """One input of the batch: where it goes and what state it is in."""

    input: str
    output: Path
    report: Path
    status: str = "todo"  # todo, skipped, done, failed
    frames: int | None = None  # known frame count (GOP-split inputs; verified outputs)


def expand_inputs(args: list[str]) -> list[str]:
    """LIST files (``.txt``/``.list``: one path or URL per line, ``#`` comments), globs, or paths."""
    out: list[str] = []
    for a in args:
        p = Path(a)
        if p.suffix in (".txt", ".list") and p.is_file():
            out += [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        elif any(c in a for c in "*?[") and "://" not in a:
            hits = sorted(glob.glob(a, recursive=True))
            if not hits:
                raise InputError(f"{a}: the pattern matches no file")
            out += hits
        else:
            out.append(a)
    if not out:
        raise InputError("no inputs: give a LIST file (.txt, one path per line), a GLOB or paths")
    return out


def plan_items(inputs: list[str], out_dir: Path) -> list[BatchItem]:
    """``DIR/<name>.vcs`` and ``DIR/<name>.json`` per input; two inputs with one name is a usage error."""
    items: list[BatchItem] = []
    seen: dict[str, str] = {}
    for src in inputs:
        stem = Path(src.split("?")[0]).stem or "input"
        if stem in seen:
            raise ConfigError(f"{src} and {seen[stem]} would both be written to {out_dir / stem}.vcs; "
                              "rename one "
                              "or run them in two batches")
        seen[stem] = src
        items.append(BatchItem(src, out_dir / f"{stem}.vcs", out_dir / f"{stem}.json"))
    return items


def verify_stream(path: Path, frames: int | None = None) -> int:
    """Read every unit (CRCs, END counts); the stream's frame count.  Raises :class:`BitstreamError`."""
    from vcodec.bitstream import StreamReader

    with StreamReader(path) as r:
        for _ in r.units():
            pass
        if not r.ended or r.end_info is None:
            raise BitstreamError("the stream has no END unit", source=str(path))
        n = r.end_info[0]
    if frames is not None and n != frames:
        raise BitstreamError(f"the stream has {n} frames, its report says {frames}", source=str(path))
    return n


def encode_file(task: FileTask) -> dict[str, Any]:
    """Worker: code one whole input into its output (atomic); returns the summary as a dict."""
    from vcodec.codec import Encoder

    t0 = time.perf_counter()
    host = socket.gethostname()
    try:
        reader = task.input.open(0, task.frames)
    except VcodecError as exc:
        raise InputError(f"cannot read {task.input.path} on {host}: {exc} (inputs must be paths or URLs "
                         "every "
                         "node can reach)") from None
    with reader:
        enc = Encoder(task.output, reader.info, **task.options.encoder_kwargs(),
                      base_layer=base_layer(task.options))
        with enc:
            for frame in reader:
                enc.encode(frame)
            if enc.frames_encoded == 0:
                raise InputError(f"{task.input.path}: no frames to encode")
    summary = enc.summary().as_dict()
    summary["worker"] = f"{host}:{os.getpid()}"
    summary["task_seconds"] = round(time.perf_counter() - t0, 3)
    return summary


def run_batch_task(task: FileTask | GopTask) -> Any:
    """The one function the batch sends to workers: a whole input, or one GOP of a long input."""
    if isinstance(task, FileTask):
        return encode_file(task)
    from vcodec.cluster.gop import encode_gop

    return encode_gop(task)


def write_report(item: BatchItem, report: dict[str, Any]) -> None:
    from vcodec._atomic import AtomicOutput

    out = AtomicOutput(item.report, what="batch report")
    try:
        out.stream.write((json.dumps(report, indent=1, sort_keys=True, default=str) + "\n").encode())
        out.commit()
    except BaseException:
        out.abort()
        raise
