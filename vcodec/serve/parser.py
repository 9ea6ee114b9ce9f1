"""Incremental (push) unit parser for bytes that arrive in arbitrary pieces.

:class:`~vcodec.bitstream.StreamReader` *pulls* bytes; a server receiving a
published stream, or a live encoder writing into a sink, instead *pushes*
chunks of any size.  :class:`UnitParser` buffers them and hands back every
complete, checked unit (sync bytes, header CRC, length bound, payload CRC),
so the server can route units by layer id without decoding anything.
"""

from __future__ import annotations

import zlib

from vcodec.bitstream.format import (
    MAGIC,
    MAX_PAYLOAD,
    NO_FRAME,
    PREAMBLE,
    STREAM_LAYER,
    SYNC,
    UNIT_HEADER,
    UNIT_HEADER_SIZE,
    VERSION_MAJOR,
    UnitType,
    unit_name,
)
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.reader import Unit
from vcodec.errors import BitstreamError

__all__ = ["UnitParser"]


class UnitParser:
    """Feed bytes with :meth:`feed`; get complete units back.

    The header units (SEQUENCE_HEADER, LAYER_CONFIG) are collected in
    :attr:`header_units` and also parsed into :attr:`header` and
    :attr:`layers`; :attr:`header_ready` turns true once the first unit that
    is not a LAYER_CONFIG arrives (from then on every unit is returned by
    :meth:`feed`).  Any defect raises :class:`BitstreamError` naming the byte
    offset: a publisher sending a damaged stream is refused, not concealed.
    """

    def __init__(self, name: str = "<published stream>") -> None:
        self.name = name
        self._buf = bytearray()
        self.offset = 0  # stream offset of self._buf[0]
        self.minor: int | None = None
        self.header: SequenceHeader | None = None
        self.layers: dict[int, LayerConfig] = {}
        self.header_units: list[Unit] = []
        self.header_ready = False
        self.ended = False

    def _error(self, message: str, offset: int, unit: str | None = None) -> BitstreamError:
        return BitstreamError(message, offset=offset, unit=unit, source=self.name)

    def feed(self, data: bytes) -> list[Unit]:
        """Add ``data``; return the frame-level units now complete (headers are kept aside)."""
        if data and self.ended:
            raise self._error("data after the END unit", self.offset + len(self._buf), "END")
        self._buf += data
        out: list[Unit] = []
        if self.minor is None:
            if len(self._buf) < PREAMBLE.size:
                return out
            magic, major, minor, flags = PREAMBLE.unpack_from(self._buf)
            if magic != MAGIC:
                raise self._error(f"not a vcodec stream: magic is {magic!r}, expected {MAGIC!r}", 0,
                                  "preamble")
            if major != VERSION_MAJOR or flags != 0:
                raise self._error(f"unsupported stream version {major}.{minor} / flags 0x{flags:04x}", 4,
                                  "preamble")
            self.minor = minor
            del self._buf[: PREAMBLE.size]
            self.offset = PREAMBLE.size
        while True:
            unit = self._take_unit()
            if unit is None:
                return out
            if not self.header_ready and self._header_unit(unit):
                continue
            if unit.type == UnitType.END:
                self.ended = True
                if self._buf:
                    raise self._error("data after the END unit", self.offset, "END")
            out.append(unit)

    @property
    def preamble(self) -> bytes:
        if self.minor is None:
            raise self._error("no preamble received yet", 0, "preamble")
        return PREAMBLE.pack(MAGIC, VERSION_MAJOR, self.minor, 0)

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet part of a complete unit."""
        return len(self._buf)

    def _header_unit(self, unit: Unit) -> bool:
        """Absorb a header unit; False when ``unit`` is the first frame-level unit."""
        if not self.header_units:
            if unit.type != UnitType.SEQUENCE_HEADER:
                raise self._error(f"expected SEQUENCE_HEADER as the first unit, got {unit.describe()}",
                                  unit.offset, unit.name)
            try:
                self.header = SequenceHeader.from_bytes(unit.payload)
            except BitstreamError as exc:
                raise self._error(str(exc), unit.offset, "SEQUENCE_HEADER") from None
            self.header_units.append(unit)
            return True
        if unit.type == UnitType.LAYER_CONFIG:
            if unit.layer in self.layers or unit.layer == STREAM_LAYER:
                raise self._error(f"duplicate or invalid LAYER_CONFIG for layer {unit.layer}", unit.offset,
                                  "LAYER_CONFIG")
            try:
                self.layers[unit.layer] = LayerConfig.from_bytes(unit.layer, unit.payload)
            except BitstreamError as exc:
                raise self._error(str(exc), unit.offset, "LAYER_CONFIG") from None
            self.header_units.append(unit)
            return True
        self.header_ready = True
        return False

    def _take_unit(self) -> Unit | None:
        buf = self._buf
        if len(buf) < UNIT_HEADER_SIZE:
            return None
        raw = bytes(buf[:UNIT_HEADER_SIZE])
        sync, utype, layer, flags, reserved, frame, length, pcrc, hcrc = UNIT_HEADER.unpack(raw)
        if sync != SYNC or zlib.crc32(raw[:18]) != hcrc:
            raise self._error("unit header damaged (bad sync or header CRC)", self.offset, "unit header")
        what = f"{unit_name(utype)} (layer {layer})"
        if reserved != 0:
            raise self._error("reserved unit header byte is not zero", self.offset, what)
        if length > MAX_PAYLOAD:
            raise self._error(f"payload length {length} exceeds the limit {MAX_PAYLOAD}", self.offset, what)
        if len(buf) < UNIT_HEADER_SIZE + length:
            return None
        payload = bytes(buf[UNIT_HEADER_SIZE : UNIT_HEADER_SIZE + length])
        if zlib.crc32(payload) != pcrc:
            raise self._error("payload CRC mismatch: the unit is damaged", self.offset, what)
        unit = Unit(utype, layer, flags, None if frame == NO_FRAME else frame, payload, self.offset, raw)
        del buf[: UNIT_HEADER_SIZE + length]
        self.offset += UNIT_HEADER_SIZE + length
        return unit
