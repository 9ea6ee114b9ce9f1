"""What every handler of the server shares: refusals as plain-text HTTP errors, the peer's address."""

from __future__ import annotations

from aiohttp import web

from vcodec.serve.metrics import ServeMetrics

__all__ = ["CONTENT_TYPE", "HTTPRefusal", "refuse", "peer"]

CONTENT_TYPE = "application/vnd.vcodec.stream"


class HTTPRefusal(Exception):
    """Raised inside a handler: answered as ``status`` with ``message`` (and ``headers``) as the body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def refuse(metrics: ServeMetrics, status: int, message: str, headers: dict[str, str] | None = None
           ) -> web.Response:
    """A counted refusal: one line of text, so ``curl`` and the clients can show it as it is."""
    metrics.refused(status)
    return web.Response(status=status, text=message + "\n", headers=headers)


def peer(request: web.Request) -> str:
    """``host:port`` of the client, for the metrics (``?`` when the transport is gone)."""
    addr = request.transport.get_extra_info("peername") if request.transport else None
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else "?"
