"""Video input and output: readers yield :class:`Frame` one at a time."""

from vcodec.io.frame import MATRICES, Frame, VideoInfo, default_matrix

__all__ = ["Frame", "VideoInfo", "default_matrix", "MATRICES"]
