"""The feature layer's design: clip ranges, quantizer levels and histograms for one quality.

Calibration (:func:`design_from_features`, used by
:meth:`~vcodec.baselayer.features.codec.FeatureBase.calibrate`): a few frames
of the user's data give per-channel activation statistics (moment fits, see
:mod:`vcodec.baselayer.features.clipping`), the clip ranges for the requested
number of levels, the ECSQ levels and the integer histograms.  All of it is
stored in the layer's LAYER_CONFIG parameters (:meth:`FeatureDesign.to_params`;
arrays as base64 of little-endian float32/uint32), so a decoder needs nothing
but the stream and the detector's weights.  The decoder never recomputes a
design: it reads float32 ranges and levels and integer counts, builds its
CDFs with integer arithmetic and reconstructs element-wise, so decoded
features are bit-exact on every machine and thread count.

``--base-quality q`` in [0, 1] maps to ``N = round(2 ** (1 + 4 q))`` levels
(2, 4, 8, 16, 32 at q = 0, .25, .5, .75, 1) and the ECSQ multiplier
``lambda = LAMBDA_SCALE / (N - 1) ** 2`` (the high-rate slope of a uniform
quantizer of step 1/(N-1), so the ECSQ trades at the slope its own rate
sits at).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcodec.baselayer.features.clipping import ActivationModel, SideModel, fit_activation, optimal_clip
from vcodec.baselayer.features.entropy import CdfTables
from vcodec.baselayer.features.quantizer import assign, design_ecsq, uniform_levels
from vcodec.errors import BitstreamError, ConfigError, InputError

__all__ = [
    "PAYLOAD_VERSION",
    "LAMBDA_SCALE",
    "quality_to_levels",
    "FeatureDesign",
    "design_from_features",
    "normalise",
]

#: version of the layer's parameters and of its frame payloads (they change together)
PAYLOAD_VERSION = 1
LAMBDA_SCALE = 2.0 * np.log(2.0) / 12.0  # dD/dR of a uniform quantizer at high rate, per step^2
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
            raise BitstreamError(f"feature-base LAYER_CONFIG lacks parameter {exc}",
                                 unit="LAYER_CONFIG") from None
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
    us = [normalise(f, lo, hi) for f in feats]
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
    for a, b in zip(qs[:-1], qs[1:], strict=True):
        inter += np.bincount(a.ravel() * k + b.ravel(), minlength=k * k).reshape(k, k)
    if len(qs) < 2:
        # no consecutive pair: a prior that prefers "unchanged", spread like the intra histogram
        inter = np.tile(intra.sum(0), (k, 1)) + np.diag(intra.sum(0) * 4)
    stats = np.array([_channel_stats(m) for m in models], dtype=np.float32)
    return FeatureDesign(detector, c, act, float(quality), n, float(lam), quantizer, lo, hi, recon, bits,
                         intra.astype(np.uint32), inter.astype(np.uint32), stats, len(feats),
                         max_long_side, multiple)


def normalise(f: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """C x h x w features -> u in [0, 1] with per-channel ranges (float64, element-wise)."""
    lo64 = lo.astype(np.float64)[:, None, None]
    hi64 = hi.astype(np.float64)[:, None, None]
    return np.clip((f.astype(np.float64) - lo64) / (hi64 - lo64), 0.0, 1.0)
