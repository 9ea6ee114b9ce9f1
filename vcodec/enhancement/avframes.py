"""numpy planes <-> PyAV ``VideoFrame`` for planar YUV 4:2:0 at 8, 10 and 12 bits.

PyAV's ``from_ndarray`` does not know the 12-bit formats, and libav planes are
padded to a line size, so planes are copied row-block-wise through the
buffer protocol instead.
"""

from __future__ import annotations

import av
import numpy as np

from vcodec.enhancement.codecs import pix_fmt_for

__all__ = ["planes_to_avframe", "avframe_to_planes"]

# libav logs errors only, into Python logging ("libav.<component>" loggers):
# encoders' chatter must not reach the terminal, real failures must.  Here because
# both the enhancement encoder and decoder import this module before using PyAV.
av.logging.set_level(av.logging.ERROR)


def planes_to_avframe(planes: list[np.ndarray] | tuple[np.ndarray, ...], depth: int) -> av.VideoFrame:
    """A new ``VideoFrame`` holding the three planes (``uint8`` at 8 bits, ``uint16`` above)."""
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, pix_fmt_for(depth))
    dtype = np.dtype(np.uint8 if depth == 8 else "<u2")
    for dst, src in zip(frame.planes, planes, strict=False):
        # numpy's stubs for Python 3.10 refuse PyAV planes, which export the buffer protocol
        view = np.frombuffer(dst, dtype=dtype).reshape(  # type: ignore[call-overload]
            -1, dst.line_size // dtype.itemsize)
        view[: src.shape[0], : src.shape[1]] = src
    return frame


def avframe_to_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Copies of the visible area of each plane of a decoded 4:2:0 frame."""
    dtype = np.dtype(np.uint8 if frame.format.name == "yuv420p" else "<u2")
    out = []
    for p in frame.planes:
        view = np.frombuffer(p, dtype=dtype).reshape(  # type: ignore[call-overload]  # as in planes_to_avframe
            -1, p.line_size // dtype.itemsize)
        out.append(view[: p.height, : p.width].astype(dtype.newbyteorder("="), copy=True))
    return out
