"""Work units of ``vcodec eval``: one per base quality (vcodec base + full points), one per anchor QP.

A unit runs in the main process, a ``--jobs`` worker process or a Ray task; each process reads
the input and loads the detector and base model once (:func:`_context`).  A unit returns its
coded points: the JSON records stored as ``points/<id>.json`` (settings, layer bytes and kbit/s,
per-frame detections, quality, timings), which :mod:`vcodec.eval.scoring` turns into rows.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vcodec.errors import ConfigError, InputError
from vcodec.eval.config import ANCHOR_NAMES, EvalConfig, base_tools
from vcodec.eval.geometry import WorkingSize, detect_at, working_size
from vcodec.eval.points import dets_to_json, fmt_q, kbps
from vcodec.eval.scoring import _align, _quality, _renumber

__all__ = ["AnchorUnit", "VcodecUnit", "WorkUnit"]


@dataclass(frozen=True)
class VcodecUnit:
    """vcodec at base quality ``q``, full points at each of ``qps``; the base point if ``need_base``."""

    q: float
    qps: tuple[int, ...]
    need_base: bool


@dataclass(frozen=True)
class AnchorUnit:
    """Single-layer anchor ``name`` (x265, x264) at ``qp``."""

    name: str
    qp: int


WorkUnit = VcodecUnit | AnchorUnit


class _Context:
    """Per-process state: the frames, the detector and the base model (loaded once)."""

    def __init__(self, cfg: EvalConfig) -> None:
        import torch

        from vcodec.io import open_video

        torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        with open_video(cfg.input, size=cfg.size, start=cfg.start, frames=cfg.frames) as reader:
            self.frames = list(reader)
            self.info = reader.info
        if not self.frames:
            raise InputError(f"{cfg.input}: no frames to evaluate")
        self.info.num_frames = len(self.frames)
        long_side = max(self.info.width, self.info.height)
        if cfg.base_size is not None and cfg.base_size > long_side:
            raise ConfigError(
                f"base size {cfg.base_size} is larger than the input's long side "
                f"({self.info.width}x{self.info.height}); use at most {long_side}"
            )
        self._detector: Any = None
        self._working: WorkingSize | None = None

    @property
    def working(self) -> WorkingSize:
        """The base layer's working size: the geometry of every detection on pixels."""
        if self._working is None:
            self._working = working_size(
                self.cfg.base_model, self.cfg.base_size, required=bool(self.cfg.base_qualities)
            )
        return self._working

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from vcodec.detection import DEFAULT_DETECTOR, get_detector

            name = self.cfg.detector or DEFAULT_DETECTOR
            self._detector = get_detector(
                name, self.cfg.detector_weights, score_threshold=self.cfg.score_threshold
            )
        return self._detector

    def detect_pixels(self, frames: Iterable[Any], long_side: int | None = None) -> list[tuple[int, Any]]:
        """The detector on pictures at the working geometry (or the same rule at ``long_side``)."""
        size = self.working
        if long_side is not None:
            size = WorkingSize(long_side, size.multiple, f"anchor size {long_side}")
        return list(detect_at(self.detector, frames, size))


_CONTEXT: _Context | None = None


def _context(cfg: EvalConfig) -> _Context:
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT.cfg != cfg:
        _CONTEXT = _Context(cfg)
    return _CONTEXT


def _vcodec_unit(cfg: EvalConfig, q: float, qps: list[int], need_base: bool) -> list[dict[str, Any]]:
    """Code at base quality ``q`` with each enhancement QP; the base point from the first stream."""
    from vcodec.codec import Decoder, Encoder

    ctx = _context(cfg)
    n, fps = len(ctx.frames), float(ctx.info.fps)
    out: list[dict[str, Any]] = []
    # base-only work still needs a stream: code the enhancement at the coarsest QP, then drop it
    todo = list(qps) if qps else [cfg.enh_qps[0] if cfg.enh_qps else 51]
    for k, qp in enumerate(todo):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        with Encoder(
            buf,
            ctx.info,
            base_model=cfg.base_model,
            base_quality=q,
            base_size=cfg.base_size,
            base_effort=cfg.base_effort,
            base_tune=cfg.base_tune,
            base_p_offset=cfg.base_p_offset,
            base_deadzone=cfg.base_deadzone,
            enh_codec=cfg.enh_codec,
            enh_qp=qp,
            preset=cfg.preset,
            intra_period=cfg.intra_period or 32,
            inter_layer={"on": True, "off": False}.get(cfg.inter_layer, "auto"),
        ) as enc:
            for f in ctx.frames:
                enc.encode(f)
        summary = enc.summary()
        enc_s = time.perf_counter() - t0
        stream = buf.getvalue()
        base_model = {"id": summary.base_model, "sha256": enc.base.sha256}
        if need_base and k == 0:
            t0 = time.perf_counter()
            with Decoder(stream, layers="base", detector=ctx.detector, base_model=cfg.base_model) as dec:
                dets = sorted(_align(ctx.frames, dict(dec.detections()), "base layer").items())
            det_s = time.perf_counter() - t0
            with Decoder(stream, layers="base", base_model=cfg.base_model) as dec:
                base_frames = _align(ctx.frames, {f.index: f for f in dec.frames()}, "base layer")
            mean, per = _quality(ctx.frames, base_frames)
            out.append(
                {
                    "id": f"vcodec-base_q{fmt_q(q)}",
                    "system": "vcodec-base",
                    "base_quality": q,
                    "qp": None,
                    "bytes": {"base": summary.base_bytes},
                    "kbps_base": kbps(summary.base_bytes, n, fps),
                    "kbps_total": kbps(summary.base_bytes, n, fps),
                    "detections": dets_to_json(dets),
                    "quality": mean,
                    "quality_per_frame": per,
                    "encode_s": enc_s,
                    "decode_s": det_s,
                    "settings": {
                        "base_model": base_model,
                        "base_quality": q,
                        "base_size": cfg.base_size,
                        "base_tools": base_tools(cfg),
                        "intra_period": cfg.intra_period or 32,
                        "note": "base-only decode + detector back end on T(y_hat); quality of x_base",
                    },
                }
            )
        if not qps:
            break
        t0 = time.perf_counter()
        with Decoder(stream, layers="all", base_model=cfg.base_model) as dec:
            full = _renumber(_align(ctx.frames, {f.index: f for f in dec.frames()}, "full decode"))
            enh_params = dict(dec.enh_config.params) if dec.enh_config is not None else {}
        dec_s = time.perf_counter() - t0
        mean, per = _quality(ctx.frames, full)
        full_dets = (
            dets_to_json(ctx.detect_pixels(full[f.index] for f in ctx.frames)) if cfg.full_detect else []
        )
        out.append(
            {
                "id": f"vcodec-full_q{fmt_q(q)}_qp{qp}",
                "system": "vcodec-full",
                "base_quality": q,
                "qp": qp,
                "bytes": {
                    "base": summary.base_bytes,
                    "enh": summary.enh_bytes,
                    "stream": summary.stream_bytes,
                },
                "kbps_base": kbps(summary.base_bytes, n, fps),
                "kbps_enh": kbps(summary.enh_bytes, n, fps),
                "kbps_total": kbps(summary.base_bytes + summary.enh_bytes, n, fps),
                "kbps_stream": kbps(summary.stream_bytes, n, fps),
                "detections_full": full_dets,
                "quality": mean,
                "quality_per_frame": per,
                "encode_s": enc_s,
                "decode_s": dec_s,
                "settings": {
                    "base_model": base_model,
                    "base_quality": q,
                    "base_tools": base_tools(cfg),
                    "enh_codec": cfg.enh_codec,
                    "enh_qp": qp,
                    "inter_layer": cfg.inter_layer,
                    "preset": cfg.preset,
                    "intra_period": cfg.intra_period or 32,
                    "enhancement_config": enh_params,
                },
            }
        )
    return out


def _anchor_unit(cfg: EvalConfig, name: str, qp: int) -> list[dict[str, Any]]:
    """Single-layer x265/x264 of the input at ``qp``; the detector on the decoded pixels."""
    from vcodec.enhancement import decode_sequence, encode_sequence, reconstruct

    ctx = _context(cfg)
    n, fps = len(ctx.frames), float(ctx.info.fps)
    codec = ANCHOR_NAMES[name]
    t0 = time.perf_counter()
    config, extradata, packets = encode_sequence(
        ctx.frames,
        None,
        codec=codec,
        qp=qp,
        preset=cfg.preset,
        intra_period=cfg.intra_period or 32,
        fps=ctx.info.fps,
    )
    enc_s = time.perf_counter() - t0
    nbytes = sum(len(p.data) for p in packets)
    t0 = time.perf_counter()
    decoded = {
        i: reconstruct(None, r, index=i) for i, r in decode_sequence(codec, config, extradata, packets)
    }
    dec_s = time.perf_counter() - t0
    by_pos = {
        f.index: decoded[k].copy(index=f.index, matrix=f.matrix)
        for f, k in zip(ctx.frames, sorted(decoded), strict=False)
    }
    if len(by_pos) != len(ctx.frames):
        raise InputError(f"{name} at QP {qp}: {len(decoded)} frames decoded for {len(ctx.frames)} coded")
    mean, per = _quality(ctx.frames, by_pos)
    dets = ctx.detect_pixels(by_pos[f.index] for f in ctx.frames)
    extra: dict[str, Any] = {}
    if cfg.anchor_size:
        # the labelled anchor: the same pictures, the detector at another long side
        extra["detections_anchor_size"] = dets_to_json(
            ctx.detect_pixels((by_pos[f.index] for f in ctx.frames), cfg.anchor_size)
        )
    return [
        {
            "id": f"{name}_qp{qp}",
            "system": name,
            "base_quality": None,
            "qp": qp,
            "bytes": {"total": nbytes},
            "kbps_total": kbps(nbytes, n, fps),
            "detections": dets_to_json(dets),
            "quality": mean,
            "quality_per_frame": per,
            "encode_s": enc_s,
            "decode_s": dec_s,
            "settings": {"encoder_config": config, "note": "single layer; detector on decoded pixels"},
            **extra,
        }
    ]


def _run_unit(cfg: EvalConfig, unit: WorkUnit) -> list[dict[str, Any]]:
    """One work unit's coded points (in whichever process runs it)."""
    if isinstance(unit, VcodecUnit):
        return _vcodec_unit(cfg, unit.q, list(unit.qps), unit.need_base)
    return _anchor_unit(cfg, unit.name, unit.qp)


def _run_unit_task(item: tuple[EvalConfig, WorkUnit]) -> list[dict[str, Any]]:
    return _run_unit(*item)


def _describe_unit(item: tuple[EvalConfig, WorkUnit]) -> str:
    u = item[1]
    what = f"vcodec q {fmt_q(u.q)}" if isinstance(u, VcodecUnit) else f"{u.name} QP {u.qp}"
    return f"eval work unit ({what}) of {item[0].input}"
