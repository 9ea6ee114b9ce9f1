"""One enhancement unit's payload: :class:`EnhancementPacket` and its byte layout.

Unit payload, version 2 (what ``to_payload`` writes when it can: one header byte)::

    offset  size  field
    0       1     bit 7 set (marks version 2); bits 0-6: zigzag(dts - frame index),
                  i.e. 2d for d >= 0 and -2d - 1 for d < 0, so |d| <= 63
    1       ...   the encoder's packet: Annex-B NAL units (H.264/HEVC), AV1
                  low-overhead OBUs, or a VP9 frame/superframe

Unit payload, version 1 (written when dts is more than 63 frames from the frame
index; every vcodec reads it)::

    offset  size  field
    0       1     payload version, 1
    1       4     dts: decode timestamp in frames, signed big-endian int32
                  (negative for the first packets when the encoder reorders)
    5       ...   the encoder's packet

Why version 2: the 4-byte absolute dts cost 40 bits per frame, about 1.2 kbit/s at 30
frames/s, which is 3 % of a low-rate x265 layer (docs/RESULTS.md, bottle-detection).  An
encoder's dts trails its pts by at most its reorder depth, so the difference fits 7 bits,
and the frame index is in the unit header already.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vcodec.errors import BitstreamError, EncoderError

__all__ = ["EnhancementPacket", "PAYLOAD_VERSION"]

#: the payload version writers produce (version 1 only where dts is far from the frame index)
PAYLOAD_VERSION = 2
_V1_HEADER = struct.Struct(">Bi")
_COMPACT = 0x80
_MAX_ZIGZAG = 0x7F


def _zigzag(d: int) -> int:
    return 2 * d if d >= 0 else -2 * d - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if z % 2 == 0 else -((z + 1) >> 1)


@dataclass
class EnhancementPacket:
    """One coded enhancement picture: the content of one layer-1 unit."""

    frame_index: int
    keyframe: bool
    data: bytes
    dts: int

    def to_payload(self) -> bytes:
        """The unit payload (see the module docstring for the layout)."""
        z = _zigzag(self.dts - self.frame_index)
        if z <= _MAX_ZIGZAG:
            return bytes((_COMPACT | z,)) + self.data
        if not -(2**31) <= self.dts < 2**31:
            raise EncoderError(f"dts {self.dts} of frame {self.frame_index} does not fit the payload's int32")
        return _V1_HEADER.pack(1, self.dts) + self.data

    @property
    def payload(self) -> bytes:
        return self.to_payload()

    @classmethod
    def from_payload(cls, frame_index: int, keyframe: bool, payload: bytes) -> EnhancementPacket:
        """Parse a unit payload; raises :class:`BitstreamError` when it is malformed."""
        if not payload:
            raise BitstreamError("enhancement payload is empty (it needs at least its 1-byte header)",
                                 unit="enhancement", frame=frame_index)
        first = payload[0]
        if first & _COMPACT:
            dts = frame_index + _unzigzag(first & _MAX_ZIGZAG)
            return cls(frame_index, bool(keyframe), bytes(payload[1:]), dts)
        if first != 1:
            raise BitstreamError(
                f"enhancement payload version {first} is not supported "
                f"(this vcodec reads 1 and {PAYLOAD_VERSION})",
                unit="enhancement", frame=frame_index,
            )
        if len(payload) < _V1_HEADER.size:
            raise BitstreamError(
                f"enhancement payload is {len(payload)} bytes, "
                f"shorter than its {_V1_HEADER.size}-byte header",
                unit="enhancement", frame=frame_index,
            )
        _, dts = _V1_HEADER.unpack_from(payload)
        return cls(frame_index, bool(keyframe), bytes(payload[_V1_HEADER.size:]), dts)
