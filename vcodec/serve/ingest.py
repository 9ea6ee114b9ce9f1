"""Publishing: ``POST /streams/{name}`` feeds a live channel from the request body."""

from __future__ import annotations

import asyncio

from aiohttp import web

from vcodec.errors import BitstreamError
from vcodec.serve.http import refuse
from vcodec.serve.hub import LiveChannel
from vcodec.serve.metrics import ServeMetrics
from vcodec.serve.parser import UnitParser

__all__ = ["ingest"]


async def ingest(request: web.Request, ch: LiveChannel, *, metrics: ServeMetrics) -> web.StreamResponse:
    """Read a published stream from the request body into live channel ``ch``.

    Every unit is checked by the one unit parser before it is relayed; a damaged
    stream, or one that stops before END, ends the channel as failed (400).
    """
    parser = UnitParser(f"published stream {ch.name!r}")
    error: str | None = None
    try:
        async for chunk in request.content.iter_any():
            for unit in parser.feed(chunk):
                if not ch.opened.is_set():
                    _open_from(ch, parser)
                ch.publish(unit)
        if not parser.ended:
            error = "the publisher stopped before the END unit"
        elif not ch.opened.is_set() and parser.header is not None:
            _open_from(ch, parser)
    except BitstreamError as exc:
        error = str(exc)
    except (ConnectionError, asyncio.CancelledError):
        error = "the publisher disconnected"
    finally:
        ch.finish(error)
    if error is not None:
        return refuse(metrics, 400, error)
    return web.json_response({"stream": ch.name, "frames": ch.frames_published,
                              "bytes": parser.offset})

def _open_from(ch: LiveChannel, parser: UnitParser) -> None:
    assert parser.header is not None
    ch.open(parser.header, parser.layers, parser.header_units, parser.minor or 0)
