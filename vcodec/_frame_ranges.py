"""Frame indexes as runs of consecutive frames, for reports: ``[1, 2, 3, 7]`` -> ``1-3, 7``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["format_frame_ranges", "frame_ranges"]


def frame_ranges(frames: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted frames as inclusive (first, last) runs of consecutive indexes."""
    runs: list[list[int]] = []
    for f in sorted(frames):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return tuple((a, b) for a, b in runs)


def format_frame_ranges(runs: Iterable[tuple[int, int]]) -> str:
    """Runs from :func:`frame_ranges` as text: ``((1, 3), (7, 7))`` -> ``"1-3, 7"``."""
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)
