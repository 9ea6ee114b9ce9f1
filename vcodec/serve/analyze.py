"""Analytics client: fetch the base layer of a served stream and detect (and track) as it arrives.

:func:`analyze_url` asks the server for ``layers=base`` only, decodes each
base unit with :class:`vcodec.codec.Decoder` and runs the detector's back
end on the latent, frame by frame, as the bytes arrive.  When the connection
drops (or stalls past ``timeout``) it reconnects: a live stream resumes at its
next intra frame (the frames in between are counted as skipped); a stored
stream resumes with ``start=`` at the intra frame at or before the next frame
it needs, and frames already reported are not reported twice, so the output
is the same as an uninterrupted run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from vcodec.errors import BitstreamError, ConfigError
from vcodec.serve.client import StreamConnectionError, open_url

__all__ = ["AnalyzeStats", "analyze_url", "mot_track_lines"]


@dataclass
class AnalyzeStats:
    frames: int = 0
    detections: int = 0
    reconnects: int = 0
    #: frames never seen because the client (re)joined a live stream at a later intra frame
    skipped: int = 0
    first_frame: int | None = None
    last_frame: int | None = None
    bytes_received: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def mot_track_lines(index: int, tracked: Any) -> list[str]:
    """MOTChallenge tracking lines (frame 1-based, track id, box, conf 1) of one tracked frame."""
    out = []
    for tid, b in zip(tracked.ids, tracked.boxes, strict=False):
        out.append(f"{int(index) + 1},{int(tid)},{b[0]:.2f},{b[1]:.2f},{b[2] - b[0]:.2f},{b[3] - b[1]:.2f},"
                   "1,-1,-1,-1")
    return out


def analyze_url(
    url: str,
    *,
    token: str | None = None,
    out: TextIO | None = None,
    track: bool = False,
    weights: str | Path | None = None,
    base_model: str | None = None,
    detector: Any = None,
    score_threshold: float | None = None,
    threads: int = 0,
    retries: int = 5,
    retry_wait: float = 1.0,
    timeout: float = 30.0,
    max_frames: int | None = None,
    progress: Callable[[AnalyzeStats], None] | None = None,
    on_frame: Callable[[int, Any], None] | None = None,
) -> AnalyzeStats:
    """Detect objects on the base layer of the stream at ``url``; write MOT lines to ``out`` per frame.

    ``retries``: consecutive failed attempts (connect or mid-stream drop
    without progress) tolerated before giving up; ``retry_wait`` seconds
    between them.  ``on_frame(index, detections)`` sees every frame.
    ``detector``: an already built detector (else the base layer's own, from
    ``weights``); ``score_threshold`` overrides its minimum score.
    """
    from vcodec.codec import Decoder
    from vcodec.detection.formats import mot_lines

    if retries < 0 or retry_wait < 0 or timeout <= 0:
        raise ConfigError("retries and retry wait must be >= 0 and the timeout > 0")
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise ConfigError(f"--score-threshold must be in [0, 1], got {score_threshold}")
    if max_frames is not None and max_frames <= 0:
        raise ConfigError(f"--frames must be positive, got {max_frames}")
    tracker = None
    if track:
        from vcodec.eval.tracking import Tracker

        tracker = Tracker()
    stats = AnalyzeStats()
    failures = 0
    t0 = time.perf_counter()
    stored: bool | None = None
    received = 0  # bytes of the connections before this one
    while True:
        last = stats.last_frame
        start = last + 1 if (stored and last is not None) else None
        try:
            stream = open_url(url, layers="base", token=token, start=start, timeout=timeout)
        except StreamConnectionError as exc:
            failures += 1
            stats.errors.append(str(exc))
            if failures > retries:
                raise
            time.sleep(retry_wait)
            stats.reconnects += 1
            continue
        stored = not stream.live
        progressed = False
        try:
            dec = Decoder(stream, layers="base", detector=detector, detector_weights=weights,
                          base_model=base_model, threads=threads)
            if detector is None:
                detector = dec.detector()
                if score_threshold is not None:
                    detector.score_threshold = float(score_threshold)
            frames: Iterator[tuple[int, Any]] = dec.detections()
            for index, det in frames:
                stats.bytes_received = received + stream.bytes_read
                if last is not None and index <= last:
                    continue  # a stored stream resumed at an earlier intra frame: already reported
                if last is not None and index > last + 1:
                    stats.skipped += index - last - 1
                if stats.first_frame is None:
                    stats.first_frame = index
                last = stats.last_frame = index
                stats.frames += 1
                stats.detections += len(det)
                progressed = True
                failures = 0
                if out is not None:
                    if tracker is not None:
                        # the detector's own score threshold already applies
                        lines = mot_track_lines(index, tracker.update(det.boxes, det.class_ids))
                    else:
                        lines = list(mot_lines([(index, det)]))
                    for line in lines:
                        out.write(line + "\n")
                    out.flush()
                if on_frame is not None:
                    on_frame(index, det)
                stats.seconds = time.perf_counter() - t0
                if progress is not None:
                    progress(stats)
                if max_frames is not None and stats.frames >= max_frames:
                    return stats
            stats.bytes_received = received + stream.bytes_read
            break  # the stream ended with its END unit
        except (StreamConnectionError, BitstreamError) as exc:
            # a drop shows as a lost connection, or as a stream cut short (no END unit)
            if not progressed:
                failures += 1
            stats.errors.append(str(exc))
            if failures > retries:
                raise
            stats.reconnects += 1
            time.sleep(retry_wait if not progressed else 0.0)
        finally:
            received += stream.bytes_read
            stats.bytes_received = received
            stream.close()
            stats.seconds = time.perf_counter() - t0
    return stats


def progress_printer(stream: TextIO = sys.stderr, every: float = 0.5) -> Callable[[AnalyzeStats], None]:
    """A live one-line progress display (rewritten in place at most every ``every`` seconds)."""
    last = [0.0]

    def show(s: AnalyzeStats) -> None:
        now = time.monotonic()
        if now - last[0] < every:
            return
        last[0] = now
        stream.write(
            f"\ranalyze: frame {s.last_frame}, {s.frames} frames, {s.detections} detections, "
            f"{s.fps:.1f} frames/s, {s.bytes_received * 8 / 1000 / max(s.seconds, 1e-9):.1f} kbit/s, "
            f"{s.reconnects} reconnects, {s.skipped} skipped "
        )
        stream.flush()

    return show
