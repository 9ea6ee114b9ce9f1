"""Run one layer's work beside the other's: a single worker thread, joined on every call.

The end-to-end encoder codes a frame's base layer (torch) and, where the
enhancement layer does not need that frame's base picture (full-frame GOPs,
the full-frame half of the per-GOP probe), the enhancement work (x265 through
PyAV, NumPy) at the same time.  Both release the GIL in their heavy parts, so
on two cores the frame costs about the longer of the two instead of their sum.

Determinism: each call waits for both results before returning, and the
caller writes the units in the serial order, so the stream is the same byte
for byte whether the work overlapped or not.  The worker never runs torch, so
the base layer's threads and results are untouched.

Errors: an exception in the worker is re-raised in the caller (the same object,
so the same typed error); when the caller's own work fails too, its error wins
(the serial path would have stopped there).  Either way the worker has finished
before the call returns or raises, so nothing keeps using the coders afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["LayerOverlap"]

A = TypeVar("A")
B = TypeVar("B")


class LayerOverlap:
    """``run(background, foreground)``: both callables' results, the background one in the worker.

    ``enabled=False`` runs both in the caller's thread, foreground first (the serial path, same
    results).  The worker thread starts on first use; :meth:`close` ends it.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self._pool: ThreadPoolExecutor | None = None

    def run(self, background: Callable[[], A], foreground: Callable[[], B]) -> tuple[A, B]:
        if not self.enabled:
            fg = foreground()
            return background(), fg
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vcodec-layer1")
        future: Future[A] = self._pool.submit(background)
        try:
            fg = foreground()
        except BaseException:
            # the worker may be inside the enhancement encoder: let it finish before the caller
            # aborts (closes) it; the caller's error is the one to report
            _wait_quietly(future)
            raise
        try:
            return future.result(), fg
        except BaseException:
            if not future.done():  # interrupted while waiting: the worker still holds the coder
                _wait_quietly(future)
            raise

    def close(self) -> None:
        """End the worker thread (waits for nothing: every :meth:`run` has joined its work)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _wait_quietly(future: Future[A]) -> None:
    try:
        future.result()
    except BaseException:  # noqa: BLE001 - superseded by the caller's own error
        pass
