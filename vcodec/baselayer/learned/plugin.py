"""The learned base layer as a plug-in of the base-layer protocol (``kind = "learned-base"``).

Adapts :class:`vcodec.baselayer.learned.BaseCodec` to :class:`vcodec.baselayer.BaseLayer`
and registers its factory in :data:`vcodec.baselayer.BASE_MODES`; the protocol
package names this module in ``MODE_MODULES`` and imports it the first time a
learned layer is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcodec.baselayer.protocol import (
    BASE_MODES,
    LEARNED_KIND,
    BaseLayer,
    BaseLayerDecoder,
    BaseLayerEncoder,
    TrainedPart,
)
from vcodec.errors import BitstreamError, ConfigError, WeightsError
from vcodec.io.frame import Frame

if TYPE_CHECKING:
    import torch

    from vcodec.baselayer.learned.base_codec import BaseCodec
    from vcodec.baselayer.learned.coder import BaseDecoder, BaseEncoder
    from vcodec.baselayer.learned.geometry import BaseGeometry
    from vcodec.baselayer.learned.tools import CodingTools
    from vcodec.bitstream import LayerConfig
    from vcodec.detection.base import Detections, SplitDetector

__all__ = ["DEFAULT_BASE_MODELS", "LearnedBase", "LearnedBaseFactory", "default_base_model"]


#: shipped learned base models, in order of preference when none is named
DEFAULT_BASE_MODELS = ("base-yolox-nano-v3", "base-yolox-nano-v2", "base-vcodec-det-v2")


def default_base_model() -> str:
    """The id of the shipped base model to use when the user names none."""
    from vcodec.baselayer.learned import BASE_MODELS

    for model_id in DEFAULT_BASE_MODELS:
        if model_id in BASE_MODELS:
            return model_id
    raise WeightsError(
        f"no shipped base model is installed (looked for {', '.join(DEFAULT_BASE_MODELS)} in "
        f"vcodec/weights/); pass base_model= (--base-model) a .json/.pt file written by "
        "tools/train_base.py"
    )


class _LearnedEncoder:
    def __init__(self, enc: BaseEncoder) -> None:
        self._enc = enc

    def encode_frame(self, frame: Frame, intra: bool, picture: bool = True) -> tuple[bytes, Frame | None]:
        return self._enc.encode_frame(frame, intra=intra, reconstruct=picture)

    def set_quality(self, quality: float) -> None:
        self._enc.set_quality(quality)

    @property
    def last_decoded(self) -> torch.Tensor:
        if self._enc.last_y_hat is None:
            raise ConfigError("no frame coded yet: last_decoded exists after encode_frame")
        return self._enc.last_y_hat

    @property
    def last_geometry(self) -> BaseGeometry | None:
        return self._enc.last_geometry


class _LearnedDecoder:
    def __init__(self, dec: BaseDecoder) -> None:
        self._dec = dec
        self._size: tuple[int, int] | None = None

    def expect_size(self, width: int, height: int) -> None:
        """Refuse payloads of another picture size (the SEQUENCE_HEADER's) before decoding them."""
        self._size = (width, height)

    def decode_frame(self, payload: bytes, intra: bool) -> torch.Tensor:
        if self._size is not None:
            from vcodec.baselayer.learned.payload import BasePayload

            head = BasePayload.from_bytes(payload)  # header fields and string lengths only
            if head.has_size and (head.width, head.height) != self._size:
                raise BitstreamError(f"base payload describes a {head.width}x{head.height} picture but the "
                                     f"stream is {self._size[0]}x{self._size[1]}", offset=4,
                                     unit="base payload")
        return self._dec.decode_frame(payload, intra=intra)

    @property
    def last_geometry(self) -> BaseGeometry | None:
        return self._dec.last_geometry

    def reset(self) -> None:
        self._dec.reset()


class LearnedBase:
    """Adapter of :class:`vcodec.baselayer.learned.BaseCodec` to the :class:`BaseLayer` protocol."""

    kind = LEARNED_KIND
    has_picture = True
    variable_quality = True
    needs_calibration = False
    calibration_frames = 0

    def __init__(self, codec: BaseCodec, base_size: int | None = None, tools: CodingTools | None = None
                 ) -> None:
        self.codec = codec
        self.base_size = base_size
        self.tools = tools  # None: the coder's defaults
        self._detector_weights: str | Path | None = None
        self.codec_id: str = codec.model_id
        self.sha256: str = codec.sha256
        self.default_quality: float = codec.default_quality
        self.detector_name: str = codec.detector
        # (detector asked for, the one run on features)
        self._analytics: tuple[SplitDetector, SplitDetector] | None = None

    def layer_config(self, quality: float, intra_period: int) -> dict[str, Any]:
        return dict(self.codec.layer_config(quality, intra_period, self.tools, long_side=self.base_size))

    def encoder(self, quality: float, intra_period: int) -> BaseLayerEncoder:
        enc = self.codec.encoder(quality, intra_period, self.tools, long_side=self.base_size)
        return _LearnedEncoder(enc)

    def decoder(self) -> BaseLayerDecoder:
        return _LearnedDecoder(self.codec.decoder(long_side=self.base_size))

    def detect(self, decoded: torch.Tensor, detector: SplitDetector, geometry: BaseGeometry) -> Detections:
        return self.codec.detect(decoded, self.analytics_detector(detector), geometry)

    def analytics_detector(self, detector: SplitDetector) -> SplitDetector:
        """``detector`` with the back end adapted to this model's features when one ships for it."""
        if self._analytics is None or self._analytics[0] is not detector:
            from vcodec.detection.backends import for_base_layer

            adapted = for_base_layer(detector, self.codec_id, self.sha256, self.detector_name)
            self._analytics = (detector, adapted)
        return self._analytics[1]

    def reconstruct(self, decoded: torch.Tensor, geometry: BaseGeometry, *, bit_depth: int, matrix: str,
                    index: int) -> Frame | None:
        return self.codec.reconstruct(decoded, geometry, bit_depth, matrix, index)

    def set_detector_weights(self, weights: str | Path) -> None:
        """Coding does not need the detector; :meth:`build_detector` uses these weights by default."""
        self._detector_weights = weights

    def calibrate(self, frames: Iterable[Frame]) -> None:
        """Nothing to calibrate: the learned layer is ready from its weights."""

    def trained_parts(self, detector: SplitDetector) -> list[TrainedPart]:
        """The base model, and the back end adapted to its features when analytics with
        ``detector`` use one."""
        parts = [TrainedPart("base model", self.codec_id, self.codec.record, self.sha256)]
        from vcodec.detection.backends import find_backend

        backend = find_backend(self.codec_id, self.sha256)
        if backend is not None and self.analytics_detector(detector) is not detector:
            parts.append(TrainedPart("adapted back end", backend.name, backend.record.get("training", {}),
                                     backend.sha256))
        return parts

    def build_detector(self, weights: str | Path | None = None) -> SplitDetector:
        from vcodec.detection import get_detector
        from vcodec.detection.shipped import has_shipped_weights

        weights = weights if weights is not None else self._detector_weights
        if weights is None and not has_shipped_weights(self.detector_name):
            raise ConfigError(
                f"base model {self.codec_id!r} serves detector {self.detector_name!r}, whose weights are "
                f"not shipped with vcodec; pass detector_weights= (--detector-weights FILE)"
            )
        try:
            return get_detector(self.detector_name, weights)
        except WeightsError:
            if weights is None:
                raise
            from vcodec.detection.shipped import identify_weights

            raise ConfigError(f"base model {self.codec_id!r} serves detector {self.detector_name!r}, but "
                              f"{weights} holds {identify_weights(weights)}, not {self.detector_name} "
                              f"weights; "
                              f"omit the weights to use the shipped {self.detector_name}") from None


def _check_model_path(model: str | None) -> None:
    """A name that looks like a file must be one (else the registry's 'unknown id' would mislead)."""
    if model is None:
        return
    p = Path(model)
    if (p.suffix in (".json", ".pt") or "/" in model or os.sep in model) and not p.is_file():
        raise WeightsError(f"base model file {model} does not exist; give a .json/.pt written by "
                           "tools/train_base.py or a registered model id")


class LearnedBaseFactory:
    """Loads learned base models by id or path; checks the stream's weights hash."""

    kind = LEARNED_KIND

    def for_encoding(self, model: str | None, base_size: int | None = None, effort: str = "fast",
                     p_offset: float | None = None, p_deadzone: float | None = None,
                     tune: str = "default") -> BaseLayer:
        from dataclasses import replace

        from vcodec.baselayer.learned import BaseCodec, CodingTools
        from vcodec.baselayer.learned.geometry import check_long_side

        check_long_side(base_size)
        tools = CodingTools.for_effort(effort).tuned(tune)
        # explicit values win over the tune's; CodingTools checks them (a ConfigError naming the value)
        if p_offset is not None:
            tools = replace(tools, p_quality_offset=p_offset)
        if p_deadzone is not None:
            tools = replace(tools, p_deadzone=p_deadzone)
        _check_model_path(model)
        return LearnedBase(BaseCodec.from_weights(model or default_base_model()), base_size, tools)

    def for_decoding(self, config: LayerConfig, model: str | None = None) -> BaseLayer:
        from vcodec.baselayer.learned import BASE_MODELS, BaseCodec

        want = config.sha256.hex() if config.sha256 else None
        _check_model_path(model)
        if model is None:
            if config.codec not in BASE_MODELS:
                raise WeightsError(
                    f"the stream's base layer was coded with model {config.codec!r} (weights sha256 "
                    f"{want or 'not recorded'}), which is not installed (installed: "
                    f"{', '.join(BASE_MODELS.names()) or 'none'}); pass base_model= (--base-model) the "
                    f".json/.pt file of those weights"
                )
            model = config.codec
        size = config.params.get("max_long_side")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 64):
            raise ConfigError(f"the stream's base LAYER_CONFIG has an invalid working size max_long_side="
                              f"{size!r}; the stream is damaged")
        return LearnedBase(BaseCodec.from_weights(model, sha256=want), size)


if LEARNED_KIND not in BASE_MODES:
    BASE_MODES.register(LEARNED_KIND, LearnedBaseFactory())
