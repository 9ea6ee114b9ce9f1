"""Live viewers: a GET of a live channel, fed from its hub queue."""

from __future__ import annotations

import asyncio

from aiohttp import web

from vcodec.serve.http import CONTENT_TYPE, HTTPRefusal, peer
from vcodec.serve.hub import LiveChannel, Subscriber
from vcodec.serve.metrics import ClientRecord, ServeMetrics

__all__ = ["serve_live"]


async def serve_live(request: web.Request, ch: LiveChannel, keep: set[int] | None, *, metrics: ServeMetrics,
                     buffer_bytes: int) -> web.StreamResponse:
    """Send live channel ``ch`` (layers ``keep``, None = all) from its next intra frame until it ends.

    A client of a channel that has not started yet waits up to 10 s for its first
    frame (503 with Retry-After after that).
    """
    client = peer(request)

    def subscribe() -> tuple[ClientRecord, Subscriber]:
        if ch.ended or ch.header is None:
            raise HTTPRefusal(404, f"live stream {ch.name!r} has ended")
        layers = set(ch.layers) if keep is None else set(keep)
        missing = layers - set(ch.layers)
        if missing:
            raise HTTPRefusal(400, f"layer(s) {sorted(missing)} not in live stream {ch.name!r} "
                                    f"(it has {','.join(map(str, sorted(ch.layers)))})")
        rec = metrics.connect(ch.name, "live", ",".join(map(str, sorted(layers))), client)
        rec.subscriber = ch.subscribe(rec.client_id, layers, buffer_bytes, client)
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
            except HTTPRefusal as exc:
                fut.set_exception(exc)

        ch.on_open.append(on_open)
        try:
            rec, sub = await asyncio.wait_for(asyncio.shield(fut), timeout=10.0)
        except asyncio.TimeoutError:
            if on_open in ch.on_open:
                ch.on_open.remove(on_open)
            raise HTTPRefusal(503, f"live stream {ch.name!r} has not started yet; retry shortly",
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
                metrics.sent(rec, nbytes, nunits)
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
        metrics.disconnect(rec)
    return resp
