"""YUV4MPEG2 (``.y4m``) stream header: parsing and formatting.

A Y4M file is one text header line ``YUV4MPEG2 W416 H240 F30:1 Ip A1:1 C420jpeg``
followed, for every picture, by a ``FRAME`` line (which may carry parameters)
and the raw planar samples (16-bit little-endian words above 8 bits).  Only
4:2:0 colour spaces are read: vcodec's :class:`~vcodec.io.frame.Frame` is 4:2:0.

Y4M has no standard tag for the colour matrix; vcodec writes its own
``XVCODEC_MATRIX=bt601|bt709`` extension tag (other readers ignore ``X`` tags)
so that a round trip keeps the matrix, and reads FFmpeg's ``XCOLORRANGE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from vcodec.errors import InputError
from vcodec.io.frame import MATRICES, require_even

__all__ = ["Y4MHeader", "parse_header", "format_header", "Y4M_MAGIC", "SUPPORTED_COLORSPACES"]

Y4M_MAGIC = b"YUV4MPEG2"
#: longest header line accepted (real headers are < 100 bytes; the bound stops
#: a binary file from being scanned to its end for a newline)
MAX_HEADER = 4096

#: Y4M ``C`` tag -> bit depth.  420jpeg/420mpeg2/420paldv differ only in chroma
#: siting, which does not change the sample layout.
SUPPORTED_COLORSPACES: dict[str, int] = {
    "420jpeg": 8, "420mpeg2": 8, "420paldv": 8, "420": 8,
    "420p9": 9, "420p10": 10, "420p12": 12, "420p14": 14, "420p16": 16,
}
_MATRIX_TAG = "XVCODEC_MATRIX="


@dataclass
class Y4MHeader:
    """The fields of a Y4M stream header that vcodec uses."""

    width: int
    height: int
    fps: Fraction | None
    colorspace: str = "420jpeg"
    interlace: str = "p"
    aspect: str = "0:0"
    full_range: bool = False
    matrix: str | None = None
    extensions: list[str] = field(default_factory=list)

    @property
    def bit_depth(self) -> int:
        return SUPPORTED_COLORSPACES[self.colorspace]

    @property
    def frame_bytes(self) -> int:
        bps = 1 if self.bit_depth == 8 else 2
        return (self.width * self.height + 2 * (self.width // 2) * (self.height // 2)) * bps


def parse_header(line: bytes, source: str) -> Y4MHeader:
    """Parse the first line of a Y4M stream (without its newline)."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: Y4M header is not ASCII ({exc}); the file is damaged") from None
    tokens = text.split(" ")
    if tokens[0] != Y4M_MAGIC.decode():
        raise InputError(f"{source}: not a Y4M file (the first line does not start with YUV4MPEG2)")
    width = height = None
    fps: Fraction | None = None
    fields: dict[str, object] = {}
    extensions: list[str] = []
    for tok in tokens[1:]:
        if not tok:
            continue
        key, val = tok[0], tok[1:]
        try:
            if key == "W":
                width = int(val)
            elif key == "H":
                height = int(val)
            elif key == "F":
                num, _, den = val.partition(":")
                fps = Fraction(int(num), int(den or 1))
                if fps <= 0:
                    raise ValueError("non-positive rate")
            elif key == "C":
                fields["colorspace"] = val
            elif key == "I":
                fields["interlace"] = val
            elif key == "A":
                fields["aspect"] = val
            elif key == "X":
                extensions.append(val)
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{source}: bad Y4M header field {tok!r}; the file is damaged") from None
    if width is None or height is None or width <= 0 or height <= 0:
        raise InputError(f"{source}: Y4M header lacks a valid W/H size: {text!r}")
    cs = str(fields.get("colorspace", "420jpeg")).lower()
    if cs not in SUPPORTED_COLORSPACES:
        raise InputError(
            f"{source}: Y4M colour space C{cs} is not supported; vcodec reads 4:2:0 only "
            f"({', '.join('C' + c for c in SUPPORTED_COLORSPACES)}); convert it, e.g. "
            f"`ffmpeg -i IN -pix_fmt yuv420p OUT.y4m`"
        )
    require_even(width, height, source, "crop the input")
    full_range = False
    matrix: str | None = None
    for ext in extensions:
        if ext.upper() == "COLORRANGE=FULL":
            full_range = True
        elif ext.upper().startswith(_MATRIX_TAG[1:].upper()):
            value = ext[len(_MATRIX_TAG) - 1 :].lower()
            if value in MATRICES:
                matrix = value
    return Y4MHeader(
        width, height, fps, cs, str(fields.get("interlace", "p")), str(fields.get("aspect", "0:0")),
        full_range, matrix, extensions,
    )


def format_header(width: int, height: int, fps: Fraction, bit_depth: int, matrix: str) -> bytes:
    """The header line (with newline) vcodec writes for a 4:2:0 stream."""
    if bit_depth == 8:
        cs = "C420jpeg XYSCSS=420JPEG"
    elif f"420p{bit_depth}" in SUPPORTED_COLORSPACES:
        cs = f"C420p{bit_depth} XYSCSS=420P{bit_depth}"
    else:
        raise InputError(f"Y4M cannot carry {bit_depth}-bit 4:2:0; use 8, 9, 10, 12, 14 or 16 bits")
    fps = Fraction(fps)
    return (
        f"YUV4MPEG2 W{width} H{height} F{fps.numerator}:{fps.denominator} Ip A1:1 {cs} "
        f"XCOLORRANGE=LIMITED {_MATRIX_TAG}{matrix}\n"
    ).encode("ascii")
