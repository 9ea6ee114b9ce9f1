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

Two modes implement it, each a plug-in beneath this protocol that imports it
(never the other way round): the learned codec (``kind = "learned-base"``,
:mod:`vcodec.baselayer.learned.plugin`) and the training-free feature mode
(``kind = "feature-base"``, :mod:`vcodec.baselayer.features`).  A mode registers a
:class:`BaseLayerFactory` in :data:`BASE_MODES` under its kind; the decoder
finds the factory from the kind in the stream, the encoder from a user-facing
name (``"learned"``, ``"features"``; see :data:`MODE_NAMES`).  Modules that
provide a kind are imported lazily the first time it is asked for
(:data:`MODE_MODULES`), so importing vcodec does not pay for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from vcodec.errors import ConfigError, RegistryError
from vcodec.io.frame import Frame
from vcodec.registry import Registry

if TYPE_CHECKING:  # types only: importing them would load torch for every vcodec command
    import torch

    from vcodec.baselayer.geometry import BaseGeometry
    from vcodec.bitstream import LayerConfig
    from vcodec.detection.base import Detections, SplitDetector

__all__ = [
    "BaseLayer",
    "BaseLayerEncoder",
    "BaseLayerDecoder",
    "BaseLayerFactory",
    "BASE_MODES",
    "MODE_NAMES",
    "MODE_MODULES",
    "LEARNED_KIND",
    "TrainedPart",
    "FEATURE_KIND",
    "get_base_factory",
    "kind_for_mode",
]

LEARNED_KIND = "learned-base"
FEATURE_KIND = "feature-base"

#: user-facing mode name (``--base-mode``) -> LAYER_CONFIG kind
MODE_NAMES: dict[str, str] = {"learned": LEARNED_KIND, "features": FEATURE_KIND}
#: kind -> module whose import registers its factory (lazy: torch-heavy)
MODE_MODULES: dict[str, str] = {
    LEARNED_KIND: "vcodec.baselayer.learned.plugin",
    FEATURE_KIND: "vcodec.baselayer.features",
}


class TrainedPart(NamedTuple):
    """A learned part of a base layer and the training record shipped with its weights (which
    clips and frames it learned from: :mod:`vcodec.eval.training` checks evaluations against it)."""

    #: what the part does ("base model", "adapted back end")
    role: str
    #: its weights' id (``vcodec/weights/<model>.json``)
    model: str
    #: the ``training`` record of that file (empty when the weights carry none)
    record: Mapping[str, Any]
    #: hex sha256 of the weights (what an evaluation's stored results depend on)
    sha256: str = ""


@runtime_checkable
class BaseLayerEncoder(Protocol):
    """Codes frames of one sequence in order (it holds its own temporal reference)."""

    def encode_frame(self, frame: Frame, intra: bool, picture: bool = True) -> tuple[bytes, Frame | None]:
        """One frame -> (payload, x_base or None). ``intra`` resets the temporal chain.

        ``picture=False``: the caller has no use for x_base this frame (e.g. a full-frame GOP), so a
        mode may skip making it and return None; the payload and the coder's state are the same.
        """
        ...

    @property
    def last_decoded(self) -> torch.Tensor | None:
        """The decoded state of the frame just coded (what the decoder will hold); a mode may give
        None before its first frame."""
        ...

    def set_quality(self, quality: float) -> None:
        """Quality of the next frames (rate control); modes without ``variable_quality`` refuse."""
        ...

    @property
    def last_geometry(self) -> BaseGeometry | None:
        """Geometry of the frame just coded (for :meth:`BaseLayer.detect`)."""
        ...


@runtime_checkable
class BaseLayerDecoder(Protocol):
    """Decodes payloads in order."""

    def decode_frame(self, payload: bytes, intra: bool) -> torch.Tensor:
        """Payload -> decoded state; raises BitstreamError on a malformed payload."""
        ...

    def expect_size(self, width: int, height: int) -> None:
        """Refuse payloads describing another picture size than the stream's, before allocating."""
        ...

    @property
    def last_geometry(self) -> BaseGeometry | None:
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
    #: the base quality used when none is given (a model's own operating point: quality scales
    #: differ between models and modes)
    default_quality: float
    #: whether the layer must see the first frames (:meth:`calibrate`) before the stream starts
    needs_calibration: bool
    #: how many first frames :meth:`calibrate` wants (0 when ``needs_calibration`` is False)
    calibration_frames: int

    def layer_config(self, quality: float, intra_period: int) -> dict[str, Any]: ...

    def encoder(self, quality: float, intra_period: int) -> BaseLayerEncoder: ...

    def decoder(self) -> BaseLayerDecoder: ...

    def detect(self, decoded: torch.Tensor, detector: SplitDetector, geometry: BaseGeometry) -> Detections:
        """Detections (boxes in source pixels) from a decoded state, no pixels involved."""
        ...

    def reconstruct(self, decoded: torch.Tensor, geometry: BaseGeometry, *, bit_depth: int, matrix: str,
                    index: int) -> Frame | None:
        """The coarse picture x_base, or None for modes without one."""
        ...

    def build_detector(self, weights: str | Path | None = None) -> SplitDetector:
        """The detector this layer was made for (its back end runs on decoded states)."""
        ...

    def set_detector_weights(self, weights: str | Path) -> None:
        """The detector's weights file, when the layer's own coding needs the detector (features)."""
        ...

    def calibrate(self, frames: Iterable[Frame]) -> None:
        """See the first frames before coding (modes with ``needs_calibration``; others ignore it)."""
        ...

    def trained_parts(self, detector: SplitDetector) -> list[TrainedPart]:
        """The learned parts whose training data could flatter an evaluation with ``detector``
        (none for a training-free mode)."""
        ...


class BaseLayerFactory(Protocol):
    """Makes a :class:`BaseLayer` for encoding (from a user's choice) or decoding (from a stream).

    ``base_size``: the working size (long side in pixels) the layer codes at; None = the
    mode's default. It is recorded in LAYER_CONFIG, so decoding needs nothing but the stream.
    ``effort``: the encoder preset, ``"fast"`` or ``"slow"`` (modes without a slow path refuse it).
    ``p_offset``: what P-frames add to the base quality (None = the mode's default; modes
    without per-frame qualities refuse a value). ``p_deadzone``: the P-frames' temporal dead
    zone in quantisation steps (None = the mode's default, 0 = off; modes without P-frames
    refuse a value). ``tune``: what the encoder may assume about the camera (``"default"``,
    ``"fixed-camera"``, ``"moving-camera"``; modes without P-frames accept only the default);
    ``p_offset`` and ``p_deadzone`` override what the tune sets.
    """

    def for_encoding(self, model: str | None, base_size: int | None = None, effort: str = "fast",
                     p_offset: float | None = None, p_deadzone: float | None = None,
                     tune: str = "default") -> BaseLayer: ...

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


