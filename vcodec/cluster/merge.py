"""Driver side: concatenate GOP unit runs into ONE stream through the stream writer.

Each worker hands back its GOP as a small complete stream (preamble, headers,
the GOP's frame units, INDEX, END).  :class:`GopMerger` checks every run (CRCs,
the same header units as the first GOP, frame indexes inside the GOP), copies
the header units of the first run once and every run's frame units in GOP
order with :meth:`StreamWriter.write_raw_unit`; :meth:`StreamWriter.close`
then writes the INDEX (offsets in the merged stream) and END (frame and unit
counts), exactly as the serial encoder's writer does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from vcodec.bitstream import StreamWriter
from vcodec.bitstream.format import PREAMBLE, UNIT_HEADER_SIZE, UnitType
from vcodec.bitstream.headers import LayerConfig
from vcodec.bitstream.parser import (
    Unit,
    add_layer_config,
    check_payload,
    parse_preamble,
    parse_sequence_header,
    parse_unit_header,
)
from vcodec.cluster.plan import GopResult
from vcodec.errors import BitstreamError, EncoderError

__all__ = ["GopRun", "split_run", "GopMerger"]


@dataclass
class GopRun:
    """One GOP's stream, cut into its header units and frame units."""

    minor: int
    headers: list[Unit]
    frames: list[Unit]


def split_run(data: bytes, name: str) -> GopRun:
    """Cut a worker's stream into units (every CRC checked); INDEX and END are dropped."""
    minor = parse_preamble(data[:PREAMBLE.size], name)
    pos = PREAMBLE.size
    headers: list[Unit] = []
    frames: list[Unit] = []
    while pos < len(data):
        if pos + UNIT_HEADER_SIZE > len(data):
            raise BitstreamError("truncated unit header", offset=pos, source=name)
        head = parse_unit_header(data[pos:pos + UNIT_HEADER_SIZE], pos, minor=minor, source=name)
        end = pos + UNIT_HEADER_SIZE + head.length
        if end > len(data):
            raise BitstreamError("truncated payload", offset=pos, unit=head.what, source=name)
        unit = check_payload(head, data[pos + UNIT_HEADER_SIZE:end], pos, source=name)
        if unit.type in (UnitType.SEQUENCE_HEADER, UnitType.LAYER_CONFIG):
            headers.append(unit)
        elif unit.type not in (UnitType.INDEX, UnitType.END):
            frames.append(unit)
        pos = end
    return GopRun(minor, headers, frames)


class GopMerger:
    """Write GOP runs, in order, into one stream on ``sink``.

    >>> m = GopMerger(sink)
    >>> for result in results_in_gop_order:
    ...     m.add(result)
    >>> m.close()
    """

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.writer: StreamWriter | None = None
        self._headers: list[bytes] = []
        self._minor = 0
        self.next_frame = 0
        self.gops = 0

    def add(self, result: GopResult) -> None:
        what = f"GOP {result.gop} (frames {result.first_frame}..{result.first_frame + result.frames - 1})"
        if result.first_frame != self.next_frame:
            raise EncoderError(f"{what} arrived out of order: the stream is at frame {self.next_frame}")
        run = split_run(result.stream, what)
        raw_headers = [u.raw for u in run.headers]
        if self.writer is None:
            seq = parse_sequence_header(run.headers[0] if run.headers else None, offset=8, source=what)
            layers: dict[int, LayerConfig] = {}
            for u in run.headers[1:]:
                add_layer_config(layers, u, source=what)
            self._headers, self._minor = raw_headers, run.minor
            self.writer = StreamWriter(self.sink, seq, layers.values(), raw_headers=raw_headers,
                                       minor=run.minor)
        elif raw_headers != self._headers or run.minor != self._minor:
            raise EncoderError(f"{what}: its stream headers differ from GOP 0's (another vcodec version or "
                               "other "
                               "weights on that worker?); install the same vcodec and weights on every node")
        last = result.first_frame + result.frames
        for u in run.frames:
            if u.frame is None or not result.first_frame <= u.frame < last:
                raise EncoderError(f"{what}: unit {u.describe()} lies outside the GOP")
            self.writer.write_raw_unit(u.raw, layer=u.layer, frame=u.frame, intra=u.intra,
                                       payload_size=len(u.payload))
        self.writer.flush()
        self.next_frame = last
        self.gops += 1

    def close(self) -> None:
        """Write INDEX and END (the writer's own)."""
        if self.writer is None:
            raise EncoderError("no GOP was coded: nothing to write")
        self.writer.close()
