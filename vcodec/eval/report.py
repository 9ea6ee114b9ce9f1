"""Plots (matplotlib, Agg) and the markdown summary of a ``vcodec eval`` results folder.

Both are written through the atomic writer: a failed plot leaves no half-written PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from vcodec._atomic import atomic_output
from vcodec.errors import InputError
from vcodec.eval.bdrate import BDResult
from vcodec.eval.config import EvalConfig
from vcodec.eval.output import write_text
from vcodec.eval.points import BDEntry, EvalPoint, EvalResults

__all__ = [
    "write_plots",
    "write_summary",
    "markdown_table",
    "bd_cell",
    "bd_table",
    "replace_bd_section",
    "short_reason",
]

_STYLE = {
    "vcodec-base": ("tab:red", "o-"),
    "x265": ("tab:blue", "s-"),
    "x264": ("tab:green", "^-"),
    "vcodec-full": ("tab:orange", "o-"),
    "simulcast": ("tab:purple", "d--"),
}


def _ok(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _series(
    rows: Sequence[EvalPoint], system: str, y: str, rate: str = "kbps_total", q: float | None = None
) -> tuple[list[float], list[float]]:
    pts = sorted(
        p
        for p in (r.rd(rate, y) for r in rows if r.system == system and (q is None or r.base_quality == q))
        if p is not None
    )
    return [p[0] for p in pts], [p[1] for p in pts]


def write_plots(results: EvalResults, out: Path) -> list[Path]:
    """``rd_map50.png`` (rate vs mAP@0.5, all systems), ``rd_psnr.png`` and ``rd_msssim.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.points
    qualities = sorted(
        {r.base_quality for r in rows if r.system == "vcodec-base" and r.base_quality is not None}
    )
    gt = "pseudo ground truth" if results.pseudo_ground_truth else "ground truth"
    written = []
    for y, fname, label in (
        ("map50", "rd_map50.png", f"mAP@0.5 ({gt})"),
        ("psnr_y", "rd_psnr.png", "PSNR-Y (dB)"),
        ("ms_ssim", "rd_msssim.png", "MS-SSIM (Y)"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        # x265@N / x264@N: the anchors with the detector at another long side (mAP only)
        sized = sorted({r.system for r in rows if "@" in r.system}) if y == "map50" else []
        for system in ("vcodec-base", "x265", "x264", *sized):
            rate = "kbps_base" if system == "vcodec-base" else "kbps_total"
            xs, ys = _series(rows, system, y, rate)
            if xs:
                anchor, _, size = system.partition("@")
                c, st = _STYLE[anchor]
                name = {"vcodec-base": "vcodec base layer (layer 0 only)"}.get(
                    system, f"{anchor} single layer" + (f", detector at {size}" if size else "")
                )
                ax.plot(
                    xs,
                    ys,
                    st.replace("-", ":") if size else st,
                    color=c,
                    alpha=0.6 if size else 1.0,
                    label=name,
                )
        for i, q in enumerate(qualities):
            alpha = 0.35 + 0.65 * (i + 1) / len(qualities)
            ycol = "map50_full" if y == "map50" else y
            xs, ys = _series(rows, "vcodec-full", ycol, q=q)
            if xs:
                ax.plot(xs, ys, "o-", color="tab:orange", alpha=alpha, label=f"vcodec full, base q={q:.2f}")
            xs, ys = _series(rows, "simulcast", y if y != "map50" else "map50", q=q)
            if xs and y != "map50":
                ax.plot(xs, ys, "d--", color="tab:purple", alpha=alpha, label=f"simulcast, base q={q:.2f}")
        if y == "map50":
            ref = [p[1] for p in (r.rd("map50", "map50") for r in rows if r.system == "reference") if p]
            if ref:
                ax.axhline(ref[0], color="grey", ls=":", label="uncompressed")
        if ax.get_legend_handles_labels()[0]:
            ax.set_xscale("log")
            ax.legend(fontsize=7, loc="lower right")
        else:  # e.g. mAP when the ground truth holds no object: say so instead of an empty frame
            ax.text(0.5, 0.5, f"no {label} values to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("kbit/s (base layer for vcodec base; whole stream otherwise)")
        ax.set_ylabel(label)
        ax.set_title(f"{Path(results.input).name}: {results.frames} frames")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        p = out / fname
        try:
            with atomic_output(p, what="vcodec eval plot") as f:
                fig.savefig(f, dpi=110, format="png")
        finally:
            plt.close(fig)
        written.append(p)
    return written


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if _ok(v) else "-"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def points_table(rows: Sequence[EvalPoint]) -> str:
    body = []
    for r in rows:
        body.append(
            [
                r.id,
                _f(r.kbps_base, 1),
                _f(r.kbps_total, 1),
                _f(r.map50) + ("" if r.map50_low is None or r.map50_high is None
                               else f" [{_f(r.map50_low)}, {_f(r.map50_high)}]"),
                _f(r.map),
                _f(r.map50_full),
                _f(r.mota),
                _f(r.idf1),
                _f(r.psnr_y, 2),
                _f(r.ms_ssim, 4),
            ]
        )
    return markdown_table(
        [
            "point",
            "kbit/s base",
            "kbit/s total",
            "mAP@0.5" + (" [95 % interval]" if any(r.map50_low is not None for r in rows) else ""),
            "mAP@[.5:.95]",
            "mAP@0.5 (full pixels)",
            "MOTA",
            "IDF1",
            "PSNR-Y",
            "MS-SSIM",
        ],
        body,
    )


def short_reason(reason: str) -> str:
    """A BD reason in two or three words ("no overlap", "too few points", "not monotonic")."""
    for key, text in (
        ("needs at least", "too few points"),
        ("strictly increasing", "not monotonic"),
        ("overlap", "no overlap"),
        ("rate <= 0", "zero rate"),
    ):
        if key in reason:
            return text
    return reason[:40]


def bd_cell(entry: BDEntry | BDResult | Mapping[str, Any] | None, strict: bool = True) -> str:
    """One BD-rate as a table cell: ``"+12.3 %"``, ``"+12.3 % (envelope; dropped test point at
    120.5 kbit/s; strict n/a)"`` when the number rests on an upper envelope, or ``"n/a (no overlap)"``
    only when not even the envelopes give one.  ``strict`` adds the strict (all points) value.

    (A JSON dict entry is still read, for one release.)"""
    if entry is None:
        return "-"
    if isinstance(entry, BDEntry):
        r = entry.result
    elif isinstance(entry, BDResult):
        r = entry
    else:
        r = BDResult.from_dict(entry)
    if not _ok(r.value):
        return f"n/a ({short_reason(r.reason)})"
    if not r.uses_envelope:
        return f"{r.value:+.1f} %"
    note = r.caveat()
    if strict:
        note += (
            f"; strict {r.strict_value:+.1f} %"
            if _ok(r.strict_value)
            else f"; strict n/a ({short_reason(r.strict_reason)})"
        )
    return f"{r.value:+.1f} % ({note})"


def bd_table(entries: Sequence[BDEntry]) -> str:
    body = []
    pairs: dict[tuple[str, str, str], dict[str, BDEntry]] = {}
    for e in entries:
        pairs.setdefault((e.test, e.anchor, e.metric), {})[e.method] = e
    for (test, anchor, metric), m in pairs.items():
        body.append([test, anchor, metric, bd_cell(m.get("pchip")), bd_cell(m.get("cubic"))])
    return markdown_table(["test", "anchor", "metric", "BD-rate (PCHIP)", "BD-rate (cubic)"], body)


_BD_NOTE = (
    "BD-rate: negative = the test system needs fewer bits than the anchor for the same accuracy or "
    "quality. Base-layer rates are layer 0 alone; vcodec-full rates are both layers' payloads. Where a "
    "curve is not monotonic the number is computed on its upper envelope (a point is dropped when its "
    "value is not above every cheaper point's); the cell names the dropped points and gives the strict "
    "value on all points beside it. n/a: not even the envelopes allow a number."
)


def bd_section(entries: Sequence[BDEntry]) -> list[str]:
    """The summary's BD-rate part (note, heading, table), shared with :func:`replace_bd_section`."""
    return [_BD_NOTE, "", "## BD-rate", "", bd_table(entries), ""]


def replace_bd_section(summary: str, entries: Sequence[BDEntry]) -> str:
    """``summary`` (a summary.md) with its BD-rate note and table rebuilt from ``entries``.

    For reports rebuilt from a stored results.json, which keeps only part of the provenance the
    header was written from: the header and the point table stay as they are."""
    start = summary.find("BD-rate: negative")
    end = summary.find("## Points")
    if start < 0 or end < start:
        raise InputError("summary.md has no 'BD-rate: negative ...' note before '## Points'")
    return summary[:start] + "\n".join(bd_section(entries)) + "\n" + summary[end:]


def _geometry_lines(geo: Mapping[str, Any] | None) -> list[str]:
    if not geo:
        return []
    lines = [
        f"- detector on pixels (reference / ground truth, anchors, full decode) at the base layer's working "
        f"geometry: {geo['description']}"
    ]
    if geo.get("anchor_size"):
        n = geo["anchor_size"]
        lines.append(
            f"- `x265@{n}` / `x264@{n}`: the same anchor points with the detector at a long side of {n} "
            "(a labelled extra; not the base layer's geometry)"
        )
    return lines


def _window(results: EvalResults) -> str:
    start = results.provenance.get("settings", {}).get("start")
    return "" if start is None else f" from frame {start}"


def _base_tool_lines(settings: dict[str, Any]) -> list[str]:
    """The base encoder's tools when the run did not use the defaults (older runs recorded none)."""
    defaults = {f.name: f.default for f in fields(EvalConfig)}
    names = ("base_effort", "base_tune", "base_p_offset", "base_deadzone")
    chosen = [f"--{n.replace('_', '-')} {settings[n]}" for n in names
              if settings.get(n) is not None and settings[n] != defaults[n]]
    return [f"- base layer coded with {' '.join(chosen)}"] if chosen else []


def _training_lines(results: EvalResults) -> list[str]:
    """Whether the learned parts trained on the evaluated frames (a number on training frames
    flatters them)."""
    if results.training_overlap is None:
        return []
    if not results.training_overlap:
        return ["- evaluated frames trained on: none (no learned part)"]
    flag = any(o.trained != 0 for o in results.training_overlap)
    text = "; ".join(o.describe() for o in results.training_overlap)
    return [f"- {'**' if flag else ''}evaluated frames trained on{'**' if flag else ''}: {text}"]


def write_summary(results: EvalResults, path: Path) -> None:
    prov = results.provenance
    det = prov["detector"]
    lines = [
        f"# vcodec eval: {Path(results.input).name}",
        "",
        *(
            [
                "> **PSEUDO GROUND TRUTH**: the reference detector's output on the uncompressed frames; mAP "
                "and MOTA measure agreement with it, not accuracy against human labels.",
                "",
            ]
            if results.pseudo_ground_truth
            else []
        ),
        f"- {results.frames} frames{_window(results)}, {results.size[0]}x{results.size[1]} at "
        f"{results.fps:g} fps",
        *_training_lines(results),
        f"- **{results.ground_truth}**",
        f"- detector {det['name']} (weights {det['weights']}, sha256 {det['sha256'][:16] or 'n/a'}), "
        f"predictions scored from {det['score_threshold']}",
        *_geometry_lines(results.detector_geometry),
        f"- vcodec {prov['vcodec_version']}, libavcodec {prov['libavcodec']}, torch {prov['torch']}, "
        f"preset {prov['settings']['preset']}, intra period {prov['settings']['intra_period']}",
        *_base_tool_lines(prov["settings"]),
        "",
        *bd_section(results.bd_rate),
        "## Points",
        "",
        points_table(results.points),
        "",
        "## Plots",
        "",
        # relative links: the plots sit beside summary.md, so any Markdown viewer shows them inline
        "![rate vs mAP@0.5](rd_map50.png)",
        "![rate vs PSNR](rd_psnr.png)",
        "![rate vs MS-SSIM](rd_msssim.png)",
        "",
    ]
    write_text(path, "\n".join(lines))
