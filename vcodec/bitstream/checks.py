"""Checks of a stream's frame units against its own header, without decoding (the strict rules).

The unit parser (:mod:`vcodec.bitstream.parser`) checks each unit alone; these
checks need the stream's SEQUENCE_HEADER and LAYER_CONFIG units and the order
of the units so far.  A publisher's stream is checked with them before the
server relays a unit (``vcodec serve``), and the strict :class:`~vcodec.codec.Decoder`
raises on the same defects:

* a frame unit of a layer that has no LAYER_CONFIG (every layer present has one);
* a base frame index that is not the next one (base units come one per frame,
  in display order: a gap or a repeat is damage, never thousands of lost frames),
  or that reaches the header's frame count when it is known (the first base unit
  may be any intra frame: a stream can start at a random-access point);
* a base payload describing a picture of another size than the SEQUENCE_HEADER's
  (read from the payload's first bytes: learned base versions 1 and 2, the
  feature mode; layouts in :mod:`vcodec.baselayer.learned.payload` and
  :mod:`vcodec.baselayer.features.coder`);
* an END whose frame count is not the number of base frames;
* a unit larger than the bound the header allows (:func:`unit_size_limit`).
"""

from __future__ import annotations

import struct

from vcodec.bitstream.format import BASE_LAYER, FRAME_TYPES, UnitType
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.parser import Unit
from vcodec.errors import BitstreamError

__all__ = ["StreamChecker", "unit_size_limit", "base_picture_size"]

_SIZE_LE = struct.Struct("<HH")


def unit_size_limit(header: SequenceHeader) -> int:
    """The largest unit payload a stream of this picture format can need.

    Twice a raw picture (all planes, 4:2:0, at the stream's bit depth) plus 1 MiB for
    parameter sets and headers: no coded frame of either layer is larger, so a unit
    header claiming more is damage or an attack, refused before its payload is buffered.
    """
    sample = 2 if header.bit_depth > 8 else 1
    raw = header.width * header.height * 3 // 2 * sample
    return 2 * raw + (1 << 20)


def base_picture_size(kind: str, payload: bytes) -> tuple[int, int] | None:
    """(width, height) a base payload declares, None when it declares none (a v2 P-frame).

    Only the first bytes are read: learned base payloads v1 (u16 LE width, height at
    bytes 4..8) and v2 intra (same place when flag bit 0 is set); feature payloads (bytes 2..6).
    Unknown kinds or versions: None (the decoder refuses them with its own message).
    """
    intra_v2 = len(payload) >= 2 and payload[0] == 2 and bool(payload[1] & 1)
    if kind == "learned-base" and len(payload) >= 8 and (payload[0] == 1 or intra_v2):
        return _SIZE_LE.unpack_from(payload, 4)
    if kind == "feature-base" and len(payload) >= 6:
        return _SIZE_LE.unpack_from(payload, 2)
    return None


class StreamChecker:
    """Check frame units in stream order with :meth:`check`, then END with :meth:`check_end`."""

    def __init__(self, header: SequenceHeader, layers: dict[int, LayerConfig], *, source: str) -> None:
        self.header = header
        self.layers = layers
        self.source = source
        self.next_base = 0
        self.base_frames = 0
        self.limit = unit_size_limit(header)

    def _error(self, message: str, unit: Unit) -> BitstreamError:
        return BitstreamError(message, offset=unit.offset, unit=unit.describe(), frame=unit.frame,
                              source=self.source)

    def check(self, unit: Unit) -> None:
        """Raise :class:`BitstreamError` when ``unit`` breaks a rule of the module docstring."""
        if unit.type == UnitType.END:
            self.check_end(unit)
            return
        if unit.type not in FRAME_TYPES:
            return
        if len(unit.payload) > self.limit:
            raise self._error(f"payload of {len(unit.payload)} bytes is larger than any frame of a "
                              f"{self.header.width}x{self.header.height} stream can need ({self.limit})",
                              unit)
        if unit.layer not in self.layers:
            raise self._error(f"frame unit of layer {unit.layer}, which has no LAYER_CONFIG", unit)
        if unit.layer != BASE_LAYER or unit.type != UnitType.BASE_FRAME:
            return
        f = int(unit.frame)  # type: ignore[arg-type]
        if self.base_frames == 0 and unit.intra:
            self.next_base = f  # a stream may start at any random-access point (a relayed live stream)
        if f != self.next_base:
            raise self._error(f"base frame {f} where frame {self.next_base} is due: frames missing, "
                              "repeated or out of order", unit)
        count = self.header.num_frames
        if count and f >= count:
            raise self._error(f"base frame {f} is past the header's frame count {count}", unit)
        size = base_picture_size(self.layers[BASE_LAYER].kind, unit.payload)
        if size is not None and size != (self.header.width, self.header.height):
            raise self._error(f"base payload describes a {size[0]}x{size[1]} picture but the stream is "
                              f"{self.header.width}x{self.header.height}", unit)
        self.next_base = f + 1
        self.base_frames += 1

    def check_end(self, unit: Unit) -> None:
        if len(unit.payload) >= 4:
            frames = int.from_bytes(unit.payload[:4], "big")
            if frames != self.base_frames:
                raise self._error(f"END counts {frames} frames but the stream holds {self.base_frames}", unit)
