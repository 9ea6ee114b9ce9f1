"""The one unit parser: the pull reader and the server's push parser refuse the same damage.

``vcodec.serve.UnitParser`` once had its own copy of the unit-header checks and
lacked the unknown-flags rule; both now go through ``vcodec.bitstream.parser``.
"""

from __future__ import annotations

import zlib

import pytest

from tests.test_bitstream import _insert_unit, _with_preamble, make_stream
from vcodec.bitstream import StreamReader, UnitType
from vcodec.bitstream.format import NO_FRAME, SYNC, UNIT_HEADER
from vcodec.bitstream.writer import pack_unit
from vcodec.errors import BitstreamError
from vcodec.serve import UnitParser


def _unit_with_flags(unit_type: int, layer: int, payload: bytes, frame: int | None, flags: int) -> bytes:
    """A unit whose header carries ``flags`` as given (pack_unit only writes the intra flag)."""
    head = UNIT_HEADER.pack(SYNC, unit_type, layer, flags, 0, NO_FRAME if frame is None else frame,
                            len(payload), zlib.crc32(payload), 0)[:18]
    return head + zlib.crc32(head).to_bytes(4, "big") + payload


def _pull(data: bytes) -> list[tuple[int, int | None]]:
    with StreamReader(data) as r:
        return [(u.layer, u.frame) for u in r]  # type: ignore[union-attr]


def _push(data: bytes, piece: int = 7) -> list[tuple[int, int | None]]:
    p = UnitParser()
    got = []
    for i in range(0, len(data), piece):
        got += p.feed(data[i : i + piece])
    assert p.ended
    return [(u.layer, u.frame) for u in got if u.type not in (UnitType.INDEX, UnitType.END)]


# each defect is inserted right before the first frame unit, so it is the first frame-level unit
DEFECTS = {
    "unknown flags": (_unit_with_flags(UnitType.BASE_FRAME, 0, b"x", 0, 0x80), r"reserved header bits set"),
    "unknown unit type": (pack_unit(0x55, 0, b"future", frame=0), r"unknown unit type 0x55"),
    "frame unit without index": (pack_unit(UnitType.BASE_FRAME, 0, b"x"), r"without a frame index"),
    "late header unit": (pack_unit(UnitType.SEQUENCE_HEADER, 0xFF, b"x" * 8),
                         r"header unit after the first frame unit"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_push_parser_refuses_what_the_reader_refuses(defect: str) -> None:
    unit, message = DEFECTS[defect]
    # the late header unit must come after a frame unit: put it after the headers and one frame
    data = _insert_unit(make_stream(), unit) if defect != "late header unit" else _after_first_frame(unit)
    with pytest.raises(BitstreamError, match=message) as pulled:
        _pull(data)
    with pytest.raises(BitstreamError, match=message) as pushed:
        _push(data)
    assert pushed.value.offset == pulled.value.offset


def _after_first_frame(unit: bytes) -> bytes:
    data = make_stream()
    with StreamReader(data) as r:
        first = next(iter(r))
        cut = first.offset + len(first.raw)  # type: ignore[union-attr]
    # the END unit count is not checked by the push parser and the reader fails before END
    return data[:cut] + unit + data[cut:]


def test_newer_minor_version_may_use_flags_and_unit_types() -> None:
    base = make_stream()
    odd = _unit_with_flags(UnitType.BASE_FRAME, 7, b"x", 0, 0x80)
    flagged = _with_preamble(_insert_unit(base, odd), 1, 99)
    assert _push(flagged) == _pull(flagged) == [(7, 0)] + _pull(base)
    # an unknown unit type: the reader skips it, the server relays it to subscribers who may know it
    typed = _with_preamble(_insert_unit(base, pack_unit(0x55, 0, b"future", frame=0)), 1, 99)
    assert _pull(typed) == _pull(base)
    assert _push(typed) == [(0, 0)] + _pull(base)


def test_header_errors_are_the_readers() -> None:
    bad_magic = b"NOPE" + make_stream()[4:]
    with pytest.raises(BitstreamError) as pulled:
        _pull(bad_magic)
    with pytest.raises(BitstreamError) as pushed:
        _push(bad_magic)
    assert str(pulled.value).split(": ", 1)[1] == str(pushed.value).split(": ", 1)[1]
    major = _with_preamble(make_stream(), 2, 0)
    with pytest.raises(BitstreamError, match="version 2.0 is not supported"):
        _push(major)
