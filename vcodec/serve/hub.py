"""Live fan-out: one publisher, many subscribers, each with its own layers and buffer.

Everything here runs on the server's event loop thread and never blocks:
:meth:`LiveChannel.publish` only appends bytes to each subscriber's bounded
queue, so a slow client can never make the encoder (or another client) wait.

Each subscriber receives a *valid stream of its own*: the preamble and header
units of the layers it asked for, then the units of those layers from the
next intra frame of each layer, and finally an INDEX and END unit written for
exactly the units it received (a :class:`~vcodec.bitstream.StreamWriter`
counts them), so its stream passes a strict reader.

Back-pressure: when a unit would push a subscriber's queue above its limit,
the unit is dropped and every layer of that subscriber waits for its next
intra unit (a decoder cannot use inter frames after a gap).  A layer resumes
only when the queue is at most half full, so that the resumed access unit is
unlikely to overflow straight away.  Drops are counted per layer and frame.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vcodec.bitstream.format import STREAM_LAYER, SYNC, UNIT_HEADER_SIZE, UnitType
from vcodec.bitstream.headers import LayerConfig, SequenceHeader
from vcodec.bitstream.reader import Unit
from vcodec.bitstream.writer import StreamWriter

__all__ = ["LiveChannel", "Subscriber", "layer_of_chunk", "DEFAULT_BUFFER_BYTES"]

#: default bound of one subscriber's queue (about 2 s of a 1 Mbit/s stream)
DEFAULT_BUFFER_BYTES = 256 * 1024


def layer_of_chunk(data: bytes) -> int:
    """Layer id of one writer output: a whole unit (its header byte 3) or the preamble (stream level).

    :class:`StreamWriter` writes the preamble and then every unit with one
    ``write`` call each, which is what lets a sink attribute bytes to layers.
    """
    if len(data) >= UNIT_HEADER_SIZE and data[:2] == SYNC:
        return data[3]
    return STREAM_LAYER


class _QueueSink:
    """The binary sink a subscriber's StreamWriter writes into."""

    def __init__(self, owner: Subscriber) -> None:
        self.owner = owner

    def write(self, data: bytes) -> int:
        self.owner._enqueue(bytes(data))
        return len(data)

    def flush(self) -> None:
        self.owner.event.set()


@dataclass
class Subscriber:
    """One connected client of a live channel."""

    client_id: int
    keep: frozenset[int]
    limit: int
    peer: str = "?"
    queue: deque[tuple[bytes, int]] = field(default_factory=deque)
    queued_bytes: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    #: layers waiting for their next intra unit (all of them on join)
    waiting: set[int] = field(default_factory=set)
    joined: set[int] = field(default_factory=set)  # layers that have started at least once
    resume_from: int = 0  # frame where the lowest layer last (re)started
    overflows: int = 0
    units_dropped: dict[int, int] = field(default_factory=dict)
    frames_dropped: int = 0
    _last_dropped_frame: int | None = None
    #: sent to the socket, per layer id (STREAM_LAYER for the preamble and stream-level units)
    bytes_sent: dict[int, int] = field(default_factory=dict)
    units_sent: dict[int, int] = field(default_factory=dict)
    connected_at: float = field(default_factory=time.monotonic)
    writer: StreamWriter | None = None

    def start(self, header: SequenceHeader, layers: dict[int, LayerConfig], header_units: Iterable[Unit],
              minor: int) -> None:
        raw = [u.raw for u in header_units if u.type == UnitType.SEQUENCE_HEADER or u.layer in self.keep]
        self.waiting = set(self.keep)
        self.writer = StreamWriter(_QueueSink(self), header, [c for i, c in layers.items() if i in self.keep],
                                   raw_headers=raw, minor=minor)
        self.event.set()

    # -- producer side (event loop, never blocks) ------------------------------------------------
    def _enqueue(self, data: bytes) -> None:
        self.queue.append((data, layer_of_chunk(data)))
        self.queued_bytes += len(data)

    def offer(self, unit: Unit) -> None:
        """Queue ``unit`` if this subscriber takes its layer, applying join and overflow rules."""
        if self.done or self.writer is None or unit.layer not in self.keep:
            return
        layer = unit.layer
        lowest = min(self.keep)
        frame = unit.frame if unit.frame is not None else 0
        if layer in self.waiting:
            can_resume = (unit.intra and self.queued_bytes <= self.limit // 2
                          and (layer == lowest or (lowest not in self.waiting and frame >= self.resume_from)))
            if not can_resume:
                self._drop(unit)
                return
            self.waiting.discard(layer)
            self.joined.add(layer)
            if layer == lowest:
                self.resume_from = frame
        size = len(unit.raw)
        if self.queued_bytes + size > self.limit:
            self.overflows += 1
            self.waiting = set(self.keep)
            self._drop(unit)
            return
        self.writer.write_raw_unit(unit.raw, layer=layer, frame=unit.frame, intra=unit.intra,
                                   payload_size=len(unit.payload))
        self.event.set()

    def _drop(self, unit: Unit) -> None:
        if unit.layer not in self.joined:
            return  # not yet started: skipping to the first intra frame is joining, not dropping
        self.units_dropped[unit.layer] = self.units_dropped.get(unit.layer, 0) + 1
        if unit.frame is not None and unit.frame != self._last_dropped_frame:
            self._last_dropped_frame = unit.frame
            self.frames_dropped += 1

    def finish(self) -> None:
        """The publisher stopped: close this subscriber's stream (INDEX + END) and end it."""
        if self.done:
            return
        if self.writer is not None:
            self.writer.close()
        self.done = True
        self.event.set()

    def abort(self) -> None:
        """End without an END unit (publisher failed): the client sees an open-ended stream."""
        self.done = True
        self.event.set()

    # -- consumer side (the HTTP handler) ---------------------------------------------------------
    def take(self, max_bytes: int = 256 * 1024) -> tuple[bytes, dict[int, int], dict[int, int]]:
        """Pop queued chunks (up to about ``max_bytes``): data, bytes and units per layer."""
        parts: list[bytes] = []
        nbytes: dict[int, int] = {}
        nunits: dict[int, int] = {}
        total = 0
        while self.queue and (total < max_bytes or not parts):
            data, layer = self.queue.popleft()
            parts.append(data)
            total += len(data)
            nbytes[layer] = nbytes.get(layer, 0) + len(data)
            if data[:2] == SYNC:
                nunits[layer] = nunits.get(layer, 0) + 1
        self.queued_bytes -= total
        if not self.queue and not self.done:
            self.event.clear()
        return b"".join(parts), nbytes, nunits

    def record_sent(self, nbytes: dict[int, int], nunits: dict[int, int]) -> None:
        for k, v in nbytes.items():
            self.bytes_sent[k] = self.bytes_sent.get(k, 0) + v
        for k, v in nunits.items():
            self.units_sent[k] = self.units_sent.get(k, 0) + v


class LiveChannel:
    """A live stream being published, and its subscribers."""

    def __init__(self, name: str, source: str = "publish") -> None:
        self.name = name
        self.source = source
        self.header: SequenceHeader | None = None
        self.layers: dict[int, LayerConfig] = {}
        self.header_units: list[Unit] = []
        self.minor = 0
        self.subscribers: dict[int, Subscriber] = {}
        self.opened = asyncio.Event()
        self.ended = False
        self.failed: str | None = None
        self.started_at: float | None = None
        self.frames_published = 0
        self.bytes_published: dict[int, int] = {}
        self.last_frame: int | None = None
        #: wall-clock time (time.time()) each of the recent frames was published (latency probes)
        self.publish_times: dict[int, float] = {}
        self._publish_times_order: deque[int] = deque()
        #: callbacks of requests waiting for the channel to open; run synchronously by open()/finish()
        #: so that a waiting client subscribes before the first unit is published
        self.on_open: list[Callable[[], None]] = []

    def open(self, header: SequenceHeader, layers: dict[int, LayerConfig], header_units: list[Unit],
             minor: int) -> None:
        self.header, self.layers, self.header_units, self.minor = (
            header, dict(layers), list(header_units), minor
        )
        self.ended = False
        self.failed = None
        self.started_at = time.monotonic()
        self.frames_published = 0
        self.bytes_published = {}
        self.last_frame = None
        self.opened.set()
        self._run_on_open()

    def _run_on_open(self) -> None:
        callbacks, self.on_open = self.on_open, []
        for cb in callbacks:
            cb()

    def subscribe(self, client_id: int, keep: Iterable[int], limit: int, peer: str = "?") -> Subscriber:
        sub = Subscriber(client_id, frozenset(keep), limit, peer)
        assert self.header is not None, "subscribe() before open()"
        sub.start(self.header, self.layers, self.header_units, self.minor)
        self.subscribers[client_id] = sub
        return sub

    def unsubscribe(self, client_id: int) -> None:
        sub = self.subscribers.pop(client_id, None)
        if sub is not None:
            sub.done = True
            sub.queue.clear()  # free the buffered bytes now
            sub.queued_bytes = 0

    def publish(self, unit: Unit) -> None:
        """Route one unit to every subscriber (INDEX/END are per subscriber, so they are not relayed)."""
        if self.ended or unit.type in (UnitType.INDEX, UnitType.END):
            return
        self.bytes_published[unit.layer] = self.bytes_published.get(unit.layer, 0) + len(unit.raw)
        if (
            unit.frame is not None
            and unit.frame != self.last_frame
            and unit.layer == min(self.layers, default=0)
        ):
            self.last_frame = unit.frame
            self.frames_published += 1
            self.publish_times[unit.frame] = time.time()
            self._publish_times_order.append(unit.frame)
            if len(self._publish_times_order) > 4096:
                self.publish_times.pop(self._publish_times_order.popleft(), None)
        for sub in list(self.subscribers.values()):
            sub.offer(unit)

    def finish(self, error: str | None = None) -> None:
        """The publisher is done (cleanly, or with ``error``): end every subscriber's stream."""
        self.ended = True
        self.failed = error
        self.opened.set()  # wake requests waiting for a start that will not come
        self._run_on_open()
        for sub in list(self.subscribers.values()):
            if error is None:
                sub.finish()
            else:
                sub.abort()

    def rates_kbps(self) -> dict[int, float]:
        if self.started_at is None:
            return {}
        elapsed = max(time.monotonic() - self.started_at, 1e-3)
        return {
            i: round(b * 8 / 1000 / elapsed, 3) for i, b in self.bytes_published.items() if i != STREAM_LAYER
        }

    def describe(self) -> dict[str, Any]:
        h = self.header
        return {
            "name": self.name,
            "kind": "live",
            "source": self.source,
            "state": "ended" if self.ended else ("live" if self.opened.is_set() else "waiting"),
            "width": h.width if h else None,
            "height": h.height if h else None,
            "fps": str(Fraction(h.fps)) if h else None,
            "intra_period": h.intra_period if h else None,
            "frames": self.frames_published,
            "clients": len(self.subscribers),
            "layers": [
                {"id": i, "kind": c.kind, "codec": c.codec, "bytes": self.bytes_published.get(i, 0),
                 "kbps": self.rates_kbps().get(i, 0.0)}
                for i, c in sorted(self.layers.items())
            ],
        }
