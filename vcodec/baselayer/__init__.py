"""The base layer (layer 0) as a concept: the protocol every base-layer mode implements.

The end-to-end codec (:mod:`vcodec.codec`) depends on this package only; the
modes are plug-ins beneath it that register themselves here:
:mod:`vcodec.baselayer.learned.plugin` (learned latent) and :mod:`vcodec.baselayer.features`
(training-free detector features).
"""

from vcodec.baselayer.protocol import (
    BASE_MODES,
    FEATURE_KIND,
    LEARNED_KIND,
    MODE_MODULES,
    MODE_NAMES,
    BaseLayer,
    BaseLayerDecoder,
    BaseLayerEncoder,
    BaseLayerFactory,
    get_base_factory,
    kind_for_mode,
)

__all__ = [
    "BASE_MODES",
    "FEATURE_KIND",
    "LEARNED_KIND",
    "MODE_MODULES",
    "MODE_NAMES",
    "BaseLayer",
    "BaseLayerDecoder",
    "BaseLayerEncoder",
    "BaseLayerFactory",
    "get_base_factory",
    "kind_for_mode",
]
