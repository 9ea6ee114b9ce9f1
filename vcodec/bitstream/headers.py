"""Sequence header and layer configuration payloads.

SEQUENCE_HEADER payload (layer 0xFF)::

      0  2  width            luma samples, even, 2..65534
      2  2  height           luma rows, even
      4  4  fps numerator
      8  4  fps denominator  > 0
     12  1  bit depth        8..16
     13  1  chroma format    1 = 4:2:0 (the only one in version 1)
     14  1  colour matrix    ITU-T H.273 matrix_coefficients: 1 = BT.709, 6 = BT.601
     15  1  range            0 = limited ("TV"), 1 = full
     16  2  intra period     frames between intra frames of every layer (0 = only the first)
     18  4  frame count      0 = unknown when the header was written (live, pipes)
     22  4  N                length of the properties JSON
     26  N  properties       UTF-8 JSON object, keys sorted (encoder version, source...)

LAYER_CONFIG payload (layer L = the layer described)::

      0  1  K                length of the kind
      1  K  kind             e.g. "learned-base", "feature-base", "residual"
      .  1  C                length of the codec name
      .  C  codec            base model id (e.g. "base-vcodec-det-v2") or encoder ("libx265")
      .  1  S                length of the weights hash (0 or 32)
      .  S  sha256           of the model weights the layer was coded with
      .  4  P                length of the parameters JSON
      .  P  params           UTF-8 JSON object, keys sorted (quality, QP, preset, calibration...)
      .  4  E                length of the extradata
      .  E  extradata        codec configuration bytes (e.g. HEVC VPS/SPS/PPS)

The sequence header together with the LAYER_CONFIG units is everything a
decoder needs; a base-only stream made by extraction keeps only the layers it
carries, so it describes itself correctly.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vcodec.errors import BitstreamError, ConfigError

__all__ = ["SequenceHeader", "LayerConfig", "MATRIX_CODES"]

_SEQ_FIXED = struct.Struct(">HHIIBBBBHI")
#: colour matrix name <-> H.273 matrix_coefficients code
MATRIX_CODES = {"bt709": 1, "bt601": 6}
_MATRIX_NAMES = {v: k for k, v in MATRIX_CODES.items()}


def _canonical_json(obj: dict[str, Any]) -> bytes:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"header properties must be plain JSON values: {exc}") from None


class _Cursor:
    """Bounds-checked reads from a payload; every overrun is a BitstreamError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(
                f"field at payload byte {self.pos} needs {n} bytes but only "
                f"{len(self.data) - self.pos} remain",
                unit=self.what,
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        return st.unpack(self.take(st.size))

    def u8_bytes(self) -> bytes:
        return self.take(self.take(1)[0])

    def u32_bytes(self) -> bytes:
        return self.take(struct.unpack(">I", self.take(4))[0])

    def json(self) -> dict[str, Any]:
        raw = self.u32_bytes()
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BitstreamError(f"JSON field is not valid UTF-8 JSON ({exc})", unit=self.what) from None
        if not isinstance(obj, dict):
            raise BitstreamError("JSON field is not an object", unit=self.what)
        return obj

    def text(self) -> str:
        raw = self.u8_bytes()
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError(f"text field {raw!r} is not ASCII", unit=self.what) from None

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise BitstreamError(
                f"{len(self.data) - self.pos} unexpected trailing bytes", unit=self.what
            )


@dataclass
class SequenceHeader:
    """Picture format and stream-wide settings."""

    width: int
    height: int
    fps: Fraction = Fraction(30)
    bit_depth: int = 8
    matrix: str = "bt601"
    full_range: bool = False
    intra_period: int = 32
    num_frames: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not (2 <= self.width <= 65534 and 2 <= self.height <= 65534):
            raise ConfigError(f"picture size {self.width}x{self.height} is outside 2..65534")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"picture size {self.width}x{self.height} must be even for 4:2:0")
        if not 8 <= self.bit_depth <= 16:
            raise ConfigError(f"bit depth {self.bit_depth} is outside 8..16")
        if self.matrix not in MATRIX_CODES:
            raise ConfigError(f"colour matrix {self.matrix!r} is not one of {sorted(MATRIX_CODES)}")
        fps = Fraction(self.fps)
        if fps <= 0 or fps.numerator > 0xFFFFFFFF or fps.denominator > 0xFFFFFFFF:
            raise ConfigError(f"frame rate {self.fps} is not a positive rational that fits 32 bits")
        if not 0 <= self.intra_period <= 0xFFFF:
            raise ConfigError(f"intra period {self.intra_period} is outside 0..65535")

    def to_bytes(self) -> bytes:
        self.validate()
        fps = Fraction(self.fps)
        fixed = _SEQ_FIXED.pack(
            self.width, self.height, fps.numerator, fps.denominator, self.bit_depth, 1,
            MATRIX_CODES[self.matrix], int(self.full_range), self.intra_period,
            self.num_frames or 0,
        )
        props = _canonical_json(self.properties)
        return fixed + struct.pack(">I", len(props)) + props

    @classmethod
    def from_bytes(cls, payload: bytes) -> SequenceHeader:
        cur = _Cursor(payload, "SEQUENCE_HEADER")
        (w, h, num, den, depth, chroma, mcode, rng, period, nframes) = cur.unpack(_SEQ_FIXED)
        if chroma != 1:
            raise BitstreamError(f"chroma format {chroma} is not supported (1 = 4:2:0)", unit=cur.what)
        if mcode not in _MATRIX_NAMES:
            raise BitstreamError(f"colour matrix code {mcode} is not supported", unit=cur.what)
        if rng > 1:
            raise BitstreamError(f"range flag {rng} is not 0 or 1", unit=cur.what)
        if den == 0 or num == 0:
            raise BitstreamError(f"frame rate {num}/{den} is invalid", unit=cur.what)
        props = cur.json()
        cur.finish()
        hdr = cls(w, h, Fraction(num, den), depth, _MATRIX_NAMES[mcode], bool(rng), period,
                  nframes or None, props)
        try:
            hdr.validate()
        except ConfigError as exc:
            raise BitstreamError(str(exc), unit=cur.what) from None
        return hdr

    def is_intra(self, frame_index: int) -> bool:
        """Whether ``frame_index`` is an intra frame under this header's intra period."""
        if self.intra_period == 0:
            return frame_index == 0
        return frame_index % self.intra_period == 0


@dataclass
class LayerConfig:
    """How one layer is coded: enough for a decoder of that layer to start."""

    layer_id: int
    kind: str
    codec: str
    sha256: bytes = b""
    params: dict[str, Any] = field(default_factory=dict)
    extradata: bytes = b""

    def to_bytes(self) -> bytes:
        if len(self.sha256) not in (0, 32):
            raise ConfigError(f"weights sha256 must be 32 raw bytes, got {len(self.sha256)}")
        for name, text in (("kind", self.kind), ("codec", self.codec)):
            if not text or len(text) > 255 or not text.isascii():
                raise ConfigError(f"layer {name} {text!r} must be 1..255 ASCII characters")
        params = _canonical_json(self.params)
        return b"".join([
            bytes([len(self.kind)]), self.kind.encode(),
            bytes([len(self.codec)]), self.codec.encode(),
            bytes([len(self.sha256)]), self.sha256,
            struct.pack(">I", len(params)), params,
            struct.pack(">I", len(self.extradata)), self.extradata,
        ])

    @classmethod
    def from_bytes(cls, layer_id: int, payload: bytes) -> LayerConfig:
        cur = _Cursor(payload, f"LAYER_CONFIG of layer {layer_id}")
        kind = cur.text()
        codec = cur.text()
        sha = cur.u8_bytes()
        if len(sha) not in (0, 32):
            raise BitstreamError(f"weights hash has {len(sha)} bytes, expected 0 or 32", unit=cur.what)
        params = cur.json()
        extradata = cur.u32_bytes()
        cur.finish()
        return cls(layer_id, kind, codec, sha, params, extradata)
