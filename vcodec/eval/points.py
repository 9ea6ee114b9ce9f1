"""The records of a ``vcodec eval`` run: scored points, BD entries and the results they make up.

:class:`EvalPoint` is one row of ``results.json``'s ``points`` (and of ``results.csv``),
:class:`BDEntry` one of its ``bd_rate`` entries, :class:`EvalResults` the whole file.  Their
``to_json()`` / ``from_json()`` keep the schema results have always been stored in, so that
reports rebuilt from stored results read them unchanged.

The per-frame detections of a coded point (``points/<id>.json``) are stored by
:func:`dets_to_json` and read back by :func:`dets_from_json`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from vcodec.errors import InputError
from vcodec.eval.bdrate import BDResult
from vcodec.eval.training import TrainingOverlap

__all__ = [
    "METRIC_COLUMNS",
    "BDEntry",
    "EvalPoint",
    "EvalResults",
    "dets_from_json",
    "dets_to_json",
    "fmt_q",
    "kbps",
]

#: columns of results.csv / points/*.csv, and the keys an EvalPoint's JSON may hold
METRIC_COLUMNS = [
    "id",
    "system",
    "base_quality",
    "qp",
    "frames",
    "kbps_base",
    "kbps_enh",
    "kbps_total",
    "kbps_stream",
    "map50",
    "map50_low",
    "map50_high",
    "map",
    "map50_full",
    "mota",
    "idf1",
    "psnr_y",
    "psnr_yuv",
    "ms_ssim",
    "encode_s",
    "decode_s",
]
_NUMERIC = METRIC_COLUMNS[2:]
_INTEGER = ("qp", "frames")


def fmt_q(q: float) -> str:
    """A base quality as it appears in point ids and BD labels (``0.50``)."""
    return f"{q:.2f}"


def kbps(nbytes: int, frames: int, fps: float) -> float:
    return nbytes * 8.0 * fps / frames / 1000.0 if frames else float("nan")


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass(frozen=True)
class EvalPoint:
    """One system at one setting, scored: a row of results.json / results.csv.

    Every metric is ``None`` where it is undefined (NaN in a fresh row; see :meth:`finite`).
    ``unmeasured`` names the columns the point did not measure at all (no detections to score, a
    derived simulcast row has no timings): its JSON leaves those keys out, as results always have.
    """

    id: str
    system: str
    base_quality: float | None = None
    qp: int | None = None
    frames: int | None = None
    kbps_base: float | None = None
    kbps_enh: float | None = None
    kbps_total: float | None = None
    kbps_stream: float | None = None
    map50: float | None = None
    #: 95 % interval of map50 over frame resamples (``vcodec eval --bootstrap N``)
    map50_low: float | None = None
    map50_high: float | None = None
    map: float | None = None
    map50_full: float | None = None
    mota: float | None = None
    idf1: float | None = None
    psnr_y: float | None = None
    psnr_yuv: float | None = None
    ms_ssim: float | None = None
    encode_s: float | None = None
    decode_s: float | None = None
    unmeasured: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        odd = self.unmeasured - set(_NUMERIC)
        if odd:
            raise ValueError(f"EvalPoint {self.id}: unmeasured names no metric column: {sorted(odd)}")
        held = sorted(k for k in self.unmeasured if getattr(self, k) is not None)
        if held:
            raise ValueError(f"EvalPoint {self.id}: unmeasured columns hold values: {held}")

    def value(self, column: str) -> float | None:
        """A numeric column by name (``"map50"``, ``"kbps_total"``, ...)."""
        if column not in _NUMERIC:
            raise KeyError(f"{column!r} is not a numeric column of an eval point")
        v: float | None = getattr(self, column)
        return v

    def rd(self, rate: str, y: str) -> tuple[float, float] | None:
        """(``rate``, ``y``) as a point of a rate-distortion curve; None unless both are finite."""
        r, v = self.value(rate), self.value(y)
        if r is None or v is None or not (math.isfinite(r) and math.isfinite(v)):
            return None
        return r, v

    def finite(self) -> EvalPoint:
        """This point with NaN and infinite values as ``None`` (results.json holds no NaN)."""
        return replace(self, **{k: _finite(getattr(self, k)) for k in _NUMERIC})

    def to_json(self) -> dict[str, Any]:
        """The row as results.json stores it: every measured column, ``None`` as null."""
        return {k: getattr(self, k) for k in METRIC_COLUMNS if k not in self.unmeasured}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EvalPoint:
        """Inverse of :meth:`to_json`; an absent column reads as unmeasured."""
        odd = sorted(set(d) - set(METRIC_COLUMNS))
        where = f"eval point {d.get('id', '?')!r}"
        if odd:
            raise InputError(f"{where}: unknown fields {odd}; is this a vcodec eval results file?")
        for k in ("id", "system"):
            if not isinstance(d.get(k), str):
                raise InputError(f"{where}: {k!r} must be a string, got {d.get(k)!r}")
        for k in _NUMERIC:
            v = d.get(k)
            ok = int if k in _INTEGER else (int, float)
            if v is not None and (isinstance(v, bool) or not isinstance(v, ok)):
                raise InputError(f"{where}: {k!r} must be a number or null, got {v!r}")
        values: dict[str, Any] = {k: d.get(k) for k in METRIC_COLUMNS}
        return cls(**values, unmeasured=frozenset(k for k in _NUMERIC if k not in d))

    def csv_row(self) -> dict[str, str | int]:
        """The row as results.csv writes it: floats to 6 significant digits, ``None`` empty."""
        out: dict[str, str | int] = {}
        for k in METRIC_COLUMNS:
            v = getattr(self, k)
            out[k] = "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)
        return out


@dataclass(frozen=True)
class BDEntry:
    """One BD-rate comparison of results.json: ``test`` against ``anchor`` on (rate, ``metric``).

    ``points``: how many of each curve's points (test, anchor) the number rests on."""

    test: str
    anchor: str
    metric: str
    points: tuple[int, int]
    result: BDResult

    @property
    def method(self) -> str:
        return self.result.method

    @property
    def value(self) -> float | None:
        """The BD-rate in percent (on the upper envelopes), ``None`` when there is none."""
        return self.result.value

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "anchor": self.anchor,
            "metric": self.metric,
            "points": list(self.points),
            **{k: _finite(v) for k, v in self.result.to_dict().items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BDEntry:
        """Inverse of :meth:`to_json`; entries stored before the envelope existed read as strict."""
        for k in ("test", "anchor", "metric"):
            if not isinstance(d.get(k), str):
                raise InputError(f"BD entry: {k!r} must be a string, got {d.get(k)!r}")
        pts = d.get("points") or [0, 0]
        if len(pts) != 2:
            raise InputError(f"BD entry {d['test']} vs {d['anchor']}: 'points' must be [test, anchor]")
        return cls(str(d["test"]), str(d["anchor"]), str(d["metric"]), (int(pts[0]), int(pts[1])),
                   BDResult.from_dict(d))


@dataclass(frozen=True)
class EvalResults:
    """A run's results (``results.json``): the scored points and BD entries, with what they rest on.

    ``provenance`` and ``detector_geometry`` are the JSON records :mod:`vcodec.eval.provenance`
    writes; ``base_model`` is the base model's record ``tools/make_results.py`` adds to the
    results it stores under docs/ (absent from a plain run)."""

    input: str
    frames: int
    fps: float
    size: tuple[int, int]
    ground_truth: str
    pseudo_ground_truth: bool
    provenance: Mapping[str, Any]
    points: tuple[EvalPoint, ...]
    bd_rate: tuple[BDEntry, ...]
    detector_geometry: Mapping[str, Any] | None = None
    base_model: Mapping[str, Any] | None = None
    #: how many evaluated frames each learned part of the base layer trained on
    #: (:mod:`vcodec.eval.training`; None in results stored before it was recorded)
    training_overlap: tuple[TrainingOverlap, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ground_truth": self.ground_truth,
            "pseudo_ground_truth": self.pseudo_ground_truth,
            "frames": self.frames,
            "fps": self.fps,
            "input": self.input,
            "size": list(self.size),
            "provenance": self.provenance,
            "points": [p.to_json() for p in self.points],
            "bd_rate": [e.to_json() for e in self.bd_rate],
        }
        for k in ("detector_geometry", "base_model"):  # absent from results stored before they existed
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.training_overlap is not None:
            out["training_overlap"] = [o.to_json() for o in self.training_overlap]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EvalResults:
        known = {f.name for f in fields(cls)}
        missing = sorted(k for k in known - {"detector_geometry", "base_model", "training_overlap"}
                         if k not in d)
        odd = sorted(set(d) - known)
        if missing or odd:
            what = [*([f"missing {missing}"] if missing else []), *([f"unknown {odd}"] if odd else [])]
            raise InputError(f"not a vcodec eval results file ({'; '.join(what)})")
        size = d["size"]
        return cls(
            input=d["input"],
            frames=d["frames"],
            fps=d["fps"],
            size=(size[0], size[1]),
            ground_truth=d["ground_truth"],
            pseudo_ground_truth=d["pseudo_ground_truth"],
            provenance=d["provenance"],
            points=tuple(EvalPoint.from_json(p) for p in d["points"]),
            bd_rate=tuple(BDEntry.from_json(e) for e in d["bd_rate"]),
            detector_geometry=d.get("detector_geometry"),
            base_model=d.get("base_model"),
            training_overlap=None if d.get("training_overlap") is None
            else tuple(TrainingOverlap.from_json(o) for o in d["training_overlap"]),
        )


def dets_to_json(items: Iterable[tuple[int, Any]]) -> list[dict[str, Any]]:
    """Per-frame :class:`~vcodec.detection.Detections` as a coded point stores them (rounded)."""
    return [
        {
            "i": int(i),
            "b": np.round(d.boxes, 2).tolist(),
            "s": np.round(d.scores, 5).tolist(),
            "c": d.class_ids.tolist(),
            "w": d.image_width,
            "h": d.image_height,
        }
        for i, d in items
    ]


def dets_from_json(rows: Sequence[Mapping[str, Any]]) -> dict[int, Any]:
    """Inverse of :func:`dets_to_json`: frame index -> Detections."""
    from vcodec.detection import Detections

    return {
        int(r["i"]): Detections(
            np.asarray(r["b"], np.float32).reshape(-1, 4), r["s"], r["c"], int(r["w"]), int(r["h"])
        )
        for r in rows
    }
