"""The one in-memory picture type of vcodec.

A :class:`Frame` is planar YUV 4:2:0: three numpy planes ``y`` (H x W),
``u`` and ``v`` (H/2 x W/2), ``uint8`` for 8-bit video and ``uint16`` (values
in ``[0, 2**bit_depth)``) for 9..16-bit video.  Width and height are even.

Colour: samples are *limited range* ("TV range": luma 16..235, chroma
16..240 at 8 bits, scaled by ``2**(bit_depth-8)`` above) in the matrix named
by ``matrix``: ``"bt601"`` for standard definition and ``"bt709"`` for HD
(height >= 720), the convention of the HEVC test sequences and of most
cameras.  The stream header records the matrix so that every decoder converts
to RGB the same way.  RGB/BGR conversion is for detectors and viewers only;
coding always happens on the YUV planes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import numpy as np

from vcodec.errors import InputError

__all__ = [
    "Frame", "VideoInfo", "InputFacts", "Planes420", "PictureFormat", "default_matrix", "MATRICES",
    "require_even", "require_same_format",
]

#: supported colour matrices and their (Kr, Kb) luma coefficients
MATRICES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
}


def default_matrix(width: int, height: int) -> str:
    """BT.709 for HD (height >= 720 or width >= 1280), BT.601 otherwise."""
    return "bt709" if height >= 720 or width >= 1280 else "bt601"


def _dtype_for(bit_depth: int) -> type[np.unsignedinteger]:
    if not 8 <= bit_depth <= 16:
        raise InputError(f"bit depth {bit_depth} is not supported; use 8..16")
    return np.uint8 if bit_depth == 8 else np.uint16



def require_even(width: int, height: int, where: str, fix: str) -> None:
    """The one 4:2:0 size rule (chroma is half size both ways), with what to do about it in ``fix``."""
    if width % 2 or height % 2:
        prefix = f"{where}: " if where else ""
        raise InputError(f"{prefix}4:2:0 needs even width and height, got {width}x{height}; {fix}")


class PictureFormat(Protocol):
    """Anything with a picture size and a bit depth: a Frame, a VideoInfo, an encoder's setup."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def bit_depth(self) -> int: ...


def require_same_format(
    got: PictureFormat, subject: str, want: PictureFormat, expected: str, *, size_fix: str = "",
    depth_fix: str = "",
) -> None:
    """The one "same size and bit depth" rule between two pictures (vcodec never rescales on the way).

    The message reads ``"<subject> is WxH but <expected> W'xH'; <size_fix>"``
    (``expected`` says whose size it is, e.g. ``"the output is"``), then the
    same for the bit depth.
    """
    if (got.width, got.height) != (want.width, want.height):
        fix = f"; {size_fix}" if size_fix else ""
        raise InputError(
            f"{subject} is {got.width}x{got.height} but {expected} {want.width}x{want.height}{fix}"
        )
    if got.bit_depth != want.bit_depth:
        fix = f"; {depth_fix}" if depth_fix else ""
        raise InputError(f"{subject} is {got.bit_depth}-bit but {expected} {want.bit_depth}-bit{fix}")


class Planes420:
    """The geometry of three 4:2:0 planes ``y``, ``u``, ``v`` (a :class:`Frame`, a residual picture)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v


@dataclass
class Frame(Planes420):
    """One YUV 4:2:0 picture.  See the module docstring for conventions."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = 8
    index: int = 0
    matrix: str = "bt601"

    def __post_init__(self) -> None:
        h, w = self.y.shape[:2] if self.y.ndim == 2 else (0, 0)
        if self.y.ndim != 2 or h % 2 or w % 2 or h == 0 or w == 0:
            raise InputError(
                f"frame luma plane must be 2-D with even, non-zero size, got shape {self.y.shape}"
            )
        want = (h // 2, w // 2)
        if self.u.shape != want or self.v.shape != want:
            raise InputError(
                f"chroma planes must be {want} for 4:2:0 luma {h}x{w}, "
                f"got {self.u.shape} and {self.v.shape}"
            )
        dtype = _dtype_for(self.bit_depth)
        for name in ("y", "u", "v"):
            plane = getattr(self, name)
            if plane.dtype != dtype:
                raise InputError(
                    f"plane {name} has dtype {plane.dtype}; {self.bit_depth}-bit frames use {np.dtype(dtype)}"
                )
        if self.matrix not in MATRICES:
            raise InputError(f"unknown colour matrix {self.matrix!r}; use one of {sorted(MATRICES)}")

    # -- geometry (width, height, planes: Planes420) ----------------------
    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1

    # -- constructors ---------------------------------------------------
    @classmethod
    def blank(
        cls, width: int, height: int, bit_depth: int = 8, value: int | None = None, index: int = 0
    ) -> Frame:
        """A flat frame (mid-grey by default: 128 at 8 bits, 512 at 10 bits)."""
        dtype = _dtype_for(bit_depth)
        fill = (1 << (bit_depth - 1)) if value is None else value
        y = np.full((height, width), fill, dtype=dtype)
        c = np.full((height // 2, width // 2), fill, dtype=dtype)
        return cls(y, c, c.copy(), bit_depth, index, default_matrix(width, height))

    @classmethod
    def from_bytes(
        cls, data: bytes | memoryview, width: int, height: int, bit_depth: int = 8, index: int = 0,
        matrix: str | None = None,
    ) -> Frame:
        """Parse one planar I420 picture (little-endian 16-bit words above 8 bits)."""
        dtype = np.dtype(_dtype_for(bit_depth)).newbyteorder("<")
        ysz, csz = width * height, (width // 2) * (height // 2)
        arr = np.frombuffer(data, dtype=dtype, count=ysz + 2 * csz)
        native = arr.astype(dtype.newbyteorder("="), copy=True)
        y = native[:ysz].reshape(height, width)
        u = native[ysz : ysz + csz].reshape(height // 2, width // 2)
        v = native[ysz + csz :].reshape(height // 2, width // 2)
        return cls(y, u, v, bit_depth, index, matrix or default_matrix(width, height))

    def to_bytes(self) -> bytes:
        """Planar I420 bytes (16-bit little-endian words above 8 bits)."""
        if self.bit_depth == 8:
            return self.y.tobytes() + self.u.tobytes() + self.v.tobytes()
        return b"".join(p.astype("<u2").tobytes() for p in self.planes)

    def copy(self, **changes: object) -> Frame:
        base = dict(
            y=self.y.copy(), u=self.u.copy(), v=self.v.copy(), bit_depth=self.bit_depth,
            index=self.index, matrix=self.matrix,
        )
        base.update(changes)
        return Frame(**base)  # type: ignore[arg-type]

    # -- colour ---------------------------------------------------------
    def to_rgb(self) -> np.ndarray:
        """H x W x 3 ``uint8`` RGB (full range), chroma upsampled by sample repetition."""
        kr, kb = MATRICES[self.matrix]
        kg = 1.0 - kr - kb
        scale = float(1 << (self.bit_depth - 8))
        y = (self.y.astype(np.float32) / scale - 16.0) * (255.0 / 219.0)
        cb = (self.u.astype(np.float32) / scale - 128.0) * (255.0 / 224.0)
        cr = (self.v.astype(np.float32) / scale - 128.0) * (255.0 / 224.0)
        cb = cb.repeat(2, 0).repeat(2, 1)
        cr = cr.repeat(2, 0).repeat(2, 1)
        r = y + 2.0 * (1.0 - kr) * cr
        b = y + 2.0 * (1.0 - kb) * cb
        g = (y - kr * r - kb * b) / kg
        rgb = np.stack([r, g, b], axis=-1)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    def to_bgr(self) -> np.ndarray:
        return np.ascontiguousarray(self.to_rgb()[..., ::-1])

    @classmethod
    def from_rgb(
        cls, rgb: np.ndarray, bit_depth: int = 8, matrix: str | None = None, index: int = 0
    ) -> Frame:
        """Convert H x W x 3 ``uint8`` RGB (even H and W) to limited-range YUV 4:2:0.

        Chroma is the mean of each 2x2 block, the usual MPEG-1/JPEG siting.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"expected an H x W x 3 RGB image, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        require_even(w, h, "", "crop or pad the input")
        matrix = matrix or default_matrix(w, h)
        kr, kb = MATRICES[matrix]
        kg = 1.0 - kr - kb
        f = rgb.astype(np.float32)
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        yf = kr * r + kg * g + kb * b
        cb = (b - yf) / (2.0 * (1.0 - kb))
        cr = (r - yf) / (2.0 * (1.0 - kr))
        cb = cb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        cr = cr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        scale = float(1 << (bit_depth - 8))
        dtype = _dtype_for(bit_depth)
        top = float((1 << bit_depth) - 1)

        def q(x: np.ndarray) -> np.ndarray:
            return np.clip(np.rint(x * scale), 0, top).astype(dtype)

        return cls(
            q(16.0 + yf * (219.0 / 255.0)),
            q(128.0 + cb * (224.0 / 255.0)),
            q(128.0 + cr * (224.0 / 255.0)),
            bit_depth, index, matrix,
        )

    def with_bit_depth(self, bit_depth: int) -> Frame:
        """Rescale samples to another bit depth (shift up exactly; round when shifting down)."""
        if bit_depth == self.bit_depth:
            return self
        dtype = _dtype_for(bit_depth)
        shift = bit_depth - self.bit_depth

        def conv(p: np.ndarray) -> np.ndarray:
            x = p.astype(np.int32)
            if shift > 0:
                x = x << shift
            else:
                x = (x + (1 << (-shift - 1))) >> -shift
            return np.clip(x, 0, (1 << bit_depth) - 1).astype(dtype)

        return Frame(conv(self.y), conv(self.u), conv(self.v), bit_depth, self.index, self.matrix)


@dataclass
class InputFacts:
    """What a reader found out about its input, and where each :class:`VideoInfo` value came from.

    ``None`` means "does not apply to this input" (a Y4M file has no container
    codec); a :class:`VideoInfo` that no reader made has the defaults.
    """

    #: "raw", "y4m", "images" or FFmpeg's demuxer name
    format: str = ""
    #: "option", "name", "header", "container", "seqinfo" or "default"
    fps_source: str = ""
    #: set when the rate was assumed: what the input lacks and what to pass
    fps_note: str | None = None
    #: raw YUV: "option" or "name"
    size_source: str | None = None
    #: raw YUV: "option", "name" or "default"
    bit_depth_source: str | None = None
    #: FFmpeg inputs: "option", "container" or "default"
    matrix_source: str | None = None
    #: FFmpeg inputs: the decoder's codec name and the decoded pixel format
    codec: str | None = None
    source_pix_fmt: str | None = None
    #: Y4M: the ``C`` tag, and the ``I`` tag when the input is not progressive
    colorspace: str | None = None
    interlace: str | None = None
    #: Y4M with ``XCOLORRANGE=FULL``: samples were moved to the limited range
    converted_from_full_range: bool = False
    #: image sequences: the folder the pictures are read from
    images: str | None = None
    #: the source's own frame count (``None``: unknown) and the reader's first frame
    source_frames: int | None = None
    start: int = 0


@dataclass
class VideoInfo:
    """What a reader knows about a video before decoding it."""

    width: int
    height: int
    fps: Fraction = Fraction(30, 1)
    bit_depth: int = 8
    num_frames: int | None = None  # None when unknown (pipes, some containers)
    matrix: str = ""
    source: str = ""
    facts: InputFacts = field(default_factory=InputFacts)

    def __post_init__(self) -> None:
        if not self.matrix:
            self.matrix = default_matrix(self.width, self.height)
        self.fps = Fraction(self.fps).limit_denominator(1001000)
