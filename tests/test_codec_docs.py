"""The Python API examples of README.md ("Python API") and docs/CODEC.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

DOC = REPO / "docs" / "CODEC.md"
README = REPO / "README.md"
MARKERS = {DOC: ("<!-- example:begin -->", "<!-- example:end -->"),
           README: ("<!-- api:begin -->", "<!-- api:end -->")}


def _example(path: Path) -> str:
    begin, end = MARKERS[path]
    if not path.is_file():
        pytest.skip(f"{path.name} is not there")
    text = path.read_text()
    m = re.search(re.escape(begin) + r".*?```python\n(.*?)```.*?" + re.escape(end), text, re.S)
    assert m, f"{path.name} lost its Python example between {begin} and {end}"
    return m.group(1)


@pytest.mark.parametrize("path", [DOC, README], ids=["CODEC.md", "README.md"])
def test_api_example_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec_test_model: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from vcodec.baselayer.learned import BASE_MODELS
    from vcodec.codec import base_layer
    from vcodec.detection.vcodec_det import SHIPPED_WEIGHTS

    torch.set_num_threads(1)
    if not ("base-vcodec-det-v2" in BASE_MODELS and SHIPPED_WEIGHTS.is_file()):
        # no shipped weights yet: stand the small test model in for the default one
        from conftest import YOLOX_NANO_ONNX

        if not YOLOX_NANO_ONNX.is_file():
            pytest.skip("neither shipped weights nor YOLOX-Nano weights are available")
        monkeypatch.setattr(base_layer, "default_base_model", lambda: str(codec_test_model))
        monkeypatch.setitem(BASE_MODELS._items, "base-e2e-test-v1", codec_test_model)
        real = base_layer.LearnedBase.build_detector
        monkeypatch.setattr(base_layer.LearnedBase, "build_detector",
                            lambda self, weights=None: real(self, weights or YOLOX_NANO_ONNX))
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(path), str(path), "exec"), {"__name__": "example"})
    out = capsys.readouterr().out
    assert "kbit/s" in out
    assert (tmp_path / "clip.vcs").is_file() and (tmp_path / "clip.y4m").is_file()
    from vcodec.io import open_video

    with open_video(tmp_path / "clip.y4m") as r:
        assert r.info.num_frames == 8
