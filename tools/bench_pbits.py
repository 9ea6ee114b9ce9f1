#!/usr/bin/env python
"""Where a base-layer P-frame's bits go, and what x265 spends on the same frames.

For each static-camera clip (the frames of ``tools/bench_ptools.py``), the clip
is coded with the chosen coding tools and every P-frame's payload is broken down:

* **header**: payload bytes that are neither z nor the y string;
* **z**: the hyperlatent string (0 when the intra hyperprior is reused);
* **flags**: the skip flags, -log2 p under the context model's states;
* **y** (estimated: -log2 p of every sent symbol under its discretised Gaussian,
  the rest of the y string is the coder's own overhead), split into zero and non-zero
  symbols, non-zero ones by how far the source latent moved since the previous
  frame (|y(t) - y(t-1)| below half a quantisation step or not), and by whether
  the block lies where the source pixels changed (mean absolute difference of the
  16x16 patch behind each latent position against the previous frame above
  ``--pixel-threshold`` 8-bit levels, dilated by one latent position), next to what the
  same frame coded as an intra frame spends at those positions;
* with ``--boxes``: how much of it lies inside the objects YOLOX-Nano finds on the
  uncompressed frame (score >= 0.3, boxes grown by one latent position), i.e. what a
  decision that protects only detected objects could still cut;
* the **rounding flips**: elements whose rounded source differs from the symbol that
  keeps the (motion-compensated) reference, counted with the bits of the rounded symbol
  by their distance from the reference in steps, before any holding: a temporal dead
  zone of width w holds the bands below w (``CodingTools.p_deadzone``);
* what a classic codec does on the same frames: libx265 through PyAV (preset
  medium, no B-frames, the same intra period, scene cuts off) at ``--x265-qp``,
  its mean P-frame size over its mean I-frame size.

    python tools/bench_pbits.py --frames 32 --json runs/pbits.json
    python tools/bench_pbits.py --variant p-0.1 --clips car-detection.mp4 --x265-qp 32,37
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_ptools import STATIC_CLIPS, VARIANTS, read_frames  # noqa: E402

from vcodec.baselayer.learned import BaseCodec  # noqa: E402
from vcodec.baselayer.learned.base_codec import frame_to_tensor  # noqa: E402
from vcodec.baselayer.learned.payload import BasePayload  # noqa: E402
from vcodec.baselayer.learned.plugin import default_base_model  # noqa: E402
from vcodec.baselayer.learned.rdo import changed_positions, pixel_change  # noqa: E402
from vcodec.baselayer.learned.skipmap import PROB_STATES  # noqa: E402
from vcodec.baselayer.learned.tools import FrameDetail  # noqa: E402
from vcodec.io.frame import Frame  # noqa: E402

#: lower edges of the distance bands (quantisation steps) the rounding flips are counted in
FLIP_BANDS = (0.0, 0.25, 0.5, 0.55, 0.6, 0.65, 0.75, 1.0, 1.5)


@dataclass
class PBits:
    """Sums over the P-frames of one clip (bits; counts of symbols and positions)."""

    frames: int = 0
    payload: float = 0.0
    header: float = 0.0
    z: float = 0.0
    flags: float = 0.0
    y_string: float = 0.0
    y_zero: float = 0.0
    y_nonzero_still: float = 0.0  # source latent moved < 0.5 step since the previous frame
    y_nonzero_moved: float = 0.0
    y_in_changed: float = 0.0  # sent symbols in blocks where the source pixels changed
    y_in_static: float = 0.0
    y_in_boxes: float = 0.0  # sent symbols inside the reference detections' boxes (--boxes)
    positions_in_boxes: int = 0
    intra_bits_changed: float = 0.0  # the same frame coded intra: symbol bits at the changed positions
    intra_bits_static: float = 0.0
    nonzero_still: int = 0
    nonzero_moved: int = 0
    positions: int = 0
    positions_changed: int = 0
    positions_coded: int = 0
    positions_coded_static: int = 0
    #: elements whose rounded source differs from the symbol that keeps the reference, by their
    #: distance |y(t) - reference| in steps: [lower band edge, elements, bits of the rounded symbol]
    flips: list[list[float]] = field(default_factory=lambda: [[lo, 0.0, 0.0] for lo in FLIP_BANDS])

    def per_frame(self) -> dict[str, Any]:
        n = max(self.frames, 1)
        out = {k: round(v / n, 1) for k, v in vars(self).items()
               if isinstance(v, (int, float)) and k != "frames"}
        out["share_changed_positions"] = round(self.positions_changed / max(self.positions, 1), 4)
        out["share_coded_positions"] = round(self.positions_coded / max(self.positions, 1), 4)
        nonzero = max(self.nonzero_still + self.nonzero_moved, 1)
        out["share_nonzero_still"] = round(self.nonzero_still / nonzero, 4)
        out["flips"] = [[lo, round(k / n, 1), round(b / n, 1)] for lo, k, b in self.flips]
        return out


def flag_bits(d: FrameDetail) -> float:
    if d.flags is None:
        return 0.0
    p1 = (np.asarray(d.flag_indexes, dtype=np.float64) + 1.0) / PROB_STATES
    f = d.flags.reshape(-1).astype(bool)
    return float(np.where(f, -np.log2(p1), -np.log2(1.0 - p1)).sum())


def box_positions(dets: Any, geom: Any, min_score: float = 0.3) -> np.ndarray:
    """Hy x Wy: latent positions under the boxes (source pixels) of ``dets``, grown by one position."""
    hy, wy = geom.latent_size
    out = np.zeros((hy, wy), dtype=bool)
    for x0, y0, x1, y1 in dets.filter(min_score).boxes.astype(np.float64) * geom.scale:
        r0, c0 = max(int(y0 // 16) - 1, 0), max(int(x0 // 16) - 1, 0)
        out[r0:min(int(np.ceil(y1 / 16)) + 1, hy), c0:min(int(np.ceil(x1 / 16)) + 1, wy)] = True
    return out


def break_down(codec: BaseCodec, frames: list[Frame], quality: float, intra_period: int, tools: Any,
               pixel_threshold: float, refs: list[Any] | None = None) -> tuple[PBits, float]:
    """(P-frame sums, mean I-frame bits) of one clip coded with ``tools``; ``refs``: detections on
    the uncompressed frames (for the bits inside their boxes)."""
    enc = codec.encoder(quality, intra_period, tools)
    enc.keep_detail = True
    intra_enc = codec.encoder(quality, intra_period, tools)
    intra_enc.keep_detail = True
    costs = codec._path.symbol_costs
    out, bits_i = PBits(), []
    prev_x: torch.Tensor | None = None
    prev_y: np.ndarray | None = None
    for t, f in enumerate(frames):
        payload, _ = enc.encode_frame(f, reconstruct=False)
        d, rep = enc.last_detail, enc.last_report
        assert d is not None and rep is not None
        x = frame_to_tensor(f, codec.geometry(f.width, f.height))
        if rep.intra:
            bits_i.append(rep.payload_bits)
        else:
            assert prev_x is not None and prev_y is not None
            p = BasePayload.from_bytes(payload)
            out.frames += 1
            out.payload += rep.payload_bits
            out.z += 8 * len(p.z_string or b"")
            out.y_string += 8 * len(p.y_string)
            out.header += rep.payload_bits - 8 * len(p.z_string or b"") - 8 * len(p.y_string)
            out.flags += flag_bits(d)
            bits = costs(d.symbols, d.scale_index)
            coded = np.broadcast_to(d.coded, d.symbols.shape[1:])[None]
            nonzero = coded & (d.symbols != 0)
            still = np.abs(d.source - prev_y) * d.gain < 0.5
            out.y_zero += float(bits[coded & (d.symbols == 0)].sum())
            out.y_nonzero_still += float(bits[nonzero & still].sum())
            out.y_nonzero_moved += float(bits[nonzero & ~still].sum())
            out.nonzero_still += int((nonzero & still).sum())
            out.nonzero_moved += int((nonzero & ~still).sum())
            changed = changed_positions(pixel_change(prev_x[0].numpy(), x[0].numpy()), pixel_threshold)
            # the same frame coded as an intra frame: what its changed positions cost without prediction
            intra_enc.encode_frame(f, intra=True, reconstruct=False)
            di = intra_enc.last_detail
            assert di is not None
            intra_bits = costs(di.symbols, di.scale_index)[0].sum(axis=0)
            out.intra_bits_changed += float(intra_bits[changed].sum())
            out.intra_bits_static += float(intra_bits[~changed].sum())
            ch = np.broadcast_to(changed, d.symbols.shape[1:])[None]
            out.y_in_changed += float(bits[coded & ch].sum())
            out.y_in_static += float(bits[coded & ~ch].sum())
            if refs is not None:
                inside = box_positions(refs[t], codec.geometry(f.width, f.height))
                box = np.broadcast_to(inside, d.symbols.shape[1:])[None]
                out.y_in_boxes += float(bits[coded & box].sum())
                out.positions_in_boxes += int(inside.sum())
            if d.reference is not None:
                # what a dead zone of width w would hold: the flips with distance < w (before any holding)
                residual = (d.source - d.means) * d.gain
                reference = (d.reference - d.means) * d.gain
                rounded, keep = np.round(residual), np.round(reference)
                flip = rounded != keep
                distance = np.abs(residual - reference)[flip]
                flip_bits = costs(rounded, d.scale_index)[flip]
                band = np.searchsorted(FLIP_BANDS, distance, side="right") - 1
                counts = np.bincount(band, minlength=len(FLIP_BANDS))
                band_bits = np.bincount(band, weights=flip_bits, minlength=len(FLIP_BANDS))
                for row, k, b in zip(out.flips, counts, band_bits, strict=True):
                    row[1] += float(k)
                    row[2] += float(b)
            out.positions += changed.size
            out.positions_changed += int(changed.sum())
            out.positions_coded += int(d.coded.sum())
            out.positions_coded_static += int((d.coded & ~changed).sum())
        prev_x, prev_y = x, d.source
    return out, float(np.mean(bits_i))


def x265_ratio(frames: list[Frame], qp: int, intra_period: int) -> dict[str, float]:
    """libx265 (preset medium, no B-frames, fixed intra period, constant QP with its default I/P
    offset): mean bits of I- and P-frames on these frames."""
    import av

    w, h = frames[0].width // 2 * 2, frames[0].height // 2 * 2
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"preset": "medium", "x265-params":
                   f"qp={qp}:keyint={intra_period}:min-keyint={intra_period}:bframes=0:scenecut=0:"
                   "open-gop=0:log-level=error"}
    sizes: list[tuple[bool, int]] = []
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f.to_rgb()[:h, :w]), format="rgb24")
        vf = vf.reformat(format="yuv420p")
        vf.pts = i
        sizes += [(bool(p.is_keyframe), 8 * p.size) for p in ctx.encode(vf)]
    sizes += [(bool(p.is_keyframe), 8 * p.size) for p in ctx.encode(None)]
    bi = [b for k, b in sizes if k]
    bp = [b for k, b in sizes if not k]
    return {"qp": qp, "bits_i": round(float(np.mean(bi))), "bits_p": round(float(np.mean(bp))),
            "p_over_i": round(float(np.mean(bp) / np.mean(bi)), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_base_model())
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--variant", default="p-0.1", help=f"coding tools, one of {', '.join(VARIANTS)}")
    ap.add_argument("--clips", default=",".join(n for n, _ in STATIC_CLIPS))
    ap.add_argument("--pixel-threshold", type=float, default=4.0,
                    help="8-bit mean absolute difference of a latent position's patch that counts as changed")
    ap.add_argument("--x265-qp", default="32,37", help="QPs for libx265's P/I ratio ('' = skip)")
    ap.add_argument("--boxes", action="store_true",
                    help="also the y bits inside YOLOX-Nano's boxes on the uncompressed frames")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from bench_ptools import CLIPS  # the shared clips folder

    codec = BaseCodec.from_weights(args.model)
    starts = dict(STATIC_CLIPS)
    report: dict[str, Any] = {"model": codec.model_id, "quality": args.quality, "frames": args.frames,
                              "variant": args.variant, "pixel_threshold": args.pixel_threshold, "clips": {}}
    for name in args.clips.split(","):
        if not (CLIPS / name).exists():
            print(f"{name}: not in {CLIPS}, skipped")
            continue
        frames = read_frames(name, starts.get(name, 0), args.frames)
        refs = None
        if args.boxes:
            from bench_base import reference_detections
            from train_base import load_detector

            refs = reference_detections(codec, load_detector(codec.cfg.detector).eval(), frames)
        sums, mean_i = break_down(codec, frames, args.quality, args.intra_period, VARIANTS[args.variant],
                                  args.pixel_threshold, refs)
        row = sums.per_frame()
        row["bits_i"] = round(mean_i)
        row["p_over_i"] = round(row["payload"] / mean_i, 4)
        row["x265"] = [x265_ratio(frames, int(q), args.intra_period) for q in args.x265_qp.split(",") if q]
        report["clips"][name] = row
        print(f"{name}: I {mean_i:.0f}, P {row['payload']:.0f} bits (P/I {row['p_over_i']:.3f}) = header "
              f"{row['header']:.0f} + z {row['z']:.0f} + y string {row['y_string']:.0f} "
              f"(flags ~{row['flags']:.0f}, zero symbols ~{row['y_zero']:.0f}, non-zero where the source "
              f"moved < 0.5 step ~{row['y_nonzero_still']:.0f} [{row['nonzero_still']:.0f} symbols], "
              f">= 0.5 step ~{row['y_nonzero_moved']:.0f} [{row['nonzero_moved']:.0f}]); symbols in "
              f"pixel-changed blocks ~{row['y_in_changed']:.0f}, in static ones ~{row['y_in_static']:.0f}; "
              f"positions changed {row['share_changed_positions']:.1%}, "
              f"coded {row['share_coded_positions']:.1%}; "
              f"the same frames coded intra: ~{row['intra_bits_changed']:.0f} bits at the changed positions, "
              f"~{row['intra_bits_static']:.0f} at the others",
              flush=True)
        if refs is not None:
            print(f"  inside the reference boxes: ~{row['y_in_boxes']:.0f} y bits on "
                  f"{sums.positions_in_boxes / max(sums.positions, 1):.1%} of the positions", flush=True)
        print("  symbols that differ from the reference's, by distance from it (a dead zone of width w "
              "holds those below w): " + ", ".join(
                  f"[{lo:g}, {hi:g}) {k:.0f} ~{b:.0f} bits" for (lo, k, b), hi in
                  zip(row["flips"], [*FLIP_BANDS[1:], float("inf")], strict=True) if k), flush=True)
        for x in row["x265"]:
            print(f"  x265 QP {x['qp']}: I {x['bits_i']}, P {x['bits_p']} bits, P/I {x['p_over_i']:.3f}",
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
