"""Which evaluated frames a model trained on, from the training records shipped with its weights.

A number measured on frames a model learned from flatters it.  Every run of ``vcodec eval``
with the learned base layer checks the evaluated frames against the training records of the
base model and of its adapted back end (``vcodec/weights/<id>.json``, following each record's
``init`` to the model it started from) and reports the overlap in ``results.json`` and
``summary.md``.  Clips are matched by file name.

Three record layouts are read, the ones vcodec's training scripts have written:

* a training pack (``tools/train_base.py --pack``): ``data.per_clip`` (sequences drawn per
  clip) and ``data.held_out_frames`` (half-open ranges no sequence was drawn from); every frame
  of a drawn clip outside those ranges counts as trained on (the pack may have skipped some);
* the first base models' clip list: ``data`` as ``"<clip> (step S, N frames: T train, V val)"``,
  i.e. frames 0, S, ..., S*(T-1);
* an adapted back end (``tools/train_backend.py``): ``train_segments`` as
  ``"<clip> frames A-B at q [...]"`` (inclusive).

A record in none of these layouts makes the overlap unknown, which is reported as such.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# frame_ranges is shared with vcodec decode's report of lost frames; re-exported here
from vcodec._frame_ranges import format_frame_ranges, frame_ranges

__all__ = ["TrainingOverlap", "describe_overlaps", "frame_ranges", "model_overlap", "trained_frames"]

#: a record's ``init``: "<model id> (sha256 ...)"; anything else (a checkpoint, a run) ends the chain
_INIT_ID = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*) \(sha256 [0-9a-f]+")
_CLIP_LIST = re.compile(r"^(?P<clip>.+?) \(step (?P<step>\d+), (?P<n>\d+) frames: (?P<train>\d+) train")
_SEGMENT = re.compile(r"^(?P<clip>.+?) frames (?P<a>\d+)-(?P<b>\d+)\b")
#: how far ``init`` chains are followed (a cycle in hand-edited records must not hang a run)
_MAX_CHAIN = 16


@dataclass(frozen=True)
class TrainingOverlap:
    """How many of a run's evaluated frames one model (and the models it started from) trained on.

    ``trained`` is None when a record in the chain has no frame list this module can read."""

    role: str
    model: str
    evaluated: int
    first_frame: int
    trained: int | None
    #: the trained-on evaluated frames as inclusive (first, last) runs
    ranges: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        last = self.first_frame + self.evaluated - 1
        if self.trained is None:
            return f"{self.role} {self.model}: unknown (its training record lists no frames)"
        if not self.trained:
            return f"{self.role} {self.model}: none of frames {self.first_frame}-{last}"
        runs = format_frame_ranges(self.ranges)
        return f"{self.role} {self.model}: {self.trained} of {self.evaluated} ({runs})"

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "model": self.model, "evaluated": self.evaluated,
                "first_frame": self.first_frame, "trained": self.trained,
                "ranges": [list(r) for r in self.ranges]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrainingOverlap:
        return cls(str(d["role"]), str(d["model"]), int(d["evaluated"]), int(d["first_frame"]),
                   None if d["trained"] is None else int(d["trained"]),
                   tuple((int(a), int(b)) for a, b in d.get("ranges", ())))


def _same_clip(recorded: str, clip: str) -> bool:
    return Path(recorded).name == Path(clip).name


def trained_frames(record: Mapping[str, Any], clip: str, evaluated: range) -> set[int] | None:
    """The frames of ``evaluated`` one training record says were trained on (None: unreadable)."""
    data = record.get("data")
    if isinstance(data, Mapping) and "held_out_frames" in data and "per_clip" in data:
        drawn = [c for c, n in data["per_clip"].items() if _same_clip(c, clip) and int(n) > 0]
        if not drawn:
            return set()
        held = [r for c, rs in data["held_out_frames"].items() if _same_clip(c, clip) for r in rs]
        return {f for f in evaluated if not any(int(a) <= f < int(b) for a, b in held)}
    segments = record.get("train_segments")
    if isinstance(segments, list):
        out: set[int] = set()
        for s in segments:
            m = _SEGMENT.match(str(s))
            if m is None:
                return None
            if _same_clip(m["clip"], clip):
                out |= set(evaluated) & set(range(int(m["a"]), int(m["b"]) + 1))
        return out
    if isinstance(data, list):
        out = set()
        for s in data:
            m = _CLIP_LIST.match(str(s))
            if m is None:
                return None
            if _same_clip(m["clip"], clip):
                step = int(m["step"])
                out |= set(evaluated) & set(range(0, step * int(m["train"]), step))
        return out
    return None


def _records_dir_loader(weights_dir: Path) -> Callable[[str], Mapping[str, Any] | None]:
    def load(model_id: str) -> Mapping[str, Any] | None:
        js = weights_dir / f"{model_id}.json"
        if not js.is_file():
            return None
        try:
            rec = json.loads(js.read_text())
        except (OSError, ValueError):
            return None
        training = rec.get("training", rec.get("record"))
        return training if isinstance(training, Mapping) else None

    return load


def model_overlap(role: str, model: str, record: Mapping[str, Any] | None, clip: str, first_frame: int,
                  count: int, weights_dir: Path | None = None) -> TrainingOverlap:
    """The overlap of frames ``first_frame`` .. ``first_frame + count - 1`` of ``clip`` with what
    ``model`` (training record ``record``) and the models its ``init`` chain names trained on."""
    if weights_dir is None:
        from vcodec.baselayer.learned.weights import WEIGHTS_DIR

        weights_dir = WEIGHTS_DIR
    load = _records_dir_loader(weights_dir)
    evaluated = range(first_frame, first_frame + count)
    seen: set[int] = set()
    current, hops, known = record, 0, True
    while current is not None and hops < _MAX_CHAIN:
        frames = trained_frames(current, clip, evaluated)
        if frames is None:
            known = False
            break
        seen |= frames
        m = _INIT_ID.match(str(current.get("init", "")))
        current = load(m.group(1)) if m else None
        hops += 1
    if record is None:
        known = False
    return TrainingOverlap(role, model, count, first_frame, len(seen) if known else None,
                           frame_ranges(seen) if known else ())


def describe_overlaps(overlaps: Iterable[TrainingOverlap]) -> str:
    """One line for reports: the evaluated frames each model trained on."""
    items = list(overlaps)
    if not items:
        return "no learned model involved"
    return "; ".join(o.describe() for o in items)
