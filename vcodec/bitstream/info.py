"""Stream statistics for ``vcodec info`` and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vcodec.bitstream.format import ENHANCEMENT_LAYER, UNIT_HEADER_SIZE, UnitType
from vcodec.bitstream.gop import PER_GOP_KIND, GopRecord
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.reader import StreamReader, StreamSource, Unit

__all__ = ["StreamStats", "stream_stats"]


@dataclass
class StreamStats:
    """What a full scan of a stream tells (no decoding)."""

    name: str
    header: SequenceHeader
    layers: dict[int, LayerConfig]
    version: str
    num_frames: int = 0
    total_bytes: int = 0
    #: per layer id: bytes of its units (headers included) and unit count
    layer_bytes: dict[int, int] = field(default_factory=dict)
    layer_units: dict[int, int] = field(default_factory=dict)
    intra_frames: list[int] = field(default_factory=list)
    has_index: bool = False
    #: what layer 1 codes per GOP: (first frame, "residual" | "full-frame"); from the ENH_GOP units of
    #: a per-GOP layer, else every intra frame with the layer's own kind; empty without layer 1
    gops: list[tuple[int, str]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return float(self.num_frames / Fraction(self.header.fps)) if self.num_frames else 0.0

    def kbps(self, layer: int) -> float:
        d = self.duration_s
        return self.layer_bytes.get(layer, 0) * 8 / 1000 / d if d else 0.0

    def to_dict(self) -> dict[str, Any]:
        h = self.header
        return {
            "name": self.name,
            "version": self.version,
            "width": h.width,
            "height": h.height,
            "fps": str(Fraction(h.fps)),
            "bit_depth": h.bit_depth,
            "matrix": h.matrix,
            "full_range": h.full_range,
            "intra_period": h.intra_period,
            "properties": h.properties,
            "num_frames": self.num_frames,
            "duration_s": round(self.duration_s, 6),
            "total_bytes": self.total_bytes,
            "has_index": self.has_index,
            "intra_frames": self.intra_frames,
            "gops": [{"frame": f, "mode": m} for f, m in self.gops],
            "layers": [
                {
                    "id": i,
                    "kind": c.kind,
                    "codec": c.codec,
                    "weights_sha256": c.sha256.hex(),
                    "params": c.params,
                    "extradata_bytes": len(c.extradata),
                    "units": self.layer_units.get(i, 0),
                    "bytes": self.layer_bytes.get(i, 0),
                    "kbps": round(self.kbps(i), 3),
                    "share": round(self.layer_bytes.get(i, 0) / self.total_bytes, 6)
                    if self.total_bytes else 0.0,
                }
                for i, c in sorted(self.layers.items())
            ],
        }


def stream_stats(source: StreamSource) -> StreamStats:
    """Scan a whole stream (strictly: any defect raises BitstreamError)."""
    with StreamReader(source) as reader:
        stats = StreamStats(reader.name, reader.header, dict(reader.layers), f"1.{reader.minor}")
        for u in reader.header_units:
            stats.layer_bytes[u.layer] = stats.layer_bytes.get(u.layer, 0) + len(u.raw)
        frames: set[int] = set()
        base = min(reader.layers) if reader.layers else 0
        for unit in reader:
            assert isinstance(unit, Unit)
            size = UNIT_HEADER_SIZE + len(unit.payload)
            stats.layer_bytes[unit.layer] = stats.layer_bytes.get(unit.layer, 0) + size
            stats.layer_units[unit.layer] = stats.layer_units.get(unit.layer, 0) + 1
            if unit.type == UnitType.ENH_GOP and unit.layer == ENHANCEMENT_LAYER and unit.frame is not None:
                stats.gops.append((unit.frame, GopRecord.from_payload(unit.frame, unit.payload).mode))
                continue  # a record, not a frame: it does not count frames or intra frames
            if unit.frame is not None:
                frames.add(unit.frame)
                if unit.intra and unit.layer == base:
                    stats.intra_frames.append(unit.frame)
        stats.num_frames = len(frames)
        enh = reader.layers.get(ENHANCEMENT_LAYER)
        if enh is not None and enh.kind != PER_GOP_KIND and enh.kind in ("residual", "full-frame"):
            stats.gops = [(f, enh.kind) for f in stats.intra_frames]
        stats.has_index = reader.index is not None
        stats.total_bytes = reader._src.offset
        # stream-level units (SEQUENCE_HEADER, INDEX, END) are not any layer's
        stats.layer_bytes.pop(0xFF, None)
        return stats
