"""Publishing: ``POST /streams/{name}`` feeds a live channel from the request body."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from vcodec.bitstream.checks import StreamChecker
from vcodec.errors import BitstreamError
from vcodec.serve.http import refuse
from vcodec.serve.hub import LiveChannel
from vcodec.serve.metrics import ServeMetrics
from vcodec.serve.parser import UnitParser

__all__ = ["IngestLimits", "ingest"]


@dataclass
class IngestLimits:
    """Bounds of publishing, shared by every publisher of one server (``vcodec serve`` options)."""

    #: largest unit payload accepted (the stream's own header may allow less)
    max_unit_bytes: int = 64 << 20
    #: bytes received but not yet relayed, all publishers together
    max_buffered_bytes: int = 256 << 20
    #: a publisher that sends nothing for this long is disconnected (seconds)
    idle_timeout: float = 30.0
    #: bytes buffered now by all publishers (kept by :func:`ingest`)
    buffered: int = 0


async def ingest(request: web.Request, ch: LiveChannel, *, metrics: ServeMetrics,
                 limits: IngestLimits | None = None) -> web.StreamResponse:
    """Read a published stream from the request body into live channel ``ch``.

    Every unit is checked by the one unit parser and against the stream's own
    header (:class:`~vcodec.bitstream.checks.StreamChecker`, the strict decoder's
    rules) before it is relayed; a damaged stream, one that stops before END,
    a unit over the size limit, too many bytes buffered or a publisher idle for
    ``limits.idle_timeout`` ends the channel as failed (400, or 413/408).
    """
    limits = limits or IngestLimits()
    parser = UnitParser(f"published stream {ch.name!r}", max_unit_bytes=limits.max_unit_bytes)
    checker: StreamChecker | None = None
    error: str | None = None
    status = 400
    held = 0  # this publisher's share of limits.buffered
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(request.content.readany(), limits.idle_timeout)
            except asyncio.TimeoutError:
                error, status = f"the publisher sent nothing for {limits.idle_timeout:g} s", 408
                break
            if not chunk:
                break
            for unit in parser.feed(chunk):
                if checker is None:
                    assert parser.header is not None
                    checker = StreamChecker(parser.header, parser.layers, source=parser.name)
                checker.check(unit)
                if not ch.opened.is_set():
                    _open_from(ch, parser)
                ch.publish(unit)
            limits.buffered += parser.pending_bytes - held
            held = parser.pending_bytes
            if limits.buffered > limits.max_buffered_bytes:
                error, status = (f"the server holds {limits.buffered} bytes of unfinished units from "
                                 f"publishers, over its limit of {limits.max_buffered_bytes}"), 413
                break
        if error is None and not parser.ended:
            error = "the publisher stopped before the END unit"
        elif error is None and not ch.opened.is_set() and parser.header is not None:
            _open_from(ch, parser)
    except BitstreamError as exc:
        error = str(exc)
        if "exceeds this stream's limit" in error:
            status = 413
    except (ConnectionError, asyncio.CancelledError):
        error = "the publisher disconnected"
    finally:
        limits.buffered -= held
        ch.finish(error)
    if error is not None:
        return refuse(metrics, status, error, {"Connection": "close"})
    return web.json_response({"stream": ch.name, "frames": ch.frames_published,
                              "bytes": parser.offset})


def _open_from(ch: LiveChannel, parser: UnitParser) -> None:
    assert parser.header is not None
    ch.open(parser.header, parser.layers, parser.header_units, parser.minor or 0)
