"""Regenerate docs/RESULTS.md: vcodec eval on the shared real clips, and vcodec bench.

    python tools/make_results.py                    # everything (long: hours on 2 cores)
    python tools/make_results.py --frames 16 --only cars_320x240.i420 --skip-bench
    python tools/make_results.py --report-only   # rebuild the reports from docs/results/*/results.json

For every clip in ../shared/data/clips/ and every detector configuration
("yolox-nano": YOLOX-Nano from ../shared/models/yolox_nano/ with the base model
trained for it; "vcodec-det": the embedded detector with its base model) it runs
``vcodec eval`` (pseudo ground truth: the detector on the uncompressed frames)
into ``--work`` (resumable: rerunning skips finished points), copies the plots
and summaries into docs/results/<clip>__<detector>/, benchmarks one clip, and
rewrites docs/RESULTS.md after every finished run, so an interrupted job still
leaves a truthful document of what finished.  Configurations whose model or
weights are missing are listed as not run, with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vcodec.eval.points import BDEntry, EvalResults

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DOCS = REPO / "docs"


#: where a clip's evaluated frames lie (first frame, count; other clips: from frame 0, ``--frames``):
#: in frames neither the base model nor its adapted back end trained on, wherever the clip has
#: such frames with objects in them (the training records in vcodec/weights/ list the frames;
#: each summary says how many evaluated frames any model trained on).  one-by-one: its held-out
#: tail 1115-1393 has a person in view in most frames (96 frames: ~90 objects, against 34 in the
#: 32 frames 75-106 of earlier runs, which the back end partly trained on); car-detection: cars
#: pass at 321-349 in its held-out tail 301-376; bottle-detection: its held-out tail 951-1188.
#: The short clips (cars, CiscoVT2people, VID-1080p, Zhling) hold out only their last 3-11
#: frames: they are evaluated on 32 frames from frame 0 and flagged as training frames.
CLIP_WINDOW: dict[str, tuple[int, int]] = {
    "one-by-one-person-detection.mp4": (1115, 96),
    "car-detection.mp4": (320, 32),
    "bottle-detection.mp4": (951, 32),
}


def _configs(args: argparse.Namespace) -> list[dict[str, Any]]:
    onnx = Path(args.yolox_weights)
    return [
        {
            "name": "yolox-nano",
            "detector": "yolox-nano",
            "weights": str(onnx) if onnx.is_file() else None,
            "base_model": args.base_model,
            "missing": None if onnx.is_file() else f"{onnx} is missing",
        },
        {
            "name": "vcodec-det",
            "detector": "vcodec-det",
            "weights": None,
            "base_model": args.det_base_model,
            "missing": None,
        },
    ]


def _check_model(model: str | None, detector: str) -> str | None:
    """None when the base model loads and serves ``detector``, else why not."""
    from vcodec.baselayer.learned import BaseCodec
    from vcodec.errors import VcodecError

    if model is None:
        return f"no base model given for {detector} (--base-model / --det-base-model)"
    try:
        codec = BaseCodec.from_weights(model)
    except VcodecError as exc:
        return f"base model {model!r} cannot be loaded: {exc}"
    if codec.detector != detector:
        return f"base model {model!r} serves {codec.detector!r}, not {detector!r}"
    if detector == "vcodec-det":
        from vcodec.detection.vcodec_det import SHIPPED_WEIGHTS

        if not SHIPPED_WEIGHTS.is_file():
            return f"the shipped vcodec-det weights ({SHIPPED_WEIGHTS}) are missing"
    return None


def _model_record(model: str) -> dict[str, Any]:
    """Id, sha256 and training effort of a base model (RESULTS.md says what was measured)."""
    from vcodec.baselayer.learned import BaseCodec

    codec = BaseCodec.from_weights(model)
    rec = codec.record or {}
    return {
        "id": codec.model_id,
        "source": str(model),
        "sha256": codec.sha256,
        "cpu_minutes": rec.get("cpu_minutes"),
        "steps": rec.get("steps"),
    }


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    """``vcodec bench`` on ``--bench-clip`` with the YOLOX-Nano configuration's base model: the
    state entry RESULTS.md's speed section is written from."""
    from vcodec.errors import VcodecError

    cfg = _configs(args)[0]
    bench_clip = Path(args.clips) / args.bench_clip
    why = cfg["missing"] or _check_model(cfg["base_model"], cfg["detector"])
    if why or not bench_clip.is_file():
        return {"status": "not run", "reason": why or f"{bench_clip} is missing"}
    from vcodec.eval.bench import run_bench

    print(f"== bench {bench_clip.name}", file=sys.stderr, flush=True)
    try:
        report = run_bench(bench_clip, frames=args.bench_frames, base_model=cfg["base_model"],
                           detector_weights=cfg["weights"], preset=args.preset, qp=32, threads=1)
    except VcodecError as exc:
        return {"status": "failed", "reason": str(exc)}
    return {"status": "done", "report": report}


def run_all(args: argparse.Namespace) -> None:
    import torch

    from vcodec.detection.clips import list_clips
    from vcodec.errors import VcodecError
    from vcodec.eval.output import write_json, write_text
    from vcodec.eval.runner import EvalConfig, run_eval

    torch.set_num_threads(1)
    clips = list_clips(args.clips)
    if args.only:
        clips = [c for c in clips if c.name in args.only]
    work = Path(args.work)
    state_path = work / "make_results.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.is_file() else {"runs": {}}
    state["command"] = " ".join(["tools/make_results.py", *sys.argv[1:]])
    for cfg in [c for c in _configs(args) if c["name"] in args.detectors]:
        why = cfg["missing"] or _check_model(cfg["base_model"], cfg["detector"])
        for clip in clips:
            key = f"{clip.name}__{cfg['name']}"
            if why:
                state["runs"][key] = {"status": "not run", "reason": why}
                continue
            out = work / key
            print(f"== {key}", file=sys.stderr, flush=True)
            t0 = time.time()
            start, frames = CLIP_WINDOW.get(clip.name, (0, args.frames))
            try:
                res = run_eval(
                    EvalConfig(
                        input=str(clip),
                        output=str(out),
                        frames=frames,
                        start=start,
                        detector=cfg["detector"],
                        detector_weights=cfg["weights"],
                        base_model=cfg["base_model"],
                        preset=args.preset,
                        jobs=args.jobs,
                        threads=1,
                        progress=False,
                        base_qualities=[] if args.anchors_only else args.base_qualities,
                        enh_qps=args.enh_qps,
                        anchor_qps=args.anchor_qps,
                        bootstrap=args.bootstrap,
                    )
                )
            except VcodecError as exc:
                if args.anchors_only:
                    print(f"   failed: {exc}", file=sys.stderr, flush=True)
                    continue
                state["runs"][key] = {"status": "failed", "reason": str(exc)}
            else:
                if args.anchors_only:  # a partial run: RESULTS.md keeps describing full runs only
                    print(
                        f"   anchors done in {(time.time() - t0) / 60:.1f} min", file=sys.stderr, flush=True
                    )
                    continue
                dest = Path(args.docs) / "results" / key
                dest.mkdir(parents=True, exist_ok=True)
                for name in ("rd_map50.png", "rd_psnr.png", "rd_msssim.png", "summary.md"):
                    shutil.copy2(out / name, dest / name)
                slim = replace(
                    res,
                    provenance={k: res.provenance[k] for k in ("vcodec_version", "detector", "libavcodec")},
                    base_model=_model_record(cfg["base_model"]),
                )
                write_json(dest / "results.json", slim.to_json())
                state["runs"][key] = {
                    "status": "done",
                    "minutes": round((time.time() - t0) / 60, 1),
                    "results": str(dest / "results.json"),
                }
            work.mkdir(parents=True, exist_ok=True)
            write_text(state_path, json.dumps(state, indent=1) + "\n")
            write_results_md(state, args.docs)
    if not args.skip_bench and not args.anchors_only:
        state["bench"] = _bench(args)
        work.mkdir(parents=True, exist_ok=True)
        write_text(state_path, json.dumps(state, indent=1) + "\n")
    write_results_md(state, args.docs)


def _bd(res: EvalResults, test: str, anchor: str, metric: str, method: str = "pchip") -> BDEntry | None:
    """The BD entry of one comparison, if computed."""
    for e in res.bd_rate:
        if e.test == test and e.anchor == anchor and e.metric == metric and e.method == method:
            return e
    return None


def _value(e: BDEntry | None) -> float | None:
    v = e.value if e else None
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _cell(e: BDEntry | None) -> str:
    """The RESULTS.md cell: the number, with the envelope's caveat where it needed one."""
    from vcodec.eval.report import bd_cell

    return "n/a" if _value(e) is None else bd_cell(e, strict=False)


def _load(path: str | Path) -> EvalResults:
    """A stored results.json with its BD entries recomputed from its points by the current rules
    (cheap, and the only way a report rebuilt from old results follows a BD rule change)."""
    from vcodec.eval.curves import bd_entries
    from vcodec.eval.points import EvalResults

    res = EvalResults.from_json(json.loads(Path(path).read_text()))
    return replace(res, bd_rate=tuple(bd_entries(res.points)))


def _plain_comparison(res: EvalResults, anchor: str, entry: BDEntry | None = None) -> str:
    """Without a BD-rate: both ends of each curve, and which wins where."""
    from vcodec.eval.report import short_reason

    why = short_reason(entry.result.reason) if entry else "not computed"
    # (kbit/s, mAP@0.5) of each point with both
    base = [r for r in (p.rd("kbps_base", "map50") for p in res.points if p.system == "vcodec-base") if r]
    anc = [r for r in (p.rd("kbps_total", "map50") for p in res.points if p.system == anchor) if r]
    if not base or not anc:
        return f"base layer vs {anchor}: no mAP to compare (the ground truth holds no object)."
    b_rate, b_map = max(base, key=lambda r: (r[1], -r[0]))  # best, the cheapest of equals
    a_rate, a_map = min(anc, key=lambda r: r[0])  # cheapest
    top_rate, top_map = max(anc, key=lambda r: (r[1], -r[0]))
    head = (
        f"no BD-rate vs {anchor} ({why}, even on the upper envelopes); the base layer's best mAP@0.5 "
        f"is {b_map:.3f} at {b_rate:.1f} kbit/s, {anchor}'s cheapest point gives "
        f"{a_map:.3f} at {a_rate:.1f} kbit/s and its best {top_map:.3f} at {top_rate:.1f}"
    )
    if b_map < a_map and b_rate >= a_rate:
        return head + ": **vcodec loses** outright."
    if b_map >= top_map and b_rate <= a_rate:
        return (head + f": vcodec's base layer is both cheaper and at least as accurate as every {anchor} "
                "point.")
    if b_map < top_map and b_rate <= a_rate and b_map >= a_map:
        return (head + f": the base layer is cheaper and more accurate at the low end, but **never reaches** "
                f"{anchor}'s best mAP@0.5 at any rate (mixed).")
    return head + ": mixed (more points are needed for a BD-rate)."


def _frames_cell(res: EvalResults) -> str:
    """The evaluated window and how much of it the learned parts trained on (bold when any)."""
    overlaps = res.training_overlap
    if not overlaps:
        return f"{res.frames} (training overlap not recorded)"
    first = overlaps[0].first_frame
    window = f"{first}-{first + res.frames - 1}"
    if all(o.trained == 0 for o in overlaps):
        return f"{window}: held out"
    counts = " / ".join("?" if o.trained is None else str(o.trained) for o in overlaps)
    return f"{window}: **{counts} of {res.frames} trained on**"


def write_results_md(state: dict[str, Any], docs: str | Path = DOCS) -> None:
    from vcodec import __version__

    lines = [
        "# vcodec results",
        "",
        (
            f"Measured by `{state['measured']['command']}` (vcodec {state['measured']['version']}, "
            f"{state['measured']['date']}); report rebuilt from the stored results by "
            f"`{state['command']}` (vcodec {__version__}, {time.strftime('%Y-%m-%d')}). "
            if state.get("measured")
            else f"Regenerated by `{state.get('command', 'tools/make_results.py')}` (vcodec {__version__}, "
            f"{time.strftime('%Y-%m-%d')}). "
        )
        + "Raw numbers: `docs/results/<clip>__<detector>/results.json`; plots beside them.",
        "",
        "> **PSEUDO GROUND TRUTH.** The shared clips carry no human labels: the ground truth is each "
        "detector's own output on the uncompressed frames (score >= 0.3). mAP and MOTA therefore measure "
        "how well each codec *preserves the detector's answers*, not detection accuracy; the uncompressed "
        "reference scores 1.0 by construction.",
        "",
        "BD-rate (PCHIP; negative = vcodec needs fewer bits for the same value). Noisy curves: where a "
        "curve is not monotonic the BD-rate is computed on its upper envelope (a point whose value is "
        "not above every cheaper point's is dropped) and the cell names the dropped points; the strict "
        "value on all points is in each summary. n/a: even the envelopes do not overlap or keep too few "
        "points (the plain comparison below says what the points show). Machines: vcodec base "
        "layer (layer 0 alone) against single-layer x265/x264 with the detector on decoded pixels, on "
        "(kbit/s, mAP@0.5). People: vcodec full decode (both layers) against single-layer x265 and against "
        "simulcast (base + independent x265), on (kbit/s, PSNR-Y), per base quality (the base "
        "qualities of each run, lowest first). The last column is what viewers pay for the base layer "
        "when the enhancement layer codes full frames (`vcodec encode --inter-layer off`, or `auto` where "
        "its per-GOP probe finds the residual dearer): simulcast's rate in one stream.",
        "",
        *([ "## About this run", *state["kept_about"], ""] if state.get("kept_about") else []),
        "## BD-rate",
        "",
        "| clip | detector | frames evaluated: trained on by the base model / its back end "
        "| base vs x265 (mAP@0.5) | base vs x264 (mAP@0.5) "
        "| full vs x265 (PSNR-Y), per base q | full vs x265 (MS-SSIM) | full vs simulcast (PSNR-Y) "
        "| simulcast = `--inter-layer off` vs x265 (PSNR-Y) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    losses: list[str] = []
    not_run: list[str] = []
    models: set[str] = set()
    for key, run in sorted(state.get("runs", {}).items()):
        clip, det = key.split("__")
        if run["status"] != "done":
            not_run.append(f"- {clip} with {det}: {run['status']} ({run['reason'][:200]})")
            continue
        res = _load(run["results"])
        bm = res.base_model or {}
        if bm.get("id"):
            effort = (f"trained {bm['cpu_minutes']} CPU minutes ({bm.get('steps')} steps)"
                      if bm.get("cpu_minutes") is not None
                      else f"{bm.get('steps')} training steps behind its tensors")
            models.add(f"- {det}: base model `{bm['id']}` sha256 {bm['sha256'][:16]}, {effort} "
                       f"(training record in vcodec/weights/{bm['id']}.json)")
        qs = sorted(
            {p.base_quality for p in res.points if p.system == "vcodec-full" and p.base_quality is not None}
        )
        full_x265 = [_bd(res, f"vcodec-full q={q:.2f}", "x265", "psnr_y") for q in qs]
        full_ms = [_bd(res, f"vcodec-full q={q:.2f}", "x265", "ms_ssim") for q in qs]
        full_sim = [_bd(res, f"vcodec-full q={q:.2f}", f"simulcast q={q:.2f}", "psnr_y") for q in qs]
        sim_x265 = [_bd(res, f"simulcast q={q:.2f}", "x265", "psnr_y") for q in qs]
        b265, b264 = _bd(res, "vcodec-base", "x265", "map50"), _bd(res, "vcodec-base", "x264", "map50")
        lines.append(
            f"| [{clip}](results/{key}/summary.md) | {det} | {_frames_cell(res)} | {_cell(b265)} | "
            f"{_cell(b264)} | "
            f"{' / '.join(_cell(e) for e in full_x265)} | {' / '.join(_cell(e) for e in full_ms)} | "
            f"{' / '.join(_cell(e) for e in full_sim)} | {' / '.join(_cell(e) for e in sim_x265)} |"
        )
        for name, e in (("x265", b265), ("x264", b264)):
            v = _value(e)
            if v is None:
                losses.append(f"- {clip} ({det}): {_plain_comparison(res, name, e)}")
            elif v > 0 and e is not None:
                caveat = e.result.caveat()
                caveat = f" ({caveat})" if caveat else ""
                losses.append(
                    f"- {clip} ({det}): the base layer needs {v:+.1f} % bits vs {name} for the same "
                    f"mAP@0.5{caveat}: **vcodec loses** on machine-vision rate here."
                )
        full_x265_v = [_value(e) for e in full_x265]
        worst = [v for v in full_x265_v if v is not None]
        if worst:
            losses.append(
                f"- {clip} ({det}): the full decode costs {min(worst):+.1f} % to {max(worst):+.1f} % "
                f"bits vs single-layer x265 at equal PSNR-Y (the price of scalability)."
            )
        sim = [v for v in (_value(e) for e in full_sim) if v is not None]
        if sim and max(sim) > 0:
            losses.append(
                f"- {clip} ({det}): the residual costs {min(sim):+.1f} % to {max(sim):+.1f} % bits vs "
                f"simulcast (base + x265 of the frames) at equal PSNR-Y: this base picture is a poor "
                f"predictor; `vcodec encode --inter-layer off` codes the frames instead, i.e. simulcast's "
                f"rate in one stream."
            )
    lines += ["", "Models measured:", "", *sorted(models)]
    lines += [
        "",
        "Base qualities, enhancement and anchor QPs: see each summary. Plots: "
        "`docs/results/<clip>__<detector>/rd_map50.png`, `rd_psnr.png`, `rd_msssim.png`.",
        "",
    ]
    bench = state.get("bench")
    lines += ["## Speed", ""]
    if state.get("kept_speed"):  # --report-only: the stored benchmark's section, verbatim
        lines += state["kept_speed"]
        losses += state["kept_speed_losses"]
    elif bench and bench.get("status") == "done":
        r = bench["report"]
        lines += [
            f"`vcodec bench` on {Path(r['input']).name}, {r['frames']} frames {r['size'][0]}x{r['size'][1]}, "
            f"1 thread, x265 preset {r['settings']['preset']}, QP {r['settings']['qp']}, base model "
            f"{r['settings']['base_model']}, detector {r['settings']['detector']}.",
            "",
            "| stage | frames/s | ms/frame | peak RSS MiB |",
            "|---|---|---|---|",
        ]
        for k, v in r["stages"].items():
            lines.append(
                f"| {k} | {v['frames_per_s']:.2f} | {v['ms_per_frame']:.1f} | {v['peak_rss_mib']:.0f} |"
            )
        lines += ["", "| ratio (vcodec time / x265 time) | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in r["ratios"].items()]
        for k, v in r["ratios"].items():
            if v > 1:
                losses.append(f"- speed: {k} = {v:.2f}: vcodec is {v:.1f}x slower than x265 on this stage.")
    else:
        lines.append(f"Not measured: {bench['reason'] if bench else 'the benchmark has not been run'}.")
    lines += ["", "## Where vcodec loses (and other plain comparisons)", ""]
    lines += losses or ["- nothing measured yet"]
    if not_run:
        lines += ["", "## Not run", "", *not_run]
    lines.append("")
    from vcodec.eval.output import write_text

    Path(docs).mkdir(parents=True, exist_ok=True)
    write_text(Path(docs) / "RESULTS.md", "\n".join(lines))


def _md_sections(text: str) -> dict[str, list[str]]:
    """``## heading`` -> the lines under it (up to the next ``## ``), without the heading."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = out.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return out


def report_only(docs: str | Path = DOCS, bench: dict[str, Any] | None = None) -> list[Path]:
    """Rebuild RESULTS.md and every run's summary.md BD-rate section from stored results.json files.

    Nothing is measured: the points are the stored ones, BD entries are recomputed from them by
    the current rules.  The speed table (no raw file of its own) and the command that measured
    everything are carried over from the existing RESULTS.md.  Returns the files written."""
    import re

    from vcodec.errors import InputError
    from vcodec.eval.output import write_text
    from vcodec.eval.report import replace_bd_section

    docs = Path(docs)
    written: list[Path] = []
    state: dict[str, Any] = {"command": "tools/make_results.py --report-only", "runs": {}}
    old = (docs / "RESULTS.md").read_text() if (docs / "RESULTS.md").is_file() else ""
    m = re.search(r"(?:Regenerated|Measured) by `([^`]*)` \(vcodec ([^,]+), (\d{4}-\d\d-\d\d)\)", old)
    if m:
        state["measured"] = {"command": m.group(1), "version": m.group(2), "date": m.group(3)}
    sections = _md_sections(old)
    speed = "\n".join(sections.get("Speed", [])).strip("\n").splitlines()
    about = "\n".join(sections.get("About this run", [])).strip("\n").splitlines()
    if about:  # written by hand for the run that measured the stored results: carried over verbatim
        state["kept_about"] = ["", *about]
    if bench is not None:  # --bench-only: the speed section from this benchmark
        state["bench"] = bench
    elif speed:
        state["kept_speed"] = speed
        state["kept_speed_losses"] = [
            ln
            for ln in sections.get("Where vcodec loses (and other plain comparisons)", [])
            if ln.startswith("- speed:")
        ]
    for ln in sections.get("Not run", []):
        hit = re.match(r"- (\S+) with (\S+): (.+?) \((.*)\)$", ln)
        if hit:
            state["runs"][f"{hit.group(1)}__{hit.group(2)}"] = {
                "status": hit.group(3),
                "reason": hit.group(4),
            }
    results = sorted((docs / "results").glob("*/results.json"))
    if not results:
        raise InputError(f"no stored results under {docs / 'results'}: nothing to rebuild from")
    for path in results:
        key = path.parent.name
        state["runs"][key] = {"status": "done", "results": str(path)}
        summary = path.parent / "summary.md"
        if summary.is_file():
            res = _load(path)
            write_text(summary, replace_bd_section(summary.read_text(), res.bd_rate))
            written.append(summary)
    write_results_md(state, docs)
    written.append(docs / "RESULTS.md")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", default=str(SHARED / "data" / "clips"))
    p.add_argument("--docs", default=str(DOCS), help="where RESULTS.md and results/ go (default docs/)")
    p.add_argument("--work", default=str(REPO / "runs" / "results"), help="results folders (resumable)")
    p.add_argument("--only", nargs="*", help="clip file names to run (default all)")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95 %% intervals of every point's mAP@0.5 over N frame resamples (vcodec eval "
                   "--bootstrap; scoring only: stored points are reused)")
    p.add_argument("--preset", default="medium")
    p.add_argument(
        "--base-qualities", type=lambda s: [float(v) for v in s.split(",")], default=[0.15, 0.4, 0.65, 0.9]
    )
    p.add_argument("--enh-qps", type=lambda s: [int(v) for v in s.split(",")], default=[27, 32, 37, 42])
    p.add_argument(
        "--anchor-qps", type=lambda s: [int(v) for v in s.split(",")], default=[22, 27, 32, 37, 42, 47, 51]
    )
    p.add_argument("--yolox-weights", default=str(SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"))
    p.add_argument(
        "--base-model",
        default="base-yolox-nano-v3",
        help="base model for YOLOX-Nano (id or .json; default the package default)",
    )
    p.add_argument("--det-base-model", default="base-vcodec-det-v2", help="base model for vcodec-det")
    p.add_argument("--detectors", type=lambda s: s.split(","), default=["yolox-nano", "vcodec-det"],
                   help="detector configurations to run, comma-separated (default yolox-nano,vcodec-det); "
                   "the others keep their stored results")
    p.add_argument("--bench-clip", default="cars_320x240.i420")
    p.add_argument("--bench-frames", type=int, default=30)
    p.add_argument("--skip-bench", action="store_true")
    p.add_argument("--bench-only", action="store_true",
                   help="only run `vcodec bench` on --bench-clip and rebuild RESULTS.md from the stored "
                   "results with the new speed section (as --report-only otherwise)")
    p.add_argument(
        "--anchors-only",
        action="store_true",
        help="only compute the x265/x264 anchor points into --work (they do not depend on the base "
        "model, so this can run while a model trains; a later full run reuses them)",
    )
    p.add_argument("--markdown-only", action="store_true", help="only rewrite RESULTS.md from --work")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild RESULTS.md and each docs/results/*/summary.md's BD-rate section from the stored "
        "docs/results/*/results.json alone (BD recomputed from the points; nothing is encoded; the "
        "speed section and measurement command are kept from the current RESULTS.md)",
    )
    args = p.parse_args(argv)
    if args.report_only or args.bench_only:
        report_only(args.docs, bench=_bench(args) if args.bench_only else None)
        return 0
    if args.markdown_only:
        state_path = Path(args.work) / "make_results.json"
        write_results_md(
            json.loads(state_path.read_text()) if state_path.is_file() else {"runs": {}}, args.docs
        )
        return 0
    run_all(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
