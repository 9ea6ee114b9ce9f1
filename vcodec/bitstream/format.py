"""Byte layout of a vcodec stream (``.vcs``), version 1.0.

All integers are big-endian.  The authoritative description, with examples,
is ``docs/FORMAT.md``; this module holds the constants both the writer and the
reader use, so the two cannot drift apart.

Stream::

    preamble  (8 bytes)
      0  4  magic            b"VCDC"
      4  1  version major    1   (a reader refuses any other major version)
      5  1  version minor    0, or 1 for streams with ENH_GOP units (newer minors only add
                             unit types: skipped)
      6  2  flags            0   (reserved, must be zero)
    unit*     (see below), in this order:
      SEQUENCE_HEADER  (layer 0xFF)        exactly one, first
      LAYER_CONFIG     (layer L)           one per layer present, before any frame
      frame units      BASE_FRAME (layer 0), ENH_GOP + ENH_PACKET (layer 1), ... in decode order
      INDEX            (layer 0xFF)        intra-frame offsets (optional for live streams)
      END              (layer 0xFF)        exactly one, last; fixed size

Unit header (22 bytes)::

      0  2  sync             b"VU"  (lets a concealing reader resynchronise)
      2  1  unit type        UnitType
      3  1  layer id         0 = base (machines), 1 = enhancement (humans), 2..254 future
                             layers, 0xFF = stream-level (kept by every extraction)
      4  1  flags            bit 0 INTRA: a random-access point of this layer; others 0
      5  1  reserved         0
      6  4  frame index      display index of the frame (0xFFFFFFFF: not a frame unit)
     10  4  payload length   bytes that follow the header (at most MAX_PAYLOAD)
     14  4  payload CRC32    zlib.crc32 of the payload
     18  4  header CRC32     zlib.crc32 of header bytes 0..17

A frame's *access unit* is the run of units carrying its frame index; the
base unit of an intra frame carries INTRA, and so does the enhancement
packet of the same frame (the two layers' keyframes are aligned).
"""

from __future__ import annotations

import enum
import struct

MAGIC = b"VCDC"
VERSION_MAJOR = 1
#: the newest minor version this reader knows (1.1 added ENH_GOP)
VERSION_MINOR = 1
#: what a writer puts in the preamble unless told otherwise: streams without 1.1 features stay 1.0,
#: byte for byte what earlier writers produced
WRITE_MINOR = 0
PREAMBLE = struct.Struct(">4sBBH")
SYNC = b"VU"
UNIT_HEADER = struct.Struct(">2sBBBBIIII")  # 22 bytes
UNIT_HEADER_SIZE = UNIT_HEADER.size
NO_FRAME = 0xFFFFFFFF
STREAM_LAYER = 0xFF
BASE_LAYER = 0
ENHANCEMENT_LAYER = 1
FLAG_INTRA = 0x01
KNOWN_FLAGS = FLAG_INTRA
#: a sanity bound that turns a corrupted length into an error before any allocation
MAX_PAYLOAD = 1 << 28

#: END payload: frame count, offset of the INDEX unit (0 = no index), total units before END
END_PAYLOAD = struct.Struct(">IQI")
END_UNIT_SIZE = UNIT_HEADER_SIZE + END_PAYLOAD.size
#: INDEX payload: entry count, then entries of (frame index, byte offset of its base unit)
INDEX_COUNT = struct.Struct(">I")
INDEX_ENTRY = struct.Struct(">IQ")

assert UNIT_HEADER_SIZE == 22


class UnitType(enum.IntEnum):
    SEQUENCE_HEADER = 0x01
    LAYER_CONFIG = 0x02
    BASE_FRAME = 0x10
    ENH_PACKET = 0x20
    #: per-GOP inter-layer mode of layer 1 (format 1.1; vcodec/bitstream/gop.py)
    ENH_GOP = 0x21
    INDEX = 0x70
    END = 0x7F


#: unit types that belong to the stream as a whole rather than to one layer
STREAM_LEVEL_TYPES = frozenset({UnitType.SEQUENCE_HEADER, UnitType.INDEX, UnitType.END})
#: unit types that carry a frame
FRAME_TYPES = frozenset({UnitType.BASE_FRAME, UnitType.ENH_PACKET, UnitType.ENH_GOP})


def unit_name(unit_type: int) -> str:
    try:
        return UnitType(unit_type).name
    except ValueError:
        return f"unit type 0x{unit_type:02x}"
