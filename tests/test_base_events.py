"""The layer-0 walk's typed events (vcodec.codec.base_events), read off committed golden streams.

The pictures these events become are checked bit-exactly by tests/test_golden.py; here: which event
each unit turns into (decoded, skipped, lost, handed on) and the order they come in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from vcodec.bitstream import Damage, StreamReader
from vcodec.codec.base_events import (
    BaseDecoded,
    BaseEvent,
    BaseLost,
    BaseSkipped,
    EnhDamage,
    EnhUnit,
    GopStart,
    StreamEnd,
    base_events,
)
from vcodec.codec.decoder import Decoder

GOLDEN = Path(__file__).resolve().parent / "golden"
UNIT_HEAD = struct.Struct(">2sBBBBIIII")  # sync, type, layer, flags, reserved, frame, length, crcs
BASE_FRAME = 0x10


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: Iterator[None]) -> None:
    """One torch thread (the machine's cores are shared)."""


def _walk(blob: bytes, *, want_enh: bool, conceal: bool = False) -> tuple[list[BaseEvent], list[Damage]]:
    with Decoder(blob, conceal=conceal, layers="all" if want_enh else "base") as dec:
        cfg = dec.enh_config
        anchor = cfg is not None and not dec.per_gop and bool(cfg.params.get("anchor"))
        damage: list[Damage] = []
        reader = StreamReader(blob, conceal=conceal)
        try:
            events = list(base_events(reader, dec._load_base, damage, conceal=conceal, want_enh=want_enh,
                                      per_gop_layer=dec.per_gop, full_frame_layer=anchor))
        finally:
            reader.close()
        return events, damage


def _kinds(events: list[BaseEvent]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for e in events:
        match e:
            case BaseDecoded(i) | BaseLost(i) | BaseSkipped(i):
                out.append((type(e).__name__, i))
            case EnhUnit():
                out.append(("EnhUnit", e.index))
            case GopStart(frame):
                out.append(("GopStart", frame))
            case EnhDamage(damage):
                out.append(("EnhDamage", damage.frame))
            case StreamEnd(total):
                out.append(("StreamEnd", total))
    return out


def test_residual_stream_decodes_every_base_frame_and_hands_packets_on() -> None:
    blob = (GOLDEN / "learned-x265.vcs").read_bytes()  # 4 frames, residual layer 1
    events, damage = _walk(blob, want_enh=True)
    kinds = _kinds(events)
    assert [k for k in kinds if k[0] == "BaseDecoded"] == [("BaseDecoded", i) for i in range(4)]
    assert sorted(i for k, i in kinds if k == "EnhUnit") == [0, 1, 2, 3]
    assert kinds[-1] == ("StreamEnd", 4) and damage == []
    # detections/latents: layer 1 is not handed on
    base_only = _kinds(_walk(blob, want_enh=False)[0])
    assert base_only == [("BaseDecoded", i) for i in range(4)] + [("StreamEnd", 4)]


def test_full_frame_layer_skips_the_base_unless_base_pictures_are_wanted() -> None:
    blob = (GOLDEN / "learned-vp9.vcs").read_bytes()  # 4 frames, layer 1 codes full frames (inter_layer off)
    kinds = _kinds(_walk(blob, want_enh=True)[0])
    assert [k for k in kinds if k[0].startswith("Base")] == [("BaseSkipped", i) for i in range(4)]
    assert _kinds(_walk(blob, want_enh=False)[0])[:4] == [("BaseDecoded", i) for i in range(4)]


def test_damaged_base_unit_is_lost_up_to_the_next_intra_frame() -> None:
    blob = bytearray((GOLDEN / "learned-x265.vcs").read_bytes())  # intra period 2
    pos, hit = 8, False
    while pos + UNIT_HEAD.size <= len(blob):
        _, utype, _, _, _, frame, length, _, _ = UNIT_HEAD.unpack_from(blob, pos)
        if utype == BASE_FRAME and frame == 1:
            blob[pos + UNIT_HEAD.size + length // 2] ^= 0xFF  # payload CRC no longer matches
            hit = True
        pos += UNIT_HEAD.size + length
    assert hit
    events, _ = _walk(bytes(blob), want_enh=False, conceal=True)
    assert _kinds(events) == [("BaseDecoded", 0), ("BaseLost", 1), ("BaseDecoded", 2), ("BaseDecoded", 3),
                              ("StreamEnd", 4)]
