"""One enhancement unit's payload: :class:`EnhancementPacket` and its byte layout.

Unit payload, version 1 (``to_payload``)::

    offset  size  field
    0       1     payload version, 1
    1       4     dts: decode timestamp in frames, signed big-endian int32
                  (negative for the first packets when the encoder reorders)
    5       ...   the encoder's packet: Annex-B NAL units (H.264/HEVC), AV1
                  low-overhead OBUs, or a VP9 frame/superframe
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vcodec.errors import BitstreamError, EncoderError

__all__ = ["EnhancementPacket", "PAYLOAD_VERSION"]

PAYLOAD_VERSION = 1
_HEADER = struct.Struct(">Bi")


@dataclass
class EnhancementPacket:
    """One coded enhancement picture: the content of one layer-1 unit."""

    frame_index: int
    keyframe: bool
    data: bytes
    dts: int

    def to_payload(self) -> bytes:
        """The unit payload (see the module docstring for the layout)."""
        if not -(2**31) <= self.dts < 2**31:
            raise EncoderError(f"dts {self.dts} of frame {self.frame_index} does not fit the payload's int32")
        return _HEADER.pack(PAYLOAD_VERSION, self.dts) + self.data

    @property
    def payload(self) -> bytes:
        return self.to_payload()

    @classmethod
    def from_payload(cls, frame_index: int, keyframe: bool, payload: bytes) -> EnhancementPacket:
        """Parse a unit payload; raises :class:`BitstreamError` when it is malformed."""
        if len(payload) < _HEADER.size:
            raise BitstreamError(
                f"enhancement payload is {len(payload)} bytes, shorter than its {_HEADER.size}-byte header",
                unit="enhancement", frame=frame_index,
            )
        version, dts = _HEADER.unpack_from(payload)
        if version != PAYLOAD_VERSION:
            raise BitstreamError(
                f"enhancement payload version {version} is not supported (this vcodec reads {PAYLOAD_VERSION})",
                unit="enhancement", frame=frame_index,
            )
        return cls(frame_index, bool(keyframe), bytes(payload[_HEADER.size:]), dts)
