"""The end-to-end decoder: full pictures for people, detections from the base layer for machines.

Three ways to read a stream (each Decoder reads its stream once):

* :meth:`Decoder.frames` -- pictures in display order: ``x_base + residual``
  (``layers="all"``) or the coarse picture ``x_base`` (``layers="base"``);
* :meth:`Decoder.detections` -- ``(frame_index, Detections)`` from layer 0
  alone: the detector's back end runs on the decoded latent; no synthesis
  transform, no pixels, and layer-1 units are skipped without decoding, so a
  base-only stream from ``vcodec extract`` gives the same result;
* :meth:`Decoder.latents` -- ``(frame_index, decoded state)`` (tests, tools).

Damaged streams (``conceal=True``)
----------------------------------
A damaged or undecodable unit of a layer makes that layer skip its units up
to its next intra frame (nothing else can be decoded without the reference).
Then:

* a frame whose **base** is lost is replaced by a *repeat of the last good
  output picture* (renumbered to the lost index), so the output keeps the
  input's frame count and timing; frames lost before any good picture are
  skipped.  :meth:`detections` yields nothing for such frames (no invented
  boxes);
* a frame whose base is fine but whose **enhancement** is lost is output as
  the coarse picture ``x_base`` (current content beats a stale repeat);
* every lost frame is listed in :attr:`Decoder.lost_frames` (base lost) or
  :attr:`Decoder.coarse_frames` (enhancement lost), and the damage reports in
  :attr:`Decoder.damage`.

Without ``conceal`` the first defect raises :class:`~vcodec.errors.BitstreamError`
naming the byte offset and the frame.

Base pictures only where they are needed
----------------------------------------
The full decode runs the base decoder and g_s only for frames whose
enhancement is a residual: in a layer that codes full frames (a
``full-frame`` layer, or a full-frame GOP of a ``per-gop`` layer) the
picture is the enhancement picture alone, so layer 0 is not decoded at all.
With ``conceal`` the base latents are still decoded there (the base picture
is what stands in for a lost enhancement frame) but g_s runs only for such
frames.

Where the parts live: the walk over layer 0 and its typed events in
:mod:`vcodec.codec.base_events`, the full-picture decode (enhancement lanes,
reordering, stand-ins) in :mod:`vcodec.codec.full_decode`.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from vcodec.baselayer.protocol import BaseLayer, get_base_factory
from vcodec.bitstream import BASE_LAYER, ENHANCEMENT_LAYER, Damage, StreamReader
from vcodec.bitstream.gop import PER_GOP_KIND, lane_configs
from vcodec.codec.base_events import BaseDecoded, BaseEvent, BaseLost, base_events
from vcodec.codec.full_decode import full_frames, repeat_picture
from vcodec.errors import BitstreamError, ConfigError
from vcodec.io.frame import Frame, VideoInfo

if TYPE_CHECKING:
    from vcodec.baselayer.geometry import BaseGeometry

__all__ = ["Decoder", "StreamInput"]

StreamInput = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | io.RawIOBase


class Decoder:
    """Decode a vcodec stream.

    ``source``: a path, the stream bytes, a binary file object (a pipe is
    fine) or ``"-"`` for stdin.  ``layers``: ``"all"`` (full pictures) or
    ``"base"`` (coarse pictures; also what a base-only stream allows).
    ``conceal``: survive damaged units (see the module docstring).
    ``threads``: torch CPU threads and enhancement decoder threads (0 = leave
    as is; results do not depend on it).  ``detector_weights``: for base
    models whose detector has no shipped weights (YOLOX-Nano: its ``.onnx``);
    ``detector``: an already built detector instead.  ``base_model``: the
    ``.json``/``.pt`` of the base weights when they are not installed (their
    sha256 must still match the stream's).
    """

    def __init__(
        self,
        source: StreamInput,
        *,
        layers: str = "all",
        conceal: bool = False,
        threads: int = 0,
        detector_weights: str | Path | None = None,
        detector: Any = None,
        base_model: str | None = None,
    ) -> None:
        if layers not in ("all", "base"):
            raise ConfigError(f"layers={layers!r} is invalid; use 'all' (full pictures) or 'base' (x_base)")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"threads={threads!r} is invalid; use 0 (leave as is) or a positive count")
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.threads = threads
        self.layers = layers
        self.conceal = bool(conceal)
        self._extra_damage: list[Damage] = []
        if isinstance(source, (str, os.PathLike)) and os.fspath(source) == "-":
            source = sys.stdin.buffer
            name: str | None = "<stdin>"
        else:
            name = None
        # an open end is accepted only when concealing (a live stream cut off mid-way)
        self._reader = StreamReader(source, conceal=self.conceal, allow_open_end=self.conceal, name=name)
        try:
            self._setup(detector_weights, detector, base_model)
        except BaseException:
            self._reader.close()
            raise
        #: frames whose base layer was lost (repeated or skipped in frames(), absent from detections())
        self.lost_frames: list[int] = []
        #: frames output as x_base because their enhancement was lost
        self.coarse_frames: list[int] = []
        self._used = False

    def _setup(self, detector_weights: str | Path | None, detector: Any, base_model: str | None) -> None:
        r = self._reader
        self.header = r.header
        if BASE_LAYER not in r.layers:
            raise BitstreamError("the stream has no base layer (layer 0) configuration", source=r.name,
                                 unit="LAYER_CONFIG")
        self.base_config = r.layers[BASE_LAYER]
        self.enh_config = r.layers.get(ENHANCEMENT_LAYER)
        self._factory = get_base_factory(self.base_config.kind)
        self._base_model = base_model
        self._base: BaseLayer | None = None
        #: conceal: the enhancement layer's LAYER_CONFIG was damaged; full decodes show base pictures
        self.enh_lost = self.enh_config is None and ENHANCEMENT_LAYER in r.lost_layers
        if self.layers == "all" and self.enh_config is None and not self.enh_lost:
            raise ConfigError(
                f"{r.name} has no enhancement layer (a base-only stream, e.g. from `vcodec extract`); "
                "decode it with layers='base' (--layers base) or use the full stream"
            )
        self._detector = detector
        self._detector_weights = detector_weights
        #: the enhancement layer picks residual or full frames per GOP (ENH_GOP units)
        self.per_gop = self.enh_config is not None and self.enh_config.kind == PER_GOP_KIND
        #: per GOP (first frame -> "residual"/"full-frame") as read so far by frames()
        self.gop_modes: dict[int, str] = {}
        self._lanes: dict[str, tuple[dict[str, Any], bytes]] = {}
        if self.per_gop:
            assert self.enh_config is not None
            try:
                self._lanes = lane_configs(self.enh_config.params)
            except BitstreamError as exc:
                if self.layers == "all":
                    raise BitstreamError(str(exc).split(": ", 1)[-1], unit="LAYER_CONFIG of layer 1",
                                         source=r.name) from None
        # a layer 1 that may code full frames does not need the base model to show them: it is
        # loaded when a residual GOP first needs it (a viewer without the model sees full-frame GOPs)
        may_skip_base = (self.layers == "all" and not self.conceal and self.enh_config is not None
                         and (self.per_gop or bool(self.enh_config.params.get("anchor"))))
        if not may_skip_base:
            self._load_base()

    def _load_base(self) -> BaseLayer:
        if self._base is None:
            self._base = self._factory.for_decoding(self.base_config, self._base_model)
        return self._base

    @property
    def base(self) -> BaseLayer:
        """The base layer's model (loaded on first use by a full decode whose layer 1 may code full
        frames; at construction otherwise, where a missing or mismatched model raises)."""
        return self._load_base()

    # -- properties ----------------------------------------------------------------
    @property
    def info(self) -> VideoInfo:
        """The stream's picture format (for writers): size, rate, bit depth, matrix, frame count."""
        h = self.header
        return VideoInfo(h.width, h.height, h.fps, h.bit_depth, h.num_frames, h.matrix, self._reader.name)

    @property
    def damage(self) -> list[Damage]:
        """Damage the reader found plus payloads that would not decode (conceal mode)."""
        return list(self._reader.damage) + self._extra_damage

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self) -> None:
        if self._used:
            raise ConfigError("a Decoder reads its stream once; create another Decoder to read it again")
        self._used = True
        self._extra_damage = []

    # -- layer 0 ---------------------------------------------------------------------
    def _events(self, want_enh: bool) -> Iterator[BaseEvent]:
        """The stream's base events (see :mod:`vcodec.codec.base_events`)."""
        cfg = self.enh_config
        full_frame_layer = cfg is not None and not self.per_gop and bool(cfg.params.get("anchor"))
        return base_events(self._reader, self._load_base, self._extra_damage, conceal=self.conceal,
                           want_enh=want_enh, per_gop_layer=self.per_gop, full_frame_layer=full_frame_layer)

    def latents(self) -> Iterator[tuple[int, Any]]:
        """``(frame_index, decoded state)`` of every decodable base frame (layer 0 only)."""
        self._start()
        for event in self._events(want_enh=False):
            if isinstance(event, BaseDecoded):
                yield event.index, event.decoded
            elif isinstance(event, BaseLost):
                self.lost_frames.append(event.index)

    def detector(self) -> Any:
        """The detector the base layer serves (built on first use)."""
        if self._detector is None:
            self._detector = self.base.build_detector(self._detector_weights)
        return self._detector

    def detections(self) -> Iterator[tuple[int, Any]]:
        """``(frame_index, Detections)`` from layer 0 alone (boxes in picture pixels)."""
        self._start()
        detector = self.detector()
        for event in self._events(want_enh=False):
            if isinstance(event, BaseDecoded):
                # the base modes' decoders set last_geometry on every decoded frame
                yield event.index, self.base.detect(event.decoded, detector,
                                                    cast("BaseGeometry", event.geometry))
            elif isinstance(event, BaseLost):
                self.lost_frames.append(event.index)

    # -- pictures --------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        """Pictures in display order (see the class docstring for ``layers`` and concealment)."""
        if self.layers == "base" and not self.base.has_picture:
            raise ConfigError(
                f"{self._reader.name}: base layer kind {self.base.kind!r} has no picture of its "
                "own (detections() works on it); decode pictures with layers='all'"
            )
        if self.enh_lost and not self.base.has_picture:
            raise BitstreamError("the enhancement layer's LAYER_CONFIG is damaged and the base layer "
                                 f"({self.base.kind}) has no picture to show instead", unit="LAYER_CONFIG of "
                                 "layer 1", source=self._reader.name)
        self._start()
        if self.layers == "base" or self.enh_lost:
            yield from self._base_frames()
        else:
            yield from full_frames(self, self._events(want_enh=True))

    def _x_base(self, index: int, decoded: Any, geometry: Any) -> Frame | None:
        h = self.header
        return self.base.reconstruct(decoded, geometry, bit_depth=h.bit_depth, matrix=h.matrix, index=index)

    def _base_frames(self) -> Iterator[Frame]:
        last: Frame | None = None
        for event in self._events(want_enh=False):
            if isinstance(event, BaseDecoded):
                last = self._x_base(event.index, event.decoded, event.geometry)
                assert last is not None
                if self.layers == "all":  # the enhancement layer is lost (enh_lost): a stand-in
                    self.coarse_frames.append(event.index)
                yield last
            elif isinstance(event, BaseLost):
                self.lost_frames.append(event.index)
                if last is not None:
                    yield repeat_picture(last, event.index)
