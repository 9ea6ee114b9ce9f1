"""Shared fixtures: where the real clips and third-party weights live.

``../shared`` (next to the repository) holds real video clips and YOLOX-Nano
weights; tests that need them skip cleanly when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VCODEC_SHARED", REPO.parent / "shared"))
CLIPS = SHARED / "data" / "clips"
YOLOX_NANO_ONNX = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
EXPECTED = REPO / "tests" / "expected"
#: set GENERATE_EXPECTED=1 to rewrite golden files on purpose
GENERATE_EXPECTED = os.environ.get("GENERATE_EXPECTED") == "1"


@pytest.fixture
def clips_dir() -> Path:
    if not CLIPS.is_dir():
        pytest.skip(f"real clips not available ({CLIPS} is missing)")
    return CLIPS


@pytest.fixture
def yolox_nano_onnx() -> Path:
    if not YOLOX_NANO_ONNX.is_file():
        pytest.skip(f"YOLOX-Nano weights not available ({YOLOX_NANO_ONNX} is missing)")
    return YOLOX_NANO_ONNX
