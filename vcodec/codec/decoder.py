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
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from vcodec.baselayer.protocol import BaseLayer, BaseLayerDecoder, get_base_factory
from vcodec.bitstream import BASE_LAYER, ENHANCEMENT_LAYER, Damage, StreamReader, Unit, UnitType
from vcodec.bitstream.format import UNIT_HEADER_SIZE
from vcodec.bitstream.gop import FULL_FRAME, PER_GOP_KIND, RESIDUAL, GopRecord, lane_configs
from vcodec.errors import BitstreamError, ConfigError, InputError, VcodecError
from vcodec.io.frame import Frame, VideoInfo

__all__ = ["Decoder", "StreamInput"]

StreamInput = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


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

    def _check_geometry(self, geometry: Any) -> None:
        """A base payload must describe a picture of the stream's size (a damaged size field would
        otherwise surface later, e.g. as a base picture the residual does not fit)."""
        size = (getattr(geometry, "width", None), getattr(geometry, "height", None))
        if None not in size and size != (self.header.width, self.header.height):
            raise BitstreamError(f"base payload describes a {size[0]}x{size[1]} picture but the stream is "
                                 f"{self.header.width}x{self.header.height}")

    def _wrap(self, exc: VcodecError, unit: Unit) -> BitstreamError:
        """Add the stream position to an error raised inside a payload decoder."""
        return BitstreamError(str(exc), offset=unit.offset, unit=unit.describe(), frame=unit.frame,
                              source=self._reader.name)

    def _total_frames(self) -> int | None:
        end = self._reader.end_info
        if end is not None:
            return end[0]
        return self.header.num_frames

    # -- layer 0 ---------------------------------------------------------------------
    def _base_events(self, want_enh: bool) -> Iterator[tuple[str, int | None, Any]]:
        """Walk the stream; decode layer 0, hand layer-1 units on when wanted.

        Yields ``("base", index, decoded)``, ``("lost", index, None)``,
        ``("enh", index, unit)``, ``("enh-damage", index, damage)`` and finally
        ``("end", total_frames, None)``.  With ``want_enh`` (the full decode)
        layer 0 is decoded only where the picture needs it: elsewhere
        ``("base-skipped", index, None)``, and per-GOP streams yield
        ``("gop", first_frame, GopRecord | None)`` before the GOP's first base
        event (None: the record is lost).
        """
        dec: BaseLayerDecoder | None = None  # made on first use: full-frame GOPs never load the base model

        def base_decoder() -> BaseLayerDecoder:
            nonlocal dec
            if dec is None:
                dec = self.base.decoder()
                # payload sizes are checked against the header before any allocation
                dec.expect_size(self.header.width, self.header.height)
            return dec

        def reset_base() -> None:
            if dec is not None:  # a decoder never made has no state to drop
                dec.reset()
        skip = False  # base layer waits for its next intra frame
        expected = 0
        # frame indexes are checked against the stream's own order: a base frame index may jump only
        # over units a damaged region could have held (one unit header per missing frame, at least)
        limit = self.header.num_frames or None  # the header's frame count, when it was known
        last_end = self._reader.data_offset  # where the last base unit (or base damage) ended
        damaged = False  # base damage since the last base unit
        seen = 0  # base units met in order (END's frame count must match it)
        period = self.header.intra_period

        def plausible_gap(frame: int, offset: int, intra: bool = False) -> bool:
            """Whether frames ``expected..frame-1`` can be lost ones (not a crafted frame index): what
            the damage since the last base unit could have held, or a skip of at most one intra period
            to an intra frame (a live client that fell behind resumes there)."""
            if limit is not None and frame >= limit:
                return False
            gap = frame - expected
            return ((damaged and gap <= max(0, offset - last_end) // UNIT_HEADER_SIZE)
                    or (intra and 0 < period and gap <= period))
        per_gop = want_enh and self.per_gop
        # fixed layers: a full-frame layer never needs the base (except as a stand-in when concealing)
        fixed_need = self.conceal or not (want_enh and self.enh_config is not None
                                          and not self.per_gop and bool(self.enh_config.params.get("anchor")))
        gop_need = True  # per-GOP: the running GOP needs base pictures
        held: Unit | None = None  # per-GOP: an intra base unit waiting for its ENH_GOP record

        def base_unit(item: Unit, needed: bool) -> Iterator[tuple[str, int | None, Any]]:
            nonlocal skip
            f = int(item.frame)  # type: ignore[arg-type]
            if not needed:
                if not skip:  # the decoder's state is stale from here: restart at the next intra frame
                    reset_base()
                skip = True
                yield "base-skipped", f, None
                return
            if skip and not item.intra:
                yield "lost", f, None
                return
            decoder = base_decoder()
            try:
                decoded = decoder.decode_frame(item.payload, item.intra)
                self._check_geometry(decoder.last_geometry)
            except (BitstreamError, InputError) as exc:
                # InputError: the payload describes an impossible picture (odd size...): damage too
                err = self._wrap(exc, item)
                if not self.conceal:
                    raise err from None
                self._extra_damage.append(Damage(item.offset, str(err), BASE_LAYER, f))
                skip = True
                reset_base()
                yield "lost", f, None
                return
            skip = False
            yield "base", f, (decoded, decoder.last_geometry)

        def resolve(record: GopRecord | None) -> Iterator[tuple[str, int | None, Any]]:
            nonlocal held, gop_need
            assert held is not None
            unit, held = held, None
            yield "gop", unit.frame, record
            gop_need = self.conceal or record is None or record.predicts
            yield from base_unit(unit, gop_need)

        def missing_record(unit: Unit) -> BitstreamError:
            return BitstreamError("per-GOP stream: the intra frame's base unit is not followed by its "
                                  "ENH_GOP unit", offset=unit.offset, unit=unit.describe(), frame=unit.frame,
                                  source=self._reader.name)

        for item in self._reader:
            if held is not None:
                if (isinstance(item, Unit) and item.type == UnitType.ENH_GOP
                        and item.layer == ENHANCEMENT_LAYER and item.frame == held.frame):
                    try:
                        record: GopRecord | None = GopRecord.from_payload(int(item.frame), item.payload)  # type: ignore[arg-type]
                    except BitstreamError as exc:
                        err = self._wrap(exc, item)
                        if not self.conceal:
                            raise err from None
                        self._extra_damage.append(Damage(item.offset, str(err), ENHANCEMENT_LAYER,
                                                         item.frame))
                        record = None
                    yield from resolve(record)
                    continue
                if not self.conceal:
                    raise missing_record(held)
                if not isinstance(item, Damage):  # damage of the record itself is reported by the reader
                    self._extra_damage.append(Damage(held.offset, str(missing_record(held)),
                                                     ENHANCEMENT_LAYER, held.frame))
                yield from resolve(None)
            if isinstance(item, Damage):
                if item.layer in (None, BASE_LAYER):
                    skip = True
                    reset_base()
                    damaged = True
                    if (item.frame is not None and item.frame >= expected and item.layer == BASE_LAYER
                            and plausible_gap(item.frame, item.offset)):
                        for f in range(expected, item.frame + 1):
                            yield "lost", f, None
                        expected = item.frame + 1
                        last_end = item.offset + UNIT_HEADER_SIZE
                if want_enh and item.layer in (None, ENHANCEMENT_LAYER):
                    yield "enh-damage", item.frame, item
                continue
            if item.layer == ENHANCEMENT_LAYER and item.type == UnitType.ENH_PACKET:
                if want_enh:
                    yield "enh", item.frame, item
                continue
            if item.layer == ENHANCEMENT_LAYER and item.type == UnitType.ENH_GOP:
                if per_gop:  # a record not right after its intra base unit
                    err = BitstreamError("ENH_GOP unit in the wrong place (it follows its intra frame's base "
                                         "unit)", offset=item.offset, unit=item.describe(), frame=item.frame,
                                         source=self._reader.name)
                    if not self.conceal:
                        raise err
                    self._extra_damage.append(Damage(item.offset, str(err), ENHANCEMENT_LAYER, item.frame))
                continue
            if item.layer not in self._reader.layers and item.layer not in self._reader.lost_layers:
                # every layer present has a LAYER_CONFIG: this unit is damage (a relabelled unit)
                err = BitstreamError(f"frame unit of layer {item.layer}, which has no LAYER_CONFIG",
                                     offset=item.offset, unit=item.describe(), frame=item.frame,
                                     source=self._reader.name)
                if not self.conceal:
                    raise err
                self._extra_damage.append(Damage(item.offset, str(err), None, item.frame))
                skip, damaged = True, True
                reset_base()
                continue
            if item.layer != BASE_LAYER or item.type != UnitType.BASE_FRAME:
                continue  # other layers (future): not ours
            f = int(item.frame)  # type: ignore[arg-type]
            in_range = limit is None or f < limit
            if f > expected and seen == 0 and not damaged and item.intra and in_range:
                expected = f  # a stream that starts at a random-access point (start=, a live join)
            elif f > expected and self.conceal and not plausible_gap(f, item.offset, item.intra) \
                    and item.intra and in_range:
                # a jump too far to fill with repeats: resume at this intra frame, showing nothing between
                self._extra_damage.append(Damage(item.offset, f"{self._reader.name}: byte {item.offset}: "
                                                 f"base frames {expected}..{f - 1} are missing; resuming at "
                                                 f"intra frame {f}", BASE_LAYER, f))
                expected = f
            if f > expected and not (self.conceal and plausible_gap(f, item.offset, item.intra)):
                missing = f"frames {expected}..{f - 1} are missing" if f - 1 > expected else \
                    f"frame {expected} is missing"
                err = BitstreamError(f"base frame {f} follows frame {expected - 1}: {missing}"
                                     + ("" if limit is None or f < limit else
                                        f" (and the header counts {limit} frames)"),
                                     offset=item.offset, unit=item.describe(), frame=f,
                                     source=self._reader.name)
                if not self.conceal:
                    raise err
                # an implausible frame index: the unit is damage, not thousands of lost frames
                self._extra_damage.append(Damage(item.offset, str(err), BASE_LAYER, f))
                skip, damaged = True, True
                reset_base()
                continue
            if f < expected:
                err = BitstreamError(f"base frame {f} arrives after frame {expected - 1}: frames out of order "
                                     "or duplicated", offset=item.offset, unit=item.describe(), frame=f,
                                     source=self._reader.name)
                if not self.conceal:
                    raise err
                self._extra_damage.append(Damage(item.offset, str(err), BASE_LAYER, f))
                continue
            for g in range(expected, f):  # units that vanished in a damaged region
                yield "lost", g, None
            expected = f + 1
            last_end, damaged = item.offset + UNIT_HEADER_SIZE + len(item.payload), False
            seen += 1
            if per_gop and item.intra:
                held = item  # decoded (or not) once its GOP's mode is known: the next unit says
                continue
            yield from base_unit(item, gop_need if per_gop else fixed_need)
        if held is not None:
            if not self.conceal:
                raise missing_record(held)
            yield from resolve(None)
        total = self._total_frames()
        end = self._reader.end_info
        if end is not None and end[0] != seen and not self.conceal:
            raise BitstreamError(f"END counts {end[0]} frames but the stream holds {seen}",
                                 unit="END", source=self._reader.name)
        if total is not None and self.conceal and total > expected:
            # the tail was cut off: repeats stand in for it, never more than the damage could have
            # held (END present) or than were received (a cut-off stream: the header's count)
            if end is not None:
                bound = expected + (max(0, (self._reader.end_offset or last_end) - last_end) // UNIT_HEADER_SIZE
                                    if damaged else 0)
            else:
                bound = 2 * expected
            for g in range(expected, min(total, bound)):
                yield "lost", g, None
        yield "end", total, None

    def latents(self) -> Iterator[tuple[int, Any]]:
        """``(frame_index, decoded state)`` of every decodable base frame (layer 0 only)."""
        self._start()
        for kind, index, payload in self._base_events(want_enh=False):
            if kind == "base":
                yield int(index), payload[0]  # type: ignore[arg-type]
            elif kind == "lost":
                self.lost_frames.append(int(index))  # type: ignore[arg-type]

    def detector(self) -> Any:
        """The detector the base layer serves (built on first use)."""
        if self._detector is None:
            self._detector = self.base.build_detector(self._detector_weights)
        return self._detector

    def detections(self) -> Iterator[tuple[int, Any]]:
        """``(frame_index, Detections)`` from layer 0 alone (boxes in picture pixels)."""
        self._start()
        detector = self.detector()
        for kind, index, payload in self._base_events(want_enh=False):
            if kind == "base":
                decoded, geometry = payload
                yield int(index), self.base.detect(decoded, detector, geometry)  # type: ignore[arg-type]
            elif kind == "lost":
                self.lost_frames.append(int(index))  # type: ignore[arg-type]

    # -- pictures --------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        """Pictures in display order (see the class docstring for ``layers`` and concealment)."""
        if self.layers == "base" and not self.base.has_picture:
            raise ConfigError(f"{self._reader.name}: base layer kind {self.base.kind!r} has no picture of its "
                              "own (detections() works on it); decode pictures with layers='all'")
        if self.enh_lost and not self.base.has_picture:
            raise BitstreamError("the enhancement layer's LAYER_CONFIG is damaged and the base layer "
                                 f"({self.base.kind}) has no picture to show instead", unit="LAYER_CONFIG of "
                                 "layer 1", source=self._reader.name)
        self._start()
        if self.layers == "base" or self.enh_lost:
            yield from self._base_frames()
        else:
            yield from self._full_frames()

    def _x_base(self, index: int, decoded: Any, geometry: Any) -> Frame | None:
        h = self.header
        return self.base.reconstruct(decoded, geometry, bit_depth=h.bit_depth, matrix=h.matrix, index=index)

    @staticmethod
    def _repeat(last: Frame, index: int) -> Frame:
        return Frame(last.y, last.u, last.v, bit_depth=last.bit_depth, index=index, matrix=last.matrix)

    def _base_frames(self) -> Iterator[Frame]:
        last: Frame | None = None
        for kind, index, payload in self._base_events(want_enh=False):
            if kind == "base":
                last = self._x_base(int(index), *payload)  # type: ignore[arg-type]
                assert last is not None
                if self.layers == "all":  # the enhancement layer is lost (enh_lost): a stand-in
                    self.coarse_frames.append(int(index))  # type: ignore[arg-type]
                yield last
            elif kind == "lost":
                self.lost_frames.append(int(index))  # type: ignore[arg-type]
                if last is not None:
                    yield self._repeat(last, int(index))  # type: ignore[arg-type]

    def _new_enh_decoder(self, mode: str | None = None) -> Any:
        """The layer's enhancement decoder; per-GOP layers: the one of ``mode``."""
        from vcodec.enhancement import EnhancementDecoder

        cfg = self.enh_config
        assert cfg is not None
        if self.per_gop:
            config, extradata = self._lanes[mode or RESIDUAL]
            return EnhancementDecoder(cfg.codec, config, extradata, threads=self.threads)
        return EnhancementDecoder(cfg.codec, cfg.params, cfg.extradata, threads=self.threads)

    def _full_frames(self) -> Iterator[Frame]:
        from vcodec.enhancement import EnhancementPacket, reconstruct

        cfg = self.enh_config
        assert cfg is not None
        try:
            enh = self._new_enh_decoder()
            if self.per_gop:  # both modes' configurations must be usable before any picture
                self._new_enh_decoder(FULL_FRAME).close()
        except ConfigError as exc:
            raise BitstreamError(f"enhancement layer configuration cannot be used: {exc}", unit="LAYER_CONFIG "
                                 "of layer 1", source=self._reader.name) from None
        # full-frame enhancement (no base picture, or inter-layer prediction off) adds nothing to
        # the base picture; the base picture still stands in for a lost enhancement frame
        predicts = not bool(cfg.params.get("anchor", False))
        enh_mode: str | None = RESIDUAL if self.per_gop else None  # per-GOP: the running decoder's mode
        period = self.header.intra_period
        enh_skip = False  # enhancement waits for its next intra packet
        # frames waiting for their enhancement picture: the base picture (made on demand: g_s runs
        # only when a residual or a stand-in needs it) and whether the enhancement is a residual
        pending: dict[int, tuple[_LazyBase | None, bool]] = {}
        residuals: dict[int, Any] = {}
        lost: set[int] = set()
        newest_residual = -1  # residuals come out in display order: older frames will get none
        last_dts: int | None = None  # packets of one decoder come in increasing decode order
        next_out: int | None = None  # the first base event sets it (a stream may start at any intra frame)
        last: Frame | None = None

        def emit(final: bool, total: int | None = None) -> Iterator[Frame]:
            nonlocal next_out, last
            while next_out is not None:
                i = next_out
                if i in lost:
                    lost.discard(i)
                    residuals.pop(i, None)
                    if last is not None:
                        yield self._repeat(last, i)
                elif i in pending:
                    lazy, pred = pending[i]
                    if i in residuals:
                        # a residual GOP always has its base decoded (lazy is set)
                        out = reconstruct(lazy.get() if pred else None, residuals.pop(i), index=i)  # type: ignore[union-attr]
                    elif final or newest_residual > i:
                        if not self.conceal:  # strict: a missing picture is a defect, never a stand-in
                            raise BitstreamError("the enhancement layer gives no picture for this frame "
                                                 "(packets missing, reordered or damaged)", unit="ENH_PACKET",
                                                 frame=i, source=self._reader.name)
                        x_base = lazy.get() if lazy is not None else None
                        if x_base is None:  # no base picture to fall back on
                            self.lost_frames.append(i)
                            del pending[i]
                            if last is not None:
                                yield self._repeat(last, i)
                            next_out = i + 1
                            continue
                        self.coarse_frames.append(i)
                        out = x_base
                    else:
                        return  # wait for this frame's residual
                    del pending[i]
                    last = out
                    yield out
                else:
                    return
                next_out = i + 1

        def take(outs: list[tuple[int, Any]]) -> None:
            nonlocal newest_residual
            for idx, residual in outs:
                residuals[idx] = residual
                newest_residual = max(newest_residual, idx)

        def drop_decoder() -> None:
            """After damage: keep what the decoder holds (decoded before the loss), start over."""
            nonlocal enh, enh_skip, last_dts
            last_dts = None
            try:
                take(enh.flush())
            except BitstreamError:
                pass
            enh.close()
            enh = self._new_enh_decoder(enh_mode)
            enh_skip = True

        def close_decoder(where: str) -> None:
            """The current enhancement decoder's last pictures, then close it (strict: damage raises)."""
            try:
                take(enh.flush())
            except BitstreamError as exc:
                if not self.conceal:
                    raise BitstreamError(f"at the end of {where}: {exc}", source=self._reader.name) from None
            enh.close()

        def gop_mode(frame: int) -> str | None:
            """Per-GOP: the mode of the GOP holding ``frame`` (None: its record is lost or missing)."""
            start = frame - frame % period if period else 0
            return self.gop_modes.get(start)

        for kind, index, payload in self._base_events(want_enh=True):
            if kind == "gop":
                record: GopRecord | None = payload
                if record is None:
                    self.gop_modes.pop(int(index), None)  # type: ignore[arg-type]
                else:
                    self.gop_modes[record.frame] = record.mode
            elif kind in ("base", "base-skipped"):
                i = int(index)  # type: ignore[arg-type]
                next_out = i if next_out is None else next_out
                pred = predicts if not self.per_gop else gop_mode(i) == RESIDUAL
                lazy = _LazyBase(self, i, *payload) if kind == "base" else None
                pending[i] = (lazy, pred)
            elif kind == "lost":
                lost.add(int(index))  # type: ignore[arg-type]
                next_out = int(index) if next_out is None else next_out  # type: ignore[arg-type]
                self.lost_frames.append(int(index))  # type: ignore[arg-type]
            elif kind == "enh-damage":
                drop_decoder()
            elif kind == "enh":
                unit: Unit = payload
                if self.per_gop:
                    mode = gop_mode(int(unit.frame))  # type: ignore[arg-type]
                    if mode is None:  # the GOP's record is lost: its packets cannot be placed
                        enh_skip = True
                        continue
                    if mode != enh_mode:
                        # a new mode starts with an intra packet; the old decoder's pictures come out first
                        close_decoder("a GOP")
                        enh_mode = mode
                        enh = self._new_enh_decoder(enh_mode)
                        last_dts = None
                if enh_skip and not unit.intra:
                    continue
                enh_skip = False
                try:
                    packet = EnhancementPacket.from_payload(int(unit.frame), unit.intra, unit.payload)  # type: ignore[arg-type]
                    if last_dts is not None and packet.dts <= last_dts:
                        raise BitstreamError(f"enhancement packet with decode time {packet.dts} after "
                                             f"{last_dts}: packets are out of order or duplicated")
                    last_dts = packet.dts
                    take(enh.decode(packet))
                except BitstreamError as exc:
                    err = self._wrap(exc, unit)
                    if not self.conceal:
                        raise err from None
                    self._extra_damage.append(Damage(unit.offset, str(err), ENHANCEMENT_LAYER, unit.frame))
                    drop_decoder()
            elif kind == "end":
                close_decoder("the enhancement layer")
                yield from emit(final=True)
                return
            yield from emit(final=False)


class _LazyBase:
    """A decoded base frame whose picture (g_s) is made on first use, at most once."""

    __slots__ = ("_dec", "_index", "_decoded", "_geometry", "_frame", "_done")

    def __init__(self, dec: Decoder, index: int, decoded: Any, geometry: Any) -> None:
        self._dec, self._index, self._decoded, self._geometry = dec, index, decoded, geometry
        self._frame: Frame | None = None
        self._done = False

    def get(self) -> Frame | None:
        if not self._done:
            self._frame = self._dec._x_base(self._index, self._decoded, self._geometry)
            self._done = True
            self._decoded = None  # the latent is no longer needed
        return self._frame
