"""Server counters and their Prometheus text exposition (format version 0.0.4)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vcodec.bitstream.format import STREAM_LAYER
from vcodec.serve.hub import Subscriber

__all__ = ["ClientRecord", "ServeMetrics", "layer_label"]


def layer_label(layer: int) -> str:
    """Layer ids as metric labels; stream-level bytes (preamble, header, INDEX, END) are ``stream``."""
    return "stream" if layer == STREAM_LAYER else str(layer)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}"


@dataclass
class ClientRecord:
    """One connected client (stored download or live subscription)."""

    client_id: int
    stream: str
    kind: str  # "stored" or "live"
    layers: str  # e.g. "0" or "0,1"
    peer: str
    bytes_sent: dict[int, int] = field(default_factory=dict)
    units_sent: dict[int, int] = field(default_factory=dict)
    subscriber: Subscriber | None = None
    connected_at: float = field(default_factory=time.monotonic)

    @property
    def frames_dropped(self) -> int:
        return self.subscriber.frames_dropped if self.subscriber else 0

    @property
    def units_dropped(self) -> dict[int, int]:
        return dict(self.subscriber.units_dropped) if self.subscriber else {}


class ServeMetrics:
    """Totals per stream and layer, plus the live records of connected clients.

    Per-client series disappear when the client disconnects (its counts stay
    in the per-stream totals), so a long-running server does not accumulate
    series for clients that are gone.
    """

    def __init__(self) -> None:
        self.bytes_sent: dict[tuple[str, int], int] = {}
        self.units_sent: dict[tuple[str, int], int] = {}
        self.clients_total: dict[str, int] = {}
        self.retired_frames_dropped: dict[str, int] = {}
        self.retired_units_dropped: dict[tuple[str, int], int] = {}
        self.clients: dict[int, ClientRecord] = {}
        self.requests_refused: dict[int, int] = {}
        self._next_id = 0

    def connect(self, stream: str, kind: str, layers: str, peer: str) -> ClientRecord:
        self._next_id += 1
        rec = ClientRecord(self._next_id, stream, kind, layers, peer)
        self.clients[rec.client_id] = rec
        self.clients_total[stream] = self.clients_total.get(stream, 0) + 1
        return rec

    def disconnect(self, rec: ClientRecord) -> None:
        if self.clients.pop(rec.client_id, None) is None:
            return
        if rec.frames_dropped:
            self.retired_frames_dropped[rec.stream] = (
                self.retired_frames_dropped.get(rec.stream, 0) + rec.frames_dropped
            )
        for layer, n in rec.units_dropped.items():
            key = (rec.stream, layer)
            self.retired_units_dropped[key] = self.retired_units_dropped.get(key, 0) + n

    def sent(self, rec: ClientRecord, nbytes: dict[int, int], nunits: dict[int, int]) -> None:
        for layer, n in nbytes.items():
            rec.bytes_sent[layer] = rec.bytes_sent.get(layer, 0) + n
            key = (rec.stream, layer)
            self.bytes_sent[key] = self.bytes_sent.get(key, 0) + n
        for layer, n in nunits.items():
            rec.units_sent[layer] = rec.units_sent.get(layer, 0) + n
            key = (rec.stream, layer)
            self.units_sent[key] = self.units_sent.get(key, 0) + n

    def refused(self, status: int) -> None:
        self.requests_refused[status] = self.requests_refused.get(status, 0) + 1

    def render(self, live_frames: dict[str, int] | None = None) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        family("vcodec_serve_bytes_sent_total", "counter",
               "Bytes written to clients, per stream and layer (stream = preamble and stream-level units).")
        for (s, layer), n in sorted(self.bytes_sent.items()):
            lines.append(f"vcodec_serve_bytes_sent_total{_labels(stream=s, layer=layer_label(layer))} {n}")
        family("vcodec_serve_units_sent_total", "counter", "Units written to clients, per stream and layer.")
        for (s, layer), n in sorted(self.units_sent.items()):
            lines.append(f"vcodec_serve_units_sent_total{_labels(stream=s, layer=layer_label(layer))} {n}")
        family("vcodec_serve_clients_connected", "gauge", "Clients connected now, per stream.")
        connected: dict[str, int] = {}
        for rec in self.clients.values():
            connected[rec.stream] = connected.get(rec.stream, 0) + 1
        for s in sorted(set(connected) | set(self.clients_total)):
            lines.append(f"vcodec_serve_clients_connected{_labels(stream=s)} {connected.get(s, 0)}")
        family("vcodec_serve_clients_total", "counter", "Client connections accepted, per stream.")
        for s, n in sorted(self.clients_total.items()):
            lines.append(f"vcodec_serve_clients_total{_labels(stream=s)} {n}")
        frames = dict(self.retired_frames_dropped)
        units = dict(self.retired_units_dropped)
        for rec in self.clients.values():
            frames[rec.stream] = frames.get(rec.stream, 0) + rec.frames_dropped
            for layer, n in rec.units_dropped.items():
                units[(rec.stream, layer)] = units.get((rec.stream, layer), 0) + n
        family("vcodec_serve_frames_dropped_total", "counter",
               "Frames skipped because a client's buffer overflowed (it resumes at the next intra frame).")
        for s in sorted(set(frames) | {r.stream for r in self.clients.values() if r.kind == "live"}):
            lines.append(f"vcodec_serve_frames_dropped_total{_labels(stream=s)} {frames.get(s, 0)}")
        family(
            "vcodec_serve_units_dropped_total", "counter", "Units dropped by overflowing buffers, per layer."
        )
        for (s, layer), n in sorted(units.items()):
            lines.append(f"vcodec_serve_units_dropped_total{_labels(stream=s, layer=layer_label(layer))} {n}")
        family(
            "vcodec_serve_client_bytes_sent_total",
            "counter",
            "Bytes written to one connected client, per layer.",
        )
        for rec in sorted(self.clients.values(), key=lambda r: r.client_id):
            for layer, n in sorted(rec.bytes_sent.items()):
                lines.append("vcodec_serve_client_bytes_sent_total" + _labels(
                    stream=rec.stream, client=str(rec.client_id), layer=layer_label(layer)) + f" {n}")
        family(
            "vcodec_serve_client_units_sent_total",
            "counter",
            "Units written to one connected client, per layer.",
        )
        for rec in sorted(self.clients.values(), key=lambda r: r.client_id):
            for layer, n in sorted(rec.units_sent.items()):
                lines.append("vcodec_serve_client_units_sent_total" + _labels(
                    stream=rec.stream, client=str(rec.client_id), layer=layer_label(layer)) + f" {n}")
        family(
            "vcodec_serve_client_frames_dropped_total", "counter", "Frames one connected live client skipped."
        )
        for rec in sorted(self.clients.values(), key=lambda r: r.client_id):
            if rec.kind == "live":
                lines.append("vcodec_serve_client_frames_dropped_total" + _labels(
                    stream=rec.stream, client=str(rec.client_id)) + f" {rec.frames_dropped}")
        family("vcodec_serve_client_buffered_bytes", "gauge", "Bytes queued for one connected live client.")
        for rec in sorted(self.clients.values(), key=lambda r: r.client_id):
            if rec.subscriber is not None:
                lines.append("vcodec_serve_client_buffered_bytes" + _labels(
                    stream=rec.stream, client=str(rec.client_id)) + f" {rec.subscriber.queued_bytes}")
        family("vcodec_serve_live_frames_published_total", "counter", "Frames published on each live stream.")
        for s, n in sorted((live_frames or {}).items()):
            lines.append(f"vcodec_serve_live_frames_published_total{_labels(stream=s)} {n}")
        family("vcodec_serve_requests_refused_total", "counter", "Requests answered with an error status.")
        for status, n in sorted(self.requests_refused.items()):
            lines.append(f"vcodec_serve_requests_refused_total{_labels(status=str(status))} {n}")
        return "\n".join(lines) + "\n"
