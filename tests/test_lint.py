"""Lint: ``ruff check vcodec tools tests`` stays clean under the config in pyproject.toml.

ruff is pinned in the ``test`` extra (setup.cfg): ``pip install -e ".[test]"``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean() -> None:
    assert importlib.util.find_spec("ruff") is not None, (
        'ruff is not installed in this environment; install the test extra: pip install -e ".[test]"'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "vcodec", "tools", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"ruff check vcodec tools tests failed:\n{proc.stdout}{proc.stderr}"
