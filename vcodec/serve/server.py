"""The HTTP streaming server (aiohttp): stored streams, live streams, listing, metrics.

Routes::

    GET  /streams                     JSON list of streams, their layers and rates
    GET  /streams/{name}?layers=...   the stream, only the requested layers (chunked)
    POST /streams/{name}              publish a live stream (body: the stream as it is encoded)
    GET  /metrics                     Prometheus text
    GET  /                            the live dashboard (:mod:`~vcodec.serve.dashboard`)

The server never decodes: it filters units by layer id.  Stored streams are
filtered exactly like :func:`vcodec.bitstream.extract_layers` (same bytes);
live streams fan out through :class:`~vcodec.serve.hub.LiveChannel`.

This module holds the routes and the state; each route's work is in its own
module: :mod:`~vcodec.serve.auth` (tokens), :mod:`~vcodec.serve.stored`
(files in ``--root``), :mod:`~vcodec.serve.watch` (live viewers),
:mod:`~vcodec.serve.ingest` (publishing) and :mod:`~vcodec.serve.runner`
(:class:`ServerThread`, still importable from here).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from vcodec.bitstream.extract import parse_layers
from vcodec.errors import ConfigError
from vcodec.serve.auth import TOKEN_SCOPES, authorize_read, parse_tokens, token_scope
from vcodec.serve.dashboard import Dashboard
from vcodec.serve.http import CONTENT_TYPE, HTTPRefusal, refuse
from vcodec.serve.hub import DEFAULT_BUFFER_BYTES, LiveChannel
from vcodec.serve.ingest import IngestLimits, ingest
from vcodec.serve.metrics import ServeMetrics
from vcodec.serve.stored import StoredListing, serve_stored
from vcodec.serve.watch import serve_live

# ServerThread is importable from here too (see __getattr__ at the end), not listed: it lives in runner
__all__ = ["ServeConfig", "StreamServer", "parse_tokens", "check_name", "CONTENT_TYPE", "TOKEN_SCOPES"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_STREAM_PARAMS = {"layers", "start"}
_ENDED_KEPT = 16  # cleanly ended publishes kept (unlisted) for "has ended" answers and inspection


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"stream name {name!r}: use letters, digits, '_', '-', '.' (not starting with '.' or '-')"
        )
    return name


@dataclass
class ServeConfig:
    """What ``vcodec serve`` is told on its command line."""

    root: Path | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    #: bound of each live client's queue; above it the client skips to the next intra frame
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    #: accept ``POST /streams/{name}`` (also implied by a ``publish`` token)
    allow_publish: bool = False
    #: how much a stored-stream download reads ahead of the socket
    chunk_bytes: int = 64 * 1024
    #: largest unit payload a publisher may send (``--max-unit-bytes``; the stream's header may allow less)
    max_unit_bytes: int = 64 << 20
    #: publishers at once (``--max-publishers``)
    max_publishers: int = 8
    #: bytes of unfinished units buffered from all publishers together
    max_ingest_bytes: int = 256 << 20
    #: seconds a publisher may send nothing, and a connection may sit without a complete request
    idle_timeout: float = 30.0
    header_timeout: float = 10.0

    def validate(self) -> None:
        if self.root is not None and not self.root.is_dir():
            raise ConfigError(f"--root {self.root}: not a directory")
        if self.buffer_bytes < 4096:
            raise ConfigError(f"--buffer {self.buffer_bytes}: must be at least 4096 bytes")
        if self.max_unit_bytes < 4096:
            raise ConfigError(f"--max-unit-bytes {self.max_unit_bytes}: must be at least 4096 bytes")
        if self.max_publishers < 1:
            raise ConfigError(f"--max-publishers {self.max_publishers}: must be at least 1")
        if not (self.idle_timeout > 0 and self.header_timeout > 0):
            raise ConfigError("the idle and header timeouts must be positive (seconds)")
        for scope in self.tokens:
            if scope not in TOKEN_SCOPES:
                raise ConfigError(f"token scope {scope!r} is not one of {', '.join(TOKEN_SCOPES)}")


class StreamServer:
    """The server state and its aiohttp application."""

    def __init__(self, config: ServeConfig) -> None:
        config.validate()
        self.config = config
        self.metrics = ServeMetrics()
        self.channels: dict[str, LiveChannel] = {}
        self._listing = StoredListing()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._closing = False
        self.ingest_limits = IngestLimits(max_unit_bytes=config.max_unit_bytes,
                                          max_buffered_bytes=config.max_ingest_bytes,
                                          idle_timeout=config.idle_timeout)
        self.publishers = 0  # POST bodies being read now
        self._idle_since: dict[Any, float] = {}  # connection -> when it was last seen without a request
        self._watchdog: asyncio.Task[None] | None = None

    # -- live channels ----------------------------------------------------------------------------
    def live_channel(self, name: str, source: str = "publish") -> LiveChannel:
        """Create (or reuse an ended) live channel; call on the event loop."""
        check_name(name)
        ch = self.channels.get(name)
        if ch is not None and not ch.ended:
            raise ConfigError(f"live stream {name!r} is already being published")
        ch = LiveChannel(name, source)
        self.channels[name] = ch
        return ch

    def _retire(self, name: str, ch: LiveChannel) -> None:
        """A publish ended: a refused or failed one is forgotten at once; of the clean ones only the
        last few are kept (unlisted), so POSTs cannot grow the server's state or its listing."""
        if self.channels.get(name) is not ch:
            return
        if ch.failed is not None:
            del self.channels[name]
            return
        ended = [n for n, c in self.channels.items() if c.ended and c.source == "publish"]
        for old in ended[:max(0, len(ended) - _ENDED_KEPT)]:
            del self.channels[old]

    # -- application --------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.on_response_prepare.append(_server_header)
        app.router.add_get("/streams", self._h_list)
        # no HEAD: aiohttp would run the handler and send the whole (streamed) body
        app.router.add_get("/streams/{name}", self._h_stream, allow_head=False)
        app.router.add_post("/streams/{name}", self._h_publish)
        app.router.add_put("/streams/{name}", self._h_publish)
        app.router.add_get("/metrics", self._h_metrics)
        Dashboard(self).register(app)  # GET / and /dashboard/*: vcodec.serve.dashboard
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 = an ephemeral port); returns the port."""
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
            ) from None
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - aiohttp exposes no public getter
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._watchdog = asyncio.get_running_loop().create_task(self._close_half_open())
        return self.port

    async def _close_half_open(self) -> None:
        """Close connections that sit without a complete request for ``header_timeout`` seconds.

        aiohttp waits for a request's headers forever; a client that opens connections and
        sends half a request (or nothing) would hold them, and their buffers, without end.
        """
        loop = asyncio.get_running_loop()
        timeout = self.config.header_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            server = self._runner.server if self._runner is not None else None
            if server is None:
                continue
            now = loop.time()
            live = set(server.connections)
            for handler in list(self._idle_since):
                if handler not in live:
                    del self._idle_since[handler]
            for handler in live:
                if getattr(handler, "_request_in_progress", False):
                    self._idle_since.pop(handler, None)
                    continue
                since = self._idle_since.setdefault(handler, now)
                if now - since > timeout:
                    handler.force_close()
                    del self._idle_since[handler]

    async def stop(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for ch in self.channels.values():
            if not ch.ended:
                ch.finish()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- helpers ------------------------------------------------------------------------------------
    def _token_scope(self, request: web.Request) -> str | None:
        return token_scope(self.config.tokens, request)

    def _authorize_read(self, request: web.Request, keep: set[int] | None) -> None:
        authorize_read(self._token_scope(request), keep)

    def _resolve_stored(self, name: str) -> Path | None:
        """The file of stored stream ``name``: a plain stream name (no hidden files), in --root itself."""
        root = self.config.root
        if root is None or not _NAME_RE.match(name):
            return None
        for candidate in (name, f"{name}.vcs"):
            p = root / candidate
            if p.is_file() and p.resolve().parent == root.resolve():
                return p
        return None

    def _read_scope(self, request: web.Request) -> str | None:
        """The token scope of a listing or metrics request; a publish token reads nothing (403)."""
        scope = self._token_scope(request)
        if scope == "publish":
            raise HTTPRefusal(403, "a 'publish' token can only publish")
        return scope

    # -- handlers -------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request, fn: Callable[[web.Request], Any]) -> web.StreamResponse:
        try:
            return await fn(request)
        except HTTPRefusal as exc:
            return refuse(self.metrics, exc.status, exc.message, exc.headers)
        except ConfigError as exc:
            return refuse(self.metrics, 400, str(exc))

    async def _h_metrics(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            self._read_scope(req)
            live = {n: c.frames_published for n, c in self.channels.items()}
            return web.Response(text=self.metrics.render(live), content_type="text/plain",
                                headers={"X-Prometheus-Format": "0.0.4"})
        return await self._dispatch(request, inner)

    async def _h_list(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            self._read_scope(req)
            streams: list[dict[str, Any]] = [c.describe() for _, c in sorted(self.channels.items())
                                             if not (c.ended and c.source == "publish")]
            live_names = {n for n, c in self.channels.items() if not (c.ended and c.source == "publish")}
            if self.config.root is not None:
                loop = asyncio.get_running_loop()
                root = self.config.root.resolve()
                for p in sorted(self.config.root.iterdir()):
                    if not p.is_file() or p.name.startswith(".") or p.resolve().parent != root:
                        continue  # (a symlink out of --root is neither listed nor served)
                    name = p.name[:-4] if p.name.endswith(".vcs") else p.name
                    if name in live_names or not _NAME_RE.match(name):
                        continue
                    d = await loop.run_in_executor(None, self._listing.info, p)
                    if d is not None:
                        streams.append(d | {"name": name})
            return web.json_response({"streams": streams})
        return await self._dispatch(request, inner)

    def _parse_stream_query(self, request: web.Request) -> tuple[set[int] | None, int | None]:
        unknown = set(request.query) - _STREAM_PARAMS
        if unknown:
            raise HTTPRefusal(
                400,
                f"unknown parameter(s) {', '.join(sorted(unknown))}: use layers=base|all|IDS, start=FRAME",
            )
        try:
            keep = parse_layers(request.query.get("layers", "all"))
        except ConfigError as exc:
            raise HTTPRefusal(400, str(exc).replace("--layers", "layers=")) from None
        start: int | None = None
        if "start" in request.query:
            try:
                start = int(request.query["start"])
                if start < 0:
                    raise ValueError
            except ValueError:
                raise HTTPRefusal(
                    400, f"start={request.query['start']!r}: expected a frame index >= 0"
                ) from None
        return keep, start

    async def _h_stream(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            name = req.match_info["name"]
            keep, start = self._parse_stream_query(req)
            self._authorize_read(req, keep)
            ch = self.channels.get(name)
            if ch is not None and not (ch.ended and self._resolve_stored(name)):
                if ch.ended:
                    raise HTTPRefusal(404, f"live stream {name!r} has ended")
                if start is not None:
                    raise HTTPRefusal(
                        400, "start= is for stored streams; a live stream starts at its next intra frame"
                    )
                return await serve_live(req, ch, keep, metrics=self.metrics,
                                        buffer_bytes=self.config.buffer_bytes)
            path = self._resolve_stored(name)
            if path is None:
                raise HTTPRefusal(404, f"no stream named {name!r} (GET /streams lists them)")
            name = path.name[:-4] if path.name.endswith(".vcs") else path.name  # one name per stream
            return await serve_stored(req, name, path, keep, start, metrics=self.metrics,
                                      chunk_bytes=self.config.chunk_bytes)
        return await self._dispatch(request, inner)

    async def _h_publish(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            name = check_name(req.match_info["name"])
            if set(req.query):
                raise HTTPRefusal(400, "publishing takes no parameters")
            scope = self._token_scope(req) if self.config.tokens else None
            if "publish" in self.config.tokens:
                if scope != "publish":
                    raise HTTPRefusal(403, "publishing needs the 'publish' token")
            elif not self.config.allow_publish:
                raise HTTPRefusal(403, "publishing is off on this server (start it with --allow-publish)")
            if self._resolve_stored(name) is not None:
                raise HTTPRefusal(409, f"{name!r} is a stored stream in --root; publish under another name")
            if self.publishers >= self.config.max_publishers:
                raise HTTPRefusal(503, f"{self.publishers} streams are being published, the most this server "
                                       "takes (--max-publishers); retry later", {"Retry-After": "5"})
            try:
                ch = self.live_channel(name, "publish")
            except ConfigError as exc:
                raise HTTPRefusal(409, str(exc)) from None
            self.publishers += 1
            try:
                return await ingest(req, ch, metrics=self.metrics, limits=self.ingest_limits)
            finally:
                self.publishers -= 1
                self._retire(name, ch)
        return await self._dispatch(request, inner)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No software versions in answers (aiohttp's default names Python's and its own)."""
    response.headers["Server"] = "vcodec"


def __getattr__(name: str) -> Any:
    # ServerThread moved to vcodec.serve.runner (which imports this module); kept here for one release
    if name == "ServerThread":
        from vcodec.serve.runner import ServerThread

        return ServerThread
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
