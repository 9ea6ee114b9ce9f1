"""Writers for detection results: COCO results JSON, MOTChallenge txt, SFU-HW-Objects txt.

Every writer takes an iterable of ``(frame_index, Detections)`` (what
:func:`vcodec.detection.detect_frames` yields); frame indexes are 0-based in
vcodec and converted where a format wants otherwise.

* **coco**: a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``;
  ``image_id`` is the 0-based frame index, ``category_id`` the official COCO
  category id (1..90), as ``pycocotools`` ``loadRes`` expects.
* **mot**: MOTChallenge detection lines
  ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`` with 1-based
  frames, ``id = -1`` (no tracking) and ``x,y,z = -1``.
* **sfu**: SFU-HW-Objects-v1: one file per frame named
  ``<stem>_seq_<frame:03d>.txt`` holding ``cls xc yc w h`` per object
  (COCO80 class id, centre and size normalised to [0, 1] by the picture
  size); ``with_scores=True`` appends the confidence as a sixth column.

Files are written through :mod:`vcodec._atomic` with the rule
:class:`vcodec.codec.analytics.DetectionOutput` follows: a COCO document and
each SFU file appear complete or not at all; MOT lines go to the final name
as they come (a user may follow them) and the file is removed if the run
fails.  A failed SFU run also removes the files it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from vcodec._atomic import AtomicOutput
from vcodec.detection.base import COCO80_TO_CATEGORY_ID, Detections
from vcodec.errors import ConfigError, OutputError

__all__ = [
    "FORMATS",
    "format_for_path",
    "coco_results",
    "write_coco",
    "write_mot",
    "write_sfu",
    "write_detections",
]

FORMATS = ("coco", "mot", "sfu")


def format_for_path(path: str | Path, fmt: str | None = None) -> str:
    """The output format: ``fmt`` if given, else by extension (.json coco, .txt mot, no suffix sfu)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown detection format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix == ".txt":
        return "mot"
    if suffix == "" or Path(path).is_dir():
        return "sfu"
    raise ConfigError(
        f"cannot tell the detection format of {str(path)!r} from its extension; "
        f"use .json (coco), .txt (mot), a directory (sfu) or --format"
    )


def _r(v: float) -> float:
    return round(float(v), 2)


def coco_results(items: Iterable[tuple[int, Detections]]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for index, det in items:
        for b, s, c in zip(det.boxes, det.scores, det.class_ids, strict=True):
            out.append({
                "image_id": int(index),
                "category_id": COCO80_TO_CATEGORY_ID[int(c)],
                "bbox": [_r(b[0]), _r(b[1]), _r(b[2] - b[0]), _r(b[3] - b[1])],
                "score": round(float(s), 5),
            })
    return out


def _output(path: Path, *, in_place: bool = False) -> AtomicOutput:
    """The atomic writer for ``path``, its folder created first (as the writers always did)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write detections to {str(path)!r}: {exc.strerror or exc}") from None
    return AtomicOutput(path, what="detection output", in_place=in_place)


def write_coco(path: str | Path, items: Iterable[tuple[int, Detections]]) -> int:
    """Write COCO results JSON; returns the number of detections."""
    results = coco_results(items)
    with _output(Path(path)) as out:
        out.stream.write((json.dumps(results) + "\n").encode())
    return len(results)


def mot_lines(items: Iterable[tuple[int, Detections]]) -> Iterable[str]:
    for index, det in items:
        for b, s in zip(det.boxes, det.scores, strict=True):
            yield (
                f"{int(index) + 1},-1,{_r(b[0])},{_r(b[1])},{_r(b[2] - b[0])},{_r(b[3] - b[1])},"
                f"{float(s):.5f},-1,-1,-1"
            )


def write_mot(path: str | Path, items: Iterable[tuple[int, Detections]]) -> int:
    """Write MOTChallenge lines as ``items`` come (the file is removed if they fail); returns the count."""
    n = 0
    with _output(Path(path), in_place=True) as out:
        for line in mot_lines(items):
            out.stream.write((line + "\n").encode())
            n += 1
    return n


def sfu_lines(det: Detections, with_scores: bool = False) -> list[str]:
    if det.image_width <= 0 or det.image_height <= 0:
        raise ConfigError("SFU output needs the picture size; Detections.image_width/height are not set")
    w, h = float(det.image_width), float(det.image_height)
    lines = []
    for b, s, c in zip(det.boxes, det.scores, det.class_ids, strict=True):
        xc, yc = (b[0] + b[2]) / 2 / w, (b[1] + b[3]) / 2 / h
        bw, bh = (b[2] - b[0]) / w, (b[3] - b[1]) / h
        line = f"{int(c)} {xc:.6f} {yc:.6f} {bw:.6f} {bh:.6f}"
        lines.append(line + (f" {float(s):.5f}" if with_scores else ""))
    return lines


def write_sfu(
    directory: str | Path, items: Iterable[tuple[int, Detections]], stem: str, with_scores: bool = False
) -> list[Path]:
    """One ``<stem>_seq_<frame:03d>.txt`` per frame (also for frames without objects)."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise OutputError(f"SFU output {str(d)!r} exists and is not a directory")
    created = not d.exists()
    written: list[Path] = []
    try:
        for index, det in items:
            p = d / f"{stem}_seq_{int(index):03d}.txt"
            with _output(p) as out:
                out.stream.write("".join(line + "\n" for line in sfu_lines(det, with_scores)).encode())
            written.append(p)
    except BaseException:
        # a failed run leaves no part of its output: the files it wrote, the folder it made
        for p in written:
            p.unlink(missing_ok=True)
        if created:
            try:
                d.rmdir()
            except OSError:  # not ours alone any more (or already gone): leave it
                pass
        raise
    return written


def write_detections(
    path: str | Path, items: Iterable[tuple[int, Detections]], fmt: str | None = None, stem: str = "video",
) -> str:
    """Write ``items`` to ``path`` in ``fmt`` (or the format its extension implies); returns the format."""
    fmt = format_for_path(path, fmt)
    if fmt == "coco":
        write_coco(path, items)
    elif fmt == "mot":
        write_mot(path, items)
    else:
        write_sfu(path, items, stem)
    return fmt
