"""`vcodec serve` against hostile clients (issue 19, items 7-9), bounded in count and time, 127.0.0.1 only.

Publishers and readers here are raw sockets, so a test can send half a request or stop
sending in the middle of a unit; every socket has a timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_serve import TIMEOUT, build_stream, http_get, wait_until
from vcodec.bitstream import UnitType
from vcodec.serve import ServeConfig, ServerThread

PREAMBLE = b"VCDC\x01\x00\x00\x00"


def unit(utype: int, layer: int, frame: int, payload: bytes, *, claimed: int | None = None, intra: bool = True
         ) -> bytes:
    length = len(payload) if claimed is None else claimed
    flags = 1 if intra else 0
    h = struct.pack(">2sBBBBIII", b"VU", utype, layer, flags, 0, frame, length, zlib.crc32(payload))
    return h + struct.pack(">I", zlib.crc32(h)) + payload


def stream_head(data: bytes) -> bytes:
    """Preamble and header units of a stream (everything before the first frame unit)."""
    pos = 8
    while data[pos + 2] in (UnitType.SEQUENCE_HEADER, UnitType.LAYER_CONFIG):
        pos += 22 + struct.unpack_from(">I", data, pos + 10)[0]
    return data[:pos]


def post_open(port: int, name: str, *, token: str | None = None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(f"POST /streams/{name} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{auth}\r\n"
              .encode())
    return s


def chunk(s: socket.socket, data: bytes) -> None:
    s.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def status_of(s: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        got = s.recv(4096)
        if not got:
            return 0
        data += got
    return int(data.split(b" ", 2)[1])


@pytest.fixture
def publish_server(tmp_path: Path) -> Iterator[ServerThread]:
    cfg = ServeConfig(allow_publish=True, max_publishers=4, max_unit_bytes=1 << 20, idle_timeout=1.0,
                      header_timeout=1.0, max_ingest_bytes=1 << 20)
    with ServerThread(cfg) as srv:
        yield srv


def test_unit_larger_than_the_limit_is_refused_from_its_header(publish_server: ServerThread) -> None:
    head = stream_head(build_stream(frames=2))
    s = post_open(publish_server.server.port, "big")
    try:
        chunk(s, head + unit(UnitType.BASE_FRAME, 0, 0, b"", claimed=1 << 28)[:22] + b"x" * 1000)
        t0 = time.monotonic()
        assert status_of(s) == 413  # answered without waiting for the 256 MB
        assert time.monotonic() - t0 < 5
    finally:
        s.close()
    assert publish_server.server.ingest_limits.buffered == 0
    # the stream's own header bounds units too: two raw 416x240 pictures plus 1 MiB
    from tests.test_bitstream import make_header
    from vcodec.bitstream.checks import unit_size_limit

    assert unit_size_limit(make_header()) == 2 * 416 * 240 * 3 // 2 + (1 << 20)


def test_publishers_idle_and_half_open_connections_are_bounded(publish_server: ServerThread) -> None:
    port = publish_server.server.port
    head = stream_head(build_stream(frames=2))
    pubs = [post_open(port, f"p{i}") for i in range(4)]
    try:
        for p in pubs:
            chunk(p, head)
        wait_until(lambda: publish_server.server.publishers == 4, what="4 publishers")
        extra = post_open(port, "p4")
        assert status_of(extra) == 503  # --max-publishers
        extra.close()
        # they send nothing more: each is cut off after the idle timeout (408), and forgotten
        assert [status_of(p) for p in pubs] == [408] * 4
    finally:
        for p in pubs:
            p.close()
    wait_until(lambda: publish_server.server.publishers == 0 and not publish_server.server.channels,
               what="publishers gone")
    # half-open requests (a request line, no end of headers) are closed after the header timeout
    half = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(20)]
    try:
        for s in half:
            s.sendall(b"GET /streams HTTP/1.1\r\nHost: x\r\n")
        time.sleep(3.0)
        closed = 0
        for s in half:
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == 20
    finally:
        for s in half:
            s.close()


def test_crafted_streams_are_refused_on_ingest(publish_server: ServerThread) -> None:
    """Item 8: the decoder's checks hold on ingest (frame order, header count, END count, layers)."""
    data = build_stream(frames=4, intra_period=2)
    head = stream_head(data)
    port = publish_server.server.port
    cases = {
        "huge-index": unit(UnitType.BASE_FRAME, 0, 0xFFFFFFFE, b"\0" * 40),
        "no-layer": unit(UnitType.BASE_FRAME, 2, 0, b"\0" * 40),
        "past-count": unit(UnitType.BASE_FRAME, 0, 0, b"\0" * 40)
        + unit(UnitType.BASE_FRAME, 0, 1, b"\0" * 40, intra=False)
        + unit(UnitType.BASE_FRAME, 0, 9, b"\0" * 40),
    }
    for name, body in cases.items():
        s = post_open(port, name)
        try:
            chunk(s, head + body)
            assert status_of(s) == 400, name
        finally:
            s.close()
    wait_until(lambda: not publish_server.server.channels, what="refused channels forgotten")
    status, body, _ = http_get(publish_server.url, "/streams")
    assert status == 200 and json.loads(body)["streams"] == []


def test_memory_stays_under_the_cap_with_slow_publishers_and_readers(tmp_path: Path) -> None:
    """50 slow publishers (units trickling in) and 50 readers that never read a live stream."""
    cap = 2 << 20
    cfg = ServeConfig(allow_publish=True, max_publishers=60, max_ingest_bytes=cap, idle_timeout=10.0,
                      buffer_bytes=64 * 1024)
    data = build_stream(frames=60, intra_period=4, payload=20000, enh_payload=20000)
    head = stream_head(data)
    with ServerThread(cfg) as srv:
        port = srv.server.port
        feeder = post_open(port, "cam")
        chunk(feeder, head)
        wait_until(lambda: "cam" in srv.server.channels and srv.server.channels["cam"].header is not None
                   or srv.server.publishers == 1, what="feeder")
        readers = []
        for _ in range(50):
            r = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            r.sendall(b"GET /streams/cam HTTP/1.1\r\nHost: x\r\n\r\n")
            readers.append(r)
        pubs = [post_open(port, f"slow{i}") for i in range(50)]
        peak = 0
        try:
            for p in pubs:  # each starts a 200 kB unit and sends a piece of it
                chunk(p, head + unit(UnitType.BASE_FRAME, 0, 0, b"\0" * 200_000)[:60_000])
            chunk(feeder, data[len(head):])  # 2.4 MB published to 50 readers that do not read
            for _ in range(20):
                peak = max(peak, srv.server.ingest_limits.buffered)
                queued = sum(sub.queued_bytes for sub in srv.server.channels["cam"].subscribers.values())
                assert queued <= 50 * (cfg.buffer_bytes + 64 * 1024), queued
                time.sleep(0.05)
            assert peak <= cap
            refused = 0
            for p in pubs:
                p.settimeout(0.2)
                try:
                    refused += status_of(p) == 413
                except OSError:
                    pass
            assert refused >= 50 - cap // 60_000  # the ones over the cap were cut off
        finally:
            for s in [feeder, *readers, *pubs]:
                s.close()


def test_leaks_and_growth(tmp_path: Path) -> None:
    root = tmp_path / "streams"
    root.mkdir()
    (root / "clip.vcs").write_bytes(build_stream(frames=4))
    (root / "notes.txt").write_text("secret notes")
    (root / ".hidden.vcs").write_bytes(build_stream(frames=4))
    outside = tmp_path / "outside.vcs"
    outside.write_bytes(build_stream(frames=4))
    os.symlink(outside, root / "link.vcs")
    tokens = {"all": "A", "publish": "P"}
    with ServerThread(ServeConfig(root=root, tokens=tokens)) as srv:
        status, body, headers = http_get(srv.url, "/streams/notes.txt", "A")
        assert status == 404 and str(root) not in body.decode() and b"secret" not in body
        assert headers["Server"] == "vcodec"
        for name in (".hidden", ".hidden.vcs", "link", "link.vcs"):
            assert http_get(srv.url, f"/streams/{name}", "A")[0] == 404, name
        names = [s["name"] for s in json.loads(http_get(srv.url, "/streams", "A")[1])["streams"]]
        assert names == ["clip"]
        for path in ("/streams", "/metrics"):
            assert http_get(srv.url, path, "P")[0] == 403
        conn = http.client.HTTPConnection("127.0.0.1", srv.server.port, timeout=TIMEOUT)
        conn.request("HEAD", "/streams/clip", headers={"Authorization": "Bearer A"})
        resp = conn.getresponse()
        assert resp.status == 405 and resp.read() == b""
        conn.close()
        assert http_get(srv.url, "/streams/clip", "A")[0] == 200

        def lines() -> int:
            return len(http_get(srv.url, "/metrics", "A")[1].splitlines())

        before = lines()
        for spelling in ("clip", "clip.vcs", "%2E%2Fclip", ".%2Fclip.vcs", "clip%2Evcs", "./clip") * 20:
            http_get(srv.url, f"/streams/{spelling}", "A")
        assert lines() == before
        assert b"127.0.0.1" not in http_get(srv.url, "/metrics", "A")[1]


def test_token_file(tmp_path: Path) -> None:
    from vcodec.cli import serve as serve_cli

    f = tmp_path / "tokens"
    f.write_text("all=abc\n")
    p = serve_cli.argparse.ArgumentParser()
    serve_cli.add_arguments(p)
    ns = p.parse_args(["--token-file", str(f), "--root", str(tmp_path)])
    assert ns.token_file == f

