"""Shared fixtures: where the real clips and third-party weights live.

``../shared`` (next to the repository) holds real video clips and YOLOX-Nano
weights; tests that need them skip cleanly when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test, restored afterwards (CI's 2 cores are shared by parallel jobs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- end-to-end codec (tests/test_codec*.py, tests/test_cli_codec*.py) ------------------
SEQUENCE = REPO / "sequences" / "synthetic_416x240_30.y4m"


def _save_test_base_model(out_dir: Path, seed: int) -> Path:
    """A small seeded, untrained base model written as real weights files (.json + .pt).

    The coding machinery (payloads, hashes, determinism, layering) does not depend on
    training, and a small model keeps the end-to-end tests fast on 2 cores.
    """
    import torch

    from vcodec.models import BaseNet, BaseNetConfig, save_base_weights

    torch.manual_seed(seed)
    net = BaseNet(BaseNetConfig(detector="yolox-nano", n=32, m=48, nz=16, t_channels=32))
    return save_base_weights(net, "base-e2e-test-v1", out_dir).with_suffix(".json")


@pytest.fixture(scope="session")
def codec_test_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the ``.json`` of a small test base model (seed 0)."""
    return _save_test_base_model(tmp_path_factory.mktemp("base-model-a"), seed=0)


@pytest.fixture(scope="session")
def codec_other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same model id and architecture as ``codec_test_model`` but other weights (seed 1)."""
    return _save_test_base_model(tmp_path_factory.mktemp("base-model-b"), seed=1)


# -- CLI tests (tests/test_cli_*.py) ----------------------------------------------------
#: encoder settings that keep CLI round trips fast; intra period 4 gives several GOPs
FAST_ENCODE = ["--preset", "ultrafast", "--intra-period", "4", "-q"]


def cli_encode(out: Path, model: Path, frames: int) -> Path:
    """Encode the bundled sequence's first ``frames`` frames with ``vcodec encode``."""
    from vcodec.cli import encode as encode_cli

    args = [str(SEQUENCE), "-o", str(out), "--frames", str(frames), "--base-model", str(model), *FAST_ENCODE]
    assert encode_cli.main(args) == 0
    return out


def one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The command's stderr is exactly one line (no traceback) and names every needle."""
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
