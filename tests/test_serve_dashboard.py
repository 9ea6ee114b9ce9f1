"""The live dashboard of `vcodec serve` (issue 16): the page and its tokens, client counts per
layer, previews with the base layer's boxes, and the page in a real browser (headless Chromium,
Debian's package; skipped with the reason where it is not installed)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO

from vcodec.serve import ServeConfig, ServerThread

TOKENS = {"base": "b-secret", "all": "a-secret", "publish": "p-secret"}
DEMO = REPO / "sequences" / "demo_person_768x432.mp4"


def _get(srv: ServerThread, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _wait_preview(srv: ServerThread, name: str, token: str | None, layers: str = "all",
                  timeout: float = 240) -> tuple[dict[str, str], bytes]:
    end = time.monotonic() + timeout
    while True:
        status, headers, body = _get(srv, f"/dashboard/preview/{name}?layers={layers}", token)
        if status == 200:
            return headers, body
        assert status == 503, (status, body)
        assert time.monotonic() < end, f"no preview after {timeout} s: {body!r}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def person_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stored stream of the demo clip's first frames (shipped base model: it sees the person)."""
    from vcodec.codec import Encoder
    from vcodec.io import open_video

    root = tmp_path_factory.mktemp("dash-root")
    with open_video(DEMO, frames=3) as reader, \
            Encoder(root / "person.vcs", reader.info, preset="ultrafast", threads=1) as enc:
        for frame in reader:
            enc.encode(frame)
    return root


# -- page and tokens -----------------------------------------------------------------------------
def test_page_is_html_from_the_server_with_the_stream_tokens(tmp_path: Path) -> None:
    with ServerThread(ServeConfig(root=tmp_path, tokens=TOKENS)) as srv:
        status, headers, _ = _get(srv, "/")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert _get(srv, "/", "nope")[0] == 401
        # a browser without a token gets a form asking for one, still as a 401
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        conn.request("GET", "/", headers={"Accept": "text/html,application/xhtml+xml"})
        r = conn.getresponse()
        form = r.read().decode()
        conn.close()
        assert r.status == 401 and r.getheader("Content-Type") == "text/html; charset=utf-8"
        assert '<form method="get" action="/">' in form and 'name="token"' in form
        assert _get(srv, "/", TOKENS["publish"])[0] == 403  # a publish token reads nothing
        for token in (TOKENS["base"], TOKENS["all"]):
            status, headers, body = _get(srv, "/", token)
            assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
            assert headers["cache-control"] == "no-store"
        page = body.decode()
        assert "<title>vcodec serve</title>" in page and 'id="streams"' in page and 'id="preview"' in page
        # no CDN, no build step: nothing is loaded from another origin
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "page loads from elsewhere"
        assert "import " not in page and "<script src" not in page
        # a browser cannot send a bearer header for the page: ?token= works for the page only
        assert _get(srv, f"/?token={TOKENS['base']}")[0] == 200
        assert _get(srv, "/?token=wrong")[0] == 401
        assert _get(srv, f"/dashboard/clients?token={TOKENS['all']}")[0] == 401
        assert _get(srv, f"/streams?token={TOKENS['all']}")[0] == 401
        # previews: a full decode needs the all token, the base picture any read token
        assert _get(srv, "/dashboard/preview/x?layers=all")[0] == 401
        assert _get(srv, "/dashboard/preview/x?layers=all", TOKENS["base"])[0] == 403
        assert _get(srv, "/dashboard/preview/x?layers=base", TOKENS["publish"])[0] == 403
        assert _get(srv, "/dashboard/preview/x?layers=base", TOKENS["base"])[0] == 404
        assert _get(srv, "/dashboard/preview/x?layers=1", TOKENS["all"])[0] == 400


def test_page_without_tokens_and_client_counts_per_layer(tmp_path: Path) -> None:
    with ServerThread(ServeConfig(root=tmp_path)) as srv:
        assert _get(srv, "/")[0] == 200
        m = srv.server.metrics
        srv.call(m.connect, "cam1", "live", "0", "10.0.0.1:5000")
        srv.call(m.connect, "cam1", "live", "0,1", "10.0.0.2:5000")
        srv.call(m.connect, "clip", "stored", "0,1", "10.0.0.3:5000")
        status, headers, body = _get(srv, "/dashboard/clients")
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert json.loads(body)["clients"] == {"cam1": {"0": 2, "1": 1}, "clip": {"0": 1, "1": 1}}


# -- previews -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_preview_is_a_jpeg_with_the_base_layers_boxes(person_stream: Path) -> None:
    with ServerThread(ServeConfig(root=person_stream, tokens=TOKENS)) as srv:
        headers, body = _wait_preview(srv, "person", TOKENS["all"])
        assert headers["content-type"] == "image/jpeg"
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (432, 768, 3)
        assert int(headers["x-vcodec-detections"]) >= 1  # the person, seen from the base layer
        assert 0 <= int(headers["x-vcodec-frame"]) < 3
        # a base token previews the base layer's own picture
        headers, body = _wait_preview(srv, "person", TOKENS["base"], layers="base")
        assert headers["x-vcodec-layers"] == "base"
        base = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert base.shape == img.shape
        # the previews are not counted as clients of the stream
        clients = json.loads(_get(srv, "/dashboard/clients", TOKENS["base"])[2])
        assert clients["clients"] == {}
        previews = {(p["stream"], p["layers"]) for p in clients["previews"]}
        assert previews == {("person", "all"), ("person", "base")}


@pytest.mark.slow
def test_preview_of_a_live_stream_follows_it(tmp_path: Path) -> None:
    from vcodec.serve import start_live
    from vcodec.serve.live import encode_producer

    # a live encode of the demo clip's first frames, looped (a live stream has no frame count)
    with ServerThread(ServeConfig(root=tmp_path, tokens=TOKENS)) as srv:
        task = srv.call(start_live, srv.server, srv.loop, "cam1",
                        encode_producer(str(DEMO), loop_count=0, frames=4, speed=0, preset="ultrafast",
                                        intra_period=2, threads=1))
        try:
            headers, body = _wait_preview(srv, "cam1", TOKENS["all"])
            assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (432, 768, 3)
            first = int(headers["x-vcodec-frame"])
            # live: frame indexes keep growing as the replay loops
            end = time.monotonic() + 60
            while int(_wait_preview(srv, "cam1", TOKENS["all"])[0]["x-vcodec-frame"]) <= first:
                assert time.monotonic() < end, "the live preview does not move"
                time.sleep(0.3)
            # the preview's own connections are not the stream's clients
            assert json.loads(_get(srv, "/dashboard/clients", TOKENS["all"])[2])["clients"] == {}
        finally:
            task.stop()


# -- a real browser -------------------------------------------------------------------------------
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_dashboard_in_headless_chromium(person_stream: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; "
                    ".ci/run installs it)")
    with ServerThread(ServeConfig(root=person_stream, tokens=TOKENS)) as srv:
        _wait_preview(srv, "person", TOKENS["all"])  # the decoder is warm: the page's first preview is real
        url = f"{srv.url}/?token={TOKENS['all']}"
        common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                  "--virtual-time-budget=15000", "--window-size=1400,900"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        # the stream list, with the layers' rates
        assert re.search(r'<tr[^>]*data-stream="person"', html), html[:3000]
        assert "kbit/s" in html
        # the preview: a loaded JPEG with the base layer's boxes drawn
        img = re.search(r'<img id="preview"[^>]*>', html)
        assert img is not None, html[:3000]
        tag = img.group(0)
        assert 'data-loaded="1"' in tag and 'src="blob:' in tag, tag
        detections = re.search(r'data-detections="(\d+)"', tag)
        assert detections is not None and int(detections.group(1)) >= 1, tag
        shot = tmp_path / "dashboard.png"
        run = subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, text=True,
                             timeout=180)
        assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
        picture = cv2.imread(str(shot))
        assert picture is not None and picture.shape[:2] == (900, 1400)
