"""Video input and output: readers yield :class:`Frame` one at a time.

``open_video(path, ...)`` reads raw YUV, Y4M, image folders and anything
FFmpeg decodes; ``open_writer(path, info, ...)`` writes Y4M, raw YUV and
MP4/MKV atomically.  See ``docs/IO.md``.
"""

from vcodec.io.frame import MATRICES, Frame, InputFacts, VideoInfo, default_matrix
from vcodec.io.naming import RawNameInfo, parse_raw_name
from vcodec.io.readers import ReadOptions, VideoReader, open_video
from vcodec.io.writers import VideoWriter, open_writer

__all__ = [
    "Frame",
    "VideoInfo",
    "InputFacts",
    "default_matrix",
    "MATRICES",
    "open_video",
    "ReadOptions",
    "VideoReader",
    "open_writer",
    "VideoWriter",
    "parse_raw_name",
    "RawNameInfo",
]
