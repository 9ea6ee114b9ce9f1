"""The live dashboard of ``vcodec serve``: ``GET /`` in a browser.

One HTML page (``vcodec/serve/static/dashboard.html``: no build step, no CDN, everything
served by this process) lists the stored and live streams with each layer's bitrate and the
clients connected to each layer, and shows a live preview of a chosen stream: the picture
decoded here (JPEG) with the detections of the base layer alone drawn as labelled boxes.

Routes (registered by :meth:`Dashboard.register`)::

    GET /                              the page
    GET /dashboard/clients             JSON {stream: {layer id: clients}} (the previews not counted)
    GET /dashboard/preview/{name}      JPEG, ?layers=all (full decode) or base (the base picture);
                                       headers X-Vcodec-Frame and X-Vcodec-Detections

Access follows the stream tokens (:mod:`~vcodec.serve.auth`): any read token for the page and
the client counts, the ``all`` token for a full-decode preview, ``base`` or ``all`` for a
base-picture preview; 401 without a token, 403 with one that does not grant it. A browser
cannot send a bearer header when it loads a page, so ``GET /?token=T`` is accepted for the page
alone; its script moves the token to session storage, removes it from the address bar and
sends ``Authorization: Bearer`` on every request after that.

The server itself never decodes; previews are the exception, and they are clients like any
other: a :class:`PreviewWorker` per (stream, layers) decodes in two threads (pictures, and the
base layer's detections; paired by frame index), a stored stream from its file paced at its
frame rate and looped, a live one through this server's own HTTP endpoint (those connections
are left out of the client counts). A worker stops after :data:`IDLE_S` without a request, and
torch and the models are imported only when the first preview is asked for.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vcodec.serve.auth import authorize_read, token_scope
from vcodec.serve.http import HTTPRefusal, refuse

if TYPE_CHECKING:
    from vcodec.serve.server import StreamServer

__all__ = ["Dashboard", "PreviewWorker", "IDLE_S", "MAX_PREVIEWS"]

#: a preview nobody asked for in this many seconds is stopped
IDLE_S = 20.0
#: previews decoding at once (each decodes in two threads)
MAX_PREVIEWS = 4
_JPEG_QUALITY = 80
#: decoded pictures kept while their detections are on the way
_RECENT = 16
#: how long the first picture waits for its boxes before it is shown without
_BOXES_WAIT_S = 10.0


@dataclass
class _Latest:
    index: int
    picture: Any  # vcodec.io.Frame
    detections: Any  # Detections or None (not known yet)
    jpeg: bytes | None = None


class PreviewWorker:
    """Decode one stream for the dashboard: the latest picture and the base layer's detections.

    ``open_source()`` returns what a :class:`~vcodec.codec.Decoder` reads (a path, or an HTTP
    stream) and is called once per decoder and per loop; ``loop``: start again at the end (a
    stored stream replayed); ``fps``: pace a stored stream at its frame rate (None: as it comes).
    """

    def __init__(self, name: str, layers: str, open_source: Callable[[str], Any], *, loop: bool,
                 fps: float | None) -> None:
        self.name, self.layers = name, layers
        self._open = open_source
        self._loop, self._fps = loop, fps
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # recent pictures: the newest one whose detections are known is shown, so boxes match it
        self._recent: deque[_Latest] = deque(maxlen=_RECENT)
        self._first_picture: float | None = None
        self._dets: dict[int, Any] = {}
        self.error: str | None = None
        self.last_request = time.monotonic()
        self._threads = [threading.Thread(target=self._guard, args=(fn,), daemon=True,
                                          name=f"vcodec-preview-{name}-{kind}")
                         for kind, fn in (("pictures", self._pictures), ("detections", self._detections))]

    def start(self) -> PreviewWorker:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def alive(self) -> bool:
        return not self._stop.is_set() and any(t.is_alive() for t in self._threads)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - shown on the page, the server goes on
            self.error = f"{type(exc).__name__}: {exc}"
            self._stop.set()

    def _runs(self, layers: str) -> Iterator[Any]:
        """Decoders over the stream, one per pass (one pass unless looping)."""
        from vcodec.codec import Decoder

        while not self._stop.is_set():
            source = self._open(layers)
            try:
                # threads=0: torch's thread count is process-wide; a live encoder here has set it
                with Decoder(source, layers=layers, threads=0, conceal=True) as dec:
                    yield dec
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            if not self._loop:
                return

    def _paced(self, items: Iterator[Any]) -> Iterator[Any]:
        t0 = time.monotonic()
        for n, item in enumerate(items):
            if self._stop.is_set():
                return
            if self._fps:
                wait = t0 + n / self._fps - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
            yield item

    def _pictures(self) -> None:
        for dec in self._runs(self.layers):
            for frame in self._paced(dec.frames()):
                with self._lock:
                    self._recent.append(_Latest(frame.index, frame, None))
                    if self._first_picture is None:
                        self._first_picture = time.monotonic()

    def _detections(self) -> None:
        for dec in self._runs("base"):
            for index, det in self._paced(dec.detections()):
                with self._lock:
                    self._dets[int(index)] = det
                    for old in [k for k in self._dets if k < index - 256]:  # bounded: recent frames only
                        del self._dets[old]

    def latest_jpeg(self) -> tuple[bytes, int, int] | None:
        """(JPEG, frame index, detections drawn) of the newest picture; None before the first."""
        self.last_request = now = time.monotonic()
        with self._lock:
            latest = None
            for item in reversed(self._recent):
                if item.detections is None:
                    item.detections = self._dets.get(item.index)
                if item.detections is not None:
                    latest = item
                    break
            if latest is None:
                if not self._recent or now - (self._first_picture or now) < _BOXES_WAIT_S:
                    return None
                latest = self._recent[-1]  # detections lag far behind: the picture without boxes
            if latest.jpeg is None:
                latest.jpeg = _encode(latest)
        return latest.jpeg, latest.index, len(latest.detections) if latest.detections is not None else 0


def _encode(latest: _Latest) -> bytes:
    import cv2

    from vcodec.annotate import draw_detections

    img = draw_detections(latest.picture, latest.detections)
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), _JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


class Dashboard:
    """The page, the client counts and the previews of one :class:`StreamServer`."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.previews: dict[tuple[str, str], PreviewWorker] = {}
        self._own_peers: set[str] = set()  # the previews' own connections to this server
        self._page: bytes | None = None

    def register(self, app: web.Application) -> None:
        app.router.add_get("/", self.h_page)
        app.router.add_get("/dashboard/clients", self.h_clients)
        app.router.add_get("/dashboard/preview/{name}", self.h_preview)
        app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, _app: web.Application) -> None:
        for w in self.previews.values():
            w.stop()
        self.previews.clear()

    # -- access --------------------------------------------------------------------------------------
    def _scope(self, request: web.Request, *, query_token: bool = False) -> str | None:
        tokens = self.server.config.tokens
        if query_token and "Authorization" not in request.headers and request.query.get("token"):
            # token_scope reads only the headers: a stand-in request carries the query's token there
            return token_scope(tokens, _WithBearer(request.query["token"]))  # type: ignore[arg-type]
        return token_scope(tokens, request)

    async def _answer(self, request: web.Request, fn: Callable[[], Any]) -> web.StreamResponse:
        try:
            return await fn()
        except HTTPRefusal as exc:
            return refuse(self.server.metrics, exc.status, exc.message, exc.headers)

    # -- routes --------------------------------------------------------------------------------------
    async def h_page(self, request: web.Request) -> web.StreamResponse:
        if "text/html" in request.headers.get("Accept", ""):
            try:
                self._scope(request, query_token=True)
            except HTTPRefusal as exc:
                if exc.status == 401:  # a person at a browser: ask for the token (still a 401)
                    self.server.metrics.refused(401)
                    return web.Response(status=401, body=_TOKEN_FORM, content_type="text/html",
                                        charset="utf-8", headers={**exc.headers, "Cache-Control": "no-store"})

        async def inner() -> web.StreamResponse:
            authorize_read(self._scope(request, query_token=True), {0})  # any read token: base or all
            if self._page is None:
                self._page = resources.files("vcodec.serve").joinpath("static/dashboard.html").read_bytes()
            return web.Response(body=self._page, content_type="text/html", charset="utf-8",
                                headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                         "Referrer-Policy": "no-referrer"})
        return await self._answer(request, inner)

    async def h_clients(self, request: web.Request) -> web.StreamResponse:
        async def inner() -> web.StreamResponse:
            authorize_read(self._scope(request), {0})
            counts: dict[str, dict[str, int]] = {}
            for rec in list(self.server.metrics.clients.values()):
                if rec.peer in self._own_peers:
                    continue
                per = counts.setdefault(rec.stream, {})
                for layer in filter(None, rec.layers.split(",")):
                    per[layer] = per.get(layer, 0) + 1
            previews = [{"stream": n, "layers": la, "error": w.error} for (n, la), w in self.previews.items()]
            return web.json_response({"clients": counts, "previews": previews},
                                     headers={"Cache-Control": "no-store"})
        return await self._answer(request, inner)

    async def h_preview(self, request: web.Request) -> web.StreamResponse:
        async def inner() -> web.StreamResponse:
            name = request.match_info["name"]
            layers = request.query.get("layers", "all")
            if layers not in ("all", "base"):
                raise HTTPRefusal(400, f"layers={layers!r}: a preview is of layers=all or layers=base")
            authorize_read(self._scope(request), {0} if layers == "base" else None)
            worker = await self._worker(name, layers)
            loop = asyncio.get_running_loop()
            got = await loop.run_in_executor(None, worker.latest_jpeg)
            if got is None:
                if worker.error:
                    raise HTTPRefusal(500, f"preview of {name!r} failed: {worker.error}")
                raise HTTPRefusal(503, f"preview of {name!r} is starting (decoding its first frame)",
                                  {"Retry-After": "1"})
            jpeg, index, boxes = got
            return web.Response(body=jpeg, content_type="image/jpeg",
                                headers={"Cache-Control": "no-store", "X-Vcodec-Frame": str(index),
                                         "X-Vcodec-Detections": str(boxes), "X-Vcodec-Layers": layers})
        return await self._answer(request, inner)

    # -- previews ------------------------------------------------------------------------------------
    async def _worker(self, name: str, layers: str) -> PreviewWorker:
        now = time.monotonic()
        for key, w in list(self.previews.items()):
            if not w.alive and w.error is None or now - w.last_request > IDLE_S:
                w.stop()
                del self.previews[key]
        worker = self.previews.get((name, layers))
        if worker is not None and (worker.alive or worker.error):
            return worker
        if len(self.previews) >= MAX_PREVIEWS:
            raise HTTPRefusal(503, f"{MAX_PREVIEWS} previews are running; close one and retry",
                              {"Retry-After": "5"})
        worker = self._make_worker(name, layers)
        self.previews[(name, layers)] = worker.start()
        return worker

    def _make_worker(self, name: str, layers: str) -> PreviewWorker:
        srv = self.server
        ch = srv.channels.get(name)
        if ch is not None and not ch.ended:
            url = self._own_url(name)
            token = srv.config.tokens.get("all") or srv.config.tokens.get("base")

            def open_live(which: str) -> Any:
                from vcodec.serve.client import open_url

                stream = open_url(url, layers=which, token=token)
                sock = getattr(getattr(stream, "_conn", None), "sock", None)
                if sock is not None:
                    host, port = sock.getsockname()[:2]
                    self._own_peers.add(f"{host}:{port}")
                return stream

            return PreviewWorker(name, layers, open_live, loop=False, fps=None)
        path = srv._resolve_stored(name)  # noqa: SLF001 - the server's own name rules
        if path is None:
            raise HTTPRefusal(404, f"no stream named {name!r} (GET /streams lists them)")
        fps = _stored_fps(path)
        return PreviewWorker(name, layers, lambda _which: str(path), loop=True, fps=fps)

    def _own_url(self, name: str) -> str:
        runner = getattr(self.server, "_runner", None)
        addresses = list(getattr(runner, "addresses", []) or [])
        host = "127.0.0.1"
        if addresses and isinstance(addresses[0], tuple):
            bound = str(addresses[0][0])
            if bound not in ("0.0.0.0", "::", ""):
                host = f"[{bound}]" if ":" in bound else bound
        return f"http://{host}:{self.server.port}/streams/{name}"


def _stored_fps(path: Path) -> float | None:
    from vcodec.bitstream.info import stream_stats

    try:
        fps = float(Fraction(str(stream_stats(path).to_dict()["fps"])))
    except Exception:  # noqa: BLE001 - unpaced is still a preview
        return None
    return fps if fps > 0 else None


_TOKEN_FORM = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vcodec serve: token needed</title></head>
<body style="font: 15px system-ui, sans-serif; margin: 40px">
<h1 style="font-size: 18px">vcodec serve needs a token</h1>
<p>This server's streams are protected by bearer tokens (a <code>base</code> or <code>all</code> token).</p>
<form method="get" action="/"><input name="token" type="password" autofocus placeholder="token" size="40">
<button type="submit">open the dashboard</button></form>
</body></html>
"""


class _WithBearer:
    """A stand-in request carrying ``token`` as its bearer header (for ``GET /?token=``)."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
