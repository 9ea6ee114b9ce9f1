"""Video readers: every supported input comes out as :class:`Frame` objects, one at a time.

:func:`open_video` picks the reader from the input:

* raw planar YUV 4:2:0 (``.yuv``, ``.i420``, ``.iyuv``, ``.raw``), 8-bit or
  16-bit little-endian words above 8 bits; size/rate/depth from options or
  from the file name (see :mod:`vcodec.io.naming`): :mod:`.raw`;
* Y4M (``.y4m``, or any file/pipe starting with ``YUV4MPEG2``): :mod:`.y4m`;
* an image-sequence folder (``img1/000001.jpg`` as in MOTChallenge; the folder
  itself or its parent holding ``img1/``; rate from ``seqinfo.ini``): :mod:`.images`;
* anything PyAV (FFmpeg) decodes: MP4, MKV, AVI, Annex-B ``.264``/``.265``: :mod:`.ffmpeg`.

``path`` may also be ``"-"`` (standard input) or a binary file object: the
reader then sniffs the first bytes (Y4M magic, otherwise raw when a size is
given, otherwise a container/elementary stream handed to FFmpeg) and never
seeks (:mod:`.open`).  Frames are read lazily, so memory does not grow with the
clip.  What all readers share (the options, :class:`ReadOptions`, built and
checked once by ``open_video``; the protocol; the frame-rate rule) is in
:mod:`.base`.  ``vcodec.io.readers`` was one module until 0.x; every
public name it had is still importable from here.
"""

from vcodec.io.readers.base import DEFAULT_ELEMENTARY_FPS, DEFAULT_RAW_FPS, ReadOptions, VideoReader
from vcodec.io.readers.ffmpeg import AVReader
from vcodec.io.readers.images import IMAGE_EXTENSIONS, ImageFolderReader
from vcodec.io.readers.open import PathArg, open_video
from vcodec.io.readers.raw import RawYUVReader
from vcodec.io.readers.y4m import Y4MReader

__all__ = [
    "open_video",
    "ReadOptions",
    "VideoReader",
    "RawYUVReader",
    "Y4MReader",
    "ImageFolderReader",
    "AVReader",
    "IMAGE_EXTENSIONS",
    "DEFAULT_RAW_FPS",
    "DEFAULT_ELEMENTARY_FPS",
    "PathArg",
]
