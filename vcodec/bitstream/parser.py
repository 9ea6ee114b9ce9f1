"""The one unit parser: every check of the preamble, a unit header, a payload and the header units.

Two readers share it: :class:`~vcodec.bitstream.StreamReader` *pulls* bytes
(files, pipes) and :class:`~vcodec.serve.UnitParser` is *pushed* chunks of any
size (a published stream).  Both cut the bytes themselves, then ask this
module whether what they cut is valid, so a rule added here (say, a new
reserved bit) holds for both; the server once lacked the unknown-flags check
because it had its own copy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from vcodec.bitstream.format import (
    FLAG_INTRA,
    FRAME_TYPES,
    KNOWN_FLAGS,
    MAGIC,
    MAX_PAYLOAD,
    NO_FRAME,
    PREAMBLE,
    STREAM_LAYER,
    SYNC,
    UNIT_HEADER,
    VERSION_MAJOR,
    VERSION_MINOR,
    UnitType,
    unit_name,
)
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.errors import BitstreamError

__all__ = [
    "Unit", "UnitHeader", "UnitHeaderError", "PayloadError", "parse_preamble", "parse_unit_header",
    "check_payload", "parse_sequence_header", "add_layer_config", "misplaced_unit",
]


class UnitHeaderError(BitstreamError):
    """A unit header failed its checks; its length cannot be trusted (a reader resynchronises)."""

    def __init__(self, message: str, *, raw: bytes, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.raw = raw


class PayloadError(BitstreamError):
    """A unit's payload failed its CRC; the header (and so the length) was intact."""

    def __init__(self, message: str, *, layer: int, unit_type: int, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.layer = layer
        self.unit_type = unit_type


@dataclass
class Unit:
    """One unit as read from a stream."""

    type: int
    layer: int
    flags: int
    frame: int | None
    payload: bytes
    offset: int
    header: bytes  # the 22 raw header bytes, for byte-exact copying

    @property
    def intra(self) -> bool:
        return bool(self.flags & FLAG_INTRA)

    @property
    def name(self) -> str:
        return unit_name(self.type)

    @property
    def raw(self) -> bytes:
        return self.header + self.payload

    def describe(self) -> str:
        where = "" if self.frame is None else f" frame {self.frame}"
        return f"{self.name} (layer {self.layer}{where})"


@dataclass(frozen=True)
class UnitHeader:
    """The checked fields of a 22-byte unit header."""

    type: int
    layer: int
    flags: int
    frame: int | None
    length: int
    payload_crc: int
    raw: bytes

    @property
    def what(self) -> str:
        """How errors name the unit: ``"BASE_FRAME (layer 0)"``."""
        return f"{unit_name(self.type)} (layer {self.layer})"


def parse_preamble(data: bytes, source: str) -> int:
    """Check the 8-byte preamble; returns the stream's minor version."""
    magic, major, minor, flags = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(
            f"not a vcodec stream: magic is {magic!r}, expected {MAGIC!r} "
            "(is this a raw video or another container? see `vcodec info --help`)",
            offset=0, unit="preamble", source=source)
    if major != VERSION_MAJOR:
        raise BitstreamError(
            f"stream format version {major}.{minor} is not supported by this vcodec "
            f"(reads {VERSION_MAJOR}.x); upgrade vcodec", offset=4, unit="preamble", source=source)
    if flags != 0:
        raise BitstreamError(f"reserved preamble flags are 0x{flags:04x}, expected 0", offset=6,
                             unit="preamble", source=source)
    return int(minor)


def parse_unit_header(raw: bytes, offset: int, *, minor: int, source: str) -> UnitHeader:
    """Check a unit header (sync, CRC, reserved byte, flags, length bound); raises :class:`UnitHeaderError`.

    Flags this version does not know are damage in a stream of this or an older
    minor version; a newer minor version may define them.
    """
    sync, utype, layer, flags, reserved, frame, length, pcrc, hcrc = UNIT_HEADER.unpack(raw)

    def damage(message: str, unit: str) -> UnitHeaderError:
        return UnitHeaderError(message, offset=offset, unit=unit, source=source, raw=raw)

    if sync != SYNC:
        raise damage(f"bad unit sync bytes {sync!r} (expected {SYNC!r}): stream is damaged or misaligned",
                     "unit header")
    if zlib.crc32(raw[:18]) != hcrc:
        raise damage("unit header CRC mismatch: the header is damaged", "unit header")
    header = UnitHeader(utype, layer, flags, None if frame == NO_FRAME else frame, length, pcrc, raw)
    if reserved != 0 or (flags & ~KNOWN_FLAGS and minor <= VERSION_MINOR):
        raise damage(f"reserved header bits set (flags 0x{flags:02x})", header.what)
    if length > MAX_PAYLOAD:
        raise damage(f"payload length {length} exceeds the limit {MAX_PAYLOAD}", header.what)
    return header


def check_payload(header: UnitHeader, payload: bytes, offset: int, *, source: str) -> Unit:
    """The unit, once its payload matches the header's CRC; raises :class:`PayloadError`."""
    if zlib.crc32(payload) != header.payload_crc:
        raise PayloadError("payload CRC mismatch: the unit is damaged", offset=offset, unit=header.what,
                           frame=header.frame, source=source, layer=header.layer, unit_type=header.type)
    return Unit(header.type, header.layer, header.flags, header.frame, payload, offset, header.raw)


def parse_sequence_header(unit: Unit | None, *, offset: int, source: str) -> SequenceHeader:
    """The first unit, which must be a valid SEQUENCE_HEADER (``None``: the data ended)."""
    if unit is None or unit.type != UnitType.SEQUENCE_HEADER:
        got = "end of data" if unit is None else unit.describe()
        raise BitstreamError(f"expected SEQUENCE_HEADER as the first unit, got {got}", offset=offset,
                             unit="SEQUENCE_HEADER", source=source)
    try:
        return SequenceHeader.from_bytes(unit.payload)
    except BitstreamError as exc:
        raise BitstreamError(str(exc), offset=unit.offset, unit="SEQUENCE_HEADER", source=source) from None


def add_layer_config(layers: dict[int, LayerConfig], unit: Unit, *, source: str) -> None:
    """Parse a LAYER_CONFIG unit into ``layers``; one per layer, never for the stream layer."""
    if unit.layer in layers or unit.layer == STREAM_LAYER:
        raise BitstreamError(f"duplicate or invalid LAYER_CONFIG for layer {unit.layer}", offset=unit.offset,
                             unit="LAYER_CONFIG", source=source)
    try:
        layers[unit.layer] = LayerConfig.from_bytes(unit.layer, unit.payload)
    except BitstreamError as exc:
        raise BitstreamError(str(exc), offset=unit.offset, unit=f"LAYER_CONFIG of layer {unit.layer}",
                             source=source) from None


def misplaced_unit(unit: Unit, minor: int) -> str | None:
    """Why ``unit``, met after the header units, does not belong there; ``None`` when it does.

    Frame units need a frame index; header units come only before the first
    frame unit; a unit type this version does not know is damage in a stream
    of this or an older minor version, and skipped (``None``) in a newer one.
    """
    if unit.type in FRAME_TYPES:
        return "frame unit without a frame index" if unit.frame is None else None
    if unit.type in (UnitType.INDEX, UnitType.END):
        return None
    if unit.type in (UnitType.SEQUENCE_HEADER, UnitType.LAYER_CONFIG):
        return "header unit after the first frame unit"
    if minor > VERSION_MINOR:
        return None
    return (f"unknown {unit_name(unit.type)} in a version {VERSION_MAJOR}.{minor} stream "
            "(damaged stream, or written by an incompatible tool)")
