"""Live sources: something that writes a stream as it is produced, published on a channel.

A *producer* is a function ``producer(sink, stop)`` that writes a vcodec
stream into the binary ``sink`` as it is made (an encoder writing frame by
frame, or a stored stream replayed at its frame rate) and returns when done
or when the ``stop`` event is set.  :func:`start_live` runs it in its own
thread; the :class:`ChannelSink` cuts what it writes into units and hands
them to the server's event loop, where :class:`~vcodec.serve.hub.LiveChannel`
fans them out.  The producer never waits for clients.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, cast

from vcodec.bitstream.format import FRAME_TYPES
from vcodec.bitstream.reader import StreamReader, Unit
from vcodec.bitstream.writer import pack_unit, preamble_bytes
from vcodec.errors import ConfigError
from vcodec.serve.hub import LiveChannel
from vcodec.serve.parser import UnitParser

__all__ = ["ChannelSink", "LiveTask", "start_live", "replay_producer", "encode_producer", "Producer"]

log = logging.getLogger("vcodec.serve")

Producer = Callable[[BinaryIO, threading.Event], None]


class ChannelSink(io.RawIOBase):
    """A binary sink, written from a producer thread, that publishes on ``channel``."""

    def __init__(self, channel: LiveChannel, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.channel = channel
        self.loop = loop
        self.parser = UnitParser(f"live stream {channel.name!r}")
        self._opened = False
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        units = self.parser.feed(data)
        self.bytes_written += len(data)
        if units:
            opening = None
            if not self._opened:
                p = self.parser
                # the header objects are complete and never change once frame units flow
                opening = (p.header, dict(p.layers), list(p.header_units), p.minor or 0)
                self._opened = True
            self.loop.call_soon_threadsafe(self._deliver, opening, units)
        return len(data)

    def _deliver(self, opening: tuple[Any, ...] | None, units: list[Unit]) -> None:
        if opening is not None:
            self.channel.open(*opening)
        for unit in units:
            self.channel.publish(unit)

    def finish(self, error: str | None = None) -> None:
        """End the channel (cleanly, or after ``error``)."""
        if not self._opened and error is None and self.parser.header is not None:
            # a stream without frames: open it so that it is listed, then end it
            p = self.parser
            opening = (p.header, dict(p.layers), list(p.header_units), p.minor or 0)
            self.loop.call_soon_threadsafe(self._deliver, opening, [])
        self.loop.call_soon_threadsafe(self.channel.finish, error)


class LiveTask:
    """A producer running in a thread, publishing on a channel."""

    def __init__(self, channel: LiveChannel, sink: ChannelSink, producer: Producer) -> None:
        self.channel = channel
        self.sink = sink
        self.producer = producer
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"vcodec-live-{channel.name}", daemon=True)

    def _run(self) -> None:
        try:
            # a binary file object (typeshed's io.RawIOBase is no typing.BinaryIO)
            self.producer(cast(BinaryIO, self.sink), self.stop_event)
        except BaseException as exc:  # noqa: BLE001 - reported through the channel and the log
            self.error = exc
            log.error("live stream %s failed: %s", self.channel.name, exc)
            self.sink.finish(str(exc) or type(exc).__name__)
            return
        self.sink.finish(None)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)


def start_live(server: Any, loop: asyncio.AbstractEventLoop, name: str, producer: Producer,
               source: str = "live") -> LiveTask:
    """Register live channel ``name`` on ``server`` and start ``producer`` (call on the loop thread)."""
    channel = server.live_channel(name, source)
    task = LiveTask(channel, ChannelSink(channel, loop), producer)
    task.thread.start()
    return task


def replay_producer(path: str | Path, *, loop_count: int = 1, speed: float = 1.0,
                    clock: Callable[[], float] = time.monotonic) -> Producer:
    """A producer that plays a stored stream at its frame rate (``speed`` times faster).

    ``loop_count`` plays it that many times (0 = forever); frame indexes keep
    increasing across loops (units are re-packed with shifted indexes), so the
    result is one continuous live stream.
    """
    path = Path(path)
    if speed <= 0:
        raise ConfigError(f"replay speed must be positive, got {speed}")
    with StreamReader(path) as probe:  # fail early, with the file named, on a bad stream
        fps = Fraction(probe.header.fps)

    def produce(sink: BinaryIO, stop: threading.Event) -> None:
        t0 = clock()
        played = 0  # frames played so far (drives the pacing)
        offset = 0  # frame index shift of the current loop
        n = 0
        first = True
        while not stop.is_set() and (loop_count == 0 or n < loop_count):
            with StreamReader(path) as reader:
                if first:
                    sink.write(preamble_bytes(reader.minor))
                    for u in reader.header_units:
                        sink.write(u.raw)
                    first = False
                last_frame: int | None = None
                top = -1
                for unit in reader:
                    if stop.is_set():
                        return
                    assert isinstance(unit, Unit)
                    if unit.type not in FRAME_TYPES:  # ENH_GOP records travel with their frames
                        continue
                    frame = unit.frame if unit.frame is not None else 0
                    if frame != last_frame and frame > top:
                        # a new frame: wait for its presentation time
                        due = t0 + float(played / fps) / speed
                        delay = due - clock()
                        if delay > 0 and stop.wait(delay):
                            return
                        played += 1
                        last_frame = frame
                    top = max(top, frame)
                    if offset:
                        sink.write(pack_unit(unit.type, unit.layer, unit.payload, frame + offset, unit.intra))
                    else:
                        sink.write(unit.raw)
                offset += top + 1
            n += 1

    return produce


def encode_producer(source: str, *, loop_count: int = 1, speed: float = 1.0, frames: int | None = None,
                    size: tuple[int, int] | None = None, clock: Callable[[], float] = time.monotonic,
                    on_frame: Callable[[int, float], None] | None = None,
                    **encoder_kw: Any) -> Producer:
    """A producer that encodes the video ``source`` live, one frame per frame period.

    ``source``: anything :func:`vcodec.io.open_video` reads (a file, or ``-``
    / a FIFO for a pipe, which is read as fast as it delivers and cannot
    loop).  A file is played at its frame rate (``speed`` times faster; 0 =
    as fast as the encoder goes), ``loop_count`` times (0 = forever).
    ``encoder_kw`` go to :class:`vcodec.codec.Encoder`; live encoding uses
    ``low_delay=True`` unless told otherwise, so that each frame's
    enhancement packet leaves with its base unit.  ``on_frame(index,
    encode_seconds)`` is called after each frame (measurements).
    """
    from vcodec.io import open_video

    if speed < 0:
        raise ConfigError(f"live speed must be >= 0 (0 = unpaced), got {speed}")
    is_pipe = source == "-" or (Path(source).exists() and not Path(source).is_file())
    if is_pipe and loop_count != 1:
        raise ConfigError(f"--live {source}: a pipe cannot be looped; use --loop 1")
    if not is_pipe:
        with open_video(source, size=size, frames=frames) as probe:  # fail early with the file named
            fps = Fraction(probe.info.fps)
    encoder_kw.setdefault("low_delay", True)

    def produce(sink: BinaryIO, stop: threading.Event) -> None:
        import dataclasses

        from vcodec.codec import Encoder

        n = 0
        index = 0
        t0 = clock()
        encoder: Any = None
        try:
            while not stop.is_set() and (loop_count == 0 or n < loop_count):
                with open_video(source, size=size, frames=frames) as reader:
                    rate = Fraction(reader.info.fps) if is_pipe else fps
                    if encoder is None:
                        # a looped or live source has no known length
                        info = dataclasses.replace(reader.info, num_frames=None if loop_count != 1 or is_pipe
                                                   else reader.info.num_frames)
                        encoder = Encoder(sink, info, **encoder_kw)
                    for frame in reader:
                        if stop.is_set():
                            break
                        if speed > 0 and not is_pipe:
                            delay = t0 + float(index / rate) / speed - clock()
                            if delay > 0 and stop.wait(delay):
                                break
                        t = time.perf_counter()
                        encoder.encode(frame)
                        if on_frame is not None:
                            on_frame(index, time.perf_counter() - t)
                        index += 1
                n += 1
            if encoder is not None:
                encoder.close()  # the INDEX and END units: subscribers' streams end cleanly
        except BaseException:
            if encoder is not None:
                encoder.abort()
            raise

    return produce
