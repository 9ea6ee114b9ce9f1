"""torchvision adapters: split plumbing with random weights on tiny inputs (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vcodec.detection import COCO80_TO_CATEGORY_ID, get_detector
from vcodec.detection.tv import TorchvisionDetector
from vcodec.errors import ConfigError, WeightsError

# the detector tests run with one torch thread (conftest ``one_torch_thread``)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _picture() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "name,channels", [("fasterrcnn-r50-fpn", 1536), ("retinanet-r50-fpn", 512), ("fcos-r50-fpn", 512)]
)
def test_split_equals_unsplit_torchvision_model(name: str, channels: int) -> None:
    torch.manual_seed(0)
    det = get_detector(name, score_threshold=0.0, max_detections=20)
    assert isinstance(det, TorchvisionDetector) and not det.pretrained
    x, g = det.prepare(_picture(), "pad", multiple=32)
    assert tuple(x.shape) == (1, 3, 96, 128)
    with torch.no_grad():
        f = det.front(x)
        assert f.shape == (1, channels, 12, 16) and det.split_channels == channels
        [d] = det.back(f, g)
        # the unsplit model on the same picture, its own resize made a no-op
        det.model.transform.min_size = (96,)
        det.model.transform.max_size = 4096
        [ref] = det.model([x[0]])
    assert 0 < len(d) <= 20
    # the reference's detections that have a COCO80 class (background and "N/A" ids dropped),
    # mapped to COCO80 ids, boxes clipped to the original 120x90 picture
    cats = ref["labels"].numpy()
    keep = np.isin(cats, COCO80_TO_CATEGORY_ID)
    ref_ids = np.searchsorted(COCO80_TO_CATEGORY_ID, cats[keep])
    ref_boxes = np.clip(ref["boxes"].numpy()[keep], 0, [120, 90, 120, 90])
    ref_scores = ref["scores"].numpy()[keep]
    assert len(d) == len(ref_scores)
    # detection by detection: the split runs the same operations on the same tensors, so the
    # results are identical, not close; both sides sorted by (score, class, box) so ties cannot swap
    def ordered(boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, ...]:
        o = np.lexsort((*boxes.T[::-1], ids, -scores))
        return boxes[o], scores[o], ids[o]

    got_b, got_s, got_c = ordered(d.boxes, d.scores, d.class_ids)
    ref_b, ref_s, ref_c = ordered(ref_boxes, ref_scores, ref_ids)
    np.testing.assert_array_equal(got_c, ref_c)
    np.testing.assert_array_equal(got_s, ref_s)
    np.testing.assert_array_equal(got_b, ref_b)


def test_tv_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TorchvisionDetector("fasterrcnn-r50-fpn", split_after="layer3")
    w = tmp_path / "retina.pth"
    torch.save({"conv.weight": torch.zeros(1)}, w)
    with pytest.raises(WeightsError, match="retina.pth"):
        get_detector("retinanet-r50-fpn", w)
