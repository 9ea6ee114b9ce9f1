"""Base-layer analytics on a stream: what ``vcodec detect STREAM`` runs.

:func:`detect_stream` decodes only layer 0 and runs the detector's back end
on the decoded latent, frame by frame; with ``output`` it also writes the
detections as they come (MOTChallenge lines and SFU files are flushed per
frame, so a pipe ``vcodec encode ... -o - | vcodec detect - -o dets.txt``
shows results while the encoder is still running; COCO JSON is one document
and is written at the end).  :func:`is_stream` tells a vcodec stream from a
plain video without consuming a pipe.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vcodec._atomic import AtomicOutput, make_output_folder
from vcodec.codec.decoder import Decoder, StreamInput
from vcodec.errors import ConfigError

__all__ = ["detect_stream", "is_stream"]


def is_stream(source: Any) -> bool:
    """True when ``source`` (path, ``"-"``, bytes or a buffered binary file) starts like a vcodec stream.

    For ``"-"`` and buffered file objects the first bytes are peeked, not consumed.
    """
    from vcodec.bitstream import is_stream_prefix

    if isinstance(source, (bytes, bytearray, memoryview)):
        return is_stream_prefix(bytes(source[:4]))
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
            source = sys.stdin.buffer
        else:
            p = Path(source)
            if not p.is_file():
                return False
            try:
                with open(p, "rb") as fh:
                    return is_stream_prefix(fh.read(4))
            except OSError:
                return False
    peek = getattr(source, "peek", None)
    if peek is None:
        return False
    try:
        return is_stream_prefix(peek(4)[:4])
    except (OSError, ValueError):
        return False


class _Writer:
    """Incremental detection output; removes what it wrote if the run fails.

    COCO is one document, written atomically at the end; MOT lines go to the final
    name as they come (a user follows them during a live encode), removed on failure;
    SFU writes one file per frame into a folder, each removed on failure.
    """

    def __init__(self, output: str, fmt: str | None, stem: str) -> None:
        from vcodec.detection.formats import format_for_path

        self.output = output
        if output == "-":
            self.fmt = format_for_path("-.json", fmt)  # stdout: COCO unless a format is named
        else:
            self.fmt = format_for_path(output, fmt)
        self.stem = stem
        self.coco: list[tuple[int, Any]] = []
        self.out: AtomicOutput | None = None
        self.written: list[Path] = []
        if output == "-" and self.fmt == "sfu":
            raise ConfigError("--format sfu writes one file per frame; give -o DIR")
        if self.fmt == "sfu":
            make_output_folder(Path(output), what="SFU output")
        else:
            # opened now, not at the end: an unwritable output fails before any decoding
            self.out = AtomicOutput(output, what="detection output", in_place=self.fmt == "mot")

    def add(self, index: int, det: Any) -> None:
        from vcodec.detection.formats import mot_lines, write_sfu

        if self.fmt == "coco":
            self.coco.append((index, det))
        elif self.fmt == "mot":
            assert self.out is not None
            self.out.stream.write("".join(line + "\n" for line in mot_lines([(index, det)])).encode())
            self.out.flush()
        else:
            self.written += write_sfu(self.output, [(index, det)], self.stem)

    def finish(self) -> None:
        from vcodec.detection.formats import coco_results

        if self.out is None:
            return
        if self.fmt == "coco":
            self.out.stream.write((json.dumps(coco_results(self.coco)) + "\n").encode())
        self.out.commit()

    def abort(self) -> None:
        if self.out is not None:
            self.out.abort()
        for p in self.written:
            try:
                p.unlink()
            except OSError:
                pass


def detect_stream(
    source: StreamInput,
    *,
    output: str | None = None,
    fmt: str | None = None,
    conceal: bool = False,
    weights: str | Path | None = None,
    progress: bool = True,
    base_model: str | None = None,
    threads: int = 0,
    detector: Any = None,
) -> Iterator[tuple[int, Any]]:
    """Detections from the base layer of a stream, frame by frame.

    ``source``: path, ``"-"`` (stdin), bytes or a binary file object; a full
    stream or a base-only one.  ``output``: a ``.json`` (COCO), ``.txt``
    (MOT) file, a directory (SFU) or ``"-"`` (stdout; COCO unless ``fmt``);
    ``None`` writes nothing.  ``weights``: detector weights for base models
    whose detector is not shipped (YOLOX-Nano ``.onnx``).  ``conceal``: skip
    damaged frames (listed on stderr at the end) instead of failing.
    ``progress``: a tqdm bar on stderr.  Output files are removed if the run
    fails.
    """
    stem = "stdin" if isinstance(source, str) and source == "-" else (
        Path(os.fspath(source)).stem if isinstance(source, (str, os.PathLike)) else "stream")
    dec = Decoder(source, layers="base", conceal=conceal, threads=threads, detector_weights=weights,
                  detector=detector, base_model=base_model)
    writer = _Writer(output, fmt, stem) if output is not None else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=dec.header.num_frames, unit="frame", desc="detect", file=sys.stderr, leave=False)
    frames = 0
    objects = 0
    t0 = time.perf_counter()
    ok = False
    try:
        for index, det in dec.detections():
            frames += 1
            objects += len(det)
            if writer is not None:
                writer.add(index, det)
            if bar is not None:
                bar.update(1)
            yield index, det
        ok = True
    except GeneratorExit:
        ok = True  # the caller stopped early on purpose: keep what was written
        raise
    finally:
        if bar is not None:
            bar.close()
        dec.close()
        if writer is not None:
            if ok:
                writer.finish()
            else:
                writer.abort()
        if progress:
            dt = time.perf_counter() - t0
            lost = f", {len(dec.lost_frames)} frames lost to damage" if dec.lost_frames else ""
            print(f"detect: {frames} frames, {objects} detections, "
                  f"{frames / dt if dt > 0 else 0.0:.1f} frames/s (base layer only){lost}", file=sys.stderr)
