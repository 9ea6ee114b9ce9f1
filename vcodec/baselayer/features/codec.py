"""The training-free "feature-base" layer: clip, quantize and entropy-code split features.

Encoding a frame: the picture is scaled (long side <= ``max_long_side``) and
padded to a multiple of 64 exactly like the learned base layer, the split
detector's front end gives ``F(x)`` (``C x H/8 x W/8``), every channel ``c``
is clipped to ``[lo_c, hi_c]``, normalised to ``u`` in [0, 1] and quantized
with the shared levels ``r_k`` (uniform, or ECSQ), and the indexes are
rANS-coded:

* intra frames: one static histogram per channel;
* P-frames: one static histogram per *previous decoded index* at the same
  position (the histogram conditioned on the reference frame; measured on
  the cars clip at 4/8/16 levels this costs 0.71/1.10/1.57 bits/element
  against 1.28/1.89/2.53 for per-channel intra tables and 0.83/1.27/1.77
  for coding the index difference).

Calibration (:meth:`FeatureBase.calibrate`): a few frames of the user's data
give per-channel activation statistics (moment fits, see
:mod:`vcodec.baselayer.features.clipping`), the clip ranges for the requested number
of levels, the ECSQ levels and the integer histograms.  All of it is stored
in the layer's LAYER_CONFIG parameters (arrays as base64 of little-endian
float32/uint32), so a decoder needs nothing but the stream and the
detector's weights.  The decoder never recomputes a design: it reads float32
ranges and levels and integer counts, builds its CDFs with integer
arithmetic and reconstructs element-wise, so decoded features are bit-exact
on every machine and thread count.

Payload of one frame (little-endian)::

    0  1  payload version (1)
    1  1  flags: bit 0 = intra
    2  2  source width      4  2  source height
    6  2  feature height    8  2  feature width
    10 4  L = length of the rANS string, then L bytes

``--base-quality q`` in [0, 1] maps to ``N = round(2 ** (1 + 4 q))`` levels
(2, 4, 8, 16, 32 at q = 0, .25, .5, .75, 1) and the ECSQ multiplier
``lambda = LAMBDA_SCALE / (N - 1) ** 2`` (the high-rate slope of a uniform
quantizer of step 1/(N-1), so the ECSQ trades at the slope its own rate
sits at).
"""

from __future__ import annotations

import base64
import copy
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcodec.baselayer.protocol import FEATURE_KIND
from vcodec.errors import BitstreamError, ConfigError, InputError
from vcodec.baselayer.features.clipping import ActivationModel, SideModel, fit_activation, optimal_clip
from vcodec.baselayer.features.entropy import CdfTables, decode_indexes, encode_indexes
from vcodec.baselayer.features.quantizer import assign, design_ecsq, uniform_levels
from vcodec.hashing import file_sha256 as _file_sha256
from vcodec.io.frame import Frame

__all__ = [
    "FEATURE_KIND",
    "PAYLOAD_VERSION",
    "LAMBDA_SCALE",
    "quality_to_levels",
    "FeatureDesign",
    "FeatureBase",
    "FeatureEncoder",
    "FeatureDecoder",
    "FeatureBaseFactory",
    "feature_geometry",
]

PAYLOAD_VERSION = 1
LAMBDA_SCALE = 2.0 * np.log(2.0) / 12.0  # dD/dR of a uniform quantizer at high rate, per step^2
_HEAD = struct.Struct("<BBHHHHI")
_STATS = 7  # per channel: p_pos, mean_pos, var_pos, p_neg, mean_neg, var_neg, bound


def quality_to_levels(quality: float) -> tuple[int, float]:
    """``--base-quality`` in [0, 1] -> (levels N, ECSQ lambda in normalised units)."""
    if not isinstance(quality, (int, float)) or not 0.0 <= float(quality) <= 1.0:
        raise ConfigError(f"base quality {quality!r} is out of range; use a number in [0, 1]")
    n = int(round(2.0 ** (1.0 + 4.0 * float(quality))))
    return n, float(LAMBDA_SCALE / (n - 1) ** 2)


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _unb64(text: Any, dtype: str, count: int, what: str) -> np.ndarray:
    try:
        raw = base64.b64decode(str(text).encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise BitstreamError(f"feature-base parameter {what!r} is not valid base64 ({exc})",
                             unit="LAYER_CONFIG") from None
    a = np.frombuffer(raw, dtype=dtype)
    if a.size != count:
        raise BitstreamError(f"feature-base parameter {what!r} holds {a.size} values, expected {count}",
                             unit="LAYER_CONFIG")
    return a.copy()


def feature_geometry(width: int, height: int, max_long_side: int, multiple: int) -> Any:
    """The learned base layer's geometry (scale to ``max_long_side``, pad to ``multiple``)."""
    from vcodec.baselayer.learned.base_codec import BaseGeometry

    return BaseGeometry.for_size(width, height, max_long_side, multiple)


# -- the design: everything a decoder needs ---------------------------------------------------
@dataclass
class FeatureDesign:
    """Clip ranges, levels and histograms for one quality (what LAYER_CONFIG carries)."""

    detector: str
    channels: int
    activation: str
    quality: float
    levels_requested: int
    lam: float
    quantizer: str
    lo: np.ndarray  # (C,) float32
    hi: np.ndarray  # (C,) float32
    recon: np.ndarray  # (K,) float32 levels in [0, 1]
    decision_bits: np.ndarray  # (K,) float32 code lengths used by the encoder's decision
    intra_counts: np.ndarray  # (C, K) uint32
    inter_counts: np.ndarray  # (K, K) uint32: row = previous index
    stats: np.ndarray  # (C, 7) float32 calibration statistics
    calibration_frames: int
    max_long_side: int = 832
    multiple: int = 64

    @property
    def num_levels(self) -> int:
        return int(self.recon.size)

    def table(self) -> np.ndarray:
        """(C, K) float32 reconstruction values ``lo + r_k (hi - lo)`` (element-wise, exact)."""
        lo = self.lo.astype(np.float64)[:, None]
        hi = self.hi.astype(np.float64)[:, None]
        return (lo + self.recon.astype(np.float64)[None, :] * (hi - lo)).astype(np.float32)

    def cdf_tables(self) -> CdfTables:
        return CdfTables(np.concatenate([self.intra_counts, self.inter_counts], axis=0).astype(np.int64))

    def models(self) -> list[ActivationModel]:
        """The per-channel fitted activation models (from the stored statistics)."""
        out = []
        for row in self.stats.astype(np.float64):
            pos = SideModel("gamma", row[0], row[1], row[2])
            neg = None
            if self.activation != "relu":
                fam = "beta" if self.activation == "silu" else "gamma"
                neg = SideModel(fam, row[3], row[4], row[5], row[6])
            out.append(ActivationModel(self.activation, pos, neg))
        return out

    def to_params(self, intra_period: int) -> dict[str, Any]:
        return {
            "detector": self.detector, "channels": self.channels, "activation": self.activation,
            "base_quality": self.quality, "levels_requested": self.levels_requested,
            "levels": self.num_levels, "lambda": self.lam, "quantizer": self.quantizer,
            "intra_period": intra_period, "payload_version": PAYLOAD_VERSION,
            "max_long_side": self.max_long_side, "multiple": self.multiple,
            "calibration_frames": self.calibration_frames,
            "lo": _b64(self.lo, "<f4"), "hi": _b64(self.hi, "<f4"), "recon": _b64(self.recon, "<f4"),
            "decision_bits": _b64(self.decision_bits, "<f4"),
            "intra_counts": _b64(self.intra_counts, "<u4"), "inter_counts": _b64(self.inter_counts, "<u4"),
            "stats": _b64(self.stats, "<f4"),
        }

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> FeatureDesign:
        try:
            c, k = int(p["channels"]), int(p["levels"])
            if p.get("payload_version") != PAYLOAD_VERSION:
                raise BitstreamError(f"feature-base payload version {p.get('payload_version')} is not "
                                     f"supported (this decoder reads {PAYLOAD_VERSION}); upgrade vcodec",
                                     unit="LAYER_CONFIG")
            if not (1 <= c <= 65535 and 2 <= k <= 256):
                raise BitstreamError(f"feature-base layer has {c} channels and {k} levels; expected "
                                     f"1..65535 and 2..256", unit="LAYER_CONFIG")
            d = cls(
                str(p["detector"]), c, str(p["activation"]), float(p["base_quality"]),
                int(p["levels_requested"]), float(p["lambda"]), str(p["quantizer"]),
                _unb64(p["lo"], "<f4", c, "lo"), _unb64(p["hi"], "<f4", c, "hi"),
                _unb64(p["recon"], "<f4", k, "recon"), _unb64(p["decision_bits"], "<f4", k, "decision_bits"),
                _unb64(p["intra_counts"], "<u4", c * k, "intra_counts").reshape(c, k),
                _unb64(p["inter_counts"], "<u4", k * k, "inter_counts").reshape(k, k),
                _unb64(p["stats"], "<f4", c * _STATS, "stats").reshape(c, _STATS),
                int(p["calibration_frames"]), int(p["max_long_side"]), int(p["multiple"]),
            )
        except KeyError as exc:
            raise BitstreamError(f"feature-base LAYER_CONFIG lacks parameter {exc}", unit="LAYER_CONFIG") from None
        except (TypeError, ValueError) as exc:
            raise BitstreamError(f"feature-base LAYER_CONFIG has a malformed parameter: {exc}",
                                 unit="LAYER_CONFIG") from None
        if not (np.isfinite(d.lo).all() and np.isfinite(d.hi).all() and (d.hi > d.lo).all()):
            raise BitstreamError("feature-base clip ranges are not finite with hi > lo", unit="LAYER_CONFIG")
        return d


# -- calibration -------------------------------------------------------------------------------
def _channel_stats(model: ActivationModel) -> list[float]:
    neg = model.neg
    return [model.pos.p, model.pos.mean, model.pos.var,
            0.0 if neg is None else neg.p, 0.0 if neg is None else neg.mean,
            0.0 if neg is None else neg.var, 0.0 if neg is None else neg.bound]


def design_from_features(
    features: Sequence[np.ndarray], detector: str, quality: float, *, activation: str | None = None,
    quantizer: str = "ecsq", max_long_side: int = 832, multiple: int = 64,
) -> FeatureDesign:
    """Calibrate on consecutive frames' split features (each ``C x h x w``) for one quality."""
    if not features:
        raise InputError("calibration needs at least one frame")
    if quantizer not in ("ecsq", "uniform"):
        raise ConfigError(f"quantizer {quantizer!r} must be 'ecsq' or 'uniform'")
    feats = [np.asarray(f, dtype=np.float32) for f in features]
    c = feats[0].shape[0]
    if any(f.ndim != 3 or f.shape[0] != c for f in feats):
        raise InputError("calibration features must all be C x h x w with the same C")
    n, lam = quality_to_levels(quality)
    per_ch = [np.concatenate([f[i].ravel() for f in feats]) for i in range(c)]
    from vcodec.baselayer.features.clipping import guess_activation

    act = activation or guess_activation(np.array([v.min() for v in per_ch]))
    models = [fit_activation(v, act) for v in per_ch]
    ranges = [optimal_clip(m, n) for m in models]
    lo = np.array([r[0] for r in ranges], dtype=np.float32)
    hi = np.array([r[1] for r in ranges], dtype=np.float32)
    hi = np.maximum(hi, lo + np.float32(1e-6))  # a dead channel still needs a non-empty range
    us = [_normalise(f, lo, hi) for f in feats]
    if quantizer == "ecsq":
        pooled = np.concatenate([u.ravel() for u in us])
        des = design_ecsq(pooled, n, lam)
        recon, bits = des.levels, des.lengths
    else:
        recon, bits, lam = uniform_levels(n), np.zeros(n), 0.0
    recon = recon.astype(np.float32)
    bits = np.minimum(bits, 64.0).astype(np.float32)
    k = recon.size
    qs = [assign(u, recon.astype(np.float64), bits.astype(np.float64), lam) for u in us]
    intra = np.zeros((c, k), dtype=np.int64)
    for q in qs:
        for i in range(c):
            intra[i] += np.bincount(q[i].ravel(), minlength=k)
    inter = np.zeros((k, k), dtype=np.int64)
    for a, b in zip(qs[:-1], qs[1:]):
        inter += np.bincount(a.ravel() * k + b.ravel(), minlength=k * k).reshape(k, k)
    if len(qs) < 2:
        # no consecutive pair: a prior that prefers "unchanged", spread like the intra histogram
        inter = np.tile(intra.sum(0), (k, 1)) + np.diag(intra.sum(0) * 4)
    stats = np.array([_channel_stats(m) for m in models], dtype=np.float32)
    return FeatureDesign(detector, c, act, float(quality), n, float(lam), quantizer, lo, hi, recon, bits,
                         intra.astype(np.uint32), inter.astype(np.uint32), stats, len(feats),
                         max_long_side, multiple)


def _normalise(f: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """C x h x w features -> u in [0, 1] with per-channel ranges (float64, element-wise)."""
    lo64 = lo.astype(np.float64)[:, None, None]
    hi64 = hi.astype(np.float64)[:, None, None]
    return np.clip((f.astype(np.float64) - lo64) / (hi64 - lo64), 0.0, 1.0)


# -- the base layer ----------------------------------------------------------------------------
class FeatureBase:
    """The feature mode behind the :class:`vcodec.baselayer.BaseLayer` protocol.

    For encoding: ``FeatureBase(detector_name)``, then :meth:`calibrate` on
    the first frames, then ``layer_config``/``encoder``.  For decoding:
    :meth:`from_params` with the stream's LAYER_CONFIG parameters.
    """

    kind = FEATURE_KIND
    has_picture = False
    variable_quality = False
    needs_calibration = True

    def __init__(self, detector_name: str, detector: Any = None, weights: str | Path | None = None, *,
                 quantizer: str = "ecsq", calibration_frames: int = 8, max_long_side: int = 832,
                 multiple: int = 64, activation: str | None = None) -> None:
        from vcodec.detection import DETECTORS

        if detector_name not in DETECTORS:
            raise ConfigError(f"detector {detector_name!r} is not registered; use one of "
                              f"{', '.join(DETECTORS.names())}")
        if calibration_frames < 1:
            raise ConfigError(f"calibration_frames must be >= 1, got {calibration_frames}")
        self.detector_name = detector_name
        self.codec_id = f"features-{detector_name}"
        self.weights = weights
        self.sha256 = _file_sha256(weights) if weights is not None and Path(weights).is_file() else ""
        self._detector = detector
        self.quantizer = quantizer
        self.calibration_frames = int(calibration_frames)
        self.max_long_side = int(max_long_side)
        self.multiple = int(multiple)
        self.activation = activation
        self._calib: list[np.ndarray] | None = None
        self._designs: dict[float, FeatureDesign] = {}
        self._fixed: FeatureDesign | None = None  # set when built from a stream
        self._front64: tuple[Any, Any] | None = None  # (detector, its float64 copy)

    # -- detector ------------------------------------------------------------------
    def set_detector_weights(self, weights: str | Path) -> None:
        """Use the user's detector weights (third-party detectors); the stream records their sha256."""
        if not Path(weights).is_file():
            raise InputError(f"{weights}: detector weights file not found")
        self.weights = weights
        self.sha256 = _file_sha256(weights)
        self._detector = None
        self._designs.clear()

    def build_detector(self, weights: str | Path | None = None) -> Any:
        from vcodec.detection import get_detector

        w = weights if weights is not None else self.weights
        if w is None and self.detector_name != "vcodec-det":
            raise ConfigError(
                f"the feature base layer serves detector {self.detector_name!r}, whose weights are not "
                f"shipped with vcodec; pass its weights file (--weights FILE)")
        if self.sha256 and w is not None and Path(w).is_file() and _file_sha256(w) != self.sha256:
            from vcodec.errors import WeightsMismatchError

            raise WeightsMismatchError(
                f"the stream's features were made with {self.detector_name} weights of sha256 "
                f"{self.sha256}, but {w} has another hash; use the weights the stream was coded with")
        return get_detector(self.detector_name, w)

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = self.build_detector()
        return self._detector

    # -- features ------------------------------------------------------------------
    def geometry(self, width: int, height: int) -> Any:
        return feature_geometry(width, height, self.max_long_side, self.multiple)

    def front(self, frame: Frame) -> tuple[np.ndarray, Any]:
        """(C x h x w float32 split features, BaseGeometry) of one frame."""
        from vcodec.detection.base import apply_geometry, to_bgr

        geom = self.geometry(frame.width, frame.height)
        det = self.detector
        x = det.to_tensor(apply_geometry(to_bgr(frame), geom.to_detector()))
        if self._front64 is None or self._front64[0] is not det:
            # float32 convolutions round differently with the thread count, and the quantiser would
            # then code other indexes on another machine: a float64 copy, rounded to 2**-12
            self._front64 = (det, copy.deepcopy(det).double().eval())
        with torch.no_grad():
            f = self._front64[1].front(x.double())
        if f.shape[1] != det.split_channels:
            raise ConfigError(f"detector {self.detector_name!r} gave {f.shape[1]} split channels, "
                              f"expected {det.split_channels}")
        return (torch.round(f[0] * 4096.0) / 4096.0).float().cpu().numpy(), geom

    # -- calibration and the stream description -----------------------------------
    def calibrate(self, frames: Iterable[Frame]) -> None:
        """Collect split features of (up to ``calibration_frames``) consecutive frames."""
        feats = []
        for frame in frames:
            feats.append(self.front(frame)[0])
            if len(feats) >= self.calibration_frames:
                break
        if not feats:
            raise InputError("calibration of the feature base layer needs at least one frame")
        self._calib = feats
        self._designs.clear()

    def calibrate_features(self, features: Sequence[np.ndarray]) -> None:
        """Calibrate on precomputed split features (C x h x w each, consecutive frames)."""
        if not features:
            raise InputError("calibration of the feature base layer needs at least one frame")
        self._calib = [np.asarray(f, dtype=np.float32) for f in features]
        self._designs.clear()

    def design(self, quality: float) -> FeatureDesign:
        hit = self._designs.get(float(quality))
        if hit is not None:
            return hit
        if self._calib is None:
            raise ConfigError("the feature base layer is not calibrated: call calibrate(first_frames) "
                              "before layer_config()/encoder()")
        d = design_from_features(self._calib, self.detector_name, quality, activation=self.activation,
                                 quantizer=self.quantizer, max_long_side=self.max_long_side,
                                 multiple=self.multiple)
        self._designs[float(quality)] = d
        return d

    def layer_config(self, quality: float, intra_period: int) -> dict[str, Any]:
        return self.design(quality).to_params(intra_period)

    @classmethod
    def from_params(cls, params: dict[str, Any], sha256: str = "", weights: str | Path | None = None,
                    detector: Any = None) -> FeatureBase:
        d = FeatureDesign.from_params(params)
        fb = cls(d.detector, detector, weights, quantizer=d.quantizer, max_long_side=d.max_long_side,
                 multiple=d.multiple, activation=d.activation)
        fb.sha256 = sha256 or fb.sha256
        fb._designs[d.quality] = d
        fb._fixed = d
        return fb

    def _stream_design(self, quality: float | None = None) -> FeatureDesign:
        if self._fixed is not None:
            return self._fixed
        if quality is None:
            if len(self._designs) == 1:
                return next(iter(self._designs.values()))
            raise ConfigError("call layer_config(quality, ...) before decoding with a calibrated layer")
        return self.design(quality)

    # -- coders and analytics ---------------------------------------------------------
    def encoder(self, quality: float, intra_period: int = 32) -> FeatureEncoder:
        return FeatureEncoder(self, self._stream_design(quality), intra_period)

    def decoder(self) -> FeatureDecoder:
        return FeatureDecoder(self, self._stream_design())

    def detect(self, decoded: torch.Tensor, detector: Any, geometry: Any) -> Any:
        """The detector's back end on decoded features; boxes in source pixels."""
        if int(detector.split_channels) != int(decoded.shape[1]):
            raise ConfigError(f"detector {getattr(detector, 'name', detector)!r} splits at "
                              f"{detector.split_channels} channels but the stream carries "
                              f"{decoded.shape[1]}-channel features of {self.detector_name!r}")
        with torch.no_grad():
            return detector.back(decoded, geometry.to_detector())[0]

    def reconstruct(self, decoded: Any, geometry: Any, *, bit_depth: int = 8, matrix: str = "bt601",
                    index: int = 0) -> Frame | None:
        return None  # features only: there is no picture


# -- encoder / decoder ------------------------------------------------------------------------
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
        u = _normalise(features, d.lo, d.hi)
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

    def encode_frame(self, frame: Frame, intra: bool) -> tuple[bytes, Frame | None]:
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


class FeatureBaseFactory:
    """:class:`vcodec.baselayer.BaseLayerFactory` of the feature mode.

    ``for_encoding(model)``: ``model`` is the detector name (default
    ``vcodec-det``); the caller sets ``weights`` / calls ``calibrate``.
    ``for_decoding(config, model)``: everything comes from the LAYER_CONFIG;
    ``model`` may name the detector weights file.
    """

    kind = FEATURE_KIND

    def for_encoding(self, model: str | None, base_size: int | None = None, effort: str = "fast"
                     ) -> FeatureBase:
        if effort != "fast":
            raise ConfigError(f"the feature base mode has one effort (fast); {effort!r} needs --base-mode learned")
        if base_size is None:
            return FeatureBase(model or "vcodec-det")
        from vcodec.baselayer.learned.base_codec import check_long_side

        check_long_side(base_size)
        return FeatureBase(model or "vcodec-det", max_long_side=base_size)

    def for_decoding(self, config: Any, model: str | None = None) -> FeatureBase:
        return FeatureBase.from_params(config.params, config.sha256.hex() if config.sha256 else "",
                                       weights=model)
