"""Incremental (push) unit parser for bytes that arrive in arbitrary pieces.

:class:`~vcodec.bitstream.StreamReader` *pulls* bytes; a server receiving a
published stream, or a live encoder writing into a sink, instead *pushes*
chunks of any size.  :class:`UnitParser` buffers them and hands back every
complete, checked unit, so the server can route units by layer id without
decoding anything.  The checks themselves are :mod:`vcodec.bitstream.parser`'s,
the same the pull reader makes (sync bytes, header CRC, reserved byte, unknown
flags, length bound, payload CRC, header units).
"""

from __future__ import annotations

from vcodec.bitstream.checks import unit_size_limit
from vcodec.bitstream.format import MAGIC, PREAMBLE, UNIT_HEADER_SIZE, VERSION_MAJOR, UnitType
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.parser import (
    Unit,
    add_layer_config,
    check_payload,
    misplaced_unit,
    parse_preamble,
    parse_sequence_header,
    parse_unit_header,
)
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

    def __init__(self, name: str = "<published stream>", *, max_unit_bytes: int | None = None) -> None:
        self.name = name
        #: the largest unit payload accepted (``vcodec serve --max-unit-bytes``); once the
        #: SEQUENCE_HEADER is in, also the bound its picture format allows
        self.max_unit_bytes = max_unit_bytes
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
            self.minor = parse_preamble(bytes(self._buf[: PREAMBLE.size]), self.name)
            del self._buf[: PREAMBLE.size]
            self.offset = PREAMBLE.size
        while True:
            unit = self._take_unit()
            if unit is None:
                return out
            if not self.header_ready and self._header_unit(unit):
                continue
            assert self.minor is not None  # set with the preamble, before any unit
            problem = misplaced_unit(unit, self.minor)
            if problem is not None:
                raise self._error(problem, unit.offset, unit.describe())
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
    def unit_limit(self) -> int | None:
        """The payload bound now: ``max_unit_bytes``, and the header's (:func:`unit_size_limit`)."""
        bounds = [b for b in (self.max_unit_bytes,
                              unit_size_limit(self.header) if self.header is not None else None) if b]
        return min(bounds) if bounds else None

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet part of a complete unit."""
        return len(self._buf)

    def _header_unit(self, unit: Unit) -> bool:
        """Absorb a header unit; False when ``unit`` is the first frame-level unit."""
        if not self.header_units:
            self.header = parse_sequence_header(unit, offset=unit.offset, source=self.name)
            self.header_units.append(unit)
            return True
        if unit.type == UnitType.LAYER_CONFIG:
            add_layer_config(self.layers, unit, source=self.name)
            self.header_units.append(unit)
            return True
        self.header_ready = True
        return False

    def _take_unit(self) -> Unit | None:
        buf = self._buf
        if len(buf) < UNIT_HEADER_SIZE:
            return None
        assert self.minor is not None
        head = parse_unit_header(bytes(buf[:UNIT_HEADER_SIZE]), self.offset, minor=self.minor,
                                 source=self.name)
        limit = self.unit_limit
        if limit is not None and head.length > limit:
            # refused from the header alone: the payload is never buffered
            raise self._error(f"unit payload of {head.length} bytes exceeds this stream's limit of {limit} "
                              "bytes (--max-unit-bytes, and what its picture size can need)", self.offset,
                              head.what)
        if len(buf) < UNIT_HEADER_SIZE + head.length:
            return None
        payload = bytes(buf[UNIT_HEADER_SIZE : UNIT_HEADER_SIZE + head.length])
        unit = check_payload(head, payload, self.offset, source=self.name)
        del buf[: UNIT_HEADER_SIZE + head.length]
        self.offset += UNIT_HEADER_SIZE + head.length
        return unit
