"""Chroma QP as a function of luma QP (the standards' tables), for the residual's chroma offset.

The tables compress chroma QPs above 30; a residual coded one bit deeper
than its input is quantised 6 luma QPs lower, which moves it out of that
region, so the encoder adds a chroma QP offset to keep the anchor's chroma step
(see ``EnhancementEncoder._encoder_rate``).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["hevc_chroma_qp", "avc_chroma_qp", "CHROMA_QP_TABLES"]


def hevc_chroma_qp(q: int) -> int:
    """HEVC 4:2:0 chroma QP for luma QP ``q`` (H.265 table 8-10, no offsets)."""
    if q < 30:
        return q
    if q > 43:
        return q - 6
    return (29, 30, 31, 32, 33, 33, 34, 34, 35, 35, 36, 36, 37, 37)[q - 30]


def avc_chroma_qp(q: int) -> int:
    """H.264 chroma QP for luma QP ``q`` (H.264 table 8-15, no offsets)."""
    if q < 30:
        return q
    table = (29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36, 36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39)
    return table[min(q, 51) - 30]


#: the encoders whose chroma QP follows a table, by FFmpeg encoder name
CHROMA_QP_TABLES: dict[str, Callable[[int], int]] = {"libx265": hevc_chroma_qp, "libx264": avc_chroma_qp}
