"""`vcodec analyze` over real sockets: equals `vcodec detect` on a stored stream, reconnects to live.

Uses a real encoded stream (the bundled synthetic sequence, a small seeded base
model from conftest) and YOLOX-Nano's real weights from ../shared (skips
without them).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from conftest import SEQUENCE

from tests.test_serve import TIMEOUT, unit_bytes, wait_until
from vcodec.errors import ConfigError
from vcodec.serve import ChannelSink, ServeConfig, ServerThread, parse_tokens
from vcodec.serve.analyze import analyze_url

FRAMES = 16
INTRA = 4
SCORE = 0.01


@pytest.fixture(scope="module")
def real_stream(codec_test_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from vcodec.codec import Encoder
    from vcodec.io import open_video

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("served") / "clip.vcs"
    with open_video(SEQUENCE, frames=FRAMES) as r, Encoder(out, r.info, base_model=str(codec_test_model),
                                                           intra_period=INTRA, preset="ultrafast") as enc:
        for f in r:
            enc.encode(f)
    return out


@pytest.fixture(scope="module")
def reference(real_stream: Path, codec_test_model: Path, yolox_nano_onnx: Path,
              tmp_path_factory: pytest.TempPathFactory) -> str:
    """What `vcodec detect STREAM -o dets.txt` writes (the stream path of detect)."""
    from vcodec.codec import detect_stream
    from vcodec.detection import get_detector

    out = tmp_path_factory.mktemp("ref") / "dets.txt"
    # low threshold: the test base model is untrained, its features give weak scores
    det = get_detector("yolox-nano", yolox_nano_onnx, score_threshold=SCORE)
    for _ in detect_stream(real_stream, output=str(out), detector=det,
                           base_model=str(codec_test_model), progress=False):
        pass
    return out.read_text()


def lines_by_frame(text: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for line in text.splitlines():
        out.setdefault(int(line.split(",")[0]) - 1, []).append(line)
    return out


def test_analyze_equals_detect_on_stored_stream(real_stream: Path, reference: str, codec_test_model: Path,
                                                yolox_nano_onnx: Path, tmp_path: Path) -> None:
    from vcodec.cli import analyze as analyze_cli

    assert reference.strip(), "the reference run found nothing: the comparison would be empty"
    with ServerThread(ServeConfig(root=real_stream.parent, tokens=parse_tokens("base=bt,all=at"))) as srv:
        out = tmp_path / "dets.txt"
        rc = analyze_cli.main(
            [
                srv.url + "/streams/clip",
                "-o",
                str(out),
                "--token",
                "bt",
                "--weights",
                str(yolox_nano_onnx),
                "--base-model",
                str(codec_test_model),
                "--score-threshold",
                str(SCORE),
                "-q",
            ]
        )
        assert rc == 0
        assert out.read_text() == reference
        # the server sent the base layer only
        metrics = srv.server.metrics
        assert metrics.bytes_sent.get(("clip", 1), 0) == 0 and metrics.bytes_sent[("clip", 0)] > 0
        # tracking adds ids to the same boxes
        buf = io.StringIO()
        stats = analyze_url(
            srv.url + "/streams/clip",
            token="bt",
            out=buf,
            track=True,
            weights=yolox_nano_onnx,
            base_model=str(codec_test_model),
            score_threshold=SCORE,
            timeout=TIMEOUT,
        )
        assert stats.frames == FRAMES and stats.reconnects == 0
        ids = [int(line.split(",")[1]) for line in buf.getvalue().splitlines()]
        assert ids and min(ids) >= 1
        with pytest.raises(ConfigError, match="401"):
            analyze_url(srv.url + "/streams/clip", token="nope", weights=yolox_nano_onnx,
                        base_model=str(codec_test_model), timeout=TIMEOUT)


def test_analyze_reconnects_to_live_and_resumes_at_intra(
    real_stream: Path, reference: str, codec_test_model: Path, yolox_nano_onnx: Path
) -> None:
    head, units = unit_bytes(real_stream.read_bytes())
    by_frame = lambda lo, hi: [u for u in units if u.frame is not None and lo <= u.frame <= hi]  # noqa: E731
    with ServerThread(ServeConfig()) as srv:
        ch = srv.call(srv.server.live_channel, "cam", "test")
        sink = ChannelSink(ch, srv.loop)
        sink.write(head + b"".join(u.raw for u in by_frame(0, 0)))
        seen: list[int] = []
        buf = io.StringIO()
        result: dict[str, object] = {}

        def client() -> None:
            try:
                result["stats"] = analyze_url(srv.url + "/streams/cam", out=buf, weights=yolox_nano_onnx,
                                              base_model=str(codec_test_model), score_threshold=SCORE,
                                              retry_wait=0.2, timeout=TIMEOUT,
                                              on_frame=lambda i, d: seen.append(i))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

        t = threading.Thread(target=client, daemon=True)
        t.start()
        wait_until(lambda: len(ch.subscribers) == 1, timeout=60, what="analyzer to connect")
        first_id = next(iter(ch.subscribers))
        # frame 0 was published before it connected: it joins at the next intra frame, 4
        for u in by_frame(1, 7):
            sink.write(u.raw)
        wait_until(lambda: 7 in seen, timeout=120, what="analyzer to reach frame 7")

        def drop_and_publish() -> None:
            sub = ch.subscribers[first_id]
            sub.queue.clear()
            sub.queued_bytes = 0
            sub.abort()  # the connection ends without an END unit: a drop, as the client sees it
            for u in by_frame(8, 9):  # published while the client is away: it rejoins at intra frame 12
                ch.publish(u)

        srv.call(drop_and_publish)
        wait_until(lambda: any(k != first_id for k in ch.subscribers), timeout=60, what="reconnection")
        for u in by_frame(10, FRAMES - 1):
            sink.write(u.raw)
        sink.finish()
        t.join(120)
        assert not t.is_alive() and "error" not in result, result.get("error")
        stats = result["stats"]
        assert stats.reconnects == 1  # type: ignore[attr-defined]
        assert seen == [4, 5, 6, 7, 12, 13, 14, 15]
        assert stats.skipped == 4 and stats.frames == 8  # type: ignore[attr-defined]
        ref = lines_by_frame(reference)
        got = lines_by_frame(buf.getvalue())
        assert {i: ref.get(i, []) for i in seen} == {i: got.get(i, []) for i in seen}
