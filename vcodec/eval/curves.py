"""BD-rate entries of a run: which curves are compared, on which metric, from the scored points alone.

The base layer against each anchor on (kbit/s, mAP); the full decode against x265 and against
simulcast, and simulcast against x265, on (kbit/s, PSNR-Y) and (kbit/s, MS-SSIM), per base quality.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from vcodec.eval.bdrate import BDResult, bd_rate_result
from vcodec.eval.config import ANCHOR_NAMES
from vcodec.eval.points import BDEntry, EvalPoint, fmt_q

__all__ = ["bd_entries"]


def _curve(rows: Sequence[EvalPoint], y: str, rate: str = "kbps_total") -> tuple[list[float], list[float]]:
    """A system's measured (rate, quality) points, sorted by rate; NaN/missing values left out.

    Dominated points stay in: :func:`bd_rate_result` computes on the upper envelope and reports
    which points it dropped (detection accuracy saturates or wobbles at low QPs)."""
    pts = sorted(p for p in (r.rd(rate, y) for r in rows) if p is not None)
    return [p[0] for p in pts], [p[1] for p in pts]


def _finite(r: BDResult) -> BDResult:
    """No NaN in results.json: an undefined number is None (its reason says why)."""
    value = r.value if r.value is None or math.isfinite(r.value) else None
    strict = r.strict_value if r.strict_value is None or math.isfinite(r.strict_value) else None
    return replace(r, value=value, strict_value=strict)


def bd_entries(rows: Sequence[EvalPoint], qualities: Sequence[float] | None = None) -> list[BDEntry]:
    """The BD-rate entries of results.json from its points alone.

    ``qualities`` defaults to the base qualities of the vcodec-full points; reports rebuilt from a
    stored results.json use this so that their BD columns follow the current BD rules."""
    if qualities is None:
        qualities = sorted(
            {r.base_quality for r in rows if r.system == "vcodec-full" and r.base_quality is not None}
        )
    entries: list[BDEntry] = []

    def add(test: str, anchor: str, metric: str, t_rows: Sequence[EvalPoint], a_rows: Sequence[EvalPoint],
            t_rate: str = "kbps_total") -> None:
        tr, tq = _curve(t_rows, metric, t_rate)
        ar, aq = _curve(a_rows, metric)
        for method in ("pchip", "cubic"):
            res = bd_rate_result(ar, aq, tr, tq, method)
            used = (len(tr) - len(res.dropped_test), len(ar) - len(res.dropped_anchor))
            entries.append(BDEntry(test, anchor, metric, used, _finite(res)))

    by: dict[str, list[EvalPoint]] = {}
    for r in rows:
        by.setdefault(r.system, []).append(r)
    # the anchors at the working geometry, then any labelled x265@N (detector at another size)
    sized = sorted(s for s in by if s.split("@")[0] in ANCHOR_NAMES and "@" in s)
    for a in [*ANCHOR_NAMES, *sized]:
        if a in by and "vcodec-base" in by:
            for metric in ("map50", "map"):
                add("vcodec-base", a, metric, by["vcodec-base"], by[a], "kbps_base")
    for q in qualities:
        full = [r for r in by.get("vcodec-full", []) if r.base_quality == q]
        sim = [r for r in by.get("simulcast", []) if r.base_quality == q]
        if not full:
            continue
        for metric in ("psnr_y", "ms_ssim"):
            if "x265" in by:
                add(f"vcodec-full q={fmt_q(q)}", "x265", metric, full, by["x265"])
            if sim:
                add(f"vcodec-full q={fmt_q(q)}", f"simulcast q={fmt_q(q)}", metric, full, sim)
            if sim and "x265" in by:
                # what carrying the base layer costs viewers when layer 1 codes full frames
                # (simulcast, or vcodec with --inter-layer off, in one stream)
                add(f"simulcast q={fmt_q(q)}", "x265", metric, sim, by["x265"])
    return entries
