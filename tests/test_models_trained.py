"""Behaviour of the shipped base model on a real clip (skips without weights, clips or YOLOX-Nano).

* variable rate is monotone: higher base quality -> more bits and lower
  feature MSE against the detector's own front end;
* temporal prediction: a P-frame costs fewer bits than the same frame as I.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vcodec.baselayer.learned import BASE_MODELS, load_base_model
from vcodec.baselayer.learned.base_codec import frame_to_tensor
from vcodec.io.frame import Frame

MODEL = "base-yolox-nano-v2"


@pytest.fixture(scope="module")
def setup(request: pytest.FixtureRequest) -> tuple[object, object, list[Frame]]:
    from tests.conftest import CLIPS, YOLOX_NANO_ONNX

    if MODEL not in BASE_MODELS:
        pytest.skip(f"shipped base model {MODEL} not installed")
    clip = CLIPS / "cars_320x240.i420"
    if not clip.is_file() or not YOLOX_NANO_ONNX.is_file():
        pytest.skip("real clips or YOLOX-Nano weights missing")
    from vcodec.detection.yolox import YOLOX

    det = YOLOX("nano").load(Path(YOLOX_NANO_ONNX)).eval()
    data = clip.read_bytes()
    # held-out frames (the last 20% of the clip were not used for training)
    frames = [Frame.from_bytes(data[i * 115200:(i + 1) * 115200], 320, 240, index=i) for i in (26, 27)]
    return load_base_model(MODEL), det, frames


def _front(det: object, codec: object, frame: Frame) -> torch.Tensor:
    g = codec.geometry(frame.width, frame.height)  # type: ignore[attr-defined]
    x = frame_to_tensor(frame, g)
    bgr = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])
    t, _ = det.prepare(bgr, mode="pad", multiple=64)  # type: ignore[attr-defined]
    with torch.no_grad():
        return det.front(t)  # type: ignore[attr-defined]


def test_variable_rate_monotone_bits_and_feature_mse(setup: tuple) -> None:
    codec, det, frames = setup
    target = _front(det, codec, frames[0])
    sizes, mses = [], []
    for q in (0.1, 0.5, 0.9):
        enc = codec.encoder(quality=q)
        payload, _ = enc.encode_frame(frames[0], reconstruct=False)
        sizes.append(len(payload))
        mses.append(float((codec.features(enc.last_y_hat) - target).pow(2).mean()))
    assert sizes[0] < sizes[1] < sizes[2]
    assert mses[0] > mses[1] > mses[2]


def test_p_frame_cheaper_than_i_frame(setup: tuple) -> None:
    codec, _, frames = setup
    enc = codec.encoder(quality=0.5)
    enc.encode_frame(frames[0], reconstruct=False)
    p_bytes = len(enc.encode_frame(frames[1], reconstruct=False)[0])
    i_bytes = len(codec.encoder(quality=0.5).encode_frame(frames[1], reconstruct=False)[0])
    assert p_bytes < 0.9 * i_bytes
