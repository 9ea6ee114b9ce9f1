"""Frame payloads of the feature layer: quantize and rANS-code split features, and back.

Indexes are rANS-coded with the design's integer tables:

* intra frames: one static histogram per channel;
* P-frames: one static histogram per *previous decoded index* at the same
  position (the histogram conditioned on the reference frame; measured on
  the cars clip at 4/8/16 levels this costs 0.71/1.10/1.57 bits/element
  against 1.28/1.89/2.53 for per-channel intra tables and 0.83/1.27/1.77
  for coding the index difference).

Payload of one frame (little-endian)::

    0  1  payload version (1)
    1  1  flags: bit 0 = intra
    2  2  source width      4  2  source height
    6  2  feature height    8  2  feature width
    10 4  L = length of the rANS string, then L bytes
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vcodec.baselayer.features.design import PAYLOAD_VERSION, FeatureDesign, normalise
from vcodec.baselayer.features.entropy import decode_indexes, encode_indexes
from vcodec.baselayer.features.quantizer import assign
from vcodec.errors import BitstreamError, ConfigError, InputError
from vcodec.io.frame import Frame

if TYPE_CHECKING:
    from vcodec.baselayer.features.codec import FeatureBase

__all__ = ["FeatureEncoder", "FeatureDecoder"]

_HEAD = struct.Struct("<BBHHHHI")


def _tables(q_prev: np.ndarray | None, c: int, shape: tuple[int, int]) -> np.ndarray:
    """CDF table number of every element: channel (intra) or C + previous index (P)."""
    h, w = shape
    if q_prev is None:
        return np.repeat(np.arange(c, dtype=np.int64), h * w)
    return c + q_prev.astype(np.int64).ravel()


class FeatureEncoder:
    """Codes frames in order; holds the previous decoded indexes as reference."""

    def __init__(self, base: FeatureBase, design: FeatureDesign, intra_period: int = 32) -> None:
        if not isinstance(intra_period, int) or intra_period < 0:
            raise ConfigError(f"intra period {intra_period!r} is invalid; use an integer >= 0")
        self.base = base
        self.design = design
        self.intra_period = intra_period
        self._cdf = design.cdf_tables()
        self._table = design.table()
        self._recon = design.recon.astype(np.float64)
        self._bits = design.decision_bits.astype(np.float64)
        self.reference: np.ndarray | None = None
        self.last_decoded: torch.Tensor | None = None
        self.last_geometry: Any = None
        self.last_indexes: np.ndarray | None = None
        self.last_bits_per_element = 0.0

    def set_quality(self, quality: float) -> None:
        raise ConfigError("the feature base mode codes one quality per stream (its quantiser is designed "
                          "for it at calibration); rate control needs --base-mode learned")

    def quantize(self, features: np.ndarray) -> np.ndarray:
        """C x h x w features -> uint8/uint16 indexes (the encoder's decision rule)."""
        d = self.design
        if features.shape[0] != d.channels:
            raise InputError(f"features have {features.shape[0]} channels, the layer {d.channels}")
        u = normalise(features, d.lo, d.hi)
        return assign(u, self._recon, self._bits, d.lam if d.quantizer == "ecsq" else 0.0)

    def dequantize(self, q: np.ndarray) -> torch.Tensor:
        c = np.arange(q.shape[0])[:, None, None]
        return torch.from_numpy(self._table[c, q]).unsqueeze(0)

    def encode_features(self, features: np.ndarray, intra: bool, geom: Any) -> bytes:
        if not intra and self.reference is None:
            raise ConfigError("the first frame (or the first after a reset) must be intra")
        q = self.quantize(features)
        if not intra and self.reference is not None and self.reference.shape != q.shape:
            raise InputError("frame size differs from the reference frame; code an intra frame")
        c, h, w = q.shape
        data = encode_indexes(q.ravel(), _tables(None if intra else self.reference, c, (h, w)), self._cdf)
        payload = _HEAD.pack(PAYLOAD_VERSION, 1 if intra else 0, geom.width, geom.height, h, w,
                             len(data)) + data
        self.reference = q
        self.last_indexes = q
        self.last_decoded = self.dequantize(q)
        self.last_geometry = geom
        self.last_bits_per_element = 8.0 * len(payload) / q.size
        return payload

    def encode_frame(self, frame: Frame, intra: bool, picture: bool = True) -> tuple[bytes, Frame | None]:
        """``picture`` is the protocol's: this mode has no picture to make, so it changes nothing."""
        features, geom = self.base.front(frame)
        return self.encode_features(features, intra, geom), None

    def reset(self) -> None:
        self.reference = None


class FeatureDecoder:
    """Decodes payloads in order into 1 x C x h x w float32 features."""

    def __init__(self, base: FeatureBase, design: FeatureDesign) -> None:
        self.base = base
        self.design = design
        self._cdf = design.cdf_tables()
        self._table = design.table()
        self.reference: np.ndarray | None = None
        self.last_geometry: Any = None
        self.last_indexes: np.ndarray | None = None
        self.expected_size: tuple[int, int] | None = None

    def expect_size(self, width: int, height: int) -> None:
        """Refuse payloads of another picture size (the SEQUENCE_HEADER's) before decoding them."""
        self.expected_size = (width, height)

    def decode_frame(self, payload: bytes, intra: bool | None = None) -> torch.Tensor:
        data = bytes(payload)
        if len(data) < _HEAD.size:
            raise BitstreamError(f"feature payload of {len(data)} bytes is shorter than its "
                                 f"{_HEAD.size}-byte header", unit="feature payload")
        ver, flags, width, height, h, w, n = _HEAD.unpack_from(data, 0)
        if ver != PAYLOAD_VERSION:
            raise BitstreamError(f"feature payload version {ver} is not supported (this decoder reads "
                                 f"{PAYLOAD_VERSION}); upgrade vcodec", offset=0, unit="feature payload")
        if flags & ~1:
            raise BitstreamError(f"feature payload has reserved flag bits set (0x{flags:02x})", offset=1,
                                 unit="feature payload")
        is_intra = bool(flags & 1)
        if intra is not None and bool(intra) != is_intra:
            raise BitstreamError(f"unit says intra={bool(intra)} but its feature payload says "
                                 f"intra={is_intra}", unit="feature payload")
        if self.expected_size is not None and (width, height) != self.expected_size:
            raise BitstreamError(f"feature payload describes a {width}x{height} picture but the stream is "
                                 f"{self.expected_size[0]}x{self.expected_size[1]}", offset=2,
                                 unit="feature payload")
        if _HEAD.size + n != len(data):
            raise BitstreamError(f"feature payload declares {n} coded bytes but carries "
                                 f"{len(data) - _HEAD.size}", offset=10, unit="feature payload")
        try:
            geom = self.base.geometry(width, height)
        except InputError as exc:
            raise BitstreamError(f"feature payload frame size is invalid: {exc}", offset=2,
                                 unit="feature payload") from None
        if (geom.padded_height // 8, geom.padded_width // 8) != (h, w):
            raise BitstreamError(f"feature payload size {h}x{w} does not match frame {width}x{height}",
                                 offset=6, unit="feature payload")
        c = self.design.channels
        if not is_intra:
            if self.reference is None:
                raise BitstreamError("P-frame without a reference: decoding must start at an intra frame",
                                     unit="feature payload")
            if self.reference.shape != (c, h, w):
                raise BitstreamError("P-frame size differs from its reference frame", unit="feature payload")
        tables = _tables(None if is_intra else self.reference, c, (h, w))
        q = decode_indexes(data[_HEAD.size:], tables, self._cdf).reshape(c, h, w)
        self.reference = q
        self.last_indexes = q
        self.last_geometry = geom
        ch = np.arange(c)[:, None, None]
        return torch.from_numpy(self._table[ch, q]).unsqueeze(0)

    def reset(self) -> None:
        self.reference = None
