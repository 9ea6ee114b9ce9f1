"""Moved: the base-layer protocol lives in :mod:`vcodec.baselayer`, the learned plug-in in
:mod:`vcodec.models.plugin`.  This module re-exports both for one release.
"""

from __future__ import annotations

from typing import Any

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
    "BaseLayer",
    "BaseLayerEncoder",
    "BaseLayerDecoder",
    "BaseLayerFactory",
    "BASE_MODES",
    "MODE_NAMES",
    "MODE_MODULES",
    "LEARNED_KIND",
    "FEATURE_KIND",
    "get_base_factory",
    "kind_for_mode",
]

_LAZY = {"default_base_model", "DEFAULT_BASE_MODELS", "LearnedBase", "LearnedBaseFactory"}


def __getattr__(name: str) -> Any:
    # the learned plug-in imports torch: only when one of its names is asked for
    if name in _LAZY:
        from vcodec.models import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
