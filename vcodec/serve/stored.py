"""Stored streams (files in ``--root``): listing entries and layer-filtered downloads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from vcodec.bitstream.format import UnitType
from vcodec.bitstream.info import stream_stats
from vcodec.bitstream.reader import StreamReader, Unit, is_stream_prefix
from vcodec.bitstream.writer import StreamWriter
from vcodec.errors import VcodecError
from vcodec.serve.http import CONTENT_TYPE, HTTPRefusal, peer
from vcodec.serve.hub import layer_of_chunk
from vcodec.serve.metrics import ServeMetrics

__all__ = ["StoredListing", "serve_stored", "is_stream_file"]

log = logging.getLogger("vcodec.serve")


def is_stream_file(path: Path) -> bool:
    """True when the file starts like a vcodec stream (other files in --root are not listed or served)."""
    with open(path, "rb") as f:
        return is_stream_prefix(f.read(4))


def _open_stored(path: Path) -> StreamReader | None:
    """A reader on a stored stream, or None when the file is not a vcodec stream at all."""
    return StreamReader(path) if is_stream_file(path) else None


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


class StoredListing:
    """Listing entries of stored streams, cached per file until its size or mtime changes."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}

    def info(self, path: Path) -> dict[str, Any] | None:
        """The listing entry of a stored stream; None when the file is not a readable stream."""
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            if not is_stream_file(path):
                return None  # not a stream: not listed
            s = stream_stats(path).to_dict()
        except (OSError, VcodecError):
            return None
        d = {"kind": "stored", "file": path.name, "width": s["width"], "height": s["height"], "fps": s["fps"],
             "intra_period": s["intra_period"], "frames": s["num_frames"], "duration_s": s["duration_s"],
             "bytes": s["total_bytes"],
             "layers": [{"id": la["id"], "kind": la["kind"], "codec": la["codec"], "bytes": la["bytes"],
                         "kbps": la["kbps"]} for la in s["layers"]]}
        self._cache[path] = (key, d)
        return d


async def serve_stored(request: web.Request, name: str, path: Path, keep: set[int] | None, start: int | None,
                       *, metrics: ServeMetrics, chunk_bytes: int) -> web.StreamResponse:
    """Send stream ``path`` with only the layers ``keep`` (None = all) from intra frame ``start`` on.

    A thread reads and filters (the same filter as ``vcodec extract``, so the same bytes)
    into a small queue; the handler writes what comes out, so a slow client slows the
    reader instead of filling memory.
    """
    loop = asyncio.get_running_loop()
    try:
        reader = await loop.run_in_executor(None, _open_stored, path)
    except (OSError, VcodecError) as exc:
        raise HTTPRefusal(500, f"stored stream {name!r} cannot be read: {exc}") from None
    if reader is None:
        # a stray file in --root is the client asking for something that is not there (as in the listing)
        raise HTTPRefusal(404, f"no stream named {name!r}: that file in --root is not a vcodec stream "
                                "(GET /streams lists them)")
    try:
        layers = set(reader.layers) if keep is None else set(keep)
        missing = layers - set(reader.layers)
        if missing:
            have = ",".join(map(str, sorted(reader.layers))) or "none"
            raise HTTPRefusal(400, f"layer(s) {sorted(missing)} not in stream {name!r} (it has {have})")
        if start is not None:
            try:
                await loop.run_in_executor(None, reader.seek_frame, start)
            except VcodecError as exc:
                raise HTTPRefusal(400, f"start={start}: {exc}") from None
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
            sink = _BatchSink(put, chunk_bytes)
            raw_headers = [u.raw for u in reader.header_units
                           if u.type == UnitType.SEQUENCE_HEADER or u.layer in layers]
            writer = StreamWriter(sink, reader.header, [c for i, c in reader.layers.items() if i in layers],
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
    rec = metrics.connect(name, "stored", ",".join(map(str, sorted(layers))), peer(request))
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
            metrics.sent(rec, nbytes, nunits)
        await resp.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        cancel.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()
        metrics.disconnect(rec)
    return resp
