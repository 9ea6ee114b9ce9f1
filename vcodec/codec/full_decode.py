"""Full pictures: the enhancement layer's pictures over the base layer's, in display order.

:func:`full_frames` runs the enhancement decoder(s) on the layer-1 units that
:func:`~vcodec.codec.base_events.base_events` hands on, adds each residual to
its base picture (made only when a residual or a stand-in needs it), and
conceals what is lost: a repeat of the last picture for a lost base, the base
picture for a lost enhancement frame.  Per-GOP layers switch between their
residual and full-frame lanes (one enhancement decoder each) at a GOP's start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vcodec.bitstream import ENHANCEMENT_LAYER, Damage
from vcodec.bitstream.gop import FULL_FRAME, RESIDUAL
from vcodec.codec.base_events import (
    BaseDecoded,
    BaseEvent,
    BaseLost,
    BaseSkipped,
    EnhDamage,
    EnhUnit,
    GopStart,
    StreamEnd,
    wrap_error,
)
from vcodec.errors import BitstreamError, ConfigError
from vcodec.io.frame import Frame

if TYPE_CHECKING:
    from vcodec.codec.decoder import Decoder

__all__ = ["full_frames", "repeat_picture"]


def repeat_picture(last: Frame, index: int) -> Frame:
    """The stand-in for a frame whose base is lost: the last good picture, renumbered."""
    return Frame(last.y, last.u, last.v, bit_depth=last.bit_depth, index=index, matrix=last.matrix)


def new_enh_decoder(dec: Decoder, mode: str | None = None) -> Any:
    """``dec``'s enhancement decoder; per-GOP layers: the one of ``mode``'s lane."""
    from vcodec.enhancement import EnhancementDecoder

    cfg = dec.enh_config
    assert cfg is not None
    if dec.per_gop:
        config, extradata = dec._lanes[mode or RESIDUAL]
        return EnhancementDecoder(cfg.codec, config, extradata, threads=dec.threads)
    return EnhancementDecoder(cfg.codec, cfg.params, cfg.extradata, threads=dec.threads)


def full_frames(dec: Decoder, events: Iterator[BaseEvent]) -> Iterator[Frame]:
    """``dec``'s pictures (``layers="all"``) from its base events walked with ``want_enh``.

    Lost and stand-in frames go to ``dec.lost_frames`` / ``dec.coarse_frames``,
    damage to its report, GOP modes to ``dec.gop_modes``.
    """
    from vcodec.enhancement import EnhancementPacket, reconstruct

    cfg = dec.enh_config
    assert cfg is not None
    try:
        enh = new_enh_decoder(dec)
        if dec.per_gop:  # both modes' configurations must be usable before any picture
            new_enh_decoder(dec, FULL_FRAME).close()
    except ConfigError as exc:
        raise BitstreamError(f"enhancement layer configuration cannot be used: {exc}", unit="LAYER_CONFIG "
                             "of layer 1", source=dec._reader.name) from None
    # full-frame enhancement (no base picture, or inter-layer prediction off) adds nothing to
    # the base picture; the base picture still stands in for a lost enhancement frame
    predicts = not bool(cfg.params.get("anchor", False))
    enh_mode: str | None = RESIDUAL if dec.per_gop else None  # per-GOP: the running decoder's mode
    period = dec.header.intra_period
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
                    yield repeat_picture(last, i)
            elif i in pending:
                lazy, pred = pending[i]
                if i in residuals:
                    # a residual GOP always has its base decoded (lazy is set)
                    base = None
                    if pred:
                        assert lazy is not None, "a residual GOP always has its base decoded"
                        base = lazy.get()
                    out = reconstruct(base, residuals.pop(i), index=i)
                elif final or newest_residual > i:
                    if not dec.conceal:  # strict: a missing picture is a defect, never a stand-in
                        raise BitstreamError("the enhancement layer gives no picture for this frame "
                                             "(packets missing, reordered or damaged)", unit="ENH_PACKET",
                                             frame=i, source=dec._reader.name)
                    x_base = lazy.get() if lazy is not None else None
                    if x_base is None:  # no base picture to fall back on
                        dec.lost_frames.append(i)
                        del pending[i]
                        if last is not None:
                            yield repeat_picture(last, i)
                        next_out = i + 1
                        continue
                    dec.coarse_frames.append(i)
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
        enh = new_enh_decoder(dec, enh_mode)
        enh_skip = True

    def close_decoder(where: str) -> None:
        """The current enhancement decoder's last pictures, then close it (strict: damage raises)."""
        try:
            take(enh.flush())
        except BitstreamError as exc:
            if not dec.conceal:
                raise BitstreamError(f"at the end of {where}: {exc}", source=dec._reader.name) from None
        enh.close()

    def gop_mode(frame: int) -> str | None:
        """Per-GOP: the mode of the GOP holding ``frame`` (None: its record is lost or missing)."""
        start = frame - frame % period if period else 0
        return dec.gop_modes.get(start)

    for event in events:
        match event:
            case GopStart(frame, record):
                if record is None:
                    dec.gop_modes.pop(frame, None)
                else:
                    dec.gop_modes[record.frame] = record.mode
            case BaseDecoded(i) | BaseSkipped(i):
                next_out = i if next_out is None else next_out
                pred = predicts if not dec.per_gop else gop_mode(i) == RESIDUAL
                lazy = (_LazyBase(dec, i, event.decoded, event.geometry) if isinstance(event, BaseDecoded)
                        else None)  # skipped: its picture needs no base
                pending[i] = (lazy, pred)
            case BaseLost(i):
                lost.add(i)
                next_out = i if next_out is None else next_out
                dec.lost_frames.append(i)
            case EnhDamage():
                drop_decoder()
            case EnhUnit(unit):
                if dec.per_gop:
                    mode = gop_mode(event.index)
                    if mode is None:  # the GOP's record is lost: its packets cannot be placed
                        enh_skip = True
                        continue
                    if mode != enh_mode:
                        # a new mode starts with an intra packet; the old decoder's pictures come out first
                        close_decoder("a GOP")
                        enh_mode = mode
                        enh = new_enh_decoder(dec, enh_mode)
                        last_dts = None
                if enh_skip and not unit.intra:
                    continue
                enh_skip = False
                try:
                    packet = EnhancementPacket.from_payload(event.index, unit.intra, unit.payload)
                    if last_dts is not None and packet.dts <= last_dts:
                        raise BitstreamError(f"enhancement packet with decode time {packet.dts} after "
                                             f"{last_dts}: packets are out of order or duplicated")
                    last_dts = packet.dts
                    take(enh.decode(packet))
                except BitstreamError as exc:
                    err = wrap_error(exc, unit, dec._reader.name)
                    if not dec.conceal:
                        raise err from None
                    dec._extra_damage.append(Damage(unit.offset, str(err), ENHANCEMENT_LAYER, unit.frame))
                    drop_decoder()
            case StreamEnd():
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
