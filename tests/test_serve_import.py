"""`import vcodec.serve` is cheap: its names are re-exported lazily, aiohttp comes with the server only.

Each import check runs in a fresh interpreter, since this test process may have imported everything.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vcodec.serve

REPO = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    probe = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_importing_vcodec_serve_leaves_aiohttp_and_torch_out() -> None:
    loaded = _modules_after("import vcodec.serve")
    assert "vcodec.serve" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("aiohttp", "torch")}, sorted(loaded)[:20]
    # the client side and the parser need no aiohttp either
    loaded = _modules_after("from vcodec.serve import UnitParser, open_url, is_url")
    assert "aiohttp" not in loaded
    # the server does: asking for it is what imports aiohttp
    assert "aiohttp" in _modules_after("from vcodec.serve import ServerThread")


@pytest.mark.parametrize("name", vcodec.serve.__all__)
def test_every_re_exported_name_is_its_home_modules_object(name: str) -> None:
    home = vcodec.serve._HOMES[name]
    assert getattr(vcodec.serve, name) is getattr(importlib.import_module(f"vcodec.serve.{home}"), name)
    assert name in dir(vcodec.serve)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        vcodec.serve.Nothing  # noqa: B018 - the lookup is the test
