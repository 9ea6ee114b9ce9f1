"""Issue 14: YOLOX-Nano shipped as the default detector, and the back end adapted to base features.

* the shipped weights, their record, licence and NOTICE (also inside a built wheel);
* the default detector finds the person in the shared clip (the CLI target);
* base-layer analytics use the adapted back end automatically, pixels the clean one;
* a detector that does not match the stream's base model is a one-line usage error.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SEQUENCE, one_error_line

from vcodec.detection import DEFAULT_DETECTOR, SHIPPED_DETECTORS, get_detector
from vcodec.detection.backends import (
    AdaptedBackend,
    adapted_detector,
    backend_name,
    find_backend,
    for_base_layer,
)
from vcodec.detection.shipped import WEIGHTS_DIR, load_shipped_yolox, shipped_weights
from vcodec.detection.yolox import FRONT_PREFIXES, YOLOX
from vcodec.errors import ConfigError, WeightsError
from vcodec.hashing import file_sha256

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEFAULT_BASE = "base-yolox-nano-v3"
GOLDEN_VDET = REPO / "tests" / "golden" / "learned-x265.vcs"  # made with base-vcodec-det-v2


# -- shipped YOLOX-Nano ------------------------------------------------------------------
def test_shipped_yolox_nano_record_licence_and_notice() -> None:
    rec = shipped_weights("yolox-nano")
    assert rec.sha256 == file_sha256(WEIGHTS_DIR / "yolox-nano.pt") == rec.record["sha256"]
    src = rec.record["source"]
    assert src["licence"] == "Apache-2.0" and "Megvii" in src["origin"] and len(src["sha256"]) == 64
    licence = (WEIGHTS_DIR / src["licence_file"]).read_text()
    assert licence.lstrip().startswith("Apache License") and "Version 2.0" in licence
    notice = (REPO / "NOTICE").read_text()
    # the NOTICE travels with the weights inside the package too, identical
    assert (WEIGHTS_DIR / "NOTICE").read_text() == notice
    assert "Megvii" in notice and "YOLOX" in notice and src["sha256"] in notice and "Apache" in notice


def test_default_detector_is_the_shipped_yolox_nano() -> None:
    assert DEFAULT_DETECTOR == "yolox-nano" and DEFAULT_DETECTOR in SHIPPED_DETECTORS
    det = get_detector()
    assert isinstance(det, YOLOX) and det.name == "yolox-nano" and det.fused
    # the identity of the weights is the ONNX export they were converted from
    assert det.weights_sha256 == shipped_weights("yolox-nano").source_sha256
    # real weights, not a random initialisation: a fresh YOLOX differs
    fresh = YOLOX("nano").fuse().state_dict()
    key = "head.cls_preds.0.weight"
    assert not torch.equal(det.state_dict()[key], fresh[key])


def test_tampered_shipped_yolox_is_refused(tmp_path: Path) -> None:
    for name in ("yolox-nano.pt", "yolox-nano.json"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / "yolox-nano.pt").read_bytes())
    data[-200] ^= 0xFF
    (tmp_path / "yolox-nano.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256.*corrupted"):
        load_shipped_yolox("nano", weights_dir=tmp_path)


@pytest.mark.shared
def test_default_detector_finds_the_person_in_the_shared_clip(clips_dir: Path, tmp_path: Path) -> None:
    """Target: `vcodec detect one-by-one-person-detection.mp4 --start 75 --frames 30`, no options."""
    from vcodec.cli import detect as detect_cli

    out = tmp_path / "dets.json"
    clip = clips_dir / "one-by-one-person-detection.mp4"
    args = [str(clip), "--start", "75", "--frames", "30", "-o", str(out), "--threads", "1"]
    assert detect_cli.main(args) == 0
    results = json.loads(out.read_text())
    with_person = {r["image_id"] for r in results if r["category_id"] == 1}  # COCO id 1 = person
    assert with_person <= set(range(75, 105))
    assert len(with_person) >= 28, sorted(with_person)


# -- the adapted back end ------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend() -> AdaptedBackend:
    from vcodec.baselayer.learned import BaseCodec

    codec = BaseCodec.from_weights(DEFAULT_BASE)
    found = find_backend(DEFAULT_BASE, codec.sha256)
    assert found is not None, f"no adapted back end shipped for {DEFAULT_BASE}"
    return found


def test_adapted_backend_record_matches_the_shipped_files(backend: AdaptedBackend) -> None:
    base_desc = json.loads((WEIGHTS_DIR / f"{DEFAULT_BASE}.json").read_text())
    assert backend.name == backend_name(DEFAULT_BASE) and not backend.name.startswith("base-")
    assert backend.base_model == DEFAULT_BASE and backend.base_sha256 == base_desc["sha256"]
    assert backend.detector == "yolox-nano"
    assert backend.detector_weights_sha256 == shipped_weights("yolox-nano").source_sha256
    assert backend.sha256 == file_sha256(backend.path)
    training = backend.record["training"]
    assert training["steps"] > 0 and training["train_segments"] and training["held_out"]
    # trained on coded sequences at low qualities too, never on the held-out frames
    assert {0.0, 0.25, 0.5} <= set(training["qualities"])
    # the base model registry ignores it (only base-*.json are models)
    from vcodec.baselayer.learned import BASE_MODELS

    assert backend.name not in BASE_MODELS.names()


def test_adapted_backend_changes_only_the_back_end(backend: AdaptedBackend) -> None:
    clean = get_detector()
    before = {k: v.clone() for k, v in clean.state_dict().items()}
    adapted = adapted_detector(clean, backend)
    a, c = adapted.state_dict(), clean.state_dict()
    for k in c:
        assert torch.equal(c[k], before[k]), f"the clean detector was modified: {k}"
        if k.startswith(FRONT_PREFIXES):
            assert torch.equal(a[k], c[k]), k
    changed = [k for k in c if not k.startswith(FRONT_PREFIXES) and not torch.equal(a[k], c[k])]
    assert len(changed) > 10, "the adapted back end equals the clean one"
    assert adapted.backend == backend.name and adapted.score_threshold == clean.score_threshold


def test_adapted_backend_only_for_its_base_weights_and_detector(backend: AdaptedBackend) -> None:
    assert find_backend(DEFAULT_BASE, "0" * 64) is None  # same id, other weights
    assert find_backend("base-vcodec-det-v2", backend.base_sha256) is None  # nothing shipped for it
    # the user's own YOLOX-Nano weights (not the ones it was made from): the plain back end
    own = YOLOX("nano").fuse()
    own.weights_sha256 = "f" * 64
    assert for_base_layer(own, DEFAULT_BASE, backend.base_sha256, "yolox-nano") is own
    with pytest.raises(ConfigError, match="made for yolox-nano"):
        adapted_detector(own, backend)


def test_another_detector_on_base_features_is_refused() -> None:
    vdet = get_detector("vcodec-det")
    with pytest.raises(ConfigError) as err:
        for_base_layer(vdet, DEFAULT_BASE, "0" * 64, "yolox-nano")
    msg = str(err.value)
    assert "'yolox-nano'" in msg and "'vcodec-det'" in msg and DEFAULT_BASE in msg and "\n" not in msg


@pytest.fixture(scope="module")
def default_stream() -> bytes:
    """Three frames of the bundled clip coded with the default base model (its id and weights recorded)."""
    from vcodec.codec import Encoder
    from vcodec.io import open_video

    sink = io.BytesIO()
    with open_video(SEQUENCE, frames=3) as reader:
        with Encoder(sink, reader.info, base_quality=0.5, enh_crf=40, preset="ultrafast",
                     intra_period=2) as enc:
            for frame in reader:
                enc.encode(frame)
    return sink.getvalue()


def test_base_streams_use_the_adapted_back_end_and_pixels_the_clean_one(default_stream: bytes,
                                                                         backend: AdaptedBackend) -> None:
    from vcodec.baselayer.learned import BaseCodec
    from vcodec.codec import Decoder

    codec = BaseCodec.from_weights(DEFAULT_BASE)
    clean = get_detector()
    adapted = adapted_detector(clean, backend)
    with Decoder(default_stream, layers="base") as dec:
        assert dec.base.codec_id == DEFAULT_BASE
        pixels_det = dec.detector()
        # the detector the decoder hands out (for pixels) is the clean one
        assert getattr(pixels_det, "backend", None) is None
        assert all(torch.equal(v, clean.state_dict()[k]) for k, v in pixels_det.state_dict().items())
        got = list(dec.detections())
    assert [i for i, _ in got] == [0, 1, 2]
    # decode the latents again and compare with the adapted and the plain back end directly
    with Decoder(default_stream, layers="base") as dec2:
        g = codec.geometry(dec2.info.width, dec2.info.height)
        latents = list(dec2.latents())
    assert [i for i, _ in latents] == [0, 1, 2]
    for (_, y), (_, have) in zip(latents, got, strict=True):
        want = codec.detect(y, adapted, g)
        np.testing.assert_array_equal(have.boxes, want.boxes)
        np.testing.assert_array_equal(have.scores, want.scores)
    # and the adapted back end is not a no-op on these features: the plain one scores differently
    plain = [codec.detect(y, clean, g) for _, y in latents]
    assert any(len(p) != len(h) or not np.array_equal(p.scores, h.scores)
               for p, (_, h) in zip(plain, got, strict=True))


# -- the CLI on streams ------------------------------------------------------------------------
def test_cli_mismatched_detector_for_a_stream_is_one_line_exit_2(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The stream was made with base-vcodec-det-v2 (vcodec-det); YOLOX-Nano is asked for."""
    from vcodec.cli import detect as detect_cli

    out = tmp_path / "d.json"
    rc = detect_cli.main([str(GOLDEN_VDET), "--detector", "yolox-nano", "--no-progress", "-o", str(out)])
    assert rc == 2
    one_error_line(capsys, "'vcodec-det'", "'yolox-nano'", "base-vcodec-det-v2")
    assert not out.exists()


def test_cli_weights_of_another_detector_for_a_stream_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.cli import detect as detect_cli

    rc = detect_cli.main([str(GOLDEN_VDET), "--weights", str(WEIGHTS_DIR / "yolox-nano.pt"), "--no-progress",
                          "-o", str(tmp_path / "d.json")])
    assert rc == 2
    line = one_error_line(capsys, "vcodec-det", "yolox-nano.pt", "base-vcodec-det-v2")
    assert "unpickl" not in line.lower() and "not a readable" not in line


@pytest.mark.shared
def test_cli_naming_the_streams_own_detector_gives_the_default_result(
        default_stream: bytes, tmp_path: Path, yolox_nano_onnx: Path) -> None:
    """`--detector yolox-nano --weights yolox_nano.onnx` on a default stream: the same detector, so the
    same (adapted) detections as without options."""
    from vcodec.cli import detect as detect_cli

    stream = tmp_path / "s.vcs"
    stream.write_bytes(default_stream)
    plain_out, named_out = tmp_path / "a.json", tmp_path / "b.json"
    assert detect_cli.main([str(stream), "--no-progress", "-o", str(plain_out)]) == 0
    assert detect_cli.main([str(stream), "--detector", "yolox-nano", "--weights", str(yolox_nano_onnx),
                            "--no-progress", "-o", str(named_out)]) == 0
    assert json.loads(plain_out.read_text()) == json.loads(named_out.read_text())


# -- the wheel ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_wheel_contains_weights_licence_and_notice(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "NOTICE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "vcodec", src / "vcodec", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = list((tmp_path / "dist").glob("vcodec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("NOTICE", "LICENSE-YOLOX-Apache-2.0.txt", "yolox-nano.pt", "yolox-nano.json",
              f"{backend_name(DEFAULT_BASE)}.pt", f"{backend_name(DEFAULT_BASE)}.json", f"{DEFAULT_BASE}.pt"):
        assert f"vcodec/weights/{f}" in names, f
    # the licence files are also the distribution's declared licence files
    info = [n for n in names if ".dist-info/" in n]
    assert any(n.endswith("/NOTICE") for n in info)
    assert any(n.endswith("LICENSE-YOLOX-Apache-2.0.txt") for n in info)
