"""The base-layer protocol: what :class:`~vcodec.codec.Encoder` and :class:`~vcodec.codec.Decoder` need.

The end-to-end codec does not care how layer 0 is made, only that it can

* describe itself for the stream (a ``kind`` written into the layer's
  ``LAYER_CONFIG``, a codec id, a weights hash and a JSON parameter record),
* code frames one at a time into opaque payloads, giving back the coarse
  picture ``x_base`` when it has one (``None`` when it has none: the
  enhancement layer then codes full frames),
* decode payloads back into a *decoded state* (the learned codec's latent
  ``y_hat``; whatever a feature mode keeps) and run a detector on that state
  without pixels.

Two modes implement it: the learned codec of :mod:`vcodec.models`
(``kind = "learned-base"``, adapter below) and the training-free feature mode
of :mod:`vcodec.features` (``kind = "feature-base"``).  A mode registers a
:class:`BaseLayerFactory` in :data:`BASE_MODES` under its kind; the decoder
finds the factory from the kind in the stream, the encoder from a user-facing
name (``"learned"``, ``"features"``; see :data:`MODE_NAMES`).  Modules that
provide a kind are imported lazily the first time it is asked for
(:data:`MODE_MODULES`), so importing vcodec does not pay for them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vcodec.bitstream import LayerConfig
from vcodec.errors import BitstreamError, ConfigError, RegistryError, WeightsError
from vcodec.io.frame import Frame
from vcodec.registry import Registry

__all__ = [
    "BaseLayer",
    "BaseLayerEncoder",
    "BaseLayerDecoder",
    "BaseLayerFactory",
    "BASE_MODES",
    "MODE_NAMES",
    "MODE_MODULES",
    "LEARNED_KIND",
    "FEATURE_KIND",
    "get_base_factory",
    "kind_for_mode",
    "default_base_model",
    "LearnedBase",
    "LearnedBaseFactory",
]

LEARNED_KIND = "learned-base"
FEATURE_KIND = "feature-base"

#: user-facing mode name (``--base-mode``) -> LAYER_CONFIG kind
MODE_NAMES: dict[str, str] = {"learned": LEARNED_KIND, "features": FEATURE_KIND}
#: kind -> module whose import registers its factory (lazy: torch-heavy)
MODE_MODULES: dict[str, str] = {LEARNED_KIND: "vcodec.codec.base_layer", FEATURE_KIND: "vcodec.features"}


@runtime_checkable
class BaseLayerEncoder(Protocol):
    """Codes frames of one sequence in order (it holds its own temporal reference)."""

    def encode_frame(self, frame: Frame, intra: bool) -> tuple[bytes, Frame | None]:
        """One frame -> (payload, x_base or None). ``intra`` resets the temporal chain."""
        ...

    @property
    def last_decoded(self) -> Any:
        """The decoded state of the frame just coded (what the decoder will hold)."""
        ...

    def set_quality(self, quality: float) -> None:
        """Quality of the next frames (rate control); modes without ``variable_quality`` refuse."""
        ...

    @property
    def last_geometry(self) -> Any:
        """Geometry of the frame just coded (for :meth:`BaseLayer.detect`)."""
        ...


@runtime_checkable
class BaseLayerDecoder(Protocol):
    """Decodes payloads in order."""

    def decode_frame(self, payload: bytes, intra: bool) -> Any:
        """Payload -> decoded state; raises BitstreamError on a malformed payload."""
        ...

    @property
    def last_geometry(self) -> Any:
        """Geometry of the last decoded frame."""
        ...

    def reset(self) -> None:
        """Forget the temporal reference (after damage; decoding restarts at an intra frame)."""
        ...


@runtime_checkable
class BaseLayer(Protocol):
    """A ready base-layer model/mode: the stream description, coders and analytics."""

    #: LAYER_CONFIG kind ("learned-base", "feature-base")
    kind: str
    #: LAYER_CONFIG codec: the model id
    codec_id: str
    #: hex sha256 of the weights that make the payloads decodable ("" when none)
    sha256: str
    #: registry name of the detector the layer serves
    detector_name: str
    #: whether decoding gives a coarse picture x_base (else the enhancement codes full frames)
    has_picture: bool
    #: whether the quality may change from frame to frame (each payload carries its own)
    variable_quality: bool

    def layer_config(self, quality: float, intra_period: int) -> dict[str, Any]: ...

    def encoder(self, quality: float, intra_period: int) -> BaseLayerEncoder: ...

    def decoder(self) -> BaseLayerDecoder: ...

    def detect(self, decoded: Any, detector: Any, geometry: Any) -> Any:
        """Detections (boxes in source pixels) from a decoded state, no pixels involved."""
        ...

    def reconstruct(self, decoded: Any, geometry: Any, *, bit_depth: int, matrix: str, index: int
                    ) -> Frame | None:
        """The coarse picture x_base, or None for modes without one."""
        ...

    def build_detector(self, weights: str | Path | None = None) -> Any:
        """The detector this layer was made for (its back end runs on decoded states)."""
        ...


class BaseLayerFactory(Protocol):
    """Makes a :class:`BaseLayer` for encoding (from a user's choice) or decoding (from a stream).

    ``base_size``: the working size (long side in pixels) the layer codes at; None = the
    mode's default. It is recorded in LAYER_CONFIG, so decoding needs nothing but the stream.
    ``effort``: the encoder preset, ``"fast"`` or ``"slow"`` (modes without a slow path refuse it).
    """

    def for_encoding(self, model: str | None, base_size: int | None = None, effort: str = "fast"
                     ) -> BaseLayer: ...

    def for_decoding(self, config: LayerConfig, model: str | None = None) -> BaseLayer: ...


#: LAYER_CONFIG kind -> factory
BASE_MODES: Registry[BaseLayerFactory] = Registry("base-layer mode")


def kind_for_mode(mode: str) -> str:
    """``"learned"``/``"features"`` (or a kind itself) -> the LAYER_CONFIG kind."""
    if mode in MODE_NAMES:
        return MODE_NAMES[mode]
    if mode in MODE_NAMES.values() or mode in BASE_MODES:
        return mode
    raise ConfigError(f"unknown base mode {mode!r}; use one of {', '.join(MODE_NAMES)}")


def get_base_factory(kind: str) -> BaseLayerFactory:
    """The factory registered for ``kind``, importing the module that provides it if needed."""
    if kind not in BASE_MODES and kind in MODE_MODULES:
        try:
            importlib.import_module(MODE_MODULES[kind])
        except ModuleNotFoundError as exc:
            if exc.name != MODE_MODULES[kind]:
                raise
    try:
        return BASE_MODES.get(kind)
    except RegistryError:
        raise ConfigError(
            f"base layer kind {kind!r} is not available in this vcodec (known: "
            f"{', '.join(BASE_MODES.names()) or 'none'}); upgrade vcodec or install the module "
            f"{MODE_MODULES.get(kind, '?')}"
        ) from None


# -- the learned codec ---------------------------------------------------------------
#: shipped learned base models, in order of preference when none is named
DEFAULT_BASE_MODELS = ("base-yolox-nano-v2", "base-vcodec-det-v2")


def default_base_model() -> str:
    """The id of the shipped base model to use when the user names none."""
    from vcodec.models import BASE_MODELS

    for model_id in DEFAULT_BASE_MODELS:
        if model_id in BASE_MODELS:
            return model_id
    raise WeightsError(
        f"no shipped base model is installed (looked for {', '.join(DEFAULT_BASE_MODELS)} in "
        f"vcodec/weights/); pass base_model= (--base-model) a .json/.pt file written by "
        "tools/train_base.py"
    )


class _LearnedEncoder:
    def __init__(self, enc: Any) -> None:
        self._enc = enc

    def encode_frame(self, frame: Frame, intra: bool) -> tuple[bytes, Frame | None]:
        return self._enc.encode_frame(frame, intra=intra, reconstruct=True)

    def set_quality(self, quality: float) -> None:
        self._enc.set_quality(quality)

    @property
    def last_decoded(self) -> Any:
        return self._enc.last_y_hat

    @property
    def last_geometry(self) -> Any:
        return self._enc.last_geometry


class _LearnedDecoder:
    def __init__(self, dec: Any) -> None:
        self._dec = dec
        self._size: tuple[int, int] | None = None

    def expect_size(self, width: int, height: int) -> None:
        """Refuse payloads of another picture size (the SEQUENCE_HEADER's) before decoding them."""
        self._size = (width, height)

    def decode_frame(self, payload: bytes, intra: bool) -> Any:
        if self._size is not None:
            from vcodec.models.payload import BasePayload

            head = BasePayload.from_bytes(payload)  # header fields and string lengths only
            if head.has_size and (head.width, head.height) != self._size:
                raise BitstreamError(f"base payload describes a {head.width}x{head.height} picture but the "
                                     f"stream is {self._size[0]}x{self._size[1]}", offset=4,
                                     unit="base payload")
        return self._dec.decode_frame(payload, intra=intra)

    @property
    def last_geometry(self) -> Any:
        return self._dec.last_geometry

    def reset(self) -> None:
        self._dec.reset()


class LearnedBase:
    """Adapter of :class:`vcodec.models.BaseCodec` to the :class:`BaseLayer` protocol."""

    kind = LEARNED_KIND
    has_picture = True
    variable_quality = True

    def __init__(self, codec: Any, base_size: int | None = None, tools: Any = None) -> None:
        self.codec = codec
        self.base_size = base_size
        self.tools = tools  # vcodec.models.CodingTools (None: the coder's defaults)
        self.codec_id: str = codec.model_id
        self.sha256: str = codec.sha256
        self.detector_name: str = codec.detector
        self._analytics: tuple[Any, Any] | None = None  # (detector asked for, the one run on features)

    def layer_config(self, quality: float, intra_period: int) -> dict[str, Any]:
        return dict(self.codec.layer_config(quality, intra_period, self.tools, long_side=self.base_size))

    def encoder(self, quality: float, intra_period: int) -> BaseLayerEncoder:
        return _LearnedEncoder(self.codec.encoder(quality, intra_period, self.tools, long_side=self.base_size))

    def decoder(self) -> BaseLayerDecoder:
        return _LearnedDecoder(self.codec.decoder(long_side=self.base_size))

    def detect(self, decoded: Any, detector: Any, geometry: Any) -> Any:
        return self.codec.detect(decoded, self.analytics_detector(detector), geometry)

    def analytics_detector(self, detector: Any) -> Any:
        """``detector`` with the back end adapted to this model's features when one ships for it."""
        if self._analytics is None or self._analytics[0] is not detector:
            from vcodec.detection.backends import for_base_layer

            self._analytics = (detector, for_base_layer(detector, self.codec_id, self.sha256, self.detector_name))
        return self._analytics[1]

    def reconstruct(self, decoded: Any, geometry: Any, *, bit_depth: int, matrix: str, index: int
                    ) -> Frame | None:
        return self.codec.reconstruct(decoded, geometry, bit_depth, matrix, index)

    def build_detector(self, weights: str | Path | None = None) -> Any:
        from vcodec.detection import get_detector
        from vcodec.detection.shipped import has_shipped_weights

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
                              f"{weights} holds {identify_weights(weights)}, not {self.detector_name} weights; "
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

    def for_encoding(self, model: str | None, base_size: int | None = None, effort: str = "fast"
                     ) -> BaseLayer:
        from vcodec.models import BaseCodec, CodingTools
        from vcodec.models.base_codec import check_long_side

        check_long_side(base_size)
        tools = CodingTools(effort=effort)
        _check_model_path(model)
        return LearnedBase(BaseCodec.from_weights(model or default_base_model()), base_size, tools)

    def for_decoding(self, config: LayerConfig, model: str | None = None) -> BaseLayer:
        from vcodec.models import BASE_MODELS, BaseCodec

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
