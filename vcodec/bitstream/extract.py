"""Layer extraction: a byte-level filter over units.

Keeping a subset of layers copies the preamble, the SEQUENCE_HEADER, the
LAYER_CONFIG units of the kept layers and their frame units verbatim, then
writes a fresh INDEX (offsets change) and END.  Nothing is decoded: time is
O(stream size), memory O(one unit) plus the intra-frame index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from vcodec.bitstream.format import STREAM_LAYER, UnitType
from vcodec.bitstream.reader import StreamReader, StreamSource, Unit
from vcodec.bitstream.writer import StreamWriter
from vcodec.errors import ConfigError

__all__ = ["extract_layers", "parse_layers"]


def parse_layers(text: str) -> set[int] | None:
    """``base`` -> {0}; ``all`` -> None (every layer); ``0,1`` -> {0, 1}."""
    text = text.strip().lower()
    if text == "base":
        return {0}
    if text == "all":
        return None
    try:
        ids = {int(t) for t in text.split(",") if t.strip()}
    except ValueError:
        raise ConfigError(f"--layers {text!r}: use 'base', 'all' or layer ids like '0' or '0,1'") from None
    if not ids or any(not 0 <= i < STREAM_LAYER for i in ids):
        raise ConfigError(f"--layers {text!r}: layer ids are 0..254")
    return ids


def extract_layers(source: StreamSource, sink: BinaryIO, layers: Iterable[int] = (0,)) -> dict[str, int]:
    """Copy the units of ``layers`` (and the stream-level units) from ``source`` to ``sink``.

    Returns counters: units read, units and bytes written.
    """
    keep = set(layers)
    with StreamReader(source) as reader:
        missing = keep - set(reader.layers)
        if missing:
            have = ", ".join(str(i) for i in sorted(reader.layers)) or "none"
            raise ConfigError(
                f"{reader.name}: layer(s) {sorted(missing)} not in this stream (it has {have})")
        raw_headers = [u.raw for u in reader.header_units
                       if u.type == UnitType.SEQUENCE_HEADER or u.layer in keep]
        writer = StreamWriter(sink, reader.header, [c for i, c in reader.layers.items() if i in keep],
                              raw_headers=raw_headers, minor=reader.minor)
        units_in = len(reader.header_units)
        for unit in reader:
            assert isinstance(unit, Unit)  # a strict reader never yields Damage
            units_in += 1
            if unit.layer in keep:
                writer.write_raw_unit(unit.raw, layer=unit.layer, frame=unit.frame, intra=unit.intra,
                                      payload_size=len(unit.payload))
        writer.close()
        return {"units_in": units_in, "units_out": writer.units_written, "bytes_out": writer.bytes_written}
