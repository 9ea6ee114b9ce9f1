"""Keep a moved package importable under its old name for one release.

``vcodec.models`` became :mod:`vcodec.baselayer.learned` and ``vcodec.features``
became :mod:`vcodec.baselayer.features` (0.3): the names said "models" and
"features" where they meant two modes of the base layer.  The old names alias the
new package and every one of its modules, so ``import vcodec.models.base_codec``
and ``from vcodec.features import FeatureBase`` still work, with a
DeprecationWarning naming the new path.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from types import ModuleType


def alias_package(old: str, new: str) -> ModuleType:
    """Import ``new`` and register it and its modules under ``old`` in ``sys.modules``."""
    warnings.warn(
        f"{old} moved to {new}; the old name goes in the next release", DeprecationWarning, stacklevel=3
    )
    package = importlib.import_module(new)
    sys.modules[old] = package
    for info in pkgutil.iter_modules(package.__path__):
        sys.modules[f"{old}.{info.name}"] = importlib.import_module(f"{new}.{info.name}")
    return package
