"""Bounds-checked, stream-capable reader.

The reader pulls bytes with ``read(n)`` only, so it works front to back on a
pipe or a socket; when the source is a seekable file it can also use the
INDEX to jump to the intra frame at or before a given frame.

Every defect (wrong magic, unknown major version, truncation, a length that
points past the end, a CRC mismatch, an unknown unit type of this or an older
minor version, trailing bytes) raises :class:`~vcodec.errors.BitstreamError`
naming the byte offset and the unit.  With ``conceal=True`` damaged units are
reported as :class:`Damage` items in the iteration instead, and the reader
resynchronises on the next valid unit header; decoders then skip to the next
intra frame of each layer.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vcodec.bitstream.format import (
    END_PAYLOAD,
    END_UNIT_SIZE,
    FLAG_INTRA,
    FRAME_TYPES,
    INDEX_COUNT,
    INDEX_ENTRY,
    MAGIC,
    PREAMBLE,
    STREAM_LAYER,
    SYNC,
    UNIT_HEADER_SIZE,
    VERSION_MINOR,
    UnitType,
)
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.parser import (
    PayloadError,
    Unit,
    UnitHeaderError,
    add_layer_config,
    check_payload,
    misplaced_unit,
    parse_preamble,
    parse_sequence_header,
    parse_unit_header,
)
from vcodec.errors import BitstreamError, InputError

__all__ = ["StreamReader", "Unit", "Damage", "StreamSource", "is_stream_prefix"]


class _Truncated(BitstreamError):
    """The data ends inside a unit."""

    def __init__(self, message: str, *, unit_type: int | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.unit_type = unit_type  # None when the data ends inside the unit header


# the parser's errors under the names the pull logic below was written with
_HeaderDamage = UnitHeaderError
_PayloadDamage = PayloadError


def is_stream_prefix(data: bytes) -> bool:
    """True when ``data`` starts like a vcodec stream (used to sniff inputs)."""
    return data[:4] == MAGIC


@dataclass
class Damage:
    """A damaged region skipped by a concealing reader."""

    offset: int
    message: str
    layer: int | None = None
    frame: int | None = None


#: a path, the stream bytes, or a binary file object (``io.RawIOBase`` ones too, e.g. an HTTPStream)
StreamSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | io.RawIOBase


class _ByteSource:
    """``read_exact`` over a binary file object with a push-back buffer."""

    def __init__(self, fobj: BinaryIO | io.RawIOBase, name: str) -> None:
        self.fobj = fobj
        self.name = name
        self.offset = 0  # stream offset of the next byte handed out
        self.pending = bytearray()

    def read_upto(self, n: int) -> bytes:
        out = bytearray()
        if self.pending:
            take = min(n, len(self.pending))
            out += self.pending[:take]
            del self.pending[:take]
        while len(out) < n:
            chunk = self.fobj.read(n - len(out))
            if not chunk:
                break
            out += chunk
        self.offset += len(out)
        return bytes(out)

    def unread(self, data: bytes) -> None:
        self.pending[:0] = data
        self.offset -= len(data)

    def seekable(self) -> bool:
        try:
            return bool(self.fobj.seekable())
        except (AttributeError, OSError, ValueError):
            return False

    def seek(self, offset: int) -> None:
        self.fobj.seek(offset)
        self.pending.clear()
        self.offset = offset


class StreamReader:
    """Read a vcodec stream.

    ``source`` is a path, the stream bytes, or a binary file object (a pipe
    is fine).  The headers are read on construction; iterate to get frame
    units (and :class:`Damage` items when ``conceal`` is true).

    ``allow_open_end``: accept a stream that stops at a unit boundary without
    an END unit (a live stream whose sender stopped); otherwise that is a
    truncation error.
    """

    def __init__(
        self,
        source: StreamSource,
        *,
        conceal: bool = False,
        allow_open_end: bool = False,
        name: str | None = None,
    ) -> None:
        self.conceal = conceal
        self.allow_open_end = allow_open_end
        self._owned: BinaryIO | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            fobj: BinaryIO | io.RawIOBase = io.BytesIO(bytes(source))
            self.name = name or "<bytes>"
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                fobj = open(path, "rb")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise InputError(f"{path}: cannot open stream ({exc.strerror or exc})") from None
            self._owned = fobj
            self.name = name or str(path)
        else:
            fobj = source
            self.name = name or getattr(source, "name", None) or "<stream>"
            if not isinstance(self.name, str):
                self.name = "<stream>"
        self._src = _ByteSource(fobj, self.name)
        self.minor = VERSION_MINOR
        self.units_read = 0
        self.ended = False
        self.end_info: tuple[int, int, int] | None = None
        self.end_offset: int | None = None  # byte offset of the END unit once read
        self.index: list[tuple[int, int]] | None = None
        self.damage: list[Damage] = []
        #: layers whose LAYER_CONFIG was damaged (conceal mode; never the base layer): their units are
        #: ignored, the other layers decode
        self.lost_layers: set[int] = set()
        self.data_offset = 0
        self._pending_damage: Damage | None = None
        self._seeked = False  # after a seek the END unit count cannot be checked
        try:
            self._read_preamble()
            self.header, self.layers = self._read_headers()
        except BaseException:
            self.close()
            raise

    # -- context ------------------------------------------------------------
    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- errors ---------------------------------------------------------------
    def _error(self, message: str, offset: int, unit: str | None = None, frame: int | None = None
               ) -> BitstreamError:
        return BitstreamError(message, offset=offset, unit=unit, frame=frame, source=self.name)

    # -- preamble and headers -------------------------------------------------
    def _read_preamble(self) -> None:
        data = self._src.read_upto(PREAMBLE.size)
        if len(data) < PREAMBLE.size:
            raise self._error(
                f"stream is {len(data)} bytes long, shorter than the {PREAMBLE.size}-byte preamble "
                "(empty or truncated file?)", 0, "preamble")
        self.minor = parse_preamble(data, self.name)

    def _read_headers(self) -> tuple[SequenceHeader, dict[int, LayerConfig]]:
        first = self._read_unit_strict()
        header = parse_sequence_header(first, offset=PREAMBLE.size, source=self.name)
        assert first is not None
        self.header_units: list[Unit] = [first]
        layers: dict[int, LayerConfig] = {}
        while True:
            offset = self._src.offset
            try:
                unit = self._read_unit_strict()
            except _HeaderDamage as exc:
                if not self.conceal or not layers:
                    raise
                # most likely the first frame unit; resynchronise and let iteration report it
                self._src.unread(exc.raw[1:])
                self._resync()
                self.damage.append(Damage(offset, str(exc)))
                self._pending_damage = self.damage[-1]
                break
            except (_PayloadDamage, _Truncated) as exc:
                if (self.conceal and layers and isinstance(exc, _PayloadDamage)
                        and exc.unit_type == UnitType.LAYER_CONFIG and exc.layer not in (0, STREAM_LAYER)):
                    # an enhancement layer's configuration (its length was intact): that layer is lost,
                    # the base layer still decodes (the base layer's own configuration stays fatal)
                    self.damage.append(Damage(offset, str(exc), exc.layer))
                    self.lost_layers.add(exc.layer)
                    continue
                # the first frame unit is concealed like any later one (damage after the headers
                # never raises); a damaged base LAYER_CONFIG stays fatal: nothing can be decoded
                if not self.conceal or not layers or exc.unit_type == UnitType.LAYER_CONFIG:
                    raise
                self.damage.append(Damage(offset, str(exc), getattr(exc, "layer", None), exc.frame))
                self._pending_damage = self.damage[-1]
                self.ended = isinstance(exc, _Truncated)  # nothing follows a truncation
                break
            if unit is None:
                break
            if unit.type != UnitType.LAYER_CONFIG:
                self._src.unread(unit.raw)
                self.units_read -= 1
                break
            add_layer_config(layers, unit, source=self.name)
            self.header_units.append(unit)
        self.data_offset = offset  # where the first frame unit starts (or should)
        return header, layers

    # -- units -------------------------------------------------------------------
    def _read_unit_strict(self) -> Unit | None:
        """Read one unit; None at a clean end of data. Raises on any defect."""
        offset = self._src.offset
        raw = self._src.read_upto(UNIT_HEADER_SIZE)
        if not raw:
            return None
        if len(raw) < UNIT_HEADER_SIZE:
            raise _Truncated(f"truncated unit header: {len(raw)} of {UNIT_HEADER_SIZE} bytes present",
                             offset=offset, unit="unit header", source=self.name)
        head = parse_unit_header(raw, offset, minor=self.minor, source=self.name)
        payload = self._src.read_upto(head.length)
        if len(payload) < head.length:
            raise _Truncated(
                f"payload length {head.length} points past the end of the data ({len(payload)} bytes "
                "left): the stream is truncated", offset=offset, unit=head.what, frame=head.frame,
                source=self.name, unit_type=head.type)
        unit = check_payload(head, payload, offset, source=self.name)
        self.units_read += 1
        return unit

    def _resync(self) -> None:
        """Skip forward to the next byte position holding a valid unit header (or the end)."""
        while True:
            chunk = self._src.read_upto(65536)
            if len(chunk) < UNIT_HEADER_SIZE:
                # read_upto stops short only at the end: no unit fits (and a lone pushed-back "V"
                # must not be pushed back again forever)
                return
            start = 0
            while True:
                pos = chunk.find(SYNC, start)
                if pos < 0:
                    if chunk[-1:] == SYNC[:1]:  # SYNC may straddle two chunks
                        self._src.unread(chunk[-1:])
                    break
                if len(chunk) - pos < UNIT_HEADER_SIZE:
                    chunk += self._src.read_upto(UNIT_HEADER_SIZE)
                    if len(chunk) - pos < UNIT_HEADER_SIZE:
                        return  # too few bytes left for any unit
                cand = chunk[pos : pos + UNIT_HEADER_SIZE]
                if zlib.crc32(cand[:18]) == int.from_bytes(cand[18:22], "big"):
                    self._src.unread(chunk[pos:])
                    return
                start = pos + 1

    def _next(self) -> Unit | Damage | None:
        if not self.conceal:
            return self._read_unit_strict()
        try:
            return self._read_unit_strict()
        except _PayloadDamage as exc:
            dmg = Damage(exc.offset or 0, str(exc), exc.layer, exc.frame)  # length was trustworthy
        except _HeaderDamage as exc:
            dmg = Damage(exc.offset or 0, str(exc))
            self._src.unread(exc.raw[1:])
            self._resync()
        except _Truncated as exc:
            dmg = Damage(exc.offset or 0, str(exc), frame=exc.frame)
            self.ended = True
        self.damage.append(dmg)
        return dmg

    def __iter__(self) -> Iterator[Unit | Damage]:
        return self.units()

    def units(self) -> Iterator[Unit | Damage]:
        """Frame units (and Damage items in conceal mode) until END."""
        # a damage found while reading the headers is still reported when it ended the stream
        while not self.ended or self._pending_damage is not None:
            item = self._next_frame_item()
            if item is None:
                return
            yield item

    def _next_frame_item(self) -> Unit | Damage | None:
        if self._pending_damage is not None:
            dmg, self._pending_damage = self._pending_damage, None
            return dmg
        while True:
            offset = self._src.offset
            item = self._next()
            if item is None:
                if self.allow_open_end:
                    return None
                err = self._error("stream ends without an END unit: it is truncated "
                                  "(or a live stream that was cut off)", offset, "END")
                if self.conceal:
                    dmg = Damage(offset, str(err))
                    self.damage.append(dmg)
                    self.ended = True
                    return dmg
                raise err
            if isinstance(item, Damage):
                return item
            problem = misplaced_unit(item, self.minor)
            if item.type in FRAME_TYPES:
                if problem is not None:  # not concealed: the unit cannot be placed at all
                    raise self._error(problem, item.offset, item.describe())
                return item
            if item.type == UnitType.INDEX:
                try:
                    self.index = self._parse_index(item)
                except BitstreamError as exc:
                    if not self.conceal:
                        raise
                    self.damage.append(Damage(item.offset, str(exc)))
                continue
            if item.type == UnitType.END:
                self._finish(item)
                return None
            if problem is None:
                continue  # a unit type from a newer minor version: skip it
            err = self._error(problem, item.offset, item.describe())
            if self.conceal:
                dmg = Damage(item.offset, str(err))
                self.damage.append(dmg)
                return dmg
            raise err

    def _parse_index(self, unit: Unit) -> list[tuple[int, int]]:
        p = unit.payload
        if len(p) < INDEX_COUNT.size:
            raise self._error("INDEX payload too short", unit.offset, "INDEX")
        (count,) = INDEX_COUNT.unpack_from(p)
        if len(p) != INDEX_COUNT.size + count * INDEX_ENTRY.size:
            raise self._error(f"INDEX says {count} entries but holds {len(p) - 4} bytes", unit.offset,
                              "INDEX")
        entries = [INDEX_ENTRY.unpack_from(p, INDEX_COUNT.size + i * INDEX_ENTRY.size)
                   for i in range(count)]
        for f, o in entries:
            if o < self.data_offset or o >= unit.offset:
                raise self._error(f"INDEX entry for frame {f} points to byte {o}, outside the frame data",
                                  unit.offset, "INDEX")
        return entries

    def _finish(self, unit: Unit) -> None:
        if len(unit.payload) != END_PAYLOAD.size:
            raise self._error(f"END payload is {len(unit.payload)} bytes, expected {END_PAYLOAD.size}",
                              unit.offset, "END")
        frames, index_offset, units = END_PAYLOAD.unpack(unit.payload)
        if units != self.units_read - 1 and not (self.conceal or self._seeked):
            raise self._error(f"END says {units} units precede it but {self.units_read - 1} were read: "
                              "units are missing", unit.offset, "END")
        self.end_info = (frames, index_offset, units)
        self.end_offset = unit.offset
        self.ended = True
        trailing = self._src.read_upto(1)
        if trailing:
            err = self._error("unexpected data after the END unit", unit.offset + END_UNIT_SIZE, "END")
            if not self.conceal:
                raise err
            self.damage.append(Damage(unit.offset + END_UNIT_SIZE, str(err)))

    # -- random access ----------------------------------------------------------
    @property
    def seekable(self) -> bool:
        return self._src.seekable()

    def read_index(self) -> list[tuple[int, int]]:
        """The intra-frame index ``[(frame, offset), ...]`` (seekable sources only).

        Uses the INDEX unit found through the END unit; rebuilds the index by
        scanning unit headers when the stream has none.
        """
        if not self.seekable:
            raise InputError(f"{self.name}: random access needs a seekable file, not a pipe")
        saved = self._src.offset
        saved_units = self.units_read
        fobj = self._src.fobj
        fobj.seek(0, io.SEEK_END)
        size = fobj.tell()
        entries: list[tuple[int, int]] | None = None
        if size - END_UNIT_SIZE >= self.data_offset:
            self._src.seek(size - END_UNIT_SIZE)
            try:
                end = self._read_unit_strict()
                if end is not None and end.type == UnitType.END and len(end.payload) == END_PAYLOAD.size:
                    _, index_offset, _ = END_PAYLOAD.unpack(end.payload)
                    if index_offset:
                        self._src.seek(index_offset)
                        unit = self._read_unit_strict()
                        if unit is None or unit.type != UnitType.INDEX:
                            raise self._error("END points to a unit that is not the INDEX", index_offset,
                                              "INDEX")
                        entries = self._parse_index(unit)
            except BitstreamError:
                entries = None
        if entries is None:
            entries = self._scan_index()
        self._src.seek(saved)
        self.units_read = saved_units
        self.index = entries
        return entries

    def _scan_index(self) -> list[tuple[int, int]]:
        self._src.seek(self.data_offset)
        base = min(self.layers) if self.layers else 0
        out: list[tuple[int, int]] = []
        while True:
            offset = self._src.offset
            raw = self._src.read_upto(UNIT_HEADER_SIZE)
            if len(raw) < UNIT_HEADER_SIZE:
                return out
            head = parse_unit_header(raw, offset, minor=self.minor, source=self.name)
            if head.type == UnitType.END:
                return out
            if (head.type in FRAME_TYPES and head.layer == base and head.flags & FLAG_INTRA
                    and head.frame is not None):
                out.append((head.frame, offset))
            self._src.seek(offset + UNIT_HEADER_SIZE + head.length)

    def seek_frame(self, frame: int) -> int:
        """Position the reader at the intra frame at or before ``frame``; returns that frame."""
        entries = self.index if self.index is not None else self.read_index()
        best: tuple[int, int] | None = None
        for f, o in entries:
            if f <= frame and (best is None or f > best[0]):
                best = (f, o)
        if best is None:
            raise InputError(f"{self.name}: no intra frame at or before frame {frame}")
        self._src.seek(best[1])
        self._seeked = True
        self.ended = False
        return best[0]
