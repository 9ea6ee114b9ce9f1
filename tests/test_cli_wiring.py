"""The CLI wiring of streams and servers: `vcodec detect STREAM|URL`, `vcodec decode URL`,
`vcodec encode --publish URL`, `vcodec encode --base-mode features --detector NAME`.

Servers run on 127.0.0.1 with ephemeral ports (real sockets); the live publish
test runs the encoder as a separate process.  Streams come from the bundled
synthetic sequence and the small seeded test base model (conftest); detection
on it needs YOLOX-Nano's real weights from ../shared (skips without them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FAST_ENCODE, REPO, SEQUENCE, assert_coco_detections, cli_encode, one_error_line

from tests.test_serve import TIMEOUT, wait_until
from vcodec.cli import decode as decode_cli
from vcodec.cli import detect as detect_cli
from vcodec.cli import encode as encode_cli
from vcodec.cli import extract as extract_cli
from vcodec.codec import detect_stream
from vcodec.detection.formats import coco_results
from vcodec.errors import ConfigError, InputError
from vcodec.io import open_video
from vcodec.serve import ServeConfig, ServerThread, parse_tokens
from vcodec.serve.client import open_url

FRAMES = 6
#: the YOLOX back end on the untrained test model's features is slow on 2 shared cores
#: (seconds per frame), so the detection tests use a shorter stream
DET_FRAMES = 3
TOKENS = "base=BASE,all=ALL,publish=PUB"


def _frames(path: Path) -> list[bytes]:
    with open_video(path) as r:
        return [f.to_bytes() for f in r]



@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory, codec_test_model: Path) -> Path:
    return cli_encode(tmp_path_factory.mktemp("wiring") / "clip.vcs", codec_test_model, FRAMES)


@pytest.fixture(scope="module")
def det_stream(tmp_path_factory: pytest.TempPathFactory, codec_test_model: Path) -> Path:
    return cli_encode(tmp_path_factory.mktemp("wiring-det") / "det.vcs", codec_test_model, DET_FRAMES)


@pytest.fixture(scope="module")
def reference_dets(det_stream: Path, codec_test_model: Path, yolox_nano_onnx: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> list:
    """What the library's detect_stream writes for the stream (COCO JSON)."""
    out = tmp_path_factory.mktemp("ref") / "dets.json"
    n = sum(1 for _ in detect_stream(det_stream, output=str(out), weights=yolox_nano_onnx,
                                     base_model=str(codec_test_model), progress=False))
    assert n == DET_FRAMES
    return json.loads(out.read_text())


def _detect_args(codec_test_model: Path, yolox_nano_onnx: Path) -> list[str]:
    return ["--weights", str(yolox_nano_onnx), "--base-model", str(codec_test_model), "--no-progress"]


@pytest.fixture
def server(tmp_path: Path, stream: Path, det_stream: Path) -> Iterator[ServerThread]:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(stream, root / "clip.vcs")
    shutil.copy(det_stream, root / "det.vcs")
    with ServerThread(ServeConfig(root=root, tokens=parse_tokens(TOKENS))) as srv:
        yield srv


# -- vcodec detect on streams -------------------------------------------------------------
@pytest.mark.slow
def test_detect_stream_file_and_extracted_base_equal_detect_stream(
        tmp_path: Path, det_stream: Path, reference_dets: list, codec_test_model: Path, yolox_nano_onnx: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.json"
    assert (
        detect_cli.main([str(det_stream), "-o", str(out), *_detect_args(codec_test_model, yolox_nano_onnx)])
        == 0
    )
    assert "base layer" in capsys.readouterr().err  # the stream path ran, not the plain-video one
    assert json.loads(out.read_text()) == reference_dets
    base = tmp_path / "base.vcs"
    assert extract_cli.main([str(det_stream), "-o", str(base), "-q"]) == 0
    assert base.stat().st_size < det_stream.stat().st_size
    out2 = tmp_path / "d2.json"
    assert (
        detect_cli.main([str(base), "-o", str(out2), *_detect_args(codec_test_model, yolox_nano_onnx)]) == 0
    )
    assert json.loads(out2.read_text()) == reference_dets


def test_detect_stream_rejects_frames(tmp_path: Path, stream: Path, codec_test_model: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.json"
    assert detect_cli.main([str(stream), "-o", str(out), "--frames", "2", "--base-model",
                            str(codec_test_model), "--no-progress"]) == 2
    one_error_line(capsys, "--frames")
    assert not out.exists()


# -- URLs of `vcodec serve` -----------------------------------------------------------------
@pytest.mark.slow
def test_detect_url_equals_the_file(tmp_path: Path, server: ServerThread, reference_dets: list,
                                    codec_test_model: Path, yolox_nano_onnx: Path) -> None:
    dets = tmp_path / "url.json"
    # the base token suffices: detect asks for layers=base only
    assert detect_cli.main([server.url + "/streams/det", "-o", str(dets), "--token", "BASE",
                            *_detect_args(codec_test_model, yolox_nano_onnx)]) == 0
    assert json.loads(dets.read_text()) == reference_dets


def test_decode_url_equals_the_file(tmp_path: Path, server: ServerThread, stream: Path,
                                    codec_test_model: Path) -> None:
    url = server.url + "/streams/clip"
    from_url, from_file = tmp_path / "url.y4m", tmp_path / "file.y4m"
    assert decode_cli.main([url, "-o", str(from_url), "--layers", "all", "--token", "ALL",
                            "--base-model", str(codec_test_model), "-q"]) == 0
    assert (
        decode_cli.main([str(stream), "-o", str(from_file), "--base-model", str(codec_test_model), "-q"]) == 0
    )
    assert from_url.read_bytes() == from_file.read_bytes()
    assert len(_frames(from_url)) == FRAMES


def test_url_with_wrong_token(tmp_path: Path, server: ServerThread, codec_test_model: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    url = server.url + "/streams/clip"
    # open_url maps 401/403 refusals to ConfigError (a usage problem: exit code 2)
    with pytest.raises(ConfigError, match="401"):
        open_url(url, layers="base", token="WRONG", timeout=TIMEOUT)
    assert ConfigError("x").exit_code == 2
    dets, y4m = tmp_path / "d.json", tmp_path / "o.y4m"
    assert detect_cli.main([url, "-o", str(dets), "--token", "WRONG", "--base-model", str(codec_test_model),
                            "--no-progress"]) == 2
    one_error_line(capsys, "401", "token")
    assert decode_cli.main([url, "-o", str(y4m), "--token", "WRONG", "-q"]) == 2
    one_error_line(capsys, "401")
    # a base-only token cannot read every layer: 403
    assert decode_cli.main([url, "-o", str(y4m), "--layers", "all", "--token", "BASE", "-q"]) == 2
    one_error_line(capsys, "403", "layers=base")
    assert not dets.exists() and not y4m.exists()


# -- vcodec encode --publish ---------------------------------------------------------------
def _y4m_of_sequence(path: Path, frames: int) -> bytes:
    """The first ``frames`` frames of the bundled sequence as one Y4M file (for a stdin feed)."""
    with open_video(SEQUENCE, frames=frames) as r:
        info = r.info
        pics = list(r)
    from vcodec.io import open_writer

    with open_writer(str(path), info) as w:
        for f in pics:
            w.write(f)
    return path.read_bytes()


def test_encode_publish_live_equals_local_file(tmp_path: Path, codec_test_model: Path) -> None:
    """A separate encoder process publishes while writing -o; a subscriber from the first frame gets it all.

    The server keeps no copy of a finished publish (a later GET is 404), so what it
    serves is checked live: the encoder reads its input from a pipe that the test fills
    only once the subscriber is waiting for the channel's first frame.
    """
    root = tmp_path / "root"
    root.mkdir()
    feed = _y4m_of_sequence(tmp_path / "in.y4m", FRAMES)
    local = tmp_path / "local.vcs"
    with ServerThread(ServeConfig(root=root, tokens=parse_tokens(TOKENS))) as srv:
        url = srv.url + "/streams/cam1"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "vcodec", "encode", "-", "-o", str(local),
             "--publish", url, "--token", "PUB",
             "--base-model", str(codec_test_model), "--threads", "1", *FAST_ENCODE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        try:
            wait_until(lambda: "cam1" in srv.server.channels or proc.poll() is not None, timeout=60.0,
                       what="the publisher to connect")
            assert proc.poll() is None, proc.communicate()[1].decode()
            ch = srv.server.channels["cam1"]
            got: dict[str, bytes] = {}

            def fetch() -> None:
                with open_url(url, layers="all", token="ALL", timeout=60.0) as s:
                    got["all"] = s.read()

            t = threading.Thread(target=fetch, daemon=True)
            t.start()
            wait_until(lambda: len(ch.on_open) == 1, what="the subscriber to wait for the first frame")
            _, err = proc.communicate(feed, timeout=120)
            assert proc.returncode == 0, err.decode()
            t.join(TIMEOUT)
            assert "all" in got
            assert ch.ended and ch.failed is None and ch.frames_published == FRAMES
            # finished publishes are not kept
            with pytest.raises(InputError, match="HTTP 404.*live stream .cam1. has ended"):
                open_url(url, layers="all", token="ALL", timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert local.is_file() and not list(tmp_path.glob(".local.vcs.*"))
    live = tmp_path / "live.vcs"
    live.write_bytes(got["all"])
    a, b = tmp_path / "local.y4m", tmp_path / "live.y4m"
    assert decode_cli.main([str(local), "-o", str(a), "--base-model", str(codec_test_model), "-q"]) == 0
    assert decode_cli.main([str(live), "-o", str(b), "--base-model", str(codec_test_model), "-q"]) == 0
    assert len(_frames(a)) == FRAMES
    assert a.read_bytes() == b.read_bytes()
    # the strongest property: what a subscriber from the first frame receives is the local file itself
    assert got["all"] == local.read_bytes()


def test_encode_publish_without_output(tmp_path: Path, codec_test_model: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with ServerThread(ServeConfig(root=root, allow_publish=True)) as srv:
        url = srv.url + "/streams/cam2"
        assert encode_cli.main([str(SEQUENCE), "--frames", "4", "--publish", url, "--base-model",
                                str(codec_test_model), *FAST_ENCODE]) == 0
        ch = srv.server.channels["cam2"]
        assert ch.ended and ch.failed is None and ch.frames_published == 4
        assert ch.bytes_published.get(0, 0) > 0 and ch.bytes_published.get(1, 0) > 0
    assert list(tmp_path.glob("**/*.vcs")) == []
    # publishing refused (tokens required, none given): one line, exit 2
    with ServerThread(ServeConfig(root=root, tokens=parse_tokens(TOKENS))) as srv:
        out = tmp_path / "kept.vcs"
        assert encode_cli.main([str(SEQUENCE), "--frames", "4", "-o", str(out), "--publish",
                                srv.url + "/streams/cam3", "--base-model", str(codec_test_model),
                                *FAST_ENCODE]) == 2
        one_error_line(capsys, "401")
        assert not out.exists()


def test_encode_needs_output_or_publish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert encode_cli.main([str(SEQUENCE), "--frames", "4", *FAST_ENCODE]) == 2
    one_error_line(capsys, "-o", "--publish")


# -- --base-mode features --detector -------------------------------------------------------
def test_encode_features_detector_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "feat.vcs"
    assert encode_cli.main([str(SEQUENCE), "--frames", str(FRAMES), "-o", str(out), "--base-mode", "features",
                            "--detector", "vcodec-det", *FAST_ENCODE]) == 0
    dets = tmp_path / "d.json"
    assert detect_cli.main([str(out), "-o", str(dets), "--no-progress"]) == 0
    results = json.loads(dets.read_text())
    assert_coco_detections(results, frames=FRAMES, width=416, height=240)
    # the CLI writes exactly what the library detects on the stream's base layer
    assert results == coco_results(detect_stream(out, progress=False))
    assert results, "vcodec-det finds nothing on the synthetic clip any more"
    y4m = tmp_path / "full.y4m"
    assert decode_cli.main([str(out), "-o", str(y4m), "--layers", "all", "-q"]) == 0
    assert len(_frames(y4m)) == FRAMES
    capsys.readouterr()
    bad = tmp_path / "bad.vcs"
    assert encode_cli.main([str(SEQUENCE), "--frames", "4", "-o", str(bad), "--detector", "vcodec-det",
                            *FAST_ENCODE]) == 2
    one_error_line(capsys, "--detector", "--base-mode features")
    assert not bad.exists()
