"""Lint: ``ruff check vcodec tools tests`` and ``mypy vcodec`` stay clean under the config in
pyproject.toml.

ruff and mypy are pinned in the ``test`` extra (setup.cfg): ``pip install -e ".[test]"``.
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


def test_mypy_is_clean(tmp_path: Path) -> None:
    assert importlib.util.find_spec("mypy") is not None, (
        'mypy is not installed in this environment; install the test extra: pip install -e ".[test]"'
    )
    # a fresh cache in tmp_path: nothing is read from, or left in, a .mypy_cache of the repository;
    # an ignore that a newer torch/av/numpy makes unnecessary is not our type error (only mypy is
    # pinned), so the suite does not fail on it ("mypy vcodec" with the config still reports it)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"),
         "--no-warn-unused-ignores", "vcodec"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mypy vcodec failed:\n{proc.stdout}{proc.stderr}"
