"""``vcodec bench``: speed and memory of every vcodec stage beside x265 on the same clip, same run.

Stages (each timed over all frames, models loaded and warmed up beforehand; every stage runs
``repeat`` times and reports its median run, with every run in ``runs_seconds``):

* ``base_encode``: learned base layer, frame -> payload (what analytics-only streams and the
  default stream's full-frame GOPs run: they never synthesise a base picture);
* ``base_encode_picture``: the same plus x_base = g_s(y_hat), the base picture a residual GOP's
  enhancement layer predicts from;
* ``enh_encode``: enhancement layer, residual x - x_base coded by the enhancement encoder;
* ``base_decode``: payload -> y_hat alone (entropy decoding and the temporal prediction: what
  ``base_decode_detect`` spends before the detector);
* ``base_decode_detect``: analytics path, payload -> y_hat -> T(y_hat) -> detector back end (no pixels);
* ``full_decode``: payload -> x_base, enhancement packets -> residual, x_hat = x_base + residual;
* ``x265_encode`` / ``x265_decode``: single-layer x265 of the input at the same QP, preset and
  intra period (the conventional codec the scalable one must be measured against);
* ``x265_decode_detect``: the conventional analytics path, x265 decode + the full detector on pixels;
* ``stream_encode`` / ``stream_decode``: the whole codec as users run it: ``Encoder`` with its
  defaults (``inter_layer="auto"``: the mode per GOP, probes included; model loading not
  counted) and ``Decoder.frames()`` of that stream (which skips the base layer in full-frame
  GOPs); the report's ``stream_gops`` says which mode each GOP got;
* ``stream_encode_serial``: the same ``Encoder`` with ``overlap=False`` (layer 1 in the caller's
  thread instead of beside the base layer), so the report shows what the overlap buys in the
  same run; ``stream_encode_detail`` has both runs' probe seconds and whether the streams match.

Ratios (``ratios``): vcodec time / x265 time for encoding (base with its picture +
enhancement vs x265; the base layer's payload alone vs x265), full decoding, and
analytics (base decode + back end vs x265 decode + whole detector).  Below 1 vcodec
is faster.

Peak memory: the process's peak resident set (VmHWM) reset before each stage
(Linux ``/proc/self/clear_refs``), so each figure is the peak *during* that
stage including what was already resident (models, frames; ``start_rss_mib`` is
the resident set when the stage began, so the difference is what the stage
itself added); where the reset is not available, ``memory_method`` says the
figure is the peak so far.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vcodec.errors import ConfigError, EncoderError, InputError

if TYPE_CHECKING:
    from vcodec.baselayer.geometry import BaseGeometry

__all__ = ["run_bench", "STAGES", "BENCH_SCHEMA_VERSION"]

#: 2: ``--repeat``: each stage runs ``repeat`` times and reports the median (``runs_seconds``);
#: 3: ``base_encode`` codes the payload only, ``base_encode_picture`` adds x_base; ``base_decode``
BENCH_SCHEMA_VERSION = 3
STAGES = (
    "base_encode",
    "base_encode_picture",
    "enh_encode",
    "base_decode",
    "base_decode_detect",
    "full_decode",
    "x265_encode",
    "x265_decode",
    "x265_decode_detect",
    "stream_encode",
    "stream_encode_serial",
    "stream_decode",
)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets the peak RSS counter (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _timed(n: int, fn: Callable[..., Any], repeat: int = 1,
           setup: Callable[[], Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Run ``fn`` ``repeat`` times (``fn(setup())`` when a ``setup`` is given, untimed) and report
    the median run: on a shared machine one run's time is as much the neighbours' as ours."""
    start_rss = _rss_mib()
    reset = _reset_peak()
    runs: list[float] = []
    result: Any = None
    for _ in range(repeat):
        state = setup() if setup is not None else None
        t0 = time.perf_counter()
        result = fn(state) if setup is not None else fn()
        runs.append(time.perf_counter() - t0)
    dt = statistics.median(runs)
    return {
        "seconds": dt,
        "frames_per_s": n / dt if dt > 0 else float("inf"),
        "ms_per_frame": 1000.0 * dt / n,
        "runs_seconds": [round(r, 6) for r in runs],
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "start_rss_mib": round(start_rss, 1),
        "peak_reset": reset,
    }, result


def run_bench(
    input: str | Path,
    *,
    frames: int | None = 30,
    start: int = 0,
    size: tuple[int, int] | None = None,
    base_model: str | None = None,
    base_quality: float | None = None,
    detector_weights: str | None = None,
    qp: int = 32,
    codec: str = "libx265",
    preset: str = "medium",
    intra_period: int = 32,
    threads: int = 1,
    base_effort: str = "fast",
    repeat: int = 3,
) -> dict[str, Any]:
    """Measure every stage on the first ``frames`` frames of ``input``; returns the JSON report.

    Every stage runs ``repeat`` times; its time is the median run."""
    import av
    import torch

    from vcodec import __version__
    from vcodec.codec.base_layer import get_base_factory, kind_for_mode
    from vcodec.detection import detect_frames
    from vcodec.enhancement import EnhancementDecoder, EnhancementEncoder, reconstruct
    from vcodec.io import open_video

    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if repeat < 1:
        raise ConfigError(f"repeat must be >= 1, got {repeat}")
    torch.set_num_threads(threads)
    with open_video(input, size=size, start=start, frames=frames) as reader:
        clip = list(reader)
        info = reader.info
    if not clip:
        raise InputError(f"{input}: no frames to benchmark")
    n = len(clip)
    base = get_base_factory(kind_for_mode("learned")).for_encoding(base_model, effort=base_effort)
    detector = base.build_detector(detector_weights)
    if base_quality is None:
        base_quality = base.default_quality
    # warm-up: first calls pay for allocations and lazy initialisation, not for coding
    warm = base.encoder(base_quality, intra_period)
    payload, _ = warm.encode_frame(clip[0], True)
    wdec = base.decoder()
    # the geometry casts: the base decoders set last_geometry on every decoded frame
    base.detect(wdec.decode_frame(payload, True), detector, cast("BaseGeometry", wdec.last_geometry))
    detector.detect(clip[0], mode="pad")

    def enc_settings(anchor: bool) -> dict[str, Any]:
        return dict(
            bit_depth=clip[0].bit_depth,
            fps=info.fps,
            codec=codec,
            qp=qp,
            preset=preset,
            intra_period=intra_period,
            threads=threads,
            anchor=anchor,
        )

    stages: dict[str, dict[str, float]] = {}

    def base_encode(picture: bool) -> tuple[list[tuple[bool, bytes]], list[Any]]:
        enc = base.encoder(base_quality, intra_period)
        units: list[tuple[bool, bytes]] = []
        bases: list[Any] = []
        for f in clip:
            intra = f.index % intra_period == 0 or not units
            p, xb = enc.encode_frame(f, intra, picture=picture)
            units.append((intra, p))
            bases.append(xb)
        return units, bases

    stages["base_encode"], (units, _) = _timed(n, lambda: base_encode(False), repeat)
    stages["base_encode_picture"], (units_p, bases) = _timed(n, lambda: base_encode(True), repeat)
    if units_p != units:  # the picture is an output, never an input to the coding decisions
        raise EncoderError("the base payloads differ with and without the base picture")

    def enh_encode() -> tuple[Any, ...]:
        with EnhancementEncoder(clip[0].width, clip[0].height, **enc_settings(False)) as enc:
            packets = []
            for f, xb in zip(clip, bases, strict=True):
                packets += enc.encode(f, xb)
            packets += enc.flush()
            return enc.config(), enc.extradata, packets

    stages["enh_encode"], (enh_cfg, enh_extra, enh_packets) = _timed(n, enh_encode, repeat)

    def base_decode() -> int:
        dec = base.decoder()
        for intra, p in units:
            dec.decode_frame(p, intra)
        return len(units)

    stages["base_decode"], _ = _timed(n, base_decode, repeat)

    def base_decode_detect() -> int:
        dec = base.decoder()
        found = 0
        for intra, p in units:
            found += len(base.detect(dec.decode_frame(p, intra), detector,
                                     cast("BaseGeometry", dec.last_geometry)))
        return found

    stages["base_decode_detect"], _ = _timed(n, base_decode_detect, repeat)

    def full_decode() -> int:
        dec = base.decoder()
        xbs = []
        for f, (intra, p) in zip(clip, units, strict=True):
            state = dec.decode_frame(p, intra)
            xbs.append(
                base.reconstruct(
                    state, cast("BaseGeometry", dec.last_geometry), bit_depth=f.bit_depth, matrix=f.matrix,
                    index=f.index,
                )
            )
        out = 0
        with EnhancementDecoder(codec, enh_cfg, enh_extra, threads=threads) as edec:
            residuals = [r for p in enh_packets for r in edec.decode(p)] + edec.flush()
        for k, r in residuals:
            reconstruct(xbs[k], r, index=k)
            out += 1
        return out

    stages["full_decode"], _ = _timed(n, full_decode, repeat)

    def x265_encode() -> tuple[Any, ...]:
        with EnhancementEncoder(clip[0].width, clip[0].height, **enc_settings(True)) as enc:
            packets = []
            for f in clip:
                packets += enc.encode(f, None)
            packets += enc.flush()
            return enc.config(), enc.extradata, packets

    stages["x265_encode"], (a_cfg, a_extra, a_packets) = _timed(n, x265_encode, repeat)

    def x265_decode() -> list[Any]:
        with EnhancementDecoder(codec, a_cfg, a_extra, threads=threads) as dec:
            pics = [r for p in a_packets for r in dec.decode(p)] + dec.flush()
        return [reconstruct(None, r, index=k) for k, r in pics]

    stages["x265_decode"], _ = _timed(n, x265_decode, repeat)

    def x265_decode_detect() -> int:
        return sum(len(d) for _, d in detect_frames(detector, x265_decode(), mode="pad"))

    stages["x265_decode_detect"], _ = _timed(n, x265_decode_detect, repeat)

    import io

    from vcodec.codec import Decoder, Encoder

    def stream_encoder(overlap: bool) -> tuple[Encoder, io.BytesIO]:
        sink = io.BytesIO()
        return Encoder(sink, info, base_model=base_model, base_quality=base_quality, enh_codec=codec,
                       enh_qp=qp, preset=preset, intra_period=intra_period, threads=threads,
                       overlap=overlap, base_effort=base_effort), sink

    def stream_encode(enc: Encoder, sink: io.BytesIO) -> bytes:
        with enc:
            for f in clip:
                enc.encode(f)
        return sink.getvalue()

    # each Encoder loads its model before its run (not timed), as users' encoders do
    made: dict[bool, Encoder] = {}

    def new_encoder(overlap: bool) -> tuple[Encoder, io.BytesIO]:
        enc, sink = stream_encoder(overlap)
        made[overlap] = enc
        return enc, sink

    stages["stream_encode"], stream = _timed(n, lambda es: stream_encode(*es), repeat,
                                             lambda: new_encoder(True))
    stages["stream_encode_serial"], serial = _timed(n, lambda es: stream_encode(*es), repeat,
                                                    lambda: new_encoder(False))
    enc, enc_serial = made[True], made[False]
    gops = enc.summary().extra.get("gops", [])
    stream_gops = "".join("R" if g["mode"] == "residual" else "F" for g in gops)
    stream_detail = {
        "overlap_probe_seconds": round(enc.summary().extra.get("probe_seconds", 0.0), 4),
        "serial_probe_seconds": round(enc_serial.summary().extra.get("probe_seconds", 0.0), 4),
        "same_stream": stream == serial,
    }
    decoders: list[Decoder] = []

    def new_decoder() -> Decoder:  # loads the model: not timed
        decoders.append(Decoder(stream, base_model=base_model, threads=threads))
        return decoders[-1]

    stages["stream_decode"], _ = _timed(n, lambda d: sum(1 for _ in d.frames()), repeat, new_decoder)
    for d in decoders:
        d.close()

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b > 0 else float("nan")

    s = {k: v["seconds"] for k, v in stages.items()}
    fps = float(info.fps)
    base_bytes = sum(len(p) for _, p in units)
    enh_bytes = sum(len(p.data) for p in enh_packets)
    x265_bytes = sum(len(p.data) for p in a_packets)
    return {
        "schema_version": BENCH_SCHEMA_VERSION,
        "input": str(input),
        "frames": n,
        "size": [clip[0].width, clip[0].height],
        "fps": fps,
        "settings": {
            "base_model": base.codec_id,
            "base_model_sha256": base.sha256,
            "base_quality": base_quality,
            "base_effort": base_effort,
            "detector": detector.name,
            "codec": codec,
            "qp": qp,
            "preset": preset,
            "intra_period": intra_period,
            "threads": threads,
            "repeat": repeat,
        },
        "provenance": {
            "vcodec_version": __version__,
            "torch": torch.__version__,
            "pyav": av.__version__,
            "libavcodec": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "stages": {
            k: {kk: (round(vv, 6) if isinstance(vv, float) else vv) for kk, vv in v.items()}
            for k, v in stages.items()
        },
        "kbps": {
            "base": base_bytes * 8 * fps / n / 1000,
            "enh": enh_bytes * 8 * fps / n / 1000,
            "x265": x265_bytes * 8 * fps / n / 1000,
        },
        "ratios": {
            "encode_vs_x265": ratio(s["base_encode_picture"] + s["enh_encode"], s["x265_encode"]),
            "base_encode_vs_x265": ratio(s["base_encode"], s["x265_encode"]),
            "full_decode_vs_x265": ratio(s["full_decode"], s["x265_decode"]),
            "analytics_vs_x265_decode_detect": ratio(s["base_decode_detect"], s["x265_decode_detect"]),
            "stream_encode_vs_x265": ratio(s["stream_encode"], s["x265_encode"]),
            "stream_decode_vs_x265": ratio(s["stream_decode"], s["x265_decode"]),
        },
        "stream_gops": stream_gops,
        "stream_encode_detail": stream_detail,
        "memory_method": (
            "peak RSS (VmHWM) reset before each stage"
            if all(v["peak_reset"] for v in stages.values())
            else "peak RSS of the process so far (reset unavailable)"
        ),
    }
