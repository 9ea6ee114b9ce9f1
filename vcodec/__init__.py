"""vcodec: a hybrid scalable video codec for humans and machines.

One stream, two layers: a learned base layer (layer 0) from which an object
detector runs on decoded features without reconstructing pixels, and a
conventional enhancement layer (layer 1) carrying the residual for people.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vcodec import errors
from vcodec.errors import BitstreamError, VcodecError
from vcodec.io.frame import Frame, VideoInfo

__all__ = ["__version__", "errors", "BitstreamError", "VcodecError", "Frame", "VideoInfo"]
