"""Training-free base layer: compress a split detector's own features ("feature-base").

>>> from vcodec.baselayer.features import FeatureBase
>>> base = FeatureBase("yolox-nano", weights="yolox_nano.onnx")
>>> base.calibrate(first_frames)                  # a few frames of the user's data
>>> params = base.layer_config(0.5, 32)           # JSON for the stream's LAYER_CONFIG
>>> enc = base.encoder(0.5, 32)
>>> payload, _ = enc.encode_frame(frame, intra=True)
>>> dec = FeatureBase.from_params(params, weights="yolox_nano.onnx").decoder()
>>> features = dec.decode_frame(payload, intra=True)
>>> dets = base.detect(features, base.detector, dec.last_geometry)

Modules: :mod:`~vcodec.baselayer.features.clipping` (clip ranges from activation
statistics), :mod:`~vcodec.baselayer.features.quantizer` (uniform and entropy-constrained
scalar quantizers), :mod:`~vcodec.baselayer.features.entropy` (rANS coding of indexes
with integer CDF tables), :mod:`~vcodec.baselayer.features.codec` (the base layer).
See docs/FEATURES.md.
"""

from __future__ import annotations

from vcodec.baselayer.features.codec import (
    FEATURE_KIND,
    FeatureBase,
    FeatureBaseFactory,
    FeatureDecoder,
    FeatureDesign,
    FeatureEncoder,
    design_from_features,
    quality_to_levels,
)
from vcodec.baselayer.protocol import BASE_MODES

__all__ = [
    "FEATURE_KIND",
    "FeatureBase",
    "FeatureBaseFactory",
    "FeatureDecoder",
    "FeatureDesign",
    "FeatureEncoder",
    "design_from_features",
    "quality_to_levels",
]


def _register() -> None:
    if FEATURE_KIND not in BASE_MODES:
        BASE_MODES.register(FEATURE_KIND, FeatureBaseFactory())


_register()
