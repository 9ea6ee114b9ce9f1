"""``vcodec encode --workers N | --ray ADDRESS``: GOP-parallel encoding into ONE stream.

The driver plans GOPs (intra periods), sends one task per GOP (the workers
read the input themselves), merges the GOP runs in order as they arrive
(:class:`~vcodec.cluster.merge.GopMerger`) into the atomic output, and
commits it only when every GOP is in: a failure leaves no file.  Both layers
use closed GOPs (``Encoder(closed_gops=True)``), so with a constant QP the
stream is byte-identical to the serial ``vcodec encode --closed-gops``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from vcodec._atomic import AtomicOutput, OutputTarget
from vcodec.bitstream import BASE_LAYER, ENHANCEMENT_LAYER
from vcodec.cluster.gop import encode_gop
from vcodec.cluster.merge import GopMerger
from vcodec.cluster.plan import FAULT_ENV, EncodeOptions, GopResult, GopTask, InputSpec, plan_gops
from vcodec.cluster.ray_backend import RayExecutor
from vcodec.codec.stats import EncodeSummary, mean_psnr
from vcodec.errors import ConfigError
from vcodec.io.frame import VideoInfo

__all__ = ["encode_parallel", "gop_tasks", "rate_note"]


def rate_note(options: EncodeOptions) -> str:
    if options.constant_qp:
        return "closed GOPs, constant QP: byte-identical to the serial encode with --closed-gops"
    return "closed GOPs: each GOP coded independently (the enhancement rate control restarts at every GOP)"


def gop_tasks(spec: InputSpec, info: VideoInfo, options: EncodeOptions, *, gops_per_task: int = 1
              ) -> list[GopTask]:
    """One task per ``gops_per_task`` intra periods of ``info.num_frames`` frames."""
    fault = os.environ.get(FAULT_ENV) or None
    plan = plan_gops(info.num_frames or 0, options.intra_period, group=gops_per_task)
    return [GopTask(i, first, n, spec, info, options, fault) for i, (first, n) in enumerate(plan)]


def summarize(results: list[GopResult], merger: GopMerger, info: VideoInfo, options: EncodeOptions,
              seconds: float, workers: int) -> EncodeSummary:
    """The serial encoder's summary, from the merged writer's counts and the GOPs' frame stats."""
    w = merger.writer
    assert w is not None
    stats = [s for r in sorted(results, key=lambda r: r.gop) for s in r.stats]
    layers = w.layers
    enh = layers.get(ENHANCEMENT_LAYER)
    gops = [g for r in results for g in r.summary_extra.get("gops", [])]
    extra: dict[str, Any] = {
        "setup_seconds": max((r.setup_seconds for r in results), default=0.0),
        "parallel": {"gops": len(results), "workers": workers, "closed_gops": True,
                     "constant_qp": options.constant_qp, "note": rate_note(options),
                     "worker_seconds": round(sum(r.seconds for r in results), 3),
                     # worker (host:pid) -> GOPs it coded, and how often it loaded the base weights
                     "worker_gops": {w: sum(r.worker == w for r in results)
                                     for w in {r.worker for r in results}},
                     "weight_loads": {r.worker: r.weight_loads for r in results}},
    }
    if gops:
        extra["gops"] = sorted(gops, key=lambda g: g["frame"])
        extra["probe_seconds"] = sum(r.summary_extra.get("probe_seconds", 0.0) for r in results)
    psnr_base = [s.psnr_base for s in stats if s.psnr_base is not None]
    psnr_full = [s.psnr_full for s in stats if s.psnr_full is not None]
    return EncodeSummary(
        frames=len(stats), fps=float(info.fps),
        base_bytes=w.bytes_per_layer.get(BASE_LAYER, 0),
        enh_bytes=w.bytes_per_layer.get(ENHANCEMENT_LAYER, 0),
        stream_bytes=w.bytes_written, seconds=seconds, base_mode=layers[BASE_LAYER].kind,
        base_model=layers[BASE_LAYER].codec, enh_codec=options.enh_codec,
        psnr_base=mean_psnr(psnr_base) if options.psnr else None,
        psnr_full=mean_psnr(psnr_full) if options.psnr else None,
        psnr_full_yuv=None, enh_content=enh.kind if enh is not None else "", extra=extra,
    )


def encode_parallel(
    output: OutputTarget,
    spec: InputSpec,
    info: VideoInfo,
    options: EncodeOptions,
    *,
    workers: int | None = None,
    address: str | None = None,
    gops_per_task: int = 1,
    on_gop: Callable[[GopResult], None] | None = None,
) -> EncodeSummary:
    """Encode ``spec`` GOP-parallel into ``output`` (a path is written atomically); returns the summary."""
    if not info.num_frames:
        raise ConfigError(f"{spec.path}: the frame count is unknown; GOP-parallel encoding needs it "
                          "(give --frames N)")
    tasks = gop_tasks(spec, info, options, gops_per_task=gops_per_task)
    t0 = time.perf_counter()
    sink = AtomicOutput(output, what="encode output")
    results: list[GopResult] = []
    try:
        merger = GopMerger(sink.stream)
        waiting: dict[int, GopResult] = {}
        with RayExecutor(workers, address) as ex:
            parallelism = ex.parallelism
            for i, res in ex.map_unordered(encode_gop, tasks, GopTask.describe):
                assert isinstance(res, GopResult)  # errors raise (keep_going is off)
                waiting[i] = res
                results.append(res)
                while merger.gops in waiting:  # in GOP order, as soon as the next one is in
                    merger.add(waiting.pop(merger.gops))
                if on_gop is not None:
                    on_gop(res)
        merger.close()
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return summarize(results, merger, info, options, time.perf_counter() - t0, parallelism)
