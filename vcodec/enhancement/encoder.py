"""The enhancement encoder: residuals ``x - x_base`` (or full frames) into :class:`EnhancementPacket` s.

Stream contract
---------------
* Sequence header: ``codec_name``, :meth:`EnhancementEncoder.config` (a JSON
  object) and :attr:`EnhancementEncoder.extradata` (the encoder's parameter
  sets, available right after construction; empty for VP9).
* One unit per packet, in the order :meth:`~EnhancementEncoder.encode` and
  :meth:`~EnhancementEncoder.flush` return them (decode order), each with the
  packet's frame index (presentation index counting from 0), its keyframe flag
  and the packet's payload.

The payload layout is in :mod:`vcodec.enhancement.packet`, the stored
settings in :mod:`vcodec.enhancement.config`.

Time: vcodec numbers frames itself (pts = frame count, time base 1/fps);
whatever the encoder's delay, after :meth:`~EnhancementEncoder.flush` there is
exactly one packet per input frame and the decoder returns the frames in
presentation order with their indexes.

Keyframes: frames whose index is a multiple of ``intra_period`` are forced to
be IDR/key frames (closed GOP) and scene-cut detection is off, so the
enhancement layer's random-access points are exactly the base layer's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from fractions import Fraction
from types import TracebackType
from typing import Any, cast

import av
import numpy as np

from vcodec.enhancement.avframes import planes_to_avframe
from vcodec.enhancement.chroma import CHROMA_QP_TABLES
from vcodec.enhancement.codecs import SVT_LOSSLESS_MAX_PRESET, CodecSpec, get_spec, pix_fmt_for
from vcodec.enhancement.config import EnhancementConfig, check_fps, time_base
from vcodec.enhancement.mapping import compute_residual, map_residual
from vcodec.enhancement.packet import EnhancementPacket
from vcodec.enhancement.roi import apply_roi
from vcodec.errors import ConfigError, EncoderError, InputError
from vcodec.io.frame import Frame, require_same_format

__all__ = ["EnhancementEncoder", "encode_sequence", "DEFAULT_CRF"]

#: CRF used when neither ``qp`` nor ``crf`` is given (each encoder's usual default)
DEFAULT_CRF: dict[str, float] = {"libx265": 28.0, "libx264": 23.0, "libsvtav1": 35.0, "libvpx-vp9": 32.0}


class EnhancementEncoder:
    """Codes residuals ``x - x_base`` (or, with ``anchor=True``, full frames).

    Parameters
    ----------
    width, height:
        picture size (even).
    bit_depth:
        input depth, 8 or 10.
    fps:
        frame rate (timestamps are frame counts at this rate).
    codec:
        ``libx265`` (default), ``libx264``, ``libsvtav1`` or ``libvpx-vp9``.
    qp, crf:
        constant quantiser or constant rate factor (at most one; neither gives
        :data:`DEFAULT_CRF`).  Ranges: x264/x265 0..51, SVT-AV1/VP9 0..63.
    preset:
        an x264/x265 preset name (mapped onto SVT-AV1 presets and libvpx
        ``cpu-used``) or the encoder's own number; ``None`` = encoder default.
    low_delay:
        no B-frames / reordering and no look-ahead (zero-latency tune) so each
        frame's packet comes out as soon as it is encoded.
    intra_period:
        frames with ``index % intra_period == 0`` are key frames, no others.
    lossless:
        lossless coding (x265 ``lossless``, x264 QP 0, SVT-AV1 ``lossless``,
        VP9 ``lossless``); with libx265/x264/SVT-AV1 on 8-bit input the full
        decode is then bit-exact.
    threads:
        encoder threads, 0 = the encoder's choice.
    roi_margin:
        feather width in pixels around ROI boxes (see :mod:`vcodec.enhancement.roi`).
    anchor:
        code full frames at their own depth (the single-layer baseline):
        ``encode(x, None)``.  Otherwise every ``encode`` needs ``x_base``.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        bit_depth: int = 8,
        fps: Fraction | int | float | str = Fraction(30),
        codec: str = "libx265",
        qp: int | None = None,
        crf: float | None = None,
        preset: str | int | None = None,
        low_delay: bool = False,
        intra_period: int = 32,
        lossless: bool = False,
        threads: int = 0,
        roi_margin: float = 8.0,
        anchor: bool = False,
    ) -> None:
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % 2 or v > 16384:
                raise ConfigError(f"{name}={v!r} is invalid; 4:2:0 coding needs an even size in [2, 16384]")
        if bit_depth not in (8, 10):
            raise ConfigError(
                f"bit_depth={bit_depth!r} is not supported by the enhancement layer; use 8 or 10"
            )
        self.spec: CodecSpec = get_spec(codec)
        self.codec_name = codec
        self.width, self.height, self.bit_depth = width, height, bit_depth
        self.fps = check_fps(fps)
        self.anchor = bool(anchor)
        if (
            isinstance(intra_period, bool)
            or not isinstance(intra_period, int)
            or not 1 <= intra_period <= 100000
        ):
            raise ConfigError(f"intra_period={intra_period!r} is invalid; use an integer in [1, 100000]")
        self.intra_period = intra_period
        if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= 256:
            raise ConfigError(
                f"threads={threads!r} is invalid; use 0 (automatic) or a thread count up to 256"
            )
        self.threads = threads
        if not roi_margin >= 0:
            raise ConfigError(f"roi_margin={roi_margin!r} is invalid; use a margin >= 0 pixels")
        self.roi_margin = float(roi_margin)
        self.low_delay = bool(low_delay)
        self.lossless = bool(lossless)

        if qp is not None and crf is not None:
            raise ConfigError(f"give either qp ({qp}) or crf ({crf}), not both")
        if lossless and (qp is not None or crf is not None):
            raise ConfigError("lossless=True fixes the quantiser; do not also give qp or crf")
        if qp is not None:
            self.spec.check_qp(qp)
        if crf is not None:
            self.spec.check_crf(crf)
        self.qp, self.crf = qp, (None if crf is None else float(crf))
        if qp is None and crf is None and not lossless:
            self.crf = DEFAULT_CRF[codec]
        # values handed to the encoder (see _encoder_rate)
        self._enc_qp: int | None = None
        self._enc_crf: float | None = None
        self.preset = self.spec.native_preset(preset)
        if (
            codec == "libsvtav1"
            and lossless
            and self.preset is not None
            and int(self.preset) > SVT_LOSSLESS_MAX_PRESET
        ):
            # measured: SVT-AV1 4.1 at presets 11+ decodes wrong inter frames in lossless mode
            warnings.warn(
                f"SVT-AV1 preset {self.preset} is not lossless-safe; using preset {SVT_LOSSLESS_MAX_PRESET}",
                UserWarning, stacklevel=2,
            )
            self.preset = str(SVT_LOSSLESS_MAX_PRESET)

        depths = self.spec.anchor_depths if anchor else tuple(self.spec.residual_depth)
        if bit_depth not in depths:
            what = "single-layer anchor" if anchor else "residual"
            raise ConfigError(
                f"{codec} cannot code {what} pictures of {bit_depth}-bit input in this build; "
                f"supported input depths: {list(depths)}"
            )
        self.coded_depth = bit_depth if anchor else self.spec.residual_depth[bit_depth]
        self.offset = 0 if anchor else 1 << (self.coded_depth - 1)
        self.pix_fmt = pix_fmt_for(self.coded_depth)
        self._encoder_rate()
        formats = {f.name for f in (av.codec.Codec(codec, "w").video_formats or ())}
        if self.pix_fmt not in formats:
            raise ConfigError(
                f"{codec} in this build cannot encode {self.pix_fmt}; its 4:2:0 formats are "
                f"{sorted(f for f in formats if f.startswith('yuv420p'))}"
            )

        self._options = self._build_options()
        self._cc = self._open()
        # kept so that the header can still be written after close()
        self._extradata = bytes(self._cc.extradata or b"")
        self._count = 0
        self._emitted = 0
        self._flushed = False
        #: residual samples clipped so far (see ResidualClippedWarning)
        self.clipped_samples = 0
        #: payload bytes produced so far (codec packets only)
        self.bytes_out = 0

    # -- setup -------------------------------------------------------------
    def _encoder_rate(self) -> None:
        """Translate qp/crf from the input's scale to the encoder's.

        x265 (QP and CRF) and x264 (CRF) scale their quantiser with the coded
        depth, 6 steps per bit; a residual coded one bit deeper than its input
        keeps the input's amplitude, so the same number would quantise 4x
        coarser.  Subtracting 6 per extra bit makes ``qp=27`` mean the same
        step for the residual path as for the anchor.  Negative values are not
        accepted by the encoders (x265 crashes), so they are clamped to 0.
        """
        shift = 6 * (self.coded_depth - self.bit_depth)
        self._enc_qp, self._enc_crf = self.qp, self.crf
        if self.qp is not None and self.spec.qp_depth_scaled:
            self._enc_qp = self.qp - shift
        if self.crf is not None and self.spec.crf_depth_scaled:
            self._enc_crf = self.crf - shift
        for name, v in (("qp", self._enc_qp), ("crf", self._enc_crf)):
            if v is not None and v < 0:
                warnings.warn(
                    f"{name}={getattr(self, name):g} is finer than {self.codec_name} can code a "
                    f"{self.coded_depth}-bit residual of {self.bit_depth}-bit input; using the finest "
                    f"setting ({name} {shift} on the input scale); use lossless=True for an exact layer",
                    UserWarning, stacklevel=3,
                )
        if self._enc_qp is not None:
            self._enc_qp = max(0, self._enc_qp)
        if self._enc_crf is not None:
            self._enc_crf = max(0.0, self._enc_crf)
        # The chroma QP table compresses chroma QPs above 30 (HEVC and H.264);
        # lowering the luma QP by the depth shift moves the table out of that
        # region, so the residual's chroma would be quantised coarser than the
        # anchor's.  A chroma QP offset restores the anchor's chroma step.
        self._chroma_offset = 0
        nominal = self.qp if self.qp is not None else self.crf
        if shift and nominal is not None and self.codec_name in CHROMA_QP_TABLES:
            q = int(round(nominal))
            self._chroma_offset = max(-12, min(12, CHROMA_QP_TABLES[self.codec_name](q) - q))

    def _build_options(self) -> dict[str, str]:
        """Encoder private options for the chosen settings (documented in docs/ENHANCEMENT.md)."""
        name, p = self.codec_name, self.intra_period
        opts: dict[str, str] = {}
        params: list[str] = []
        if name in ("libx265", "libx264"):
            if self.preset:
                opts["preset"] = self.preset
            if self.low_delay:
                opts["tune"] = "zerolatency"
            # forced I frames become IDR: closed GOPs, so each is a random-access point
            opts["forced-idr"] = "1"
            params += [f"keyint={p}", f"min-keyint={p}", "scenecut=0", "open-gop=0"]
            if self.low_delay:
                params += ["bframes=0", "rc-lookahead=0"]
            if self._chroma_offset and not self.lossless:
                if name == "libx265":
                    params += [f"cbqpoffs={self._chroma_offset}", f"crqpoffs={self._chroma_offset}"]
                else:
                    params.append(f"chroma-qp-offset={self._chroma_offset}")
            if name == "libx265":
                params += ["log-level=none", "info=0"]
                if not self.anchor and not self.lossless:
                    # psy-rd/psy-rdoq keep the *coded* picture's texture energy; the coded
                    # picture here is a residual that is never shown on its own, so they only
                    # spend bits on noise (measured: +4.05 % -> +2.00 % BD-rate on one-by-one)
                    params += ["psy-rd=0", "psy-rdoq=0"]
                if self.threads:
                    params += [f"pools={self.threads}", f"frame-threads={min(self.threads, 16)}"]
                if self.lossless:
                    params.append("lossless=1")
                else:
                    self._rate_option(opts)
            elif self.lossless:
                opts["qp"] = "0"
            else:
                self._rate_option(opts)
        elif name == "libsvtav1":
            if self.preset is not None:
                opts["preset"] = self.preset
            # irefresh-type 2: key frames (not forward/CRA) at every intra period
            params += [f"keyint={p}", "scd=0", "irefresh-type=2"]
            if self.low_delay:
                params += ["pred-struct=1", "lookahead=0"]
            if self.threads:
                params.append(f"lp={self.threads}")
            if self.lossless:
                params.append("lossless=1")
            else:
                self._rate_option(opts)
        elif name == "libvpx-vp9":
            opts["deadline"] = "realtime" if self.low_delay else "good"
            if self.preset is not None:
                opts["cpu-used"] = self.preset
            opts["keyint_min"] = str(p)
            if self.low_delay:
                opts["lag-in-frames"] = "0"
            if self.threads:
                opts["row-mt"] = "1"
            if self.lossless:
                opts["lossless"] = "1"
            else:
                self._rate_option(opts, qp_key="crf")  # libvpx has no qp option: a fixed crf with qmin = qmax
        else:  # pragma: no cover - CODECS and this function are kept in step
            raise ConfigError(f"no option mapping for {name}")
        if params and self.spec.params_option:
            opts[self.spec.params_option] = ":".join(params)
        return opts

    def _rate_option(self, opts: dict[str, str], qp_key: str = "qp") -> None:
        """The quantiser or rate factor in the encoder's scale (lossless is spelt per encoder, apart)."""
        if self._enc_qp is not None:
            opts[qp_key] = str(self._enc_qp)
        else:
            opts["crf"] = f"{self._enc_crf:g}"

    def _open(self) -> av.VideoCodecContext:
        # a video encoder: PyAV types create() by codec name only for literal names
        cc = cast("av.VideoCodecContext", av.CodecContext.create(self.codec_name, "w"))
        cc.width, cc.height = self.width, self.height
        cc.pix_fmt = self.pix_fmt
        cc.time_base = time_base(self.fps)
        cc.framerate = self.fps
        cc.gop_size = self.intra_period
        if self.low_delay:
            cc.max_b_frames = 0
        if self.codec_name == "libvpx-vp9":
            cc.bit_rate = 0  # constant-quality mode: crf with no bitrate target
            if self.qp is not None:
                cc.qmin = cc.qmax = cast(int, self._enc_qp)  # _encoder_rate() set it from qp
        cc.thread_count = self.threads
        # parameter sets go to extradata (for the sequence header), not into every keyframe
        cc.flags |= int(av.codec.context.Flags.global_header)
        cc.options = dict(self._options)
        try:
            cc.open()
        except av.FFmpegError as exc:
            raise EncoderError(
                f"{self.codec_name} refused the settings {self._options} for {self.width}x{self.height} "
                f"{self.pix_fmt}: {exc}"
            ) from exc
        return cc

    # -- public API --------------------------------------------------------
    @property
    def extradata(self) -> bytes:
        """Codec parameter sets (SPS/PPS/VPS or AV1 sequence header); empty for VP9."""
        return self._extradata

    def settings(self) -> EnhancementConfig:
        """The layer's settings, as the sequence header stores them."""
        if self.lossless:
            rate: dict[str, Any] = {"mode": "lossless"}
        elif self._enc_qp is not None:
            rate = {"mode": "qp", "value": self.qp, "encoder_value": self._enc_qp}
        else:
            rate = {"mode": "crf", "value": self.crf, "encoder_value": self._enc_crf}
        return EnhancementConfig(
            codec=self.codec_name, width=self.width, height=self.height, bit_depth=self.bit_depth,
            coded_bit_depth=self.coded_depth, anchor=self.anchor, fps=self.fps,
            intra_period=self.intra_period, rate=rate, preset=self.preset, low_delay=self.low_delay,
            roi_margin=self.roi_margin, options=dict(self._options),
        )

    def config(self) -> dict[str, Any]:
        """The layer's settings as the JSON object of the sequence header: ``settings().to_dict()``."""
        return self.settings().to_dict()

    @property
    def frames_in(self) -> int:
        return self._count

    def encode(
        self, x: Frame, x_base: Frame | None, *, boxes: Sequence[Sequence[float]] | None = None
    ) -> list[EnhancementPacket]:
        """Code one frame; returns the packets the encoder has ready (maybe none yet).

        ``boxes`` (x0, y0, x1, y1 in pixels) switch on ROI mode for this frame:
        the residual outside them is suppressed.  An empty list suppresses the
        whole residual.
        """
        if self._flushed:
            raise EncoderError("the enhancement encoder was flushed/closed; create a new one for more frames")
        if not isinstance(x, Frame):
            raise InputError(f"encode() needs a vcodec Frame, got {type(x).__name__}")
        require_same_format(x, f"frame {self._count}", self, "the encoder was set up for")
        if self.anchor:
            if x_base is not None:
                raise ConfigError("this encoder codes single-layer anchors (anchor=True); pass x_base=None")
            if boxes is not None:
                raise ConfigError("ROI boxes need a base layer; they are not supported with anchor=True")
            planes: list[np.ndarray] = list(x.planes)
        else:
            if x_base is None:
                raise ConfigError(
                    "x_base is None but this encoder codes residuals; pass the base reconstruction, "
                    "or build the encoder with anchor=True for single-layer coding"
                )
            r = compute_residual(x, x_base)  # checks x_base against x
            if boxes is not None:
                r = apply_roi(r, boxes, self.roi_margin)
            planes, clipped = map_residual(r, self.coded_depth)
            self.clipped_samples += clipped
        vf = planes_to_avframe(planes, self.coded_depth)
        vf.pts = self._count
        vf.time_base = self._cc.time_base
        if self._count % self.intra_period == 0:
            vf.pict_type = av.video.frame.PictureType.I
        self._count += 1
        return self._encode(vf)

    def flush(self) -> list[EnhancementPacket]:
        """Drain the encoder; afterwards there is exactly one packet per input frame."""
        if self._flushed:
            return []
        packets = self._encode(None)
        self._flushed = True
        if self._count <= 2 and len(packets) == self._count:
            # measured: for 1-2 frames (shorter than its reorder depth) libx265 through libav gives
            # dts = pts, pts - 2 or an uninitialised value from run to run; nothing is reordered
            # there, so dts = pts keeps the output deterministic (GOP-parallel byte identity)
            for p in packets:
                p.dts = p.frame_index
        if self._emitted != self._count:
            raise EncoderError(
                f"{self.codec_name} produced {self._emitted} packets for {self._count} frames; "
                "the enhancement layer needs exactly one per frame"
            )
        return packets

    def close(self) -> None:
        """Release the encoder.  Frames not yet flushed are lost (a warning says how many)."""
        if not self._flushed and self._count > self._emitted:
            warnings.warn(
                f"enhancement encoder closed with {self._count - self._emitted} frame(s) still inside; "
                "call flush() before close() to get their packets",
                RuntimeWarning,
                stacklevel=2,
            )
        self._flushed = True
        self._cc = None  # type: ignore[assignment]

    def __enter__(self) -> EnhancementEncoder:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _encode(self, vf: av.VideoFrame | None) -> list[EnhancementPacket]:
        try:
            raw = self._cc.encode(vf)
        except av.FFmpegError as exc:
            raise EncoderError(f"{self.codec_name} failed on frame {self._count - 1}: {exc}") from exc
        out = []
        for p in raw:
            if p.pts is None:
                raise EncoderError(f"{self.codec_name} returned a packet without a timestamp")
            dts = p.pts if p.dts is None else p.dts
            data = bytes(p)
            self.bytes_out += len(data)
            out.append(EnhancementPacket(int(p.pts), bool(p.is_keyframe), data, int(dts)))
        self._emitted += len(out)
        return out


def encode_sequence(
    frames: Iterable[Frame], bases: Iterable[Frame | None] | None = None, **settings: Any
) -> tuple[dict[str, Any], bytes, list[EnhancementPacket]]:
    """Convenience: code a whole sequence; returns (config, extradata, packets).

    ``bases`` None means single-layer anchor coding; ``settings`` go to
    :class:`EnhancementEncoder` (size and depth are taken from the first frame).
    """
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise InputError("encode_sequence got no frames")
    anchor = bases is None
    base_it = iter(bases) if bases is not None else None
    enc = EnhancementEncoder(first.width, first.height, bit_depth=first.bit_depth, anchor=anchor, **settings)
    with enc:
        packets: list[EnhancementPacket] = []
        for f in [first, *it]:
            b = None if base_it is None else next(base_it)
            packets += enc.encode(f, b)
        packets += enc.flush()
        return enc.config(), enc.extradata, packets
