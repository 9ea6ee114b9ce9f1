"""vcodec: a hybrid scalable video codec for humans and machines.

One stream, two layers: a learned base layer (layer 0) from which an object
detector runs on decoded features without reconstructing pixels, and a
conventional enhancement layer (layer 1) carrying the residual for people.

The curated public API::

    from vcodec import Encoder, Decoder, open_video, open_writer
    from vcodec import StreamReader, StreamWriter, extract_layers, stream_stats
    from vcodec import get_detector, Detections, Frame, VideoInfo, errors

Names that need torch (Encoder, Decoder, get_detector...) are imported on
first use, so that stream tools such as ``vcodec info`` start quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from vcodec import errors
from vcodec.errors import BitstreamError, VcodecError
from vcodec.io.frame import Frame, VideoInfo

#: public name -> module that defines it (imported lazily)
_LAZY: dict[str, str] = {
    "Encoder": "vcodec.codec",
    "Decoder": "vcodec.codec",
    "EncodeSummary": "vcodec.codec",
    "FrameStats": "vcodec.codec",
    "detect_stream": "vcodec.codec",
    "open_video": "vcodec.io",
    "open_writer": "vcodec.io",
    "StreamReader": "vcodec.bitstream",
    "StreamWriter": "vcodec.bitstream",
    "SequenceHeader": "vcodec.bitstream",
    "LayerConfig": "vcodec.bitstream",
    "extract_layers": "vcodec.bitstream",
    "stream_stats": "vcodec.bitstream",
    "get_detector": "vcodec.detection",
    "Detections": "vcodec.detection",
    "load_base_model": "vcodec.baselayer.learned",
}

__all__ = ["__version__", "errors", "BitstreamError", "VcodecError", "Frame", "VideoInfo", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vcodec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # explicit re-exports ("X as X"): the names are public through __all__ (*_LAZY) and __getattr__
    from vcodec.baselayer.learned import load_base_model as load_base_model
    from vcodec.bitstream import LayerConfig as LayerConfig
    from vcodec.bitstream import SequenceHeader as SequenceHeader
    from vcodec.bitstream import StreamReader as StreamReader
    from vcodec.bitstream import StreamWriter as StreamWriter
    from vcodec.bitstream import extract_layers as extract_layers
    from vcodec.bitstream import stream_stats as stream_stats
    from vcodec.codec import Decoder as Decoder
    from vcodec.codec import Encoder as Encoder
    from vcodec.codec import EncodeSummary as EncodeSummary
    from vcodec.codec import FrameStats as FrameStats
    from vcodec.codec import detect_stream as detect_stream
    from vcodec.detection import Detections as Detections
    from vcodec.detection import get_detector as get_detector
    from vcodec.io import open_video as open_video
    from vcodec.io import open_writer as open_writer
