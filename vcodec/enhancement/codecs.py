"""What vcodec knows about each conventional encoder it drives through PyAV.

One :class:`CodecSpec` per supported encoder says which decoder reads its
packets, which sample depths it can code (in *this* PyAV build), its quantiser
range and how vcodec's portable settings (QP/CRF, preset, low delay, intra
period, lossless, threads) become that encoder's private options.

Residual container depth (see :mod:`vcodec.enhancement.mapping`): a residual
of an ``B``-bit picture spans ``2**(B+1) - 1`` values, so it is coded one bit
deeper than the input where the encoder allows it:

========== ============ ============================ =========================
encoder    8-bit input  10-bit input                 notes
========== ============ ============================ =========================
libx265    10-bit, exact 12-bit, exact                Main10 / Main12
libx264    10-bit, exact 10-bit, residual clamped     High10 (High 4:4:4 Pred.
                         to [-512, 511]               when lossless)
libsvtav1  10-bit, exact 10-bit, residual clamped     AV1 Main
                         to [-512, 511]
libvpx-vp9 8-bit, clamped not supported               this build has no VP9
           to [-128, 127]                             high-bit-depth formats
========== ============ ============================ =========================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Literal

from vcodec.errors import CodecUnavailableError, ConfigError

__all__ = [
    "CodecSpec",
    "CODECS",
    "DEFAULT_CODEC",
    "X26X_PRESETS",
    "available_encoders",
    "get_spec",
    "pix_fmt_for",
]

# SVT-AV1 logs through its own printf, not libav's logger: silence its banner
# (dozens of lines per encoder) unless the user asked for it explicitly.
os.environ.setdefault("SVT_LOG", "1")

#: x264/x265 preset names, fastest first; the other encoders map these onto
#: their own speed scales so that ``preset="ultrafast"`` works everywhere.
X26X_PRESETS: tuple[str, ...] = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo",
)
# SVT-AV1 presets run 0 (slowest) .. 13 (fastest); libvpx cpu-used 0 .. 8.
# SVT-AV1 presets above 10 are "automation only" upstream and, measured with
# SVT-AV1 4.1, break lossless coding of inter frames, so the fast names stop at 10.
_SVT_PRESET = dict(zip(X26X_PRESETS, (10, 10, 9, 8, 7, 6, 5, 4, 2, 1), strict=True))
SVT_LOSSLESS_MAX_PRESET = 10
_VP9_CPU_USED = dict(zip(X26X_PRESETS, (8, 7, 6, 5, 4, 3, 2, 1, 0, 0), strict=True))

_PIX_FMT = {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}


def pix_fmt_for(depth: int) -> str:
    """The planar 4:2:0 libav pixel format of a sample depth (8, 10 or 12)."""
    try:
        return _PIX_FMT[depth]
    except KeyError:
        raise ConfigError(
            f"no 4:2:0 pixel format for {depth}-bit samples; supported depths: {sorted(_PIX_FMT)}"
        ) from None


@dataclass(frozen=True)
class CodecSpec:
    """Static facts about one encoder and how to drive it."""

    name: str
    #: decoders able to read this encoder's packets, preferred first
    decoders: tuple[str, ...]
    #: input bit depth -> depth the residual is coded at
    residual_depth: dict[int, int]
    #: input bit depths the single-layer anchor can code natively
    anchor_depths: tuple[int, ...]
    qp_range: tuple[int, int]
    crf_range: tuple[float, float]
    #: private option that carries encoder parameters as ``key=value:...``
    params_option: str | None = None
    #: the encoder's QP / CRF scale moves with the coded bit depth (6 per bit),
    #: so a residual coded deeper than its input needs a lower value for the
    #: same quantiser step on the input's scale (measured, see docs/ENHANCEMENT.md)
    qp_depth_scaled: bool = False
    crf_depth_scaled: bool = False

    def check_qp(self, qp: int) -> None:
        lo, hi = self.qp_range
        if isinstance(qp, bool) or not isinstance(qp, int) or not lo <= qp <= hi:
            raise ConfigError(f"qp={qp!r} is out of range for {self.name}; use an integer in [{lo}, {hi}]")

    def check_crf(self, crf: float) -> None:
        lo, hi = self.crf_range
        if isinstance(crf, bool) or not isinstance(crf, (int, float)) or not lo <= crf <= hi:
            raise ConfigError(f"crf={crf!r} is out of range for {self.name}; use a number in [{lo}, {hi}]")

    def native_preset(self, preset: str | int | None) -> str | None:
        """Translate a portable preset into this encoder's own preset value."""
        if preset is None:
            return None
        text = str(preset).strip().lower()
        if self.name in ("libx265", "libx264"):
            if text not in X26X_PRESETS:
                raise ConfigError(
                    f"preset={preset!r} is not a {self.name} preset; use one of {', '.join(X26X_PRESETS)}"
                )
            return text
        table, lo, hi = (_SVT_PRESET, -1, 13) if self.name == "libsvtav1" else (_VP9_CPU_USED, 0, 8)
        if text in table:
            return str(table[text])
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise ConfigError(
                f"preset={preset!r} is not valid for {self.name}; use one of {', '.join(X26X_PRESETS)} "
                f"or an integer in [{lo}, {hi}]"
            )
        return str(value)


CODECS: dict[str, CodecSpec] = {
    spec.name: spec
    for spec in (
        CodecSpec("libx265", ("hevc",), {8: 10, 10: 12}, (8, 10), (0, 51), (0.0, 51.0), "x265-params",
                  qp_depth_scaled=True, crf_depth_scaled=True),
        CodecSpec("libx264", ("h264",), {8: 10, 10: 10}, (8, 10), (0, 51), (0.0, 51.0), "x264-params",
                  crf_depth_scaled=True),
        # FFmpeg's libsvtav1 wrapper treats qp/crf 0 as "not set", hence the floor of 1
        CodecSpec("libsvtav1", ("libdav1d", "libaom-av1"), {8: 10, 10: 10}, (8, 10), (1, 63), (1.0, 63.0),
                  "svtav1-params"),
        CodecSpec("libvpx-vp9", ("vp9", "libvpx-vp9"), {8: 8}, (8,), (0, 63), (0.0, 63.0), None),
    )
}
DEFAULT_CODEC = "libx265"


@cache
def _codec_present(name: str, mode: Literal["r", "w"]) -> bool:
    import av

    try:
        av.codec.Codec(name, mode)
    except ValueError:  # av.codec.codec.UnknownCodecError subclasses ValueError
        return False
    return True


def available_encoders() -> list[str]:
    """The encoders of :data:`CODECS` that this PyAV build has, with a decoder for them."""
    return [
        n for n, s in CODECS.items()
        if _codec_present(n, "w") and any(_codec_present(d, "r") for d in s.decoders)
    ]


def get_spec(name: str) -> CodecSpec:
    """The spec of encoder ``name``, checking that PyAV can encode and decode it."""
    spec = CODECS.get(name)
    if spec is None:
        raise CodecUnavailableError(
            f"enhancement codec {name!r} is not supported by vcodec; use one of {', '.join(CODECS)} "
            f"(available in this PyAV build: {', '.join(available_encoders()) or 'none'})"
        )
    if not _codec_present(name, "w"):
        raise CodecUnavailableError(
            f"encoder {name!r} is missing from this PyAV/FFmpeg build; available: "
            f"{', '.join(available_encoders()) or 'none'}"
        )
    return spec


def decoder_for(spec: CodecSpec) -> str:
    """The first decoder of ``spec`` present in this build."""
    for d in spec.decoders:
        if _codec_present(d, "r"):
            return d
    raise CodecUnavailableError(
        f"no decoder for {spec.name} packets in this PyAV/FFmpeg build (tried {', '.join(spec.decoders)}); "
        f"encoders that can be decoded here: {', '.join(available_encoders()) or 'none'}"
    )
