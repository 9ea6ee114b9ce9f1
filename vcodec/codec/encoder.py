"""The end-to-end encoder: one stream, base layer (machines) + enhancement layer (people).

For every frame it writes the base unit (layer 0) and then whatever
enhancement packets (layer 1) the conventional encoder has ready, and flushes
the sink, so a reader on a pipe sees each base unit as soon as it is coded.
Intra frames are the frames with ``index % intra_period == 0`` in both layers.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from vcodec._atomic import AtomicOutput, OutputTarget
from vcodec.baselayer.protocol import BaseLayer, get_base_factory, kind_for_mode
from vcodec.bitstream import (
    BASE_LAYER,
    ENHANCEMENT_LAYER,
    LayerConfig,
    SequenceHeader,
    StreamWriter,
    UnitType,
)
from vcodec.bitstream.gop import (
    FULL_FRAME,
    PER_GOP_KIND,
    PER_GOP_MINOR,
    RESIDUAL,
    GopRecord,
    per_gop_params,
)
from vcodec.codec.lane import EnhancementLane
from vcodec.codec.pipeline import LayerOverlap
from vcodec.codec.probe import (  # the probe's names stay importable from here
    DB_PER_RATE_DOUBLING,
    PROBE_MARGIN,
    ProbePicture,
    choose_inter_layer,
    probe_picture,
)
from vcodec.codec.ratecontrol import BaseRateController
from vcodec.codec.stats import EncodeSummary, FrameStats, mean_psnr
from vcodec.errors import ConfigError, EncoderError, InputError
from vcodec.io.frame import Frame, VideoInfo

if TYPE_CHECKING:
    from vcodec.detection.base import SplitDetector

__all__ = ["Encoder", "OutputTarget", "choose_inter_layer", "DB_PER_RATE_DOUBLING", "PROBE_MARGIN"]


class Encoder:
    """Encode frames into a two-layer vcodec stream.

    >>> with Encoder("out.vcs", reader.info) as enc:
    ...     for frame in reader:
    ...         stats = enc.encode(frame)
    >>> print(enc.summary().lines())

    ``output``: a path (written to a temporary name and renamed when the
    encoder closes without error; nothing is left behind on error), ``"-"``
    (stdout) or a binary file object.  ``info``: the video's size, rate, bit
    depth and colour matrix (e.g. ``reader.info``).

    Base layer: ``base_model`` (a registered id such as ``base-yolox-nano-v3``
    or a ``.json``/``.pt`` path; default: the shipped YOLOX-Nano model),
    ``base_quality`` in [0, 1], ``base_effort`` (``"fast"``: a motion vector
    searched per block of P-frame latents; ``"slow"``: also intra latents
    refined before coding, gain and time measured by tools/bench_effort.py;
    ``"faster"``: no motion search, payload version 2), ``base_p_offset`` (what P-frames add
    to the base quality; None: the mode's default, -0.2), ``base_deadzone`` (the P-frames' temporal
    dead zone in quantisation steps; None: the mode's default, 0.55; 0 = off), ``base_tune``
    (``"default"``, ``"fixed-camera"``: the dead zone at 0.75, ``"moving-camera"``: P-frames 0.1
    below their intra frame, no dead zone, 2x2 skip blocks; ``base_p_offset`` and ``base_deadzone``
    override it), ``base_kbps`` (rate control: the quality of each frame is chosen to hold the
    base layer near this rate, ``base_quality`` is where it starts; see
    :mod:`vcodec.codec.ratecontrol`), ``base_size`` (the working size: long side in pixels the
    base layer and its detector work at; None = the model's, 832), ``base_mode`` ``"learned"`` or
    ``"features"`` (training-free; the enhancement layer then codes full frames).

    Enhancement layer: ``enh_codec`` (libx265, libx264, libsvtav1,
    libvpx-vp9), ``enh_qp`` or ``enh_crf``, ``preset``, ``low_delay``,
    ``lossless`` (bit-exact full decode with libx265/x264), ``roi`` (only
    regions the base-layer detector finds get a residual;
    ``detector_weights`` for detectors without shipped weights),
    ``inter_layer``: ``True`` (default) codes the residual over the base
    picture; ``False`` codes the full frames instead, in the same stream (no
    inter-layer prediction, as an SHVC enhancement layer may choose);
    ``"auto"`` (default) decides per intra period (GOP): it codes each GOP's
    first frame as one intra picture both ways and keeps the cheaper at equal
    PSNR-Y (:func:`choose_inter_layer`); each GOP's mode is an ``ENH_GOP``
    unit in the stream (format 1.1, :mod:`vcodec.bitstream.gop`) and the
    probes are in ``summary().extra["gops"]``.  The residual only pays off
    when the base picture is a good predictor: with the shipped base models
    it is not (docs/CODEC.md), so ``"auto"`` picks full frames and a viewer
    pays about simulcast.  With ``roi`` (residual inside objects) or without
    a base picture, ``"auto"`` is the one mode that fits.

    ``intra_period``: frames with ``index % intra_period == 0`` are intra in
    both layers.  ``threads``: torch CPU threads and encoder threads (0 =
    leave as is).  ``psnr``: also decode the enhancement packets to measure
    the full picture's PSNR (costs a decoder).

    GOP-parallel encoding (:mod:`vcodec.cluster`): ``closed_gops`` restarts the
    enhancement encoder at every intra frame, so that each intra period is an
    IDR-started closed GOP in both layers (recorded as ``"closed_gops": true``
    in the sequence header's properties); ``first_frame`` (a multiple of
    ``intra_period``, with ``closed_gops``) numbers the frames from there, so
    an encoder given one GOP writes the same units as the serial encoder does
    for it; ``base_layer``: an already loaded base layer (weights loaded once
    per worker process) instead of ``base_model``.

    ``overlap`` (default True): where layer 1 does not need the frame's base
    picture (full-frame GOPs, the full-frame half of the probe), it is coded in
    a second thread while the base layer codes the frame
    (:mod:`vcodec.codec.pipeline`); the stream is the same byte for byte as with
    ``overlap=False`` (everything in the caller's thread).  The base picture
    (g_s) is only made for frames whose layer 1 uses it (residual GOPs, probes,
    ``psnr``).
    """

    def __init__(
        self,
        output: OutputTarget,
        info: VideoInfo,
        *,
        base_model: str | None = None,
        base_quality: float | None = None,
        base_size: int | None = None,
        base_kbps: float | None = None,
        base_effort: str = "fast",
        base_p_offset: float | None = None,
        base_deadzone: float | None = None,
        base_tune: str = "default",
        base_mode: str = "learned",
        enh_codec: str = "libx265",
        enh_qp: int | None = None,
        enh_crf: float | None = None,
        preset: str | int | None = None,
        intra_period: int = 32,
        low_delay: bool = False,
        lossless: bool = False,
        roi: bool = False,
        threads: int = 0,
        psnr: bool = False,
        detector_weights: str | Path | None = None,
        properties: dict[str, Any] | None = None,
        inter_layer: bool | str = "auto",
        closed_gops: bool = False,
        first_frame: int = 0,
        base_layer: BaseLayer | None = None,
        overlap: bool = True,
    ) -> None:
        from vcodec import __version__
        from vcodec.enhancement import CODECS

        t0 = time.perf_counter()
        if not isinstance(info, VideoInfo):
            raise ConfigError(f"info must be a VideoInfo (e.g. reader.info), got {type(info).__name__}")
        if (
            isinstance(intra_period, bool)
            or not isinstance(intra_period, int)
            or not 1 <= intra_period <= 0xFFFF
        ):
            raise ConfigError(
                f"intra_period={intra_period!r} is invalid; use an integer in 1..65535 (32 is usual)"
            )
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"threads={threads!r} is invalid; use 0 (leave as is) or a positive count")
        if base_quality is not None and (
            isinstance(base_quality, bool)
            or not isinstance(base_quality, (int, float))
            or not 0.0 <= float(base_quality) <= 1.0
        ):
            raise ConfigError(f"base_quality={base_quality!r} is out of range; use a number in [0, 1]")
        if enh_codec not in CODECS:
            raise ConfigError(f"unknown enhancement codec {enh_codec!r}; use one of {', '.join(CODECS)}")
        if info.bit_depth not in (8, 10):
            raise InputError(f"{info.source or 'input'}: {info.bit_depth}-bit video is not supported by the "
                             "enhancement layer; convert it to 8 or 10 bits (--bit-depth)")
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.info = info
        self.intra_period = intra_period
        self.kind = kind_for_mode(base_mode)
        if base_size is not None:
            long_side = max(info.width, info.height)
            if (
                isinstance(base_size, bool)
                or not isinstance(base_size, int)
                or not 64 <= base_size <= long_side
            ):
                raise ConfigError(
                    f"base_size={base_size!r} is invalid for {info.width}x{info.height} input; use a "
                    f"long side in pixels from 64 to {long_side} (the source's own size)"
                )
        self.base_size = base_size
        if isinstance(first_frame, bool) or not isinstance(first_frame, int) or first_frame < 0 or (
                first_frame and (not closed_gops or first_frame % intra_period)):
            raise ConfigError(f"first_frame={first_frame!r} is invalid; use 0, or a multiple of intra_period "
                              f"({intra_period}) with closed_gops=True")
        self.closed_gops = bool(closed_gops)
        self._first_frame = first_frame
        if base_layer is None:
            base_layer = get_base_factory(self.kind).for_encoding(
                base_model, base_size, base_effort, p_offset=base_p_offset, p_deadzone=base_deadzone,
                tune=base_tune)
        self.base: BaseLayer = base_layer
        # None: the model's own operating point (quality scales differ between models)
        self.base_quality = float(self.base.default_quality if base_quality is None else base_quality)
        if detector_weights is not None:
            self.base.set_detector_weights(detector_weights)
        self.has_picture = bool(self.base.has_picture)
        self._rate: BaseRateController | None = None
        if base_kbps is not None:
            if not self.base.variable_quality:
                raise ConfigError(f"base_kbps needs a base mode whose quality can change per frame; "
                                  f"{base_mode!r} codes one quality per stream (use base_mode='learned')")
            self._rate = BaseRateController(base_kbps, float(info.fps), intra_period, self.base_quality)
        if roi and not self.has_picture:
            raise ConfigError(f"roi needs a base picture to add the residual to; base mode {base_mode!r} has "
                              "none (use base_mode='learned')")
        if not (isinstance(inter_layer, bool) or inter_layer == "auto"):
            raise ConfigError(
                f"inter_layer={inter_layer!r} is invalid; use True (residual), False (full frames) or 'auto'"
            )
        if roi and inter_layer is False:
            raise ConfigError("roi suppresses the residual outside objects, so it needs inter_layer=True")
        from vcodec.enhancement.codecs import get_spec

        # "auto" decides per GOP; it needs a base picture and a full-frame mode to compare (roi is a
        # residual tool: with it "auto" means the residual)
        self.per_gop = (inter_layer == "auto" and self.has_picture and not roi
                        and info.bit_depth in get_spec(enh_codec).anchor_depths)
        #: the enhancement codes x - x_base (True) or the full frames x (False); per GOP: the current GOP's
        self.inter_layer: bool = self.has_picture and inter_layer is not False
        #: per-GOP mode: one record per GOP with the probe's numbers (bytes, PSNR-Y, seconds, choice)
        self.gops: list[dict[str, Any]] = []
        self._probe_seconds = 0.0
        self.roi = bool(roi)
        self._detector = self.base.build_detector(detector_weights) if roi else None
        self._enh_kwargs: dict[str, Any] = dict(
            bit_depth=info.bit_depth, fps=info.fps, codec=enh_codec, qp=enh_qp, crf=enh_crf, preset=preset,
            low_delay=low_delay, intra_period=intra_period, lossless=lossless, threads=threads,
        )
        self.enh_codec = enh_codec
        self._psnr = bool(psnr)
        self._lane = EnhancementLane(info.width, info.height, self._enh_kwargs, self._psnr)
        self._overlap = LayerOverlap(overlap)
        # settings errors surface here, before any file exists
        self._lanes: dict[str, tuple[dict[str, Any], bytes]] = {}
        if self.per_gop:  # the running encoder is opened by the first GOP's probe
            self._lanes = {mode: self._lane.configs(mode == RESIDUAL) for mode in (RESIDUAL, FULL_FRAME)}
        else:
            self._lane.open(self.inter_layer, first_frame)
        props: dict[str, Any] = {
            "encoder": "vcodec", "vcodec_version": __version__, "intra_period": intra_period,
            "base_mode": self.kind, "source": Path(info.source).name if info.source else "",
        }
        props.update(properties or {})
        if self.closed_gops:  # every intra period is an IDR-started closed GOP in both layers
            props["closed_gops"] = True
        self._header = SequenceHeader(
            info.width, info.height, Fraction(info.fps), info.bit_depth, info.matrix, False, intra_period,
            info.num_frames, props,
        )
        self._header.validate()
        self._psnr_base: list[float] = []
        self._count = first_frame
        self._closed = False
        self._base_seconds = 0.0  # the base layer's share of the frame being coded (probe_s)
        # modes that derive their stream parameters from the first frames (the feature mode's
        # clipping ranges) see those frames before the header is written
        self._calibrating = bool(self.base.needs_calibration)
        self._calib_frames: list[Frame] = []
        self._calib_count = max(1, int(self.base.calibration_frames))
        self._base_enc: Any = None
        if not self._calibrating:
            self._base_enc = self.base.encoder(self.base_quality, intra_period)
            self._check_layers()
        self._sink = AtomicOutput(output, what="Encoder output")
        self._writer: Any = None
        try:
            if not self._calibrating:
                self._start_stream()
        except BaseException:
            self._sink.abort()
            raise
        # model loading is reported apart: encode fps is the steady-state speed
        self.setup_seconds = time.perf_counter() - t0
        self._seconds = 0.0

    def _probe_gop(self, frame: Frame, index: int, intra: bool) -> tuple[bytes, Frame | None, GopRecord]:
        """A GOP's first frame: base layer, probe both modes (the full-frame half beside the base layer)."""
        t0 = time.perf_counter()

        def base_then_residual() -> tuple[bytes, Frame | None, ProbePicture]:
            payload, x_base = self._base_frame(frame, index, intra, True)
            return payload, x_base, probe_picture(frame, x_base, self._enh_kwargs)

        full, (payload, x_base, residual) = self._overlap.run(
            lambda: probe_picture(frame, None, self._enh_kwargs), base_then_residual)
        probe: dict[str, Any] = {"residual_bytes": residual.bytes, "residual_psnr_y": residual.psnr_y,
                                 "full_frame_bytes": full.bytes, "full_frame_psnr_y": full.psnr_y}
        # looked up here (not in the probe module) so that tests can force the decision
        predict = choose_inter_layer(residual.bytes, residual.psnr_y, full.bytes, full.psnr_y,
                                     margin=PROBE_MARGIN)
        probe["mode"] = RESIDUAL if predict else FULL_FRAME
        # the probe's time: what the frame took beyond its base layer (the part it added)
        seconds = time.perf_counter() - t0 - self._base_seconds
        self._probe_seconds += seconds
        self.gops.append({"frame": index, **probe, "probe_s": round(seconds, 4)})
        record = GopRecord(index, probe["mode"])
        lane = self._lane
        if lane.enc is None or lane.predict != record.predicts or self.closed_gops:
            # a GOP is closed: the old encoder's last frames go out before the new GOP's base unit
            if self.closed_gops:
                lane.restart(self._writer, record.predicts, index)
            else:
                lane.finish(self._writer)
                lane.open(record.predicts, index)
        self.inter_layer = record.predicts
        return payload, x_base, record

    def _enh_params(self) -> dict[str, Any]:
        """A fixed-mode layer 1's parameters: the encoder's settings, and what it codes."""
        # whether the base layer carries a picture; params["anchor"] says what the enhancement
        # codes: full frames (no base picture, or inter-layer prediction off) or the residual
        return self._lane.config() | {"base_picture": self.has_picture, "roi": self.roi}

    def _layers(self) -> list[LayerConfig]:
        base_params = self.base.layer_config(self.base_quality, self.intra_period)
        if self._rate is not None:  # informational: every payload carries its own quality
            base_params["rate_control"] = {"target_kbps": self._rate.kbps}
        if self.per_gop:
            enh = LayerConfig(ENHANCEMENT_LAYER, PER_GOP_KIND, self.enh_codec, b"",
                              per_gop_params(self._lanes, base_picture=True, roi=False), b"")
        else:
            enh = LayerConfig(
                ENHANCEMENT_LAYER,
                "residual" if self.inter_layer else "full-frame",
                self.enh_codec,
                b"",
                self._enh_params(),
                self._lane.extradata,
            )
        return [
            LayerConfig(BASE_LAYER, self.kind, self.base.codec_id,
                        bytes.fromhex(self.base.sha256) if self.base.sha256 else b"", base_params),
            enh,
        ]

    def _check_layers(self) -> None:
        for cfg in self._layers():
            cfg.to_bytes()  # validate before any file exists

    def _start_stream(self) -> None:
        # per-GOP streams are format 1.1 (ENH_GOP units); the others stay 1.0, byte for byte as before
        self._writer = StreamWriter(self._sink.stream, self._header, self._layers(),
                                    minor=PER_GOP_MINOR if self.per_gop else 0)
        self._sink.flush()

    def _finish_calibration(self) -> list[FrameStats]:
        """Calibrate on the buffered frames, write the headers, code the buffered frames."""
        self.base.calibrate(self._calib_frames)
        self._base_enc = self.base.encoder(self.base_quality, self.intra_period)
        self._calibrating = False
        self._start_stream()
        frames, self._calib_frames = self._calib_frames, []
        return [self._encode(f) for f in frames]

    # -- context -----------------------------------------------------------------
    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.close()
        else:
            self.abort()

    # -- coding ------------------------------------------------------------------
    @property
    def frames_encoded(self) -> int:
        """Frames given to encode() so far (including frames held for calibration)."""
        return self._count - self._first_frame + len(self._calib_frames)

    def encode(self, frame: Frame) -> FrameStats:
        """Code one frame (frames are numbered from 0 in the order given)."""
        if self._closed:
            raise EncoderError("the encoder is closed; create a new one for more frames")
        if not isinstance(frame, Frame):
            raise InputError(f"encode() needs a vcodec Frame, got {type(frame).__name__}")
        info = self.info
        if (frame.width, frame.height) != (info.width, info.height) or frame.bit_depth != info.bit_depth:
            raise InputError(
                f"frame {self._count} is {frame.width}x{frame.height} {frame.bit_depth}-bit but the stream "
                f"was set up for {info.width}x{info.height} {info.bit_depth}-bit (VideoInfo)"
            )
        t0 = time.perf_counter()
        try:
            if self._calibrating:
                # the stream cannot start before calibration: hand back placeholder stats
                self._calib_frames.append(frame)
                stats = FrameStats(self._count + len(self._calib_frames) - 1, False, 0, 0)
                if len(self._calib_frames) >= self._calib_count:
                    stats = self._finish_calibration()[-1]
            else:
                stats = self._encode(frame)
        except BaseException:
            self.abort()
            raise
        self._seconds += time.perf_counter() - t0
        return stats

    def _base_frame(self, frame: Frame, index: int, intra: bool, picture: bool) -> tuple[bytes, Frame | None]:
        """The base layer's payload and, when ``picture`` (and the mode has one), x_base."""
        t0 = time.perf_counter()
        if self._rate is not None:
            self._base_enc.set_quality(self._rate.next_quality(index))
        payload, x_base = self._base_enc.encode_frame(frame, intra, picture=picture)
        if self._rate is not None:
            self._rate.update(intra, 8 * len(payload))
        if picture and self.has_picture and x_base is None:
            raise EncoderError(f"base mode {self.kind} gave no picture for frame {index}")
        self._base_seconds = time.perf_counter() - t0
        return payload, x_base

    def _encode(self, frame: Frame) -> FrameStats:
        from vcodec.enhancement import frame_psnr

        index = self._count
        intra = index % self.intra_period == 0
        if self.closed_gops and intra and index != self._first_frame:
            # a fresh base encoder: its encoder-side state (e.g. the skip-share estimate) would
            # otherwise carry over from the previous GOP and tie the GOPs together
            self._base_enc = self.base.encoder(self.base_quality, self.intra_period)
        lane, gop, packets = self._lane, None, None
        # g_s only where layer 1 (or the PSNR report) uses the base picture
        picture = self._psnr or self.inter_layer
        if self.per_gop and intra:
            payload, x_base, gop = self._probe_gop(frame, index, intra)
        elif not self.inter_layer and not (intra and self.closed_gops):
            # layer 1 codes this frame whole: x265 beside the base layer (same units, same order)
            packets, (payload, x_base) = self._overlap.run(
                lambda: lane.encode(index, frame, None),
                lambda: self._base_frame(frame, index, intra, picture),
            )
        else:
            payload, x_base = self._base_frame(frame, index, intra, picture)
            if self.closed_gops and intra and not self.per_gop and index != self._first_frame:
                lane.restart(self._writer, self.inter_layer, index)
        self._writer.write_frame_unit(
            UnitType.BASE_FRAME, BASE_LAYER, frame=index, payload=payload, intra=intra
        )
        if gop is not None:  # right after the base unit: a reader seeking to this intra frame sees it
            self._writer.write_frame_unit(UnitType.ENH_GOP, ENHANCEMENT_LAYER, frame=index,
                                          payload=gop.to_payload(), intra=True)
        if packets is None:
            boxes = None
            if self.roi:
                dets = self.base.detect(  # roi: __init__ built self._detector
                    self._base_enc.last_decoded, cast("SplitDetector", self._detector),
                    self._base_enc.last_geometry,
                )
                boxes = [tuple(float(v) for v in b) for b in dets.boxes]
            packets = lane.encode(index, frame, x_base, boxes)
        enh_bytes = lane.write(self._writer, packets)
        self._sink.flush()  # pipes: the base unit reaches the reader now, not at the end
        self._count += 1
        stats = FrameStats(index, intra, len(payload), enh_bytes)
        if self._psnr:
            if x_base is not None:
                stats.psnr_base = frame_psnr(frame, x_base)[0]
                self._psnr_base.append(stats.psnr_base)
            if index in lane.psnr_full:
                stats.psnr_full = lane.psnr_full[index][0]
        return stats

    def close(self) -> None:
        """Flush the enhancement encoder, write the index and end units, and commit the file."""
        if self._closed:
            return
        t0 = time.perf_counter()
        try:
            if self._calibrating:
                if not self._calib_frames:
                    raise InputError("no frames were encoded; the feature base layer needs at least one "
                                     "frame to calibrate")
                self._finish_calibration()
            self._lane.finish(self._writer)  # nothing open: a per-GOP stream without frames
            self._overlap.close()
            self._writer.close()
            self._sink.commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._seconds += time.perf_counter() - t0

    def abort(self) -> None:
        """Stop without finishing: the output file (when a path) is removed."""
        if self._closed:
            return
        self._closed = True
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "closed with frames inside" is the point here
            self._lane.close()
        self._overlap.close()
        self._sink.abort()

    # -- reporting ---------------------------------------------------------------
    def summary(self) -> EncodeSummary:
        """Bytes and kbit/s per layer, frames, encoding speed, PSNR (with ``psnr=True``)."""
        w = self._writer
        if w is None:
            raise EncoderError("no stream yet: the base layer is still calibrating on the first frames")
        full = [v[0] for _, v in sorted(self._lane.psnr_full.items())]
        full_yuv = [v[1] for _, v in sorted(self._lane.psnr_full.items())]
        return EncodeSummary(
            frames=self._count - self._first_frame, fps=float(self.info.fps),
            base_bytes=w.bytes_per_layer.get(BASE_LAYER, 0),
            enh_bytes=w.bytes_per_layer.get(ENHANCEMENT_LAYER, 0),
            stream_bytes=w.bytes_written, seconds=self._seconds, base_mode=self.kind,
            base_model=self.base.codec_id, enh_codec=self.enh_codec,
            psnr_base=mean_psnr(self._psnr_base) if self._psnr else None,
            psnr_full=mean_psnr(full) if self._psnr else None,
            psnr_full_yuv=mean_psnr(full_yuv) if self._psnr else None,
            enh_content=PER_GOP_KIND if self.per_gop else ("residual" if self.inter_layer else "full-frame"),
            extra={"setup_seconds": self.setup_seconds}
            | ({"gops": [dict(g) for g in self.gops], "probe_seconds": self._probe_seconds}
               if self.per_gop else {})
            | ({"base_rate_control": self._rate.report().to_dict()} if self._rate is not None else {}),
        )
