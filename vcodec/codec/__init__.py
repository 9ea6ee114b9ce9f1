"""The end-to-end codec: one stream, a base layer for machines and an enhancement layer for people.

>>> from vcodec.codec import Encoder, Decoder
>>> from vcodec.io import open_video
>>> with open_video("clip.y4m") as reader, Encoder("clip.vcs", reader.info) as enc:
...     for frame in reader:
...         enc.encode(frame)
>>> with Decoder("clip.vcs") as dec:                    # people: full pictures
...     for frame in dec.frames(): ...
>>> with Decoder("clip.vcs", layers="base") as dec:     # machines: layer 0 only
...     for index, detections in dec.detections(): ...

See ``docs/CODEC.md``; the base-layer plug-in protocol is in
:mod:`vcodec.baselayer`.
"""

from typing import Any

from vcodec.baselayer.protocol import (
    BASE_MODES,
    FEATURE_KIND,
    LEARNED_KIND,
    BaseLayer,
    BaseLayerDecoder,
    BaseLayerEncoder,
    BaseLayerFactory,
)
from vcodec.codec.analytics import detect_stream, is_stream
from vcodec.codec.decoder import Decoder
from vcodec.codec.encoder import Encoder, choose_inter_layer
from vcodec.codec.sample import bundled_sequence
from vcodec.codec.stats import EncodeSummary, FrameStats

__all__ = [
    "Encoder",
    "choose_inter_layer",
    "Decoder",
    "FrameStats",
    "EncodeSummary",
    "detect_stream",
    "is_stream",
    "bundled_sequence",
    "BASE_MODES",
    "LEARNED_KIND",
    "FEATURE_KIND",
    "BaseLayer",
    "BaseLayerEncoder",
    "BaseLayerDecoder",
    "BaseLayerFactory",
]


def __getattr__(name: str) -> Any:
    # the learned plug-in imports torch: only when asked for
    if name == "default_base_model":
        from vcodec.baselayer.learned.plugin import default_base_model

        return default_base_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
