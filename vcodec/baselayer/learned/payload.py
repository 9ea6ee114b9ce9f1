"""The learned base layer's payload (the body of one layer-0 unit): every read and write.

All integers little-endian.  Four versions are in use; the decoder reads all,
the encoder writes version 4 (version 2 when motion compensation is off, version
1 on request).

Version 1 (vcodec 0.1, every frame self-describing)::

    offset  size  field
    0       1     payload version (1)
    1       1     flags: bit 0 = intra; other bits 0
    2       2     quality code q (uint16); base quality = q / 65535
    4       2     source frame width  (before any downscale or padding)
    6       2     source frame height
    8       2     latent height Hy (= padded height / 16)
    10      2     latent width  Wy
    12      4     Lz (uint32), then Lz bytes: z string (EntropyBottleneck rANS)
    16+Lz   4     Ly (uint32), then Ly bytes: y string (GaussianConditional rANS, M x Hy x Wy)

Version 2 (P-frames inherit size and hyperprior, skip blocks)::

    offset  size  field
    0       1     payload version (2)
    1       1     flags: bit 0 = intra, bit 1 = z present, bit 2 = skip map present;
                  bits 3-7 are 0.  Intra frames have bit 1 set and bit 2 clear.
    2       2     quality code q (uint16)
    -- intra frames only --
    4       2     source frame width
    6       2     source frame height
    8       2     latent height Hy
    10      2     latent width Wy
    -- skip map present only --
    .       1     skip block size B in latent positions (1, 2, 4 or 8)
    -- z present only --
    .       1-4   Lz (unsigned LEB128), then Lz bytes: z string
    -- always --
    .       rest  y string: one rANS string holding, when the skip map is present,
                  ceil(Hy/B) x ceil(Wy/B) skip flags in raster order (context-adaptive
                  binary models, :mod:`vcodec.baselayer.learned.skipmap`), then the symbols of every
                  non-skipped latent position, channel-major, raster order.

Version 3 (motion-compensated prediction) is version 2 plus flag bit 3::

    1       1     flags: bits 0-2 as version 2, bit 3 = motion field present (P-frames
                  only); bits 4-7 are 0
    -- after the skip block size, motion field present only --
    .       1     motion block size Bm in latent positions (2, 4 or 8)
    .       1     motion range R: the largest vector component, in quarter latent
                  positions (1 .. 32)
    -- the y string then starts with the field --
                  ceil(Hy/Bm) x ceil(Wy/Bm) blocks in raster order: a moved flag, and for
                  a moved block two vector differences in [-2R, 2R]
                  (:mod:`vcodec.baselayer.learned.motion`), before the skip flags.

Version 4 (parameters inherited within an intra period) is version 3 plus flag bits 4 and 5::

    1       1     flags: bits 0-3 as version 3, bit 4 = the quality code is the previous
                  frame's (no q bytes), bit 5 = the skip block size and the motion block size
                  and range are the ones last sent in this intra period (no size bytes);
                  intra frames set neither; bits 6-7 are 0
    2       0|2   quality code q, absent with bit 4
    -- skip map present and bit 5 clear only --
    .       1     skip block size B
    -- motion field present and bit 5 clear only --
    .       1     Bm
    .       1     R
    (then z and the y string as in version 3)

With bit 5 a frame with a skip map takes B from the latest earlier frame of its intra period
that sent one, and a frame with a motion field takes Bm and R likewise; a decoder that has no
such frame refuses the payload.  Why: those three bytes and the quality code are the same in
every P-frame of a stream at a fixed quality, and 40 bits per P-frame were 6 % of
CiscoVT2people's P-frames at q 0.5 and more at the lowest qualities (a parameter set, as
H.264's SPS/PPS, sends them once).

A P-frame without z reuses the hyperprior of the last frame that carried one
(the intra frame, unless a later P-frame refreshed it); its size is its
reference's.  A P-frame header is 2 bytes in version 4 (4-7 in versions 2-3,
20 in version 1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from vcodec.errors import BitstreamError, ConfigError

__all__ = ["BasePayload", "HeaderMemory", "MOTION_BLOCK_SIZES", "MAX_MOTION_RANGE", "PAYLOAD_VERSION",
           "READABLE_VERSIONS",
           "SKIP_BLOCK_SIZES", "quality_code"]

#: the version this encoder writes
PAYLOAD_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
SKIP_BLOCK_SIZES = (1, 2, 4, 8)
MOTION_BLOCK_SIZES = (2, 4, 8)
#: largest vector component, in quarter latent positions (8 latent positions = 128 source pixels)
MAX_MOTION_RANGE = 32

_V1_HEAD = struct.Struct("<BBHHHHH")
_V2_HEAD = struct.Struct("<BBH")
_SIZE = struct.Struct("<HHHH")
_LEN = struct.Struct("<I")

_INTRA, _Z, _SKIP, _MOTION, _SAME_Q, _SAME_BLOCKS = 1, 2, 4, 8, 16, 32
_V4_HEAD = struct.Struct("<BB")
_Q = struct.Struct("<H")
_UNIT = "base payload"
_MAX_LEB_BYTES = 4  # 2**28 bytes is far beyond any payload the unit length field allows


def quality_code(quality: float) -> int:
    """Quality in [0, 1] -> the uint16 code written in every payload."""
    if not isinstance(quality, (int, float)) or not 0.0 <= float(quality) <= 1.0:
        raise ConfigError(f"base quality {quality!r} is out of range; use a number in [0, 1]")
    return int(round(float(quality) * 65535))


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(_MAX_LEB_BYTES):
        if pos + i >= len(data):
            raise BitstreamError("base payload truncated inside the z length", offset=pos, unit=_UNIT)
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and byte == 0:  # a non-minimal encoding would let two byte strings mean one payload
                raise BitstreamError("base payload z length is not minimally encoded", offset=pos,
                                     unit=_UNIT)
            return value, pos + i + 1
    raise BitstreamError(f"base payload z length runs past {_MAX_LEB_BYTES} bytes", offset=pos, unit=_UNIT)


@dataclass
class BasePayload:
    """One decoded payload header plus its entropy-coded strings.

    ``width``/``height``/``latent_h``/``latent_w`` are 0 on version-2 P-frames (the
    reference's apply); ``z_string`` is None when the frame reuses the hyperprior;
    ``skip_block`` is 0 when the frame has no skip map, ``motion_block`` and
    ``motion_range`` are 0 when it has no motion field (always, before version 3).  A version-4
    payload fresh from :meth:`from_bytes` holds -1 in the fields it inherits (``same_q``,
    ``same_blocks``) until :meth:`resolve` fills them in from the frames before it.
    """

    intra: bool
    qcode: int
    width: int
    height: int
    latent_h: int
    latent_w: int
    z_string: bytes | None
    y_string: bytes
    version: int = PAYLOAD_VERSION
    skip_block: int = 0
    motion_block: int = 0
    motion_range: int = 0
    #: version 4: the quality code is the previous frame's / the block sizes are the ones last
    #: sent in the intra period (written without their bytes; :meth:`resolve` fills them in)
    same_q: bool = False
    same_blocks: bool = False

    @property
    def has_size(self) -> bool:
        return self.latent_h > 0

    def resolve(self, previous_qcode: int | None, last_skip_block: int, last_motion: tuple[int, int]
                ) -> BasePayload:
        """A version-4 payload read by :meth:`from_bytes` with its inherited fields filled in.

        ``previous_qcode``: the previous frame's quality code (None: no frame decoded yet);
        ``last_skip_block`` / ``last_motion`` (block, range): the ones last sent in this intra
        period (0 / (0, 0): none).  Raises :class:`BitstreamError` when one is needed but missing.
        """
        qcode, skip, (mblock, mrange) = self.qcode, self.skip_block, (self.motion_block, self.motion_range)
        if self.same_q:
            if previous_qcode is None:
                raise BitstreamError("base payload reuses the previous frame's quality but no frame was "
                                     "decoded before it", offset=1, unit=_UNIT)
            qcode = previous_qcode
        if self.same_blocks:
            if self.skip_block < 0:
                if not last_skip_block:
                    raise BitstreamError("base payload reuses a skip block size that no earlier frame of "
                                         "its intra period sent", offset=1, unit=_UNIT)
                skip = last_skip_block
            if self.motion_block < 0:
                if not last_motion[0]:
                    raise BitstreamError("base payload reuses a motion block size that no earlier frame "
                                         "of its intra period sent", offset=1, unit=_UNIT)
                mblock, mrange = last_motion
        return replace(self, qcode=qcode, skip_block=skip, motion_block=mblock, motion_range=mrange)

    def to_bytes(self) -> bytes:
        if self.version == 1:
            if self.z_string is None or self.skip_block:
                raise ValueError("payload version 1 carries z on every frame and has no skip map")
            head = _V1_HEAD.pack(1, _INTRA if self.intra else 0, self.qcode, self.width,
                                 self.height, self.latent_h, self.latent_w)
            return b"".join([head, _LEN.pack(len(self.z_string)), self.z_string,
                             _LEN.pack(len(self.y_string)), self.y_string])
        if self.version not in (2, 3, 4):
            raise ValueError(f"cannot write base payload version {self.version}")
        if (self.same_q or self.same_blocks) and (self.version < 4 or self.intra):
            raise ValueError("inherited fields need payload version 4 and a P-frame")
        if self.intra and (self.z_string is None or self.skip_block or self.motion_block):
            raise ValueError("an intra payload carries z and no skip map or motion field")
        if self.motion_block and (self.version == 2 or self.motion_block not in MOTION_BLOCK_SIZES
                                  or not 1 <= self.motion_range <= MAX_MOTION_RANGE):
            raise ValueError("a motion field needs payload version 3, a block size in "
                             f"{MOTION_BLOCK_SIZES} and a range in 1..{MAX_MOTION_RANGE}")
        flags = ((_INTRA if self.intra else 0) | (_Z if self.z_string is not None else 0)
                 | (_SKIP if self.skip_block else 0) | (_MOTION if self.motion_block else 0))
        if self.version == 4:
            flags |= (_SAME_Q if self.same_q else 0) | (_SAME_BLOCKS if self.same_blocks else 0)
            parts = [_V4_HEAD.pack(4, flags)] + ([] if self.same_q else [_Q.pack(self.qcode)])
        else:
            parts = [_V2_HEAD.pack(self.version, flags, self.qcode)]
        if self.intra:
            parts.append(_SIZE.pack(self.width, self.height, self.latent_h, self.latent_w))
        if self.skip_block and not self.same_blocks:
            parts.append(bytes([self.skip_block]))
        if self.motion_block and not self.same_blocks:
            parts.append(bytes([self.motion_block, self.motion_range]))
        if self.z_string is not None:
            parts += [_leb128(len(self.z_string)), self.z_string]
        parts.append(self.y_string)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> BasePayload:
        data = bytes(data)
        if not data:
            raise BitstreamError("base payload is empty", unit=_UNIT)
        ver = data[0]
        if ver == 1:
            return cls._from_v1(data)
        if ver in (2, 3, 4):
            return cls._from_v2(data)
        raise BitstreamError(f"base payload version {ver} is not supported (this decoder reads versions "
                             f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade vcodec", offset=0,
                             unit=_UNIT)

    @staticmethod
    def _check_latent(lh: int, lw: int) -> None:
        if lh == 0 or lw == 0 or lh % 4 or lw % 4:
            raise BitstreamError(f"base payload latent size {lh}x{lw} is not a positive multiple of 4",
                                 offset=8, unit=_UNIT)

    @classmethod
    def _from_v1(cls, data: bytes) -> BasePayload:
        if len(data) < _V1_HEAD.size + 8:
            raise BitstreamError(f"base payload of {len(data)} bytes is shorter than its "
                                 f"{_V1_HEAD.size + 8}-byte header", unit=_UNIT)
        _, flags, qcode, w, h, lh, lw = _V1_HEAD.unpack_from(data, 0)
        if flags & ~_INTRA:
            raise BitstreamError(f"base payload has reserved flag bits set (0x{flags:02x})", offset=1,
                                 unit=_UNIT)
        pos = _V1_HEAD.size
        strings = []
        for name in ("z", "y"):
            if pos + 4 > len(data):
                raise BitstreamError(f"base payload truncated before the {name} length", offset=pos,
                                     unit=_UNIT)
            (n,) = _LEN.unpack_from(data, pos)
            pos += 4
            if pos + n > len(data):
                raise BitstreamError(f"base payload truncated: {name} string needs {n} bytes, "
                                     f"{len(data) - pos} left", offset=pos, unit=_UNIT)
            strings.append(data[pos: pos + n])
            pos += n
        if pos != len(data):
            raise BitstreamError(f"base payload has {len(data) - pos} trailing bytes", offset=pos, unit=_UNIT)
        cls._check_latent(lh, lw)
        return cls(bool(flags & _INTRA), qcode, w, h, lh, lw, strings[0], strings[1], version=1)

    @classmethod
    def _from_v2(cls, data: bytes) -> BasePayload:
        if len(data) < _V4_HEAD.size:
            raise BitstreamError(f"base payload of {len(data)} bytes is shorter than its "
                                 f"{_V4_HEAD.size}-byte header", unit=_UNIT)
        ver, flags = _V4_HEAD.unpack_from(data, 0)
        known = (_INTRA | _Z | _SKIP | (_MOTION if ver >= 3 else 0)
                 | (_SAME_Q | _SAME_BLOCKS if ver >= 4 else 0))
        if flags & ~known:
            raise BitstreamError(f"base payload has reserved flag bits set (0x{flags:02x})", offset=1,
                                 unit=_UNIT)
        intra = bool(flags & _INTRA)
        if intra and (flags & (_Z | _SKIP | _MOTION | _SAME_Q | _SAME_BLOCKS)) != _Z:
            raise BitstreamError(f"intra base payload must carry z, its quality and no skip map or motion "
                                 f"field (flags 0x{flags:02x})",
                                 offset=1, unit=_UNIT)
        same_q, same_blocks = bool(flags & _SAME_Q), bool(flags & _SAME_BLOCKS)
        pos = _V4_HEAD.size
        qcode = -1  # inherited: resolve() fills it in
        if not same_q:
            if pos + _Q.size > len(data):
                raise BitstreamError(f"base payload of {len(data)} bytes is shorter than its "
                                     f"{pos + _Q.size}-byte header", unit=_UNIT)
            (qcode,) = _Q.unpack_from(data, pos)
            pos += _Q.size
        w = h = lh = lw = 0
        if intra:
            if pos + _SIZE.size > len(data):
                raise BitstreamError("base payload truncated inside the picture size", offset=pos, unit=_UNIT)
            w, h, lh, lw = _SIZE.unpack_from(data, pos)
            pos += _SIZE.size
            cls._check_latent(lh, lw)
        skip_block = 0
        if flags & _SKIP and same_blocks:
            skip_block = -1  # inherited
        elif flags & _SKIP:
            if pos >= len(data):
                raise BitstreamError("base payload truncated before the skip block size", offset=pos,
                                     unit=_UNIT)
            skip_block = data[pos]
            if skip_block not in SKIP_BLOCK_SIZES:
                raise BitstreamError(f"base payload skip block size {skip_block} is not one of "
                                     f"{SKIP_BLOCK_SIZES}", offset=pos, unit=_UNIT)
            pos += 1
        motion_block = motion_range = 0
        if flags & _MOTION and same_blocks:
            motion_block = motion_range = -1  # inherited
        elif flags & _MOTION:
            if pos + 2 > len(data):
                raise BitstreamError("base payload truncated inside the motion field's header", offset=pos,
                                     unit=_UNIT)
            motion_block, motion_range = data[pos], data[pos + 1]
            if motion_block not in MOTION_BLOCK_SIZES:
                raise BitstreamError(f"base payload motion block size {motion_block} is not one of "
                                     f"{MOTION_BLOCK_SIZES}", offset=pos, unit=_UNIT)
            if not 1 <= motion_range <= MAX_MOTION_RANGE:
                raise BitstreamError(f"base payload motion range {motion_range} is not in "
                                     f"1..{MAX_MOTION_RANGE}", offset=pos + 1, unit=_UNIT)
            pos += 2
        z_string: bytes | None = None
        if flags & _Z:
            n, pos = _read_leb128(data, pos)
            if pos + n > len(data):
                raise BitstreamError(f"base payload truncated: z string needs {n} bytes, "
                                     f"{len(data) - pos} left", offset=pos, unit=_UNIT)
            z_string = data[pos: pos + n]
            pos += n
        return cls(intra, qcode, w, h, lh, lw, z_string, data[pos:], version=ver, skip_block=skip_block,
                   motion_block=motion_block, motion_range=motion_range, same_q=same_q,
                   same_blocks=same_blocks)


class HeaderMemory:
    """What version-4 payloads inherit: the previous frame's quality code and the block sizes last
    sent in the intra period.  The encoder and the decoder each keep one and update it with every
    frame, so both sides agree on what a payload may leave out."""

    def __init__(self) -> None:
        self.previous_qcode: int | None = None
        self.skip_block = 0
        self.motion: tuple[int, int] = (0, 0)

    def compact(self, payload: BasePayload) -> BasePayload:
        """The encoder's side: ``payload`` (complete) with ``same_q`` / ``same_blocks`` set where
        the fields equal what the decoder will remember; records the frame."""
        if payload.version >= 4 and not payload.intra:
            has_blocks = bool(payload.skip_block or payload.motion_block)
            same_skip = payload.skip_block in (0, self.skip_block)
            same_motion = payload.motion_block == 0 \
                or (payload.motion_block, payload.motion_range) == self.motion
            payload = replace(payload, same_q=payload.qcode == self.previous_qcode,
                              same_blocks=has_blocks and same_skip and same_motion)
        self.record(payload)
        return payload

    def expand(self, payload: BasePayload) -> BasePayload:
        """The decoder's side: a payload from :meth:`BasePayload.from_bytes`, inherited fields filled
        in; records the frame."""
        if payload.same_q or payload.same_blocks:
            payload = payload.resolve(self.previous_qcode, self.skip_block, self.motion)
        self.record(payload)
        return payload

    def record(self, payload: BasePayload) -> None:
        self.previous_qcode = payload.qcode
        if payload.intra:
            self.skip_block, self.motion = 0, (0, 0)
        if payload.skip_block:
            self.skip_block = payload.skip_block
        if payload.motion_block:
            self.motion = (payload.motion_block, payload.motion_range)
