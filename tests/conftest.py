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


# session scope: plain paths, so module-scoped fixtures in the test files can use them too
@pytest.fixture(scope="session")
def clips_dir() -> Path:
    if not CLIPS.is_dir():
        pytest.skip(f"real clips not available ({CLIPS} is missing)")
    return CLIPS


@pytest.fixture(scope="session")
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

    from vcodec.baselayer.learned import BaseNet, BaseNetConfig, save_base_weights

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


def assert_coco_detections(results: list[dict], frames: int, width: int, height: int) -> None:
    """COCO results JSON with real content: every detection of a frame of the clip, a COCO
    category, a box of positive size inside the picture and a score in [0, 1]."""
    from vcodec.detection import COCO80_TO_CATEGORY_ID

    categories = {int(c) for c in COCO80_TO_CATEGORY_ID}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}, r
        assert 0 <= r["image_id"] < frames and r["category_id"] in categories, r
        x, y, w, h = r["bbox"]
        # 0.01 px: the writer rounds coordinates to two decimals
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width + 0.01 and y + h <= height + 0.01, r
        assert 0 <= r["score"] <= 1, r


def assert_detections_content(d: object, width: int, height: int) -> None:
    """A :class:`Detections` whose content is possible: boxes of positive size inside the
    ``width`` x ``height`` picture, scores in [0, 1] sorted decreasing, COCO80 class ids."""
    import numpy as np

    from vcodec.detection import COCO80, Detections

    assert isinstance(d, Detections) and (d.image_width, d.image_height) == (width, height)
    b = d.boxes
    assert np.all(b[:, :2] >= 0) and np.all(b[:, 2] <= width) and np.all(b[:, 3] <= height)
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert np.all((d.scores >= 0) & (d.scores <= 1)) and np.all(np.diff(d.scores) <= 0)
    assert np.all((d.class_ids >= 0) & (d.class_ids < len(COCO80)))
