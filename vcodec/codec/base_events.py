"""Layer 0 of a stream as a sequence of typed events (what every way of decoding a stream walks).

:func:`base_events` reads the units in stream order, decodes the base layer
(or skips it where the picture does not need it), checks the frame order,
turns damage into lost frames (``conceal``) or a :class:`BitstreamError`, and
hands layer-1 units on to the full decode.  Its events, one type per kind:

* :class:`BaseDecoded` -- a decoded base frame (the model's state and geometry);
* :class:`BaseLost` -- a frame whose base is lost (damage, or waiting for an intra frame);
* :class:`BaseSkipped` -- a base frame not decoded because its picture does not need it;
* :class:`GopStart` -- per-GOP layers: a GOP's record (``None``: lost), before its first base event;
* :class:`EnhUnit` / :class:`EnhDamage` -- a layer-1 packet unit / damage that touches layer 1;
* :class:`StreamEnd` -- last, with the stream's frame count when known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from vcodec.baselayer.geometry import BaseGeometry
from vcodec.baselayer.protocol import BaseLayer, BaseLayerDecoder
from vcodec.bitstream import BASE_LAYER, ENHANCEMENT_LAYER, Damage, StreamReader, Unit, UnitType
from vcodec.bitstream.format import UNIT_HEADER_SIZE
from vcodec.bitstream.gop import GopRecord
from vcodec.errors import BitstreamError, InputError, VcodecError

__all__ = [
    "BaseDecoded",
    "BaseLost",
    "BaseSkipped",
    "GopStart",
    "EnhUnit",
    "EnhDamage",
    "StreamEnd",
    "BaseEvent",
    "base_events",
    "wrap_error",
]


@dataclass(frozen=True, slots=True)
class BaseDecoded:
    """Frame ``index``'s base layer, decoded: the model's state and the picture geometry it describes."""

    index: int
    decoded: Any
    geometry: BaseGeometry | None


@dataclass(frozen=True, slots=True)
class BaseLost:
    """Frame ``index``'s base layer is lost (damaged, missing, or waiting for the next intra frame)."""

    index: int


@dataclass(frozen=True, slots=True)
class BaseSkipped:
    """Frame ``index``'s base unit was not decoded: its GOP or layer 1 codes full frames."""

    index: int


@dataclass(frozen=True, slots=True)
class GopStart:
    """Per-GOP layer 1: the record of the GOP starting at ``frame`` (``None``: lost or missing)."""

    frame: int
    record: GopRecord | None


@dataclass(frozen=True, slots=True)
class EnhUnit:
    """A layer-1 ENH_PACKET unit, handed on undecoded."""

    unit: Unit

    @property
    def index(self) -> int:
        return frame_of(self.unit)


@dataclass(frozen=True, slots=True)
class EnhDamage:
    """Damage the reader found that may have held layer-1 units."""

    damage: Damage


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end of the stream; ``total``: its frame count (END unit, else the header's; None: unknown)."""

    total: int | None


BaseEvent = BaseDecoded | BaseLost | BaseSkipped | GopStart | EnhUnit | EnhDamage | StreamEnd


def frame_of(unit: Unit) -> int:
    """A frame unit's index (the reader hands on no frame unit without one)."""
    assert unit.frame is not None, f"{unit.describe()} has no frame index"
    return unit.frame


def wrap_error(exc: VcodecError, unit: Unit, source: str) -> BitstreamError:
    """Add the stream position to an error raised inside a payload decoder."""
    return BitstreamError(str(exc), offset=unit.offset, unit=unit.describe(), frame=unit.frame, source=source)


def check_geometry(geometry: BaseGeometry | None, width: int, height: int) -> None:
    """A base payload must describe a picture of the stream's size (a damaged size field would
    otherwise surface later, e.g. as a base picture the residual does not fit)."""
    if geometry is not None and (geometry.width, geometry.height) != (width, height):
        raise BitstreamError(f"base payload describes a {geometry.width}x{geometry.height} picture but the "
                             f"stream is {width}x{height}")


def total_frames(reader: StreamReader) -> int | None:
    """The stream's frame count: END's when read, else the header's (None: unknown, e.g. a live stream)."""
    end = reader.end_info
    if end is not None:
        return end[0]
    return reader.header.num_frames


def base_events(
    reader: StreamReader,
    base: Callable[[], BaseLayer],
    damage: list[Damage],
    *,
    conceal: bool,
    want_enh: bool,
    per_gop_layer: bool,
    full_frame_layer: bool,
) -> Iterator[BaseEvent]:
    """Walk ``reader``'s units; decode layer 0, hand layer-1 units on when wanted.

    ``base``: the base layer's model, loaded on the first call (full-frame GOPs
    never need it).  ``damage``: where payloads that would not decode are
    reported (``conceal``; without it they raise).  With ``want_enh`` (the
    full decode) layer 0 is decoded only where the picture needs it:
    elsewhere :class:`BaseSkipped`, and a per-GOP layer 1 (``per_gop_layer``)
    gets a :class:`GopStart` before each GOP's first base event;
    ``full_frame_layer``: a fixed layer 1 that codes full frames.
    """
    header = reader.header
    dec: BaseLayerDecoder | None = None  # made on first use: full-frame GOPs never load the base model

    def base_decoder() -> BaseLayerDecoder:
        nonlocal dec
        if dec is None:
            dec = base().decoder()
            # payload sizes are checked against the header before any allocation
            dec.expect_size(header.width, header.height)
        return dec

    def reset_base() -> None:
        if dec is not None:  # a decoder never made has no state to drop
            dec.reset()
    skip = False  # base layer waits for its next intra frame
    expected = 0
    # frame indexes are checked against the stream's own order: a base frame index may jump only
    # over units a damaged region could have held (one unit header per missing frame, at least)
    limit = header.num_frames or None  # the header's frame count, when it was known
    last_end = reader.data_offset  # where the last base unit (or base damage) ended
    damaged = False  # base damage since the last base unit
    seen = 0  # base units met in order (END's frame count must match it)
    period = header.intra_period

    def plausible_gap(frame: int, offset: int, intra: bool = False) -> bool:
        """Whether frames ``expected..frame-1`` can be lost ones (not a crafted frame index): what
        the damage since the last base unit could have held, or a skip of at most one intra period
        to an intra frame (a live client that fell behind resumes there)."""
        if limit is not None and frame >= limit:
            return False
        gap = frame - expected
        return ((damaged and gap <= max(0, offset - last_end) // UNIT_HEADER_SIZE)
                or (intra and 0 < period and gap <= period))
    per_gop = want_enh and per_gop_layer
    # fixed layers: a full-frame layer never needs the base (except as a stand-in when concealing)
    fixed_need = conceal or not (want_enh and full_frame_layer)
    gop_need = True  # per-GOP: the running GOP needs base pictures
    held: Unit | None = None  # per-GOP: an intra base unit waiting for its ENH_GOP record

    def base_unit(item: Unit, needed: bool) -> Iterator[BaseEvent]:
        nonlocal skip
        f = frame_of(item)
        if not needed:
            if not skip:  # the decoder's state is stale from here: restart at the next intra frame
                reset_base()
            skip = True
            yield BaseSkipped(f)
            return
        if skip and not item.intra:
            yield BaseLost(f)
            return
        decoder = base_decoder()
        try:
            decoded = decoder.decode_frame(item.payload, item.intra)
            check_geometry(decoder.last_geometry, header.width, header.height)
        except (BitstreamError, InputError) as exc:
            # InputError: the payload describes an impossible picture (odd size...): damage too
            err = wrap_error(exc, item, reader.name)
            if not conceal:
                raise err from None
            damage.append(Damage(item.offset, str(err), BASE_LAYER, f))
            skip = True
            reset_base()
            yield BaseLost(f)
            return
        skip = False
        yield BaseDecoded(f, decoded, decoder.last_geometry)

    def resolve(record: GopRecord | None) -> Iterator[BaseEvent]:
        nonlocal held, gop_need
        assert held is not None
        unit, held = held, None
        yield GopStart(frame_of(unit), record)
        gop_need = conceal or record is None or record.predicts
        yield from base_unit(unit, gop_need)

    def missing_record(unit: Unit) -> BitstreamError:
        return BitstreamError("per-GOP stream: the intra frame's base unit is not followed by its "
                              "ENH_GOP unit", offset=unit.offset, unit=unit.describe(), frame=unit.frame,
                              source=reader.name)

    for item in reader:
        if held is not None:
            if (isinstance(item, Unit) and item.type == UnitType.ENH_GOP
                    and item.layer == ENHANCEMENT_LAYER and item.frame == held.frame):
                try:
                    record: GopRecord | None = GopRecord.from_payload(frame_of(item), item.payload)
                except BitstreamError as exc:
                    err = wrap_error(exc, item, reader.name)
                    if not conceal:
                        raise err from None
                    damage.append(Damage(item.offset, str(err), ENHANCEMENT_LAYER, item.frame))
                    record = None
                yield from resolve(record)
                continue
            if not conceal:
                raise missing_record(held)
            if not isinstance(item, Damage):  # damage of the record itself is reported by the reader
                damage.append(Damage(held.offset, str(missing_record(held)), ENHANCEMENT_LAYER,
                                     held.frame))
            yield from resolve(None)
        if isinstance(item, Damage):
            if item.layer in (None, BASE_LAYER):
                skip = True
                reset_base()
                damaged = True
                if (item.frame is not None and item.frame >= expected and item.layer == BASE_LAYER
                        and plausible_gap(item.frame, item.offset)):
                    for f in range(expected, item.frame + 1):
                        yield BaseLost(f)
                    expected = item.frame + 1
                    last_end = item.offset + UNIT_HEADER_SIZE
            if want_enh and item.layer in (None, ENHANCEMENT_LAYER):
                yield EnhDamage(item)
            continue
        if item.layer == ENHANCEMENT_LAYER and item.type == UnitType.ENH_PACKET:
            if want_enh:
                yield EnhUnit(item)
            continue
        if item.layer == ENHANCEMENT_LAYER and item.type == UnitType.ENH_GOP:
            if per_gop:  # a record not right after its intra base unit
                err = BitstreamError("ENH_GOP unit in the wrong place (it follows its intra frame's base "
                                     "unit)", offset=item.offset, unit=item.describe(), frame=item.frame,
                                     source=reader.name)
                if not conceal:
                    raise err
                damage.append(Damage(item.offset, str(err), ENHANCEMENT_LAYER, item.frame))
            continue
        if item.layer not in reader.layers and item.layer not in reader.lost_layers:
            # every layer present has a LAYER_CONFIG: this unit is damage (a relabelled unit)
            err = BitstreamError(f"frame unit of layer {item.layer}, which has no LAYER_CONFIG",
                                 offset=item.offset, unit=item.describe(), frame=item.frame,
                                 source=reader.name)
            if not conceal:
                raise err
            damage.append(Damage(item.offset, str(err), None, item.frame))
            skip, damaged = True, True
            reset_base()
            continue
        if item.layer != BASE_LAYER or item.type != UnitType.BASE_FRAME:
            continue  # other layers (future): not ours
        f = frame_of(item)
        in_range = limit is None or f < limit
        if f > expected and seen == 0 and not damaged and item.intra and in_range:
            expected = f  # a stream that starts at a random-access point (start=, a live join)
        elif f > expected and conceal and not plausible_gap(f, item.offset, item.intra) \
                and item.intra and in_range:
            # a jump too far to fill with repeats: resume at this intra frame, showing nothing between
            damage.append(Damage(item.offset, f"{reader.name}: byte {item.offset}: "
                                 f"base frames {expected}..{f - 1} are missing; resuming at "
                                 f"intra frame {f}", BASE_LAYER, f))
            expected = f
        if f > expected and not (conceal and plausible_gap(f, item.offset, item.intra)):
            missing = f"frames {expected}..{f - 1} are missing" if f - 1 > expected else \
                f"frame {expected} is missing"
            err = BitstreamError(f"base frame {f} follows frame {expected - 1}: {missing}"
                                 + ("" if limit is None or f < limit else
                                    f" (and the header counts {limit} frames)"),
                                 offset=item.offset, unit=item.describe(), frame=f,
                                 source=reader.name)
            if not conceal:
                raise err
            # an implausible frame index: the unit is damage, not thousands of lost frames
            damage.append(Damage(item.offset, str(err), BASE_LAYER, f))
            skip, damaged = True, True
            reset_base()
            continue
        if f < expected:
            err = BitstreamError(f"base frame {f} arrives after frame {expected - 1}: frames out of order "
                                 "or duplicated", offset=item.offset, unit=item.describe(), frame=f,
                                 source=reader.name)
            if not conceal:
                raise err
            damage.append(Damage(item.offset, str(err), BASE_LAYER, f))
            continue
        for g in range(expected, f):  # units that vanished in a damaged region
            yield BaseLost(g)
        expected = f + 1
        last_end, damaged = item.offset + UNIT_HEADER_SIZE + len(item.payload), False
        seen += 1
        if per_gop and item.intra:
            held = item  # decoded (or not) once its GOP's mode is known: the next unit says
            continue
        yield from base_unit(item, gop_need if per_gop else fixed_need)
    if held is not None:
        if not conceal:
            raise missing_record(held)
        yield from resolve(None)
    total = total_frames(reader)
    end = reader.end_info
    if end is not None and end[0] != seen and not conceal:
        raise BitstreamError(f"END counts {end[0]} frames but the stream holds {seen}",
                             unit="END", source=reader.name)
    if total is not None and conceal and total > expected:
        # the tail was cut off: repeats stand in for it, never more than the damage could have
        # held (END present) or than were received (a cut-off stream: the header's count)
        if end is not None:
            bound = expected + (max(0, (reader.end_offset or last_end) - last_end) // UNIT_HEADER_SIZE
                                if damaged else 0)
        else:
            bound = 2 * expected
        for g in range(expected, min(total, bound)):
            yield BaseLost(g)
    yield StreamEnd(total)
