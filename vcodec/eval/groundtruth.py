"""Ground truth for evaluation: readers for SFU-HW, MOTChallenge and COCO, and pseudo ground truth.

Every reader returns a :class:`GroundTruth`: per 0-based frame index a
:class:`FrameTruth` with boxes ``x0, y0, x1, y1`` in picture pixels, COCO80
class indexes, track ids (``-1`` when the format has none) and an ``ignore``
flag (regions where a detection counts neither way).  ``annotated`` lists the
frames that have ground truth at all; only those are scored.

Formats (``fmt`` names):

* ``sfu-objects``: SFU-HW-Objects-v1, a folder of per-frame text files
  ``<stem>_seq_<NNN>.txt`` with ``cls xc yc w h`` per line (COCO80 class,
  centre and size normalised to [0, 1] by the picture size).  The frame
  number is NNN.  A sixth column (a detector's score, as ``vcodec detect
  --format sfu`` can write) is tolerated and ignored.
* ``sfu-tracks``: SFU-HW-Tracks-v1, the same with ``cls id xc yc w h``.
* ``mot``: MOTChallenge ``gt/gt.txt``: ``frame, id, left, top, width, height,
  active, class, visibility`` with 1-based frames; ``active = 0`` marks an
  ignored box; missing class means pedestrian.  See :mod:`vcodec.eval.classmap`.
* ``coco``: a COCO ground-truth JSON (``images``, ``annotations`` with
  ``bbox = [x, y, w, h]``, ``categories``).  The frame index of an image is
  its ``frame_index`` field if present, else the last number in its
  ``file_name``, else its position among the images sorted by id.
  ``iscrowd`` annotations are ignore regions.
* ``pseudo``: :func:`pseudo_ground_truth`, a reference detector's output on the
  uncompressed frames, flagged ``pseudo=True`` so every report can say so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcodec.errors import ConfigError, InputError
from vcodec.eval.classmap import MOT_IGNORE_CLASSES, coco80_from_name, to_coco80

__all__ = [
    "GT_FORMATS",
    "FrameTruth",
    "GroundTruth",
    "detect_gt_format",
    "load_ground_truth",
    "read_sfu",
    "read_mot",
    "read_coco",
    "pseudo_ground_truth",
]

GT_FORMATS = ("sfu-objects", "sfu-tracks", "mot", "coco")
_SFU_NAME = re.compile(r"^(?P<stem>.+)_seq_(?P<frame>\d+)\.txt$")


@dataclass
class FrameTruth:
    """Ground truth of one frame (see the module docstring)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)
        self.track_ids = (
            np.full(n, -1, np.int64)
            if np.size(self.track_ids) == 0 and n
            else np.asarray(self.track_ids, np.int64).reshape(-1)
        )
        self.ignore = (
            np.zeros(n, bool)
            if np.size(self.ignore) == 0 and n
            else np.asarray(self.ignore, bool).reshape(-1)
        )
        if not (len(self.class_ids) == len(self.track_ids) == len(self.ignore) == n):
            raise InputError(f"FrameTruth needs one class, track id and ignore flag per box ({n} boxes)")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_rows(cls, rows: list[tuple[float, float, float, float, int, int, bool]]) -> FrameTruth:
        """From ``(x0, y0, x1, y1, coco80, track_id, ignore)`` rows."""
        if not rows:
            return cls()
        a = np.asarray([r[:4] for r in rows], np.float32)
        return cls(a, np.asarray([r[4] for r in rows], np.int64), np.asarray([r[5] for r in rows], np.int64),
                   np.asarray([r[6] for r in rows], bool))


@dataclass
class GroundTruth:
    """Ground truth of one sequence: frame index -> :class:`FrameTruth`."""

    frames: dict[int, FrameTruth]
    width: int
    height: int
    format: str
    source: str
    pseudo: bool = False
    has_track_ids: bool = False
    #: frames that carry ground truth (frames missing from ``frames`` but listed here have no objects)
    annotated: list[int] = field(default_factory=list)
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.annotated:
            self.annotated = sorted(self.frames)

    def frame(self, index: int) -> FrameTruth:
        return self.frames.get(int(index), FrameTruth())

    def restrict(self, indexes: Iterable[int]) -> GroundTruth:
        """Only the given frames (those that are annotated)."""
        keep = sorted(set(int(i) for i in indexes) & set(self.annotated))
        return GroundTruth(
            {i: self.frames[i] for i in keep if i in self.frames},
            self.width,
            self.height,
            self.format,
            self.source,
            self.pseudo,
            self.has_track_ids,
            keep or [],
            self.notes,
        )

    @property
    def num_objects(self) -> int:
        return int(sum(int((~f.ignore).sum()) for f in self.frames.values()))

    def class_counts(self) -> dict[int, int]:
        """Objects (ignore regions left out) per COCO80 class over the annotated frames."""
        counts: dict[int, int] = {}
        for i in self.annotated:
            f = self.frames.get(i)
            if f is None:
                continue
            for c, ign in zip(f.class_ids, f.ignore, strict=True):
                if not ign:
                    counts[int(c)] = counts.get(int(c), 0) + 1
        return counts

    def describe(self) -> str:
        """One line for reports: where the ground truth came from."""
        kind = "PSEUDO ground truth" if self.pseudo else "ground truth"
        return (
            f"{kind} ({self.format}) from {self.source}: {self.num_objects} objects in "
            f"{len(self.annotated)} frames{'; ' + self.notes if self.notes else ''}"
        )

    # -- serialisation (results folders and worker processes) --------------
    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "source": self.source,
            "pseudo": self.pseudo,
            "has_track_ids": self.has_track_ids,
            "annotated": self.annotated,
            "notes": self.notes,
            "frames": {
                str(i): {
                    "boxes": f.boxes.round(3).tolist(),
                    "class_ids": f.class_ids.tolist(),
                    "track_ids": f.track_ids.tolist(),
                    "ignore": f.ignore.astype(int).tolist(),
                }
                for i, f in sorted(self.frames.items())
            },
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GroundTruth:
        try:
            frames = {
                int(k): FrameTruth(v["boxes"], v["class_ids"], v["track_ids"], v["ignore"])
                for k, v in d["frames"].items()
            }
            return cls(
                frames,
                int(d["width"]),
                int(d["height"]),
                str(d["format"]),
                str(d["source"]),
                bool(d["pseudo"]),
                bool(d["has_track_ids"]),
                [int(i) for i in d["annotated"]],
                str(d.get("notes", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"ground-truth JSON is malformed ({exc!r})") from None


# -- format detection ----------------------------------------------------------
def _sfu_files(folder: Path, stem: str | None) -> dict[int, Path]:
    groups: dict[str, dict[int, Path]] = {}
    for p in sorted(folder.iterdir()):
        m = _SFU_NAME.match(p.name)
        if m and p.is_file():
            groups.setdefault(m.group("stem"), {})[int(m.group("frame"))] = p
    if not groups:
        raise InputError(f"{folder}: no SFU-HW files named like <name>_seq_000.txt in this folder")
    if stem is None:
        if len(groups) > 1:
            raise ConfigError(
                f"{folder} holds SFU-HW annotations of {len(groups)} sequences "
                f"({', '.join(sorted(groups)[:4])}...); choose one with --gt-stem"
            )
        return next(iter(groups.values()))
    if stem not in groups:
        # accept the sequence name without the size/rate suffix, as CTC names vary
        hits = [s for s in groups if s == stem or s.startswith(stem + "_")]
        if len(hits) != 1:
            raise ConfigError(
                f"{folder} has no SFU-HW annotations for {stem!r}; it has {', '.join(sorted(groups))}"
            )
        stem = hits[0]
    return groups[stem]


def _is_int(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except ValueError:
        return False


def detect_gt_format(path: str | Path) -> str:
    """Guess a ground-truth format from the path (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        if (p / "gt" / "gt.txt").is_file():
            return "mot"
        for q in sorted(q for q in p.iterdir() if _SFU_NAME.match(q.name)):
            lines = [ln.split() for ln in q.read_text().splitlines() if ln.strip()]
            if lines:
                # 6 columns with an integer second column: "cls id xc yc w h"; else a score column
                if len(lines[0]) == 6 and all(_is_int(r[1]) for r in lines):
                    return "sfu-tracks"
                return "sfu-objects"
        return "sfu-objects"
    if p.suffix.lower() == ".json":
        return "coco"
    if p.suffix.lower() == ".txt":
        return "mot"
    raise ConfigError(
        f"cannot tell the ground-truth format of {str(p)!r}; pass --gt-format ({', '.join(GT_FORMATS)})"
    )


def load_ground_truth(
    path: str | Path, fmt: str | None = None, width: int = 0, height: int = 0, stem: str | None = None
) -> GroundTruth:
    """Read ground truth in ``fmt`` (guessed from ``path`` when None).

    ``width``/``height`` are the picture size; SFU-HW needs them to turn its
    normalised coordinates into pixels.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"ground truth {str(p)!r} does not exist")
    fmt = fmt or detect_gt_format(p)
    if fmt in ("sfu-objects", "sfu-tracks"):
        return read_sfu(p, width, height, tracks=fmt == "sfu-tracks", stem=stem)
    if fmt == "mot":
        return read_mot(p / "gt" / "gt.txt" if p.is_dir() else p, width, height)
    if fmt == "coco":
        return read_coco(p, width, height)
    raise ConfigError(f"unknown ground-truth format {fmt!r}; use one of {', '.join(GT_FORMATS)}")


# -- readers -----------------------------------------------------------------
def _number(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not np.isfinite(v):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return v


def read_sfu(
    folder: str | Path, width: int, height: int, tracks: bool = False, stem: str | None = None
) -> GroundTruth:
    """SFU-HW-Objects-v1 (``tracks=False``) or SFU-HW-Tracks-v1 (``tracks=True``) folder."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"SFU-HW ground truth {str(d)!r} is not a folder of <name>_seq_NNN.txt files")
    if width <= 0 or height <= 0:
        raise ConfigError("SFU-HW coordinates are normalised; the picture width and height are needed")
    files = _sfu_files(d, stem)
    want = 6 if tracks else 5
    frames: dict[int, FrameTruth] = {}
    for index, p in sorted(files.items()):
        rows = []
        for n, line in enumerate(p.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            where = f"{p}:{n}"
            if len(parts) < want or (not tracks and len(parts) > 6) or (tracks and len(parts) > 7):
                layout = "cls id xc yc w h" if tracks else "cls xc yc w h"
                raise InputError(f"{where}: expected '{layout}', got {len(parts)} fields: {line.strip()!r}")
            cls_raw = _number(parts[0], where)
            tid = int(_number(parts[1], where)) if tracks else -1
            xc, yc, w, h = (_number(v, where) for v in (parts[2:6] if tracks else parts[1:5]))
            if w < 0 or h < 0:
                raise InputError(f"{where}: negative box size {w} x {h}")
            c = to_coco80("sfu", int(cls_raw))
            if c is None:
                raise InputError(f"{where}: class {int(cls_raw)} is not a COCO80 index (0..79)")
            rows.append(
                (
                    (xc - w / 2) * width,
                    (yc - h / 2) * height,
                    (xc + w / 2) * width,
                    (yc + h / 2) * height,
                    c,
                    tid,
                    False,
                )
            )
        frames[index] = FrameTruth.from_rows(rows)
    name = "sfu-tracks" if tracks else "sfu-objects"
    return GroundTruth(frames, width, height, name, str(d), has_track_ids=tracks, annotated=sorted(files))


def read_mot(path: str | Path, width: int = 0, height: int = 0) -> GroundTruth:
    """MOTChallenge ``gt.txt`` (frames 1-based in the file, 0-based in the result)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"MOTChallenge ground truth {str(p)!r} is not a file (expected .../gt/gt.txt)")
    per: dict[int, list[tuple[float, float, float, float, int, int, bool]]] = {}
    last = 0
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [s.strip() for s in line.replace(";", ",").split(",")]
        where = f"{p}:{n}"
        if len(parts) < 6:
            raise InputError(
                f"{where}: expected 'frame,id,left,top,width,height[,active,class,visibility]', "
                f"got {line.strip()!r}"
            )
        frame = int(_number(parts[0], where))
        if frame < 1:
            raise InputError(f"{where}: MOTChallenge frames count from 1, got {frame}")
        tid = int(_number(parts[1], where))
        x, y, w, h = (_number(v, where) for v in parts[2:6])
        active = int(_number(parts[6], where)) if len(parts) > 6 else 1
        # MOT15-style files put -1 world coordinates in columns 8-10: no class there
        cls = int(_number(parts[7], where)) if len(parts) > 7 else 1
        if len(parts) == 10 and cls == -1:
            cls = 1
        last = max(last, frame)
        if cls in MOT_IGNORE_CLASSES:
            c, ignore = MOT_IGNORE_CLASSES[cls], True
        else:
            mapped = to_coco80("mot", cls)
            if mapped is None:
                continue  # occluders and non-motorised vehicles are not objects to detect
            c, ignore = mapped, active == 0
        per.setdefault(frame - 1, []).append((x, y, x + w, y + h, c, tid, ignore))
    frames = {i: FrameTruth.from_rows(rows) for i, rows in per.items()}
    return GroundTruth(frames, width, height, "mot", str(p), has_track_ids=True, annotated=list(range(last)))


def _frame_index_of(image: dict[str, Any], position: int) -> int:
    if "frame_index" in image:
        return int(image["frame_index"])
    nums = re.findall(r"\d+", Path(str(image.get("file_name", ""))).stem)
    return int(nums[-1]) if nums else position


def read_coco(path: str | Path, width: int = 0, height: int = 0) -> GroundTruth:
    """COCO ground-truth JSON (see the module docstring for frame numbering)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"COCO ground truth {str(p)!r} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise InputError(
            f"{p}: not a COCO ground-truth file (needs 'images' and 'annotations'; "
            f"a list is a results file, not ground truth)"
        )
    cat_names = {int(c["id"]): str(c.get("name", "")) for c in data.get("categories", [])}
    images = sorted(data["images"], key=lambda im: int(im["id"]))
    index_of = {int(im["id"]): _frame_index_of(im, i) for i, im in enumerate(images)}
    if len(set(index_of.values())) != len(index_of):
        raise InputError(f"{p}: two images map to the same frame index; give each image a 'frame_index'")
    if images and (width <= 0 or height <= 0):
        width, height = int(images[0].get("width", 0)), int(images[0].get("height", 0))
    per: dict[int, list[tuple[float, float, float, float, int, int, bool]]] = {
        i: [] for i in index_of.values()
    }
    dropped = 0
    for a in data["annotations"]:
        image_id = int(a["image_id"])
        if image_id not in index_of:
            raise InputError(f"{p}: annotation {a.get('id')} refers to image {image_id}, which is not listed")
        cid = int(a["category_id"])
        # the category's name wins: custom files renumber categories but keep COCO names
        c = coco80_from_name(cat_names[cid]) if cat_names.get(cid) else None
        if c is None:
            c = to_coco80("coco", cid)
        if c is None:
            dropped += 1
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        tid = int(a.get("track_id", a.get("instance_id", -1)))
        per[index_of[image_id]].append((x, y, x + w, y + h, c, tid, bool(a.get("iscrowd", 0))))
    frames = {i: FrameTruth.from_rows(rows) for i, rows in per.items()}
    has_ids = any((f.track_ids >= 0).any() for f in frames.values())
    notes = f"{dropped} annotations of non-COCO categories dropped" if dropped else ""
    return GroundTruth(
        frames, width, height, "coco", str(p), has_track_ids=has_ids, annotated=sorted(per), notes=notes
    )


def pseudo_ground_truth(
    detections: Iterable[tuple[int, Any]], width: int, height: int, detector: str, min_score: float = 0.3
) -> GroundTruth:
    """Pseudo ground truth: a reference detector's output on the UNCOMPRESSED frames.

    ``detections`` are ``(frame_index, Detections)`` pairs (what
    :func:`vcodec.detection.detect_frames` yields); detections scoring at least
    ``min_score`` become objects.  The result is flagged ``pseudo=True``.
    """
    frames: dict[int, FrameTruth] = {}
    for index, det in detections:
        d = det.filter(min_score)
        frames[int(index)] = FrameTruth(d.boxes, d.class_ids)
    return GroundTruth(
        frames,
        width,
        height,
        "pseudo",
        f"{detector} on the uncompressed frames (score >= {min_score})",
        pseudo=True,
        annotated=sorted(frames),
    )
