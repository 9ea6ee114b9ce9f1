"""The old package names still import, alias the new modules, and warn once per import."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("old", "new", "module"),
    [
        ("vcodec.models", "vcodec.baselayer.learned", "base_codec"),
        ("vcodec.features", "vcodec.baselayer.features", "codec"),
    ],
)
def test_old_name_aliases_new_package(old: str, new: str, module: str) -> None:
    for name in [n for n in sys.modules if n == old or n.startswith(old + ".")]:
        del sys.modules[name]
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        importlib.import_module(old)
    assert importlib.import_module(f"{old}.{module}") is importlib.import_module(f"{new}.{module}")
