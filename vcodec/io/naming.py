"""What a raw YUV file name says about its contents.

Raw planar YUV has no header, so the test-sequence world writes the geometry
into the name: ``BasketballPass_416x240_50.yuv`` (416x240, 50 fps),
``x_832x480_30_10bit.yuv`` (10-bit), ``CiscoVT2people_320x192_12fps.yuv``.
:func:`parse_raw_name` reads those conventions; explicit options always win
over the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = ["RawNameInfo", "parse_raw_name", "RAW_EXTENSIONS", "ELEMENTARY_FORMATS"]

#: extensions read as headerless planar YUV 4:2:0
RAW_EXTENSIONS = frozenset({".yuv", ".i420", ".iyuv", ".raw"})

#: Annex-B elementary stream extensions -> FFmpeg demuxer name (probing a
#: bare stream is unreliable, so the demuxer is named explicitly)
ELEMENTARY_FORMATS: dict[str, str] = {
    ".264": "h264", ".h264": "h264", ".avc": "h264", ".26l": "h264",
    ".265": "hevc", ".h265": "hevc", ".hevc": "hevc", ".bit": "hevc",
}

# a WxH token not glued to other digits: "_416x240_", "-1920X1080.", "cars_320x240"
_SIZE_RE = re.compile(r"(?<![0-9])([0-9]{2,5})[xX]([0-9]{2,5})(?![0-9])")
# frame rate token after the size: "50", "29.97", "12fps", "30hz", "60p"
_FPS_RE = re.compile(r"^([0-9]{1,3}(?:\.[0-9]{1,3})?)(?:fps|hz|p)?$", re.IGNORECASE)
# bit depth token anywhere: "10bit", "10bits", "10b", "8bit"
_DEPTH_RE = re.compile(r"^(8|9|10|12|14|16)(?:bits?|b)$", re.IGNORECASE)
# FFmpeg pixel-format names in the file name: "yuv420p10le" (not "p010": that
# layout is semi-planar, which these readers do not parse)
_PIXFMT_RE = re.compile(r"yuv420p(9|10|12|14|16)(?:le)?", re.IGNORECASE)


@dataclass(frozen=True)
class RawNameInfo:
    """Fields found in a raw file name (``None`` where the name says nothing)."""

    width: int | None = None
    height: int | None = None
    fps: Fraction | None = None
    bit_depth: int | None = None


def _fps_from_token(token: str) -> Fraction | None:
    m = _FPS_RE.match(token)
    if not m:
        return None
    value = m.group(1)
    fps = Fraction(value)
    # NTSC-style names write 29.97 / 59.94 / 23.976 for 30000/1001 etc.
    for nominal in (24, 30, 48, 60, 120):
        exact = Fraction(nominal * 1000, 1001)
        if "." in value and abs(fps - exact) < Fraction(1, 100):
            return exact
    return fps if 0 < fps <= 1000 else None


def parse_raw_name(path: str | Path) -> RawNameInfo:
    """Size, frame rate and bit depth stated by a raw YUV file name.

    The size is the first ``WxH`` token; the frame rate is the first numeric
    token right after it (``_50``, ``_12fps``, ``_29.97``); the bit depth is a
    ``_10bit`` / ``_10b`` token or an FFmpeg pixel format such as
    ``yuv420p10le`` anywhere in the name.
    """
    stem = Path(str(path)).name
    for ext in RAW_EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    width = height = None
    fps: Fraction | None = None
    depth: int | None = None
    m = _SIZE_RE.search(stem)
    if m:
        width, height = int(m.group(1)), int(m.group(2))
        rest = [t for t in re.split(r"[_\-\s]+", stem[m.end():]) if t]
        if rest:
            fps = _fps_from_token(rest[0])
    for token in re.split(r"[_\-\s.]+", stem):
        dm = _DEPTH_RE.match(token)
        if dm:
            depth = int(dm.group(1))
            break
    if depth is None:
        pm = _PIXFMT_RE.search(stem)
        if pm:
            depth = int(pm.group(1))
    return RawNameInfo(width, height, fps, depth)
