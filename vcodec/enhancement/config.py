"""The enhancement layer's settings as the stream stores them (the LAYER_CONFIG JSON object).

:class:`EnhancementConfig` is written by the encoder (``EnhancementEncoder.config()``
is its :meth:`~EnhancementConfig.to_dict`) and checked and read back by the
decoder (:meth:`~EnhancementConfig.from_dict`).  The dict form is the stored
one: its keys and values are part of the stream format, so ``to_dict`` must
keep producing exactly what version 1 wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vcodec.errors import ConfigError

__all__ = ["EnhancementConfig", "CONFIG_VERSION", "check_fps", "time_base"]

CONFIG_VERSION = 1


def check_fps(fps: Any) -> Fraction:
    """A frame rate as a Fraction in (0, 1000]; :class:`ConfigError` otherwise."""
    try:
        f = Fraction(fps).limit_denominator(1001000)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ConfigError(f"fps={fps!r} is not a number; give frames per second, e.g. 30 or "
                          "Fraction(30000, 1001)") from None
    if f <= 0 or f > 1000:
        raise ConfigError(f"fps={fps!r} is out of range; use a rate in (0, 1000] frames per second")
    return f


def time_base(fps: Fraction) -> Fraction:
    """One frame's duration: vcodec's timestamps count frames."""
    return Fraction(fps.denominator, fps.numerator)


@dataclass(frozen=True)
class EnhancementConfig:
    """What a decoder needs (size, depths, anchor or residual, rate) and what the encoder chose.

    ``rate`` is ``{"mode": "lossless"}`` or ``{"mode": "qp"|"crf", "value": ..., "encoder_value": ...}``;
    ``options`` are the encoder's private options, recorded for reproducibility only.
    """

    codec: str
    width: int
    height: int
    bit_depth: int
    coded_bit_depth: int
    anchor: bool
    fps: Fraction = Fraction(30)
    intra_period: int | None = None
    rate: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    low_delay: bool = False
    roi_margin: float = 8.0
    options: dict[str, str] = field(default_factory=dict)
    version: int = CONFIG_VERSION

    @property
    def offset(self) -> int:
        """The mid-grey a residual is coded around (0 for full-frame anchors)."""
        return 0 if self.anchor else 1 << (self.coded_bit_depth - 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the stream (the layout version 1 defines)."""
        return {
            "version": self.version,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "bit_depth": self.bit_depth,
            "coded_bit_depth": self.coded_bit_depth,
            "offset": self.offset,
            "anchor": self.anchor,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "intra_period": self.intra_period,
            "rate": dict(self.rate),
            "preset": self.preset,
            "low_delay": self.low_delay,
            "roi_margin": self.roi_margin,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, config: Any, codec_name: str) -> EnhancementConfig:
        """Check a stored config against the header's ``codec_name``; :class:`ConfigError` when unusable.

        Only what decoding needs is required; the encoder's record (rate, preset,
        options...) is taken as it is when present.
        """
        if not isinstance(config, dict):
            raise ConfigError(f"enhancement config must be a dict, got {type(config).__name__}")
        if config.get("codec", codec_name) != codec_name:
            raise ConfigError(f"enhancement config says codec {config.get('codec')!r} but the header says "
                              f"{codec_name!r}")
        version = config.get("version")
        if version != CONFIG_VERSION:
            raise ConfigError(f"enhancement config version {version!r} is not supported; this vcodec reads "
                              f"{CONFIG_VERSION}")
        try:
            needed = dict(
                width=int(config["width"]), height=int(config["height"]), bit_depth=int(config["bit_depth"]),
                coded_bit_depth=int(config["coded_bit_depth"]), anchor=bool(config["anchor"]),
                fps=check_fps(Fraction(str(config.get("fps", "30/1")))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"enhancement config is incomplete or malformed ({exc!r}): "
                              f"{config!r}") from None
        # the encoder's record is informational: read as written, never a reason to refuse a stream
        record = {k: v for k, v in config.items() if k in _RECORD and isinstance(v, _RECORD[k])}
        cfg = cls(codec=codec_name, **needed, **record)  # type: ignore[arg-type]
        if cfg.width <= 0 or cfg.height <= 0 or cfg.width % 2 or cfg.height % 2:
            raise ConfigError(f"enhancement config size {cfg.width}x{cfg.height} is invalid "
                              "(even sizes only)")
        if cfg.bit_depth not in (8, 10) or cfg.coded_bit_depth not in (8, 10, 12):
            raise ConfigError(
                f"enhancement config depths {cfg.bit_depth}/{cfg.coded_bit_depth} are invalid "
                "(input 8 or 10, coded 8, 10 or 12)"
            )
        return cfg


#: the fields from_dict takes as stored, with the types version 1 writes
_RECORD: dict[str, type | tuple[type, ...]] = {
    "intra_period": int, "rate": dict, "preset": str, "low_delay": bool, "roi_margin": (int, float),
    "options": dict,
}
