"""Stream writer: preamble, headers, frame units, INDEX and END.

See :mod:`vcodec.bitstream.format` (and ``docs/FORMAT.md``) for the byte
layout.  The writer never seeks, so it writes to pipes and sockets as well as
files; it counts the bytes it has written to build the intra-frame index.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Protocol

from vcodec.bitstream.format import (
    END_PAYLOAD,
    FLAG_INTRA,
    FRAME_TYPES,
    INDEX_COUNT,
    INDEX_ENTRY,
    MAGIC,
    MAX_PAYLOAD,
    NO_FRAME,
    PREAMBLE,
    STREAM_LAYER,
    SYNC,
    UNIT_HEADER,
    VERSION_MAJOR,
    WRITE_MINOR,
    UnitType,
)
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.errors import ConfigError

__all__ = ["StreamWriter", "pack_unit", "preamble_bytes"]


class BinarySink(Protocol):
    """What :class:`StreamWriter` writes to: anything with ``write(bytes)`` (a binary file, a pipe,
    a socket wrapper, a queue); a ``flush()`` is called when there is one."""

    def write(self, data: bytes, /) -> object: ...


def preamble_bytes(minor: int = WRITE_MINOR) -> bytes:
    return PREAMBLE.pack(MAGIC, VERSION_MAJOR, minor, 0)


def pack_unit(
    unit_type: int, layer: int, payload: bytes, frame: int | None = None, intra: bool = False
) -> bytes:
    """Serialise one unit (header + payload)."""
    if not 0 <= layer <= 0xFF:
        raise ConfigError(f"layer id {layer} is outside 0..255")
    if len(payload) > MAX_PAYLOAD:
        raise ConfigError(f"unit payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    frame_field = NO_FRAME if frame is None else frame
    if not 0 <= frame_field <= NO_FRAME:
        raise ConfigError(f"frame index {frame} is outside 0..{NO_FRAME - 1}")
    head = UNIT_HEADER.pack(
        SYNC, unit_type, layer, FLAG_INTRA if intra else 0, 0, frame_field, len(payload),
        zlib.crc32(payload), 0,
    )[:18]
    return head + zlib.crc32(head).to_bytes(4, "big") + payload


class StreamWriter:
    """Write a stream to a binary sink.

    >>> w = StreamWriter(sink, header, [base_cfg, enh_cfg])
    >>> w.write_frame_unit(UnitType.BASE_FRAME, 0, frame=0, payload=b"...", intra=True)
    >>> w.close()   # writes INDEX and END; the sink itself is left open
    """

    def __init__(
        self,
        sink: BinarySink,
        header: SequenceHeader,
        layers: Iterable[LayerConfig],
        *,
        raw_headers: Iterable[bytes] | None = None,
        minor: int = WRITE_MINOR,
    ) -> None:
        """``raw_headers``: already serialised SEQUENCE_HEADER/LAYER_CONFIG units to copy
        verbatim instead of serialising ``header``/``layers`` (layer extraction)."""
        self.sink = sink
        self.header = header
        self.layers = {cfg.layer_id: cfg for cfg in layers}
        self.bytes_written = 0
        self.units_written = 0
        self.frames: set[int] = set()
        self.bytes_per_layer: dict[int, int] = {}
        self.index: list[tuple[int, int]] = []
        self.closed = False
        self._write(preamble_bytes(minor))
        if raw_headers is not None:
            for raw in raw_headers:
                self._write(raw)
                self.units_written += 1
            return
        self._write_unit(UnitType.SEQUENCE_HEADER, STREAM_LAYER, header.to_bytes())
        for layer_id in sorted(self.layers):
            self._write_unit(UnitType.LAYER_CONFIG, layer_id, self.layers[layer_id].to_bytes())

    # raw writes -----------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self.sink.write(data)
        self.bytes_written += len(data)

    def _write_unit(
        self, unit_type: int, layer: int, payload: bytes, frame: int | None = None, intra: bool = False
    ) -> int:
        offset = self.bytes_written
        self._write(pack_unit(unit_type, layer, payload, frame, intra))
        self.units_written += 1
        return offset

    # public ---------------------------------------------------------------
    def write_frame_unit(
        self, unit_type: int, layer: int, *, frame: int, payload: bytes, intra: bool = False
    ) -> None:
        """Append one frame unit (base latent, enhancement packet...) in decode order."""
        if self.closed:
            raise ConfigError("stream writer is closed")
        if unit_type not in FRAME_TYPES:
            raise ConfigError(f"unit type {unit_type} is not a frame unit type")
        if layer not in self.layers:
            raise ConfigError(f"layer {layer} has no LAYER_CONFIG in this stream")
        offset = self._write_unit(unit_type, layer, payload, frame, intra)
        self.bytes_per_layer[layer] = self.bytes_per_layer.get(layer, 0) + len(payload)
        self.frames.add(frame)
        if intra and layer == min(self.layers):
            self.index.append((frame, offset))

    def write_raw_unit(self, unit: bytes, *, layer: int, frame: int | None, intra: bool,
                       payload_size: int) -> None:
        """Copy an already serialised frame unit (used by layer extraction)."""
        offset = self.bytes_written
        self._write(unit)
        self.units_written += 1
        self.bytes_per_layer[layer] = self.bytes_per_layer.get(layer, 0) + payload_size
        if frame is not None:
            self.frames.add(frame)
            if intra and layer == min(self.layers):
                self.index.append((frame, offset))

    def flush(self) -> None:
        flush = getattr(self.sink, "flush", None)
        if flush is not None:
            flush()

    def close(self, *, index: bool = True) -> None:
        """Write the INDEX (unless ``index`` is False) and the END unit; flush the sink."""
        if self.closed:
            return
        index_offset = 0
        if index:
            entries = b"".join(INDEX_ENTRY.pack(f, o) for f, o in self.index)
            index_offset = self._write_unit(
                UnitType.INDEX, STREAM_LAYER, INDEX_COUNT.pack(len(self.index)) + entries
            )
        num_frames = len(self.frames)
        self._write_unit(
            UnitType.END, STREAM_LAYER, END_PAYLOAD.pack(num_frames, index_offset, self.units_written)
        )
        self.closed = True
        self.flush()

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
