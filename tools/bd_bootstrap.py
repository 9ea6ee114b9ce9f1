#!/usr/bin/env python
"""How sure is a base-vs-anchor BD-rate? Its 95 % interval over resamples of the evaluated frames.

For a `vcodec eval` results folder (the working folder, which holds ``groundtruth.json`` and
``points/<id>.json`` with the stored detections), every vcodec-base point and every anchor point is
scored on the same seeded frame resamples (:func:`vcodec.eval.detection.map50_resamples`, the
draws of ``vcodec eval --bootstrap``), and the BD-rate of the base layer against each anchor on
(kbit/s, mAP@0.5) is computed per resample by the rule of the report (upper envelopes, PCHIP,
:func:`vcodec.eval.bdrate.bd_rate_result`).  Reported: the BD-rate on all frames, the 2.5-97.5
percentile interval over the resamples that give a number, and the share of those where the base
layer needs no more bits than the anchor (BD-rate <= 0).  The interval covers which frames were
evaluated, not other codings of the same frames.

    python tools/bd_bootstrap.py runs/results13/one-by-one-person-detection.mp4__yolox-nano
    python tools/bd_bootstrap.py runs/results13/*__yolox-nano --anchors x265,x264 --json bd.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vcodec.eval.bdrate import bd_rate_result  # noqa: E402
from vcodec.eval.detection import map50_resamples, truth_classes  # noqa: E402
from vcodec.eval.groundtruth import GroundTruth  # noqa: E402
from vcodec.eval.points import dets_from_json  # noqa: E402


def bd_interval(folder: Path, anchor: str, resamples: int, min_class_objects: int | None = None
                ) -> dict[str, Any]:
    """The base layer against ``anchor`` (``x265``, ``x264``) in one results folder."""
    truth = GroundTruth.from_json(json.loads((folder / "groundtruth.json").read_text()))
    classes = truth_classes(truth, min_class_objects).classes
    points = json.loads((folder / "results.json").read_text())["points"]
    base = sorted((p for p in points if p["system"] == "vcodec-base"), key=lambda p: p["kbps_base"])
    anchors = sorted((p for p in points if p["system"] == anchor), key=lambda p: p["kbps_total"])
    if not base or not anchors:
        raise SystemExit(f"{folder}: no vcodec-base or {anchor} points in results.json")

    def scored(pid: str) -> np.ndarray:
        stored = json.loads((folder / "points" / f"{pid}.json").read_text())
        return map50_resamples(truth, dets_from_json(stored["detections"]), classes, resamples)

    b_rates, a_rates = [p["kbps_base"] for p in base], [p["kbps_total"] for p in anchors]
    b_draws, a_draws = [scored(p["id"]) for p in base], [scored(p["id"]) for p in anchors]
    whole = bd_rate_result(a_rates, [p.get("map50") for p in anchors],
                           b_rates, [p.get("map50") for p in base])
    values = []
    for r in range(resamples):
        a_map, b_map = [float(d[r]) for d in a_draws], [float(d[r]) for d in b_draws]
        if not all(np.isfinite(a_map + b_map)):
            continue
        v = bd_rate_result(a_rates, a_map, b_rates, b_map).value
        if v is not None:
            values.append(v)
    got = np.array(values)
    return {
        "folder": str(folder), "anchor": anchor, "bd_rate": whole.value, "resamples": resamples,
        "with_a_number": int(got.size),
        "interval": [float(np.percentile(got, 2.5)), float(np.percentile(got, 97.5))] if got.size else None,
        "share_at_most_0": float(np.mean(got <= 0)) if got.size else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="vcodec eval results folders (with points/)")
    ap.add_argument("--anchors", default="x265", help="comma-separated anchor systems (default x265)")
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--min-class-objects", type=int, default=None,
                    help="as vcodec eval's (default: 5 with pseudo ground truth, else 1)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    rows = []
    for folder in args.folders:
        for anchor in [a for a in args.anchors.split(",") if a]:
            row = bd_interval(folder, anchor, args.resamples, args.min_class_objects)
            rows.append(row)
            bd = "n/a" if row["bd_rate"] is None else f"{row['bd_rate']:+.1f} %"
            if row["interval"] is None:
                spread = "no resample gives a number"
            else:
                lo, hi = row["interval"]
                spread = (f"95 % interval [{lo:+.1f}, {hi:+.1f}] % over {row['with_a_number']} of "
                          f"{row['resamples']} resamples, <= 0 in {row['share_at_most_0']:.0%}")
            print(f"{folder.name}: base vs {anchor} BD-rate on mAP@0.5 {bd}; {spread}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
