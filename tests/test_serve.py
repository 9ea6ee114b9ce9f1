"""`vcodec serve`: layer filtering, live joins, tokens, back-pressure, cleanup, over real sockets.

Every test runs a server on 127.0.0.1 with an ephemeral port in a background
thread; every socket has a timeout so nothing can hang CI.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.test_bitstream import make_header, make_layers
from vcodec.bitstream import StreamReader, StreamWriter, Unit, UnitType, extract_layers
from vcodec.errors import BitstreamError, ConfigError, InputError
from vcodec.serve import (
    ChannelSink,
    LiveChannel,
    Publisher,
    ServeConfig,
    ServerThread,
    UnitParser,
    open_url,
    parse_tokens,
    replay_producer,
    start_live,
)

TIMEOUT = 20.0


def build_stream(frames: int = 12, intra_period: int = 4, payload: int = 40, enh_payload: int = 60) -> bytes:
    """A two-layer stream of synthetic units (the server never decodes; base payloads start with a
    version byte 0, so the ingest checks find no picture size in them to compare)."""
    buf = io.BytesIO()
    w = StreamWriter(buf, make_header(intra_period=intra_period, num_frames=frames), make_layers())
    for f in range(frames):
        intra = f % intra_period == 0
        w.write_frame_unit(
            UnitType.BASE_FRAME, 0, frame=f, payload=b"\0" + bytes([f % 251]) * (payload + f - 1), intra=intra
        )
        w.write_frame_unit(
            UnitType.ENH_PACKET, 1, frame=f, payload=bytes([(f * 7) % 251]) * (enh_payload + f), intra=intra
        )
    w.close()
    return buf.getvalue()


def extracted(data: bytes, layers: list[int]) -> bytes:
    out = io.BytesIO()
    extract_layers(data, out, layers)
    return out.getvalue()


def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def http_get(url: str, path: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def frame_units(data: bytes) -> list[Unit]:
    with StreamReader(data) as r:
        return [u for u in r if isinstance(u, Unit)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "streams"
    d.mkdir()
    (d / "clip.vcs").write_bytes(build_stream(frames=12))
    (d / "notes.txt").write_text("not a stream")
    return d


@pytest.fixture
def server(root: Path) -> Iterator[ServerThread]:
    with ServerThread(ServeConfig(root=root, buffer_bytes=8192)) as srv:
        yield srv


def read_all(url: str, **kw: object) -> bytes:
    with open_url(url, timeout=TIMEOUT, **kw) as s:  # type: ignore[arg-type]
        return s.read()


# -- stored streams --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "layers,ids", [("base", [0]), ("0", [0]), ("1", [1]), ("all", [0, 1]), ("0,1", [0, 1])]
)
def test_stored_layer_filter_is_byte_exact_with_extract(
    server: ServerThread, root: Path, layers: str, ids: list[int]
) -> None:
    data = (root / "clip.vcs").read_bytes()
    got = read_all(server.url + "/streams/clip", layers=layers)
    assert got == extracted(data, ids)
    if layers == "all":
        assert got == data  # a well-formed stream survives the filter unchanged
    # the name with its extension is the same stream
    assert read_all(server.url + "/streams/clip.vcs", layers=layers) == got


def test_stored_start_seeks_to_intra(server: ServerThread) -> None:
    units = frame_units(read_all(server.url + "/streams/clip", layers="base", start=6))
    assert units[0].frame == 4 and units[0].intra and [u.frame for u in units] == list(range(4, 12))


def test_listing_and_index(server: ServerThread, root: Path) -> None:
    status, body, headers = http_get(server.url, "/streams")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    streams = json.loads(body)["streams"]
    assert [s["name"] for s in streams] == ["clip"]  # notes.txt is not a stream
    s = streams[0]
    assert s["kind"] == "stored" and s["frames"] == 12 and (s["width"], s["height"]) == (416, 240)
    assert [la["id"] for la in s["layers"]] == [0, 1] and all(la["kbps"] > 0 for la in s["layers"])


def test_error_statuses(server: ServerThread) -> None:
    assert http_get(server.url, "/streams/nope")[0] == 404
    # a file in --root that is not a stream is not there for clients (the listing hides it too)
    status, body, _ = http_get(server.url, "/streams/notes.txt?layers=base")
    assert status == 404 and b"'notes.txt'" in body and b"not a vcodec stream" in body
    status, body, _ = http_get(server.url, "/streams/clip?layers=banana")
    assert status == 400 and b"layers" in body
    status, body, _ = http_get(server.url, "/streams/clip?layers=3")
    assert status == 400 and b"not in stream" in body
    status, body, _ = http_get(server.url, "/streams/clip?bogus=1")
    assert status == 400 and b"bogus" in body
    assert http_get(server.url, "/streams/clip?start=-2")[0] == 400
    assert http_get(server.url, "/streams/..%2Fclip.vcs")[0] == 404
    with pytest.raises(InputError, match="404"):
        open_url(server.url + "/streams/nope", timeout=TIMEOUT)
    with pytest.raises(ConfigError, match="400"):
        open_url(server.url + "/streams/clip", layers="7", timeout=TIMEOUT)
    metrics = http_get(server.url, "/metrics")[1].decode()
    assert 'vcodec_serve_requests_refused_total{status="404"}' in metrics


def test_tokens_are_enforced_per_layer(root: Path) -> None:
    config = ServeConfig(root=root, tokens=parse_tokens("base=b-secret,all=a-secret"))
    data = (root / "clip.vcs").read_bytes()
    with ServerThread(config) as srv:
        status, _, headers = http_get(srv.url, "/streams/clip?layers=base")
        assert status == 401 and "Bearer" in headers.get("WWW-Authenticate", "")
        assert http_get(srv.url, "/streams/clip?layers=base", token="wrong")[0] == 401
        status, body, _ = http_get(srv.url, "/streams/clip?layers=all", token="b-secret")
        assert status == 403 and b"base" in body
        assert http_get(srv.url, "/streams/clip?layers=1", token="b-secret")[0] == 403
        assert http_get(srv.url, "/streams/clip", token="b-secret")[0] == 403  # default is all layers
        assert read_all(srv.url + "/streams/clip", layers="base", token="b-secret") == extracted(data, [0])
        assert read_all(srv.url + "/streams/clip", layers="all", token="a-secret") == data
        assert read_all(srv.url + "/streams/clip", layers="base", token="a-secret") == extracted(data, [0])
        assert http_get(srv.url, "/metrics")[0] == 401
        assert http_get(srv.url, "/metrics", token="b-secret")[0] == 200
        assert http_get(srv.url, "/streams", token="a-secret")[0] == 200
        with pytest.raises(ConfigError, match="403"):
            open_url(srv.url + "/streams/clip", layers="all", token="b-secret", timeout=TIMEOUT)
        # publishing is off unless enabled
        with pytest.raises(ConfigError, match="403"):
            with Publisher(srv.url + "/streams/cam", token="a-secret", timeout=TIMEOUT) as pub:
                pub.write(data)


def test_parse_tokens_errors() -> None:
    assert parse_tokens("base=x, all=y") == {"base": "x", "all": "y"}
    for bad in ("base", "viewer=x", "base=", "base=a,base=b"):
        with pytest.raises(ConfigError):
            parse_tokens(bad)


def test_stored_disconnect_frees_the_producer(tmp_path: Path) -> None:
    big = build_stream(frames=400, payload=20000, enh_payload=40000)  # ~24 MB: cannot fit socket buffers
    d = tmp_path / "s"
    d.mkdir()
    (d / "big.vcs").write_bytes(big)
    with ServerThread(ServeConfig(root=d)) as srv:
        s = open_url(srv.url + "/streams/big", layers="all", timeout=TIMEOUT)
        assert len(s.read(1000)) > 0
        wait_until(lambda: any(t.name.startswith("vcodec-serve-big") for t in threading.enumerate()),
                   what="producer thread")
        s.close()
        wait_until(lambda: not any(t.name.startswith("vcodec-serve-big") for t in threading.enumerate()),
                   what="producer thread to end after the disconnect")
        wait_until(lambda: not srv.server.metrics.clients, what="client record removed")
        # the server still works for others
        assert read_all(srv.url + "/streams/big", layers="base") == extracted(big, [0])


# -- live streams ------------------------------------------------------------------------------------

def unit_bytes(data: bytes) -> tuple[bytes, list[Unit]]:
    """(preamble + header units, frame units) of a stream."""
    with StreamReader(data) as r:
        head = data[: r.data_offset]
        return head, [u for u in r if isinstance(u, Unit)]


def make_live(srv: ServerThread, name: str = "cam") -> tuple[LiveChannel, ChannelSink]:
    ch = srv.call(srv.server.live_channel, name, "test")
    return ch, ChannelSink(ch, srv.loop)


def barrier(srv: ServerThread) -> None:
    """Wait until everything scheduled on the server loop so far has run."""
    srv.call(lambda: None)


def test_live_from_the_start_is_byte_exact_with_extract(server: ServerThread) -> None:
    data = build_stream(frames=16)
    head, units = unit_bytes(data)
    ch, sink = make_live(server)
    sink.write(head + units[0].raw + units[1].raw)  # the channel opens at its first frame unit
    barrier(server)
    assert ch.header is not None
    # subscribe before any frame is published
    # subscribers that connect before the first frame wait for it (the header alone does not open a channel)
    ch2, sink2 = make_live(server, "cam2")
    sink2.write(head)
    got: dict[str, bytes] = {}

    def fetch(layers: str) -> None:
        got[layers] = read_all(server.url + "/streams/cam2", layers=layers)

    threads = [threading.Thread(target=fetch, args=(la,), daemon=True) for la in ("base", "all")]
    for t in threads:
        t.start()
    wait_until(lambda: len(ch2.on_open) == 2, what="both requests waiting for the channel to open")
    for u in units:
        sink2.write(u.raw)
    sink2.finish()
    for t in threads:
        t.join(TIMEOUT)
    assert got["base"] == extracted(data, [0])
    assert got["all"] == data
    sink.finish()


def test_live_late_join_starts_at_intra_of_both_layers(server: ServerThread) -> None:
    data = build_stream(frames=20, intra_period=4)
    head, units = unit_bytes(data)
    ch, sink = make_live(server)
    first = [u for u in units if u.frame is not None and u.frame <= 5]
    rest = [u for u in units if u.frame is not None and u.frame > 5]
    sink.write(head + b"".join(u.raw for u in first))
    barrier(server)
    streams = {layers: open_url(server.url + "/streams/cam", layers=layers, timeout=TIMEOUT)
               for layers in ("base", "all")}
    wait_until(lambda: len(ch.subscribers) == 2, what="subscribers")
    for u in rest:
        sink.write(u.raw)
    sink.finish()
    for layers, s in streams.items():
        got = frame_units(s.read())  # strict reader: a valid stream with its own INDEX and END
        s.close()
        assert got[0].frame == 8 and got[0].intra and got[0].layer == 0
        expect = [
            u for u in rest if u.frame is not None and u.frame >= 8 and (layers == "all" or u.layer == 0)
        ]
        assert [u.raw for u in got] == [u.raw for u in expect]
        if layers == "all":
            enh = [u for u in got if u.layer == 1]
            assert enh[0].frame == 8 and enh[0].intra


def test_live_listing_and_ended_stream(server: ServerThread) -> None:
    data = build_stream(frames=8)
    head, units = unit_bytes(data)
    ch, sink = make_live(server)
    sink.write(head + units[0].raw)
    barrier(server)
    streams = {s["name"]: s for s in json.loads(http_get(server.url, "/streams")[1])["streams"]}
    assert streams["cam"]["kind"] == "live" and streams["cam"]["state"] == "live"
    assert [la["id"] for la in streams["cam"]["layers"]] == [0, 1]
    status, body, _ = http_get(server.url, "/streams/cam?start=3")
    assert status == 400
    sink.finish()
    barrier(server)
    assert http_get(server.url, "/streams/cam?layers=base")[0] == 404


def test_slow_client_skips_to_intra_and_others_are_unaffected(tmp_path: Path) -> None:
    frames = 400
    data = build_stream(frames=frames, intra_period=8, payload=15000, enh_payload=15000)  # 12 MB
    head, units = unit_bytes(data)
    with ServerThread(ServeConfig(buffer_bytes=256 * 1024)) as srv:
        ch, sink = make_live(srv)
        sink.write(head + units[0].raw)
        barrier(srv)
        # the slow client: a raw socket with a tiny receive window that reads nothing for now
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(TIMEOUT)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(b"GET /streams/cam?layers=all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_until(lambda: len(ch.subscribers) == 1, what="slow subscriber")
        fast = open_url(srv.url + "/streams/cam", layers="all", timeout=TIMEOUT)
        wait_until(lambda: len(ch.subscribers) == 2, what="fast subscriber")
        received = bytearray()
        reader = threading.Thread(target=lambda: received.extend(fast.read()), daemon=True)
        reader.start()
        t0 = time.monotonic()
        for u in units[1:]:
            sink.write(u.raw)
            if u.layer == 1:
                time.sleep(
                    0.003
                )  # about 300 frames/s: a fast encoder, but one a reading client keeps up with
        publish_s = time.monotonic() - t0
        sink.finish()
        reader.join(TIMEOUT)
        assert not reader.is_alive()
        fast.close()
        # the fast client lost nothing: it joined at frame 8 and got every unit from there on
        got = frame_units(bytes(received))
        assert [u.raw for u in got] == [u.raw for u in units if u.frame is not None and u.frame >= 8]
        metrics = http_get(srv.url, "/metrics")[1].decode()
        slow_sub = [s for s in ch.subscribers.values()]
        assert len(slow_sub) == 1 and slow_sub[0].frames_dropped > 0 and slow_sub[0].overflows > 0
        assert slow_sub[0].queued_bytes <= 256 * 1024  # the buffer stayed bounded
        dropped = [ln for ln in metrics.splitlines() if ln.startswith("vcodec_serve_frames_dropped_total")]
        assert dropped and int(dropped[0].split()[-1]) == slow_sub[0].frames_dropped
        assert publish_s < 15  # the publisher never waited for the slow client
        # now drain the slow client: what it got is still a valid stream, resuming at intra frames
        raw = bytearray()
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            raw += chunk
        slow.close()
        body = _dechunk(bytes(raw))
        got = frame_units(body)
        prev = None
        for u in got:
            if u.layer == 0 and prev is not None and u.frame != prev + 1:
                assert u.intra, f"base resumed at non-intra frame {u.frame}"
            if u.layer == 0:
                prev = u.frame
        assert len({u.frame for u in got}) < frames - 8
        wait_until(lambda: not ch.subscribers and not srv.server.metrics.clients, what="cleanup")


def _dechunk(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def test_live_disconnect_frees_everything(server: ServerThread) -> None:
    data = build_stream(frames=40, intra_period=4, payload=2000)
    head, units = unit_bytes(data)
    ch, sink = make_live(server)
    sink.write(head + units[0].raw)
    barrier(server)
    gone = open_url(server.url + "/streams/cam", layers="base", timeout=TIMEOUT)
    stay = open_url(server.url + "/streams/cam", layers="base", timeout=TIMEOUT)
    wait_until(lambda: len(ch.subscribers) == 2, what="subscribers")
    kept = bytearray()
    reader = threading.Thread(target=lambda: kept.extend(stay.read()), daemon=True)
    reader.start()
    half = len(units) // 2
    for u in units[1:half]:
        sink.write(u.raw)
        time.sleep(0.005)  # paced like a live encoder: the 8 KiB client buffers never overflow
    assert len(gone.read(100)) > 0
    gone.close()
    for u in units[half:]:
        sink.write(u.raw)
        time.sleep(0.005)
    wait_until(lambda: len(ch.subscribers) == 1, what="the closed client to be dropped")
    rec = list(server.server.metrics.clients.values())
    assert len(rec) == 1
    sink.finish()
    reader.join(TIMEOUT)
    got = frame_units(bytes(kept))
    stay.close()
    assert [u.frame for u in got] == list(range(4, 40))
    wait_until(lambda: not server.server.metrics.clients, what="all records freed")
    metrics = http_get(server.url, "/metrics")[1].decode()
    assert 'vcodec_serve_clients_connected{stream="cam"} 0' in metrics
    assert 'vcodec_serve_clients_total{stream="cam"} 2' in metrics
    assert "vcodec_serve_client_bytes_sent_total{" not in metrics  # per-client series are gone


def test_publish_over_http_and_replay(root: Path, tmp_path: Path) -> None:
    data = build_stream(frames=24, intra_period=4)
    config = ServeConfig(root=root, tokens=parse_tokens("base=b,all=a,publish=p"))
    with ServerThread(config) as srv:
        with pytest.raises(ConfigError, match="403"):
            with Publisher(srv.url + "/streams/pushed", token="a", timeout=TIMEOUT) as pub:
                pub.write(data[:100])
        pub = Publisher(srv.url + "/streams/pushed", token="p", timeout=TIMEOUT)
        head, units = unit_bytes(data)
        pub.write(head + units[0].raw)
        wait_until(
            lambda: "pushed" in srv.server.channels and srv.server.channels["pushed"].header is not None,
            what="published channel",
        )
        client = open_url(srv.url + "/streams/pushed", layers="base", token="b", timeout=TIMEOUT)
        wait_until(lambda: len(srv.server.channels["pushed"].subscribers) == 1, what="subscriber")
        rest = data[len(head) + len(units[0].raw):]
        for i in range(0, len(rest), 97):  # arbitrary cuts: the server re-frames units itself
            pub.write(rest[i : i + 97])
        pub.close()
        assert pub.result is not None and pub.result["frames"] == 24
        got = frame_units(client.read())
        client.close()
        assert [u.frame for u in got] == list(range(4, 24)) and all(u.layer == 0 for u in got)
        # a stored stream replayed as a live one, in real time (24 frames at 30 fps ~ 0.8 s at speed 4)
        live = tmp_path / "live.vcs"
        live.write_bytes(data)
        task = srv.call(
            start_live, srv.server, srv.loop, "replay", replay_producer(live, speed=4.0, loop_count=2)
        )
        wait_until(lambda: task.channel.header is not None, what="replay to start")
        s = open_url(srv.url + "/streams/replay", layers="all", token="a", timeout=TIMEOUT)
        got = frame_units(s.read())
        s.close()
        task.thread.join(TIMEOUT)
        frames = sorted({u.frame for u in got})
        assert (
            frames == list(range(frames[0], 48)) and frames[0] % 4 == 0
        )  # second loop continues the indexes
        assert task.error is None


def test_unit_parser_matches_reader_and_rejects_damage() -> None:
    data = build_stream(frames=6)
    p = UnitParser()
    got: list[Unit] = []
    for i in range(len(data)):
        got += p.feed(data[i : i + 1])
    with StreamReader(data) as r:
        ref = [u.raw for u in r]
        assert [u.raw for u in p.header_units] == [u.raw for u in r.header_units]
    assert [u.raw for u in got if u.type not in (UnitType.INDEX, UnitType.END)] == ref
    assert p.ended and p.header == make_header(intra_period=4, num_frames=6)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(BitstreamError):
        UnitParser().feed(bytes(bad))
    with pytest.raises(BitstreamError, match="magic"):
        UnitParser().feed(b"NOPE" + data[4:])


def test_serve_command_runs_and_stops(root: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vcodec", "serve", "--root", str(root), "--port", "0",
                             "--token", "base=bt"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 60
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        url = line.split("listening on ")[1].split()[0]
        data = (root / "clip.vcs").read_bytes()
        assert read_all(url + "/streams/clip", layers="base", token="bt") == extracted(data, [0])
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    bad = subprocess.run([sys.executable, "-m", "vcodec", "serve", "--root", str(root / "missing")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--root" in bad.stderr
