"""The training-free "feature-base" layer: clip, quantize and entropy-code split features.

Encoding a frame: the picture is scaled (long side <= ``max_long_side``) and
padded to a multiple of 64 exactly like the learned base layer, the split
detector's front end gives ``F(x)`` (``C x H/8 x W/8``), every channel ``c``
is clipped to ``[lo_c, hi_c]``, normalised to ``u`` in [0, 1] and quantized
with the shared levels ``r_k`` (uniform, or ECSQ), and the indexes are
rANS-coded.

The parts, one module each:

* :mod:`vcodec.baselayer.features.design` -- calibration and the design a
  stream carries in its LAYER_CONFIG (clip ranges, levels, histograms);
* :mod:`vcodec.baselayer.features.coder` -- the frame payload layout and its
  encoder / decoder;
* this module -- :class:`FeatureBase`, the mode behind the base-layer
  protocol (detector, calibration state, designs per quality), and its
  factory.  The names of the other two are re-exported here (their home
  before the split).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcodec.baselayer.features.coder import FeatureDecoder, FeatureEncoder
from vcodec.baselayer.features.design import (
    LAMBDA_SCALE,
    PAYLOAD_VERSION,
    FeatureDesign,
    design_from_features,
    quality_to_levels,
)
from vcodec.baselayer.protocol import FEATURE_KIND
from vcodec.errors import ConfigError, InputError
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
    "design_from_features",
]


def feature_geometry(width: int, height: int, max_long_side: int, multiple: int) -> Any:
    """The base-layer geometry (scale to ``max_long_side``, pad to ``multiple``), as the learned mode
    uses it."""
    from vcodec.baselayer.geometry import BaseGeometry

    return BaseGeometry.for_size(width, height, max_long_side, multiple)


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
    default_quality = 0.5
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

    def trained_parts(self, detector: Any) -> list[Any]:
        """Nothing: the mode is designed from each stream's own frames, not trained (the
        detector is the same one every anchor runs)."""
        return []

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


class FeatureBaseFactory:
    """:class:`vcodec.baselayer.BaseLayerFactory` of the feature mode.

    ``for_encoding(model)``: ``model`` is the detector name (default
    ``vcodec-det``); the caller sets ``weights`` / calls ``calibrate``.
    ``for_decoding(config, model)``: everything comes from the LAYER_CONFIG;
    ``model`` may name the detector weights file.
    """

    kind = FEATURE_KIND

    def for_encoding(self, model: str | None, base_size: int | None = None, effort: str = "fast",
                     p_offset: float | None = None, p_deadzone: float | None = None,
                     tune: str = "default") -> FeatureBase:
        if effort != "fast":
            raise ConfigError(f"the feature base mode has one effort (fast); {effort!r} needs "
                              "--base-mode learned")
        for value, option in ((p_offset, "--base-p-offset"), (p_deadzone, "--base-deadzone"),
                              (None if tune == "default" else tune, "--base-tune")):
            if value is not None:
                raise ConfigError(f"the feature base mode codes every frame alike; {option} needs "
                                  "--base-mode learned")
        if base_size is None:
            return FeatureBase(model or "vcodec-det")
        from vcodec.baselayer.geometry import check_long_side

        check_long_side(base_size)
        return FeatureBase(model or "vcodec-det", max_long_side=base_size)

    def for_decoding(self, config: Any, model: str | None = None) -> FeatureBase:
        return FeatureBase.from_params(config.params, config.sha256.hex() if config.sha256 else "",
                                       weights=model)
