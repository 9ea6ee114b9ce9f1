"""The layered stream format (``.vcs``); the byte layout is in ``docs/FORMAT.md``."""

from vcodec.bitstream.extract import extract_layers, parse_layers
from vcodec.bitstream.format import (
    BASE_LAYER,
    ENHANCEMENT_LAYER,
    MAGIC,
    STREAM_LAYER,
    VERSION_MAJOR,
    VERSION_MINOR,
    UnitType,
)
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.info import StreamStats, stream_stats
from vcodec.bitstream.reader import Damage, StreamReader, Unit, is_stream_prefix
from vcodec.bitstream.writer import StreamWriter, pack_unit

__all__ = [
    "BASE_LAYER", "ENHANCEMENT_LAYER", "MAGIC", "STREAM_LAYER", "VERSION_MAJOR", "VERSION_MINOR",
    "UnitType", "LayerConfig", "SequenceHeader", "StreamReader", "StreamWriter", "Unit", "Damage",
    "extract_layers", "parse_layers", "pack_unit", "is_stream_prefix", "StreamStats", "stream_stats",
]
