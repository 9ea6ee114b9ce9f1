"""Moved: the base-layer protocol lives in :mod:`vcodec.baselayer`, the learned plug-in in
:mod:`vcodec.baselayer.learned.plugin`.  This module re-exports both for one release.
"""

from __future__ import annotations

from typing import Any

from vcodec.baselayer import protocol as _protocol
from vcodec.baselayer.protocol import *  # noqa: F403  (the old names, one release)

__all__ = list(_protocol.__all__)

_LAZY = {"default_base_model", "DEFAULT_BASE_MODELS", "LearnedBase", "LearnedBaseFactory"}


def __getattr__(name: str) -> Any:
    # the learned plug-in imports torch: only when one of its names is asked for
    if name in _LAZY:
        from vcodec.baselayer.learned import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
