"""The HTTP streaming server (aiohttp): stored streams, live streams, listing, metrics.

Routes::

    GET  /streams                     JSON list of streams, their layers and rates
    GET  /streams/{name}?layers=...   the stream, only the requested layers (chunked)
    POST /streams/{name}              publish a live stream (body: the stream as it is encoded)
    GET  /metrics                     Prometheus text

The server never decodes: it filters units by layer id.  Stored streams are
filtered exactly like :func:`vcodec.bitstream.extract_layers` (same bytes);
live streams fan out through :class:`~vcodec.serve.hub.LiveChannel`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from vcodec.bitstream.extract import parse_layers
from vcodec.bitstream.format import UnitType
from vcodec.bitstream.info import stream_stats
from vcodec.bitstream.reader import StreamReader, Unit, is_stream_prefix
from vcodec.bitstream.writer import StreamWriter
from vcodec.errors import BitstreamError, ConfigError, VcodecError
from vcodec.serve.hub import DEFAULT_BUFFER_BYTES, LiveChannel, Subscriber, layer_of_chunk
from vcodec.serve.metrics import ClientRecord, ServeMetrics
from vcodec.serve.parser import UnitParser

__all__ = ["ServeConfig", "StreamServer", "ServerThread", "parse_tokens", "CONTENT_TYPE", "TOKEN_SCOPES"]

log = logging.getLogger("vcodec.serve")

CONTENT_TYPE = "application/vnd.vcodec.stream"
#: token scopes: what a bearer token of that scope may do
TOKEN_SCOPES = ("base", "all", "publish")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_STREAM_PARAMS = {"layers", "start"}


def parse_tokens(text: str) -> dict[str, str]:
    """``base=S1,all=S2,publish=S3`` -> {scope: token}."""
    out: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        scope, sep, token = item.partition("=")
        scope = scope.strip().lower()
        if not sep or scope not in TOKEN_SCOPES or not token.strip():
            raise ConfigError(f"--token {item!r}: expected SCOPE=TOKEN with SCOPE one of {', '.join(TOKEN_SCOPES)}")
        if scope in out:
            raise ConfigError(f"--token: scope {scope!r} given twice")
        out[scope] = token.strip()
    return out


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(f"stream name {name!r}: use letters, digits, '_', '-', '.' (not starting with '.' or '-')")
    return name


def _is_stream_file(path: Path) -> bool:
    """True when the file starts like a vcodec stream (other files in --root are not listed or served)."""
    with open(path, "rb") as f:
        return is_stream_prefix(f.read(4))


def _open_stored(path: Path) -> StreamReader | None:
    """A reader on a stored stream, or None when the file is not a vcodec stream at all."""
    return StreamReader(path) if _is_stream_file(path) else None


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

    def validate(self) -> None:
        if self.root is not None and not self.root.is_dir():
            raise ConfigError(f"--root {self.root}: not a directory")
        if self.buffer_bytes < 4096:
            raise ConfigError(f"--buffer {self.buffer_bytes}: must be at least 4096 bytes")
        for scope in self.tokens:
            if scope not in TOKEN_SCOPES:
                raise ConfigError(f"token scope {scope!r} is not one of {', '.join(TOKEN_SCOPES)}")


class _HTTPRefusal(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _Cancelled(Exception):
    """The client of a stored download went away; the producer thread stops."""


class _BatchSink:
    """StreamWriter sink of a stored download: batches writes and hands them to the event loop."""

    def __init__(self, put: Callable[[Any], None], chunk: int) -> None:
        self.put = put
        self.chunk = chunk
        self.parts: list[bytes] = []
        self.size = 0
        self.nbytes: dict[int, int] = {}
        self.nunits: dict[int, int] = {}

    def write(self, data: bytes) -> int:
        data = bytes(data)
        layer = layer_of_chunk(data)
        self.parts.append(data)
        self.size += len(data)
        self.nbytes[layer] = self.nbytes.get(layer, 0) + len(data)
        if len(data) >= 22 and data[:2] == b"VU":
            self.nunits[layer] = self.nunits.get(layer, 0) + 1
        if self.size >= self.chunk:
            self.push()
        return len(data)

    def push(self) -> None:
        if self.parts:
            item = (b"".join(self.parts), self.nbytes, self.nunits)
            self.parts, self.size, self.nbytes, self.nunits = [], 0, {}, {}
            self.put(item)

    def flush(self) -> None:
        self.push()


class StreamServer:
    """The server state and its aiohttp application."""

    def __init__(self, config: ServeConfig) -> None:
        config.validate()
        self.config = config
        self.metrics = ServeMetrics()
        self.channels: dict[str, LiveChannel] = {}
        self._stats_cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._closing = False

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

    # -- application --------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/streams", self._h_list)
        app.router.add_get("/streams/{name}", self._h_stream)
        app.router.add_post("/streams/{name}", self._h_publish)
        app.router.add_put("/streams/{name}", self._h_publish)
        app.router.add_get("/metrics", self._h_metrics)
        app.router.add_get("/", self._h_index)
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
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port") from None
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - aiohttp exposes no public getter
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        self._closing = True
        for ch in self.channels.values():
            if not ch.ended:
                ch.finish()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- helpers ------------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        self.metrics.refused(status)
        return web.Response(status=status, text=message + "\n", headers=headers)

    def _token_scope(self, request: web.Request) -> str | None:
        """The scope of the request's bearer token; None when tokens are off. Raises 401."""
        if not self.config.tokens:
            return None
        auth = request.headers.get("Authorization", "")
        kind, _, token = auth.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="vcodec"'}
        if kind.lower() != "bearer" or not token.strip():
            raise _HTTPRefusal(401, "this server needs a bearer token (Authorization: Bearer TOKEN; "
                                    "`vcodec analyze --token`)", challenge)
        for scope, secret in self.config.tokens.items():
            if hmac.compare_digest(token.strip().encode(), secret.encode()):
                return scope
        raise _HTTPRefusal(401, "bearer token not recognised", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def _authorize_read(self, request: web.Request, keep: set[int] | None) -> None:
        scope = self._token_scope(request)
        if scope is None or scope == "all":
            return
        if scope == "base":
            if keep is not None and keep <= {0}:
                return
            raise _HTTPRefusal(403, "this token grants the base layer only: ask for ?layers=base")
        raise _HTTPRefusal(403, f"a {scope!r} token cannot read streams")

    def _resolve_stored(self, name: str) -> Path | None:
        root = self.config.root
        if root is None:
            return None
        for candidate in (name, f"{name}.vcs"):
            p = root / candidate
            if p.is_file() and p.resolve().parent == root.resolve():
                return p
        return None

    # -- handlers -------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request, fn: Callable[[web.Request], Any]) -> web.StreamResponse:
        try:
            return await fn(request)
        except _HTTPRefusal as exc:
            return self._refuse(exc.status, exc.message, exc.headers)
        except ConfigError as exc:
            return self._refuse(400, str(exc))

    async def _h_index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="vcodec stream server: GET /streams, /streams/{name}?layers=base|all, /metrics\n")

    async def _h_metrics(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            self._token_scope(req)
            live = {n: c.frames_published for n, c in self.channels.items()}
            return web.Response(text=self.metrics.render(live), content_type="text/plain",
                                headers={"X-Prometheus-Format": "0.0.4"})
        return await self._dispatch(request, inner)

    async def _h_list(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            self._token_scope(req)
            streams: list[dict[str, Any]] = [c.describe() for _, c in sorted(self.channels.items())]
            live_names = set(self.channels)
            if self.config.root is not None:
                loop = asyncio.get_running_loop()
                for p in sorted(self.config.root.iterdir()):
                    if not p.is_file() or p.name.startswith("."):
                        continue
                    name = p.name[:-4] if p.name.endswith(".vcs") else p.name
                    if name in live_names or not _NAME_RE.match(name):
                        continue
                    d = await loop.run_in_executor(None, self._stored_info, p)
                    if d is not None:
                        streams.append(d | {"name": name})
            return web.json_response({"streams": streams})
        return await self._dispatch(request, inner)

    def _stored_info(self, path: Path) -> dict[str, Any] | None:
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            cached = self._stats_cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            if not _is_stream_file(path):
                return None  # not a stream: not listed
            s = stream_stats(path).to_dict()
        except (OSError, VcodecError):
            return None
        d = {"kind": "stored", "file": path.name, "width": s["width"], "height": s["height"], "fps": s["fps"],
             "intra_period": s["intra_period"], "frames": s["num_frames"], "duration_s": s["duration_s"],
             "bytes": s["total_bytes"],
             "layers": [{"id": la["id"], "kind": la["kind"], "codec": la["codec"], "bytes": la["bytes"],
                         "kbps": la["kbps"]} for la in s["layers"]]}
        self._stats_cache[path] = (key, d)
        return d

    def _parse_stream_query(self, request: web.Request) -> tuple[set[int] | None, int | None]:
        unknown = set(request.query) - _STREAM_PARAMS
        if unknown:
            raise _HTTPRefusal(400, f"unknown parameter(s) {', '.join(sorted(unknown))}: use layers=base|all|IDS, start=FRAME")
        try:
            keep = parse_layers(request.query.get("layers", "all"))
        except ConfigError as exc:
            raise _HTTPRefusal(400, str(exc).replace("--layers", "layers=")) from None
        start: int | None = None
        if "start" in request.query:
            try:
                start = int(request.query["start"])
                if start < 0:
                    raise ValueError
            except ValueError:
                raise _HTTPRefusal(400, f"start={request.query['start']!r}: expected a frame index >= 0") from None
        return keep, start

    async def _h_stream(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            name = req.match_info["name"]
            keep, start = self._parse_stream_query(req)
            self._authorize_read(req, keep)
            ch = self.channels.get(name)
            if ch is not None and not (ch.ended and self._resolve_stored(name)):
                if ch.ended:
                    raise _HTTPRefusal(404, f"live stream {name!r} has ended")
                if start is not None:
                    raise _HTTPRefusal(400, "start= is for stored streams; a live stream starts at its next intra frame")
                return await self._serve_live(req, ch, keep)
            path = self._resolve_stored(name)
            if path is None:
                raise _HTTPRefusal(404, f"no stream named {name!r} (GET /streams lists them)")
            return await self._serve_stored(req, name, path, keep, start)
        return await self._dispatch(request, inner)

    @staticmethod
    def _peer(request: web.Request) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"

    async def _serve_stored(self, request: web.Request, name: str, path: Path, keep: set[int] | None,
                            start: int | None) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        try:
            reader = await loop.run_in_executor(None, _open_stored, path)
        except (OSError, VcodecError) as exc:
            raise _HTTPRefusal(500, f"stored stream {name!r} cannot be read: {exc}") from None
        if reader is None:
            # a stray file in --root is the client asking for something that is not there (as in the listing)
            raise _HTTPRefusal(404, f"no stream named {name!r}: that file in --root is not a vcodec stream "
                                    "(GET /streams lists them)")
        try:
            layers = set(reader.layers) if keep is None else set(keep)
            missing = layers - set(reader.layers)
            if missing:
                have = ",".join(map(str, sorted(reader.layers))) or "none"
                raise _HTTPRefusal(400, f"layer(s) {sorted(missing)} not in stream {name!r} (it has {have})")
            if start is not None:
                try:
                    await loop.run_in_executor(None, reader.seek_frame, start)
                except VcodecError as exc:
                    raise _HTTPRefusal(400, f"start={start}: {exc}") from None
        except BaseException:
            reader.close()
            raise
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
        cancel = threading.Event()

        def put(item: Any) -> None:
            fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while True:
                try:
                    fut.result(timeout=0.25)
                    return
                except concurrent.futures.TimeoutError:
                    if cancel.is_set():
                        fut.cancel()
                        raise _Cancelled from None

        def produce() -> None:
            # the same filter as extract_layers, so the bytes are identical to `vcodec extract`
            try:
                sink = _BatchSink(put, self.config.chunk_bytes)
                raw_headers = [u.raw for u in reader.header_units
                               if u.type == UnitType.SEQUENCE_HEADER or u.layer in layers]
                writer = StreamWriter(sink, reader.header, [c for i, c in reader.layers.items() if i in layers],  # type: ignore[arg-type]
                                      raw_headers=raw_headers, minor=reader.minor)
                for unit in reader:
                    if cancel.is_set():
                        raise _Cancelled
                    assert isinstance(unit, Unit)
                    if unit.layer in layers:
                        writer.write_raw_unit(unit.raw, layer=unit.layer, frame=unit.frame, intra=unit.intra,
                                              payload_size=len(unit.payload))
                writer.close()
                put(None)
            except _Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the handler, which cuts the response
                try:
                    put(exc)
                except _Cancelled:
                    pass
            finally:
                reader.close()

        resp = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store",
                                           "X-Vcodec-Layers": ",".join(map(str, sorted(layers))),
                                           "X-Vcodec-Stream-Kind": "stored"})
        rec = self.metrics.connect(name, "stored", ",".join(map(str, sorted(layers))), self._peer(request))
        thread = threading.Thread(target=produce, name=f"vcodec-serve-{name}-{rec.client_id}", daemon=True)
        try:
            await resp.prepare(request)
            thread.start()
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    # headers are gone already: cut the connection so the client sees a truncated stream
                    log.warning("stored stream %s failed mid-transfer: %s", name, item)
                    if request.transport is not None:
                        request.transport.close()
                    return resp
                data, nbytes, nunits = item
                await resp.write(data)
                self.metrics.sent(rec, nbytes, nunits)
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            cancel.set()
            while not queue.empty():  # unblock a producer waiting on a full queue
                queue.get_nowait()
            self.metrics.disconnect(rec)
        return resp

    async def _serve_live(self, request: web.Request, ch: LiveChannel, keep: set[int] | None) -> web.StreamResponse:
        peer = self._peer(request)

        def subscribe() -> tuple[ClientRecord, Subscriber]:
            if ch.ended or ch.header is None:
                raise _HTTPRefusal(404, f"live stream {ch.name!r} has ended")
            layers = set(ch.layers) if keep is None else set(keep)
            missing = layers - set(ch.layers)
            if missing:
                raise _HTTPRefusal(400, f"layer(s) {sorted(missing)} not in live stream {ch.name!r} "
                                        f"(it has {','.join(map(str, sorted(ch.layers)))})")
            rec = self.metrics.connect(ch.name, "live", ",".join(map(str, sorted(layers))), peer)
            rec.subscriber = ch.subscribe(rec.client_id, layers, self.config.buffer_bytes, peer)
            return rec, rec.subscriber

        if ch.opened.is_set():
            rec, sub = subscribe()
        else:
            # wait for the first frame; subscribe inside open() so that no unit is missed
            fut: asyncio.Future[tuple[ClientRecord, Subscriber]] = asyncio.get_running_loop().create_future()

            def on_open() -> None:
                if fut.done():
                    return
                try:
                    fut.set_result(subscribe())
                except _HTTPRefusal as exc:
                    fut.set_exception(exc)

            ch.on_open.append(on_open)
            try:
                rec, sub = await asyncio.wait_for(asyncio.shield(fut), timeout=10.0)
            except asyncio.TimeoutError:
                if on_open in ch.on_open:
                    ch.on_open.remove(on_open)
                raise _HTTPRefusal(503, f"live stream {ch.name!r} has not started yet; retry shortly",
                                   {"Retry-After": "1"}) from None
        label = rec.layers
        resp = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store",
                                           "X-Vcodec-Layers": label, "X-Vcodec-Stream-Kind": "live"})
        try:
            await resp.prepare(request)
            while True:
                if request.transport is None or request.transport.is_closing():
                    return resp  # the client went away
                try:
                    await asyncio.wait_for(sub.event.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                data, nbytes, nunits = sub.take()
                if data:
                    await resp.write(data)
                    self.metrics.sent(rec, nbytes, nunits)
                elif sub.done:
                    break
            if ch.failed is not None:
                # the publisher failed: no END unit; cut the connection so the client knows
                if request.transport is not None:
                    request.transport.close()
                return resp
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            ch.unsubscribe(rec.client_id)
            self.metrics.disconnect(rec)
        return resp

    async def _h_publish(self, request: web.Request) -> web.StreamResponse:
        async def inner(req: web.Request) -> web.StreamResponse:
            name = check_name(req.match_info["name"])
            if set(req.query):
                raise _HTTPRefusal(400, "publishing takes no parameters")
            scope = self._token_scope(req) if self.config.tokens else None
            if "publish" in self.config.tokens:
                if scope != "publish":
                    raise _HTTPRefusal(403, "publishing needs the 'publish' token")
            elif not self.config.allow_publish:
                raise _HTTPRefusal(403, "publishing is off on this server (start it with --allow-publish)")
            if self._resolve_stored(name) is not None:
                raise _HTTPRefusal(409, f"{name!r} is a stored stream in --root; publish under another name")
            try:
                ch = self.live_channel(name, "publish")
            except ConfigError as exc:
                raise _HTTPRefusal(409, str(exc)) from None
            return await self._ingest(req, ch)
        return await self._dispatch(request, inner)

    async def _ingest(self, request: web.Request, ch: LiveChannel) -> web.StreamResponse:
        parser = UnitParser(f"published stream {ch.name!r}")
        error: str | None = None
        try:
            async for chunk in request.content.iter_any():
                for unit in parser.feed(chunk):
                    if not ch.opened.is_set():
                        self._open_from(ch, parser)
                    ch.publish(unit)
            if not parser.ended:
                error = "the publisher stopped before the END unit"
            elif not ch.opened.is_set() and parser.header is not None:
                self._open_from(ch, parser)
        except BitstreamError as exc:
            error = str(exc)
        except (ConnectionError, asyncio.CancelledError):
            error = "the publisher disconnected"
        finally:
            ch.finish(error)
        if error is not None:
            return self._refuse(400, error)
        return web.json_response({"stream": ch.name, "frames": ch.frames_published,
                                  "bytes": parser.offset})

    @staticmethod
    def _open_from(ch: LiveChannel, parser: UnitParser) -> None:
        assert parser.header is not None
        ch.open(parser.header, parser.layers, parser.header_units, parser.minor or 0)


class ServerThread:
    """Run a :class:`StreamServer` on its own event loop in a background thread.

    Used by tests, by ``vcodec analyze`` tests and by the load test; ``vcodec
    serve`` itself runs the loop in the main thread.

    >>> with ServerThread(ServeConfig(root=Path("streams"))) as srv:
    ...     url = srv.url + "/streams/clip?layers=base"
    """

    def __init__(self, config: ServeConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = StreamServer(config)
        self.host = host
        self._port = port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="vcodec-serve", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start(self.host, self._port))
        except BaseException as exc:  # noqa: BLE001 - re-raised in start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.stop())
        self.loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("server did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result."""
        async def wrapper() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
