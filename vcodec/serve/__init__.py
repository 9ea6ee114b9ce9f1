"""Streaming over HTTP: the base layer to analytics, the full stream to viewers, live.

* :mod:`vcodec.serve.server`  the aiohttp server (``vcodec serve``): routes and state; the work of
  each route is in :mod:`~vcodec.serve.auth` (bearer tokens per layer), :mod:`~vcodec.serve.stored`,
  :mod:`~vcodec.serve.watch` (live viewers) and :mod:`~vcodec.serve.ingest` (publishing);
  :mod:`~vcodec.serve.runner` runs it in a thread; Prometheus metrics in :mod:`~vcodec.serve.metrics`;
* :mod:`vcodec.serve.hub`     live fan-out with bounded per-client buffers and intra-frame joins;
* :mod:`vcodec.serve.live`    live producers (an encoder, or a stored stream replayed in real time);
* :mod:`vcodec.serve.client`  blocking clients: read a served stream, publish a live one;
* :mod:`vcodec.serve.parser`  the push parser that cuts arriving bytes into checked units.

The server never decodes: it routes units by their layer id.  See ``docs/SERVE.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# the server side imports aiohttp (and the client side more than it needs): each name is imported
# from its module on first use, so `import vcodec.serve` (e.g. for `vcodec serve --help`) stays cheap
_HOMES = {
    "Publisher": "client", "is_url": "client", "open_url": "client", "stream_url": "client",
    "DEFAULT_BUFFER_BYTES": "hub", "LiveChannel": "hub", "Subscriber": "hub",
    "ChannelSink": "live", "LiveTask": "live", "replay_producer": "live", "start_live": "live",
    "UnitParser": "parser",
    "ServerThread": "runner",
    "ServeConfig": "server", "StreamServer": "server", "parse_tokens": "server",
}

__all__ = [
    "ServeConfig", "StreamServer", "ServerThread", "parse_tokens", "LiveChannel", "Subscriber",
    "DEFAULT_BUFFER_BYTES", "ChannelSink", "LiveTask", "start_live", "replay_producer", "UnitParser",
    "open_url", "is_url", "stream_url", "Publisher",
]

if TYPE_CHECKING:
    from vcodec.serve.client import Publisher, is_url, open_url, stream_url
    from vcodec.serve.hub import DEFAULT_BUFFER_BYTES, LiveChannel, Subscriber
    from vcodec.serve.live import ChannelSink, LiveTask, replay_producer, start_live
    from vcodec.serve.parser import UnitParser
    from vcodec.serve.runner import ServerThread
    from vcodec.serve.server import ServeConfig, StreamServer, parse_tokens


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
