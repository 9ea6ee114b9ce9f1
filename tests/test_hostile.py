"""Hostile input (issue 19): crafted streams through the decoder, in-place outputs and pipes in the CLI.

Crafted streams are made by raw unit surgery with every CRC recomputed, so the damage reaches
the decoder's own checks instead of stopping at a CRC.  ``tools/fuzz_streams.py`` is the long
version of the hypothesis test at the end (thousands of streams, memory and time measured).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import one_error_line
from vcodec.bitstream import Damage
from vcodec.cli.main import main
from vcodec.errors import BitstreamError, VcodecError

GOLDEN = Path(__file__).resolve().parent / "golden"
HEAD = struct.Struct(">2sBBBBIIII")
BASE, ENH, END, INDEX = 0x10, 0x20, 0x7F, 0x70


def split_units(stream: bytes) -> tuple[bytes, list[list[Any]]]:
    """Preamble and ``[type, layer, flags, frame, payload]`` per unit."""
    pos, units = 8, []
    while pos + HEAD.size <= len(stream):
        _, t, layer, flags, _, frame, length, _, _ = HEAD.unpack_from(stream, pos)
        units.append([t, layer, flags, frame, stream[pos + HEAD.size: pos + HEAD.size + length]])
        pos += HEAD.size + length
    return stream[:8], units


def join_units(pre: bytes, units: list[list[Any]]) -> bytes:
    """Serialise with fresh CRCs and a consistent END unit count."""
    out = bytearray(pre)
    for k, (t, layer, flags, frame, payload) in enumerate(units):
        if t == END:
            payload = payload[:12] + struct.pack(">I", k)
        h = struct.pack(">2sBBBBIII", b"VU", t, layer, flags, 0, frame, len(payload), zlib.crc32(payload))
        out += h + struct.pack(">I", zlib.crc32(h)) + payload
    return bytes(out)


@pytest.fixture(scope="module")
def golden() -> bytes:
    """4 frames, intra period 2: base units of frames 0..3, then enhancement packets 0..3."""
    return (GOLDEN / "learned-x265.vcs").read_bytes()


def decode(blob: bytes, conceal: bool, layers: str = "all") -> tuple[list[int], Any]:
    from vcodec.codec import Decoder

    with Decoder(blob, conceal=conceal, layers=layers) as dec:
        return [f.index for f in dec.frames()], dec


def picture_md5(blob: bytes, conceal: bool = False) -> str:
    from vcodec.codec import Decoder

    md5 = hashlib.md5()
    with Decoder(blob, conceal=conceal) as dec:
        for f in dec.frames():
            md5.update(f.index.to_bytes(4, "big") + f.y.tobytes() + f.u.tobytes() + f.v.tobytes())
    return md5.hexdigest()


def crafted(stream: bytes, edit: Any) -> bytes:
    pre, units = split_units(stream)
    edit(units)
    return join_units(pre, units)


def base_units(units: list[list[Any]]) -> list[list[Any]]:
    return [u for u in units if u[0] == BASE]


# -- item 1: memory bounded by frame indexes and END counts --------------------------------------
def test_huge_frame_index_is_one_damaged_unit_not_billions_of_lost_frames(golden: bytes) -> None:
    def edit(units: list[list[Any]]) -> None:
        base_units(units)[1][3] = 0xFFFFFFFE

    blob = crafted(golden, edit)
    start = time.monotonic()
    with pytest.raises(BitstreamError, match="frames 1..4294967293 are missing") as e:
        decode(blob, conceal=False)
    assert e.value.frame == 0xFFFFFFFE
    frames, dec = decode(blob, conceal=True)
    assert frames == [0, 1, 2, 3] and dec.lost_frames == [1]  # frame 1 repeats frame 0
    assert any("4294967294" in d.message for d in dec.damage)
    frames, dec = decode(blob, conceal=True, layers="base")
    assert frames == [0, 1, 2, 3] and dec.lost_frames == [1]
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("count", [0xFFFFFFFF, 5, 3])
def test_end_frame_count_is_checked_and_never_padded_from(golden: bytes, count: int) -> None:
    def edit(units: list[list[Any]]) -> None:
        units[-1][4] = struct.pack(">I", count) + units[-1][4][4:]

    blob = crafted(golden, edit)
    with pytest.raises(BitstreamError, match=f"END counts {count} frames but the stream holds 4"):
        decode(blob, conceal=False)
    frames, dec = decode(blob, conceal=True)
    assert frames == [0, 1, 2, 3] and dec.lost_frames == []


def test_cut_off_stream_pads_at_most_what_it_received(golden: bytes) -> None:
    """A header frame count of 2^32-1 and no END: the tail padding stays bounded."""
    pre, units = split_units(golden)
    seq = bytearray(units[0][4])
    seq[18:22] = struct.pack(">I", 0xFFFFFFFF)
    units[0][4] = bytes(seq)
    blob = join_units(pre, units[:-2])  # no INDEX, no END: a live stream that was cut off
    frames, dec = decode(blob, conceal=True, layers="base")
    assert frames == list(range(8)) and dec.lost_frames == [4, 5, 6, 7]


# -- item 2: payload sizes checked against the SEQUENCE_HEADER before decoding --------------------
@pytest.mark.parametrize("size", [8000, 30000, 65534])
def test_base_payload_picture_size_is_checked_before_decoding(golden: bytes, size: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from vcodec.baselayer.learned.coder import BaseDecoder

    def edit(units: list[list[Any]]) -> None:
        p = bytearray(base_units(units)[0][4])
        p[4:8] = struct.pack("<HH", size, size)
        base_units(units)[0][4] = bytes(p)

    blob = crafted(golden, edit)
    real = BaseDecoder.decode_frame
    sizes: list[tuple[int, int]] = []

    def spy(self: Any, payload: bytes, intra: bool | None = None) -> Any:
        sizes.append(struct.unpack_from("<HH", payload, 4))
        return real(self, payload, intra)

    monkeypatch.setattr(BaseDecoder, "decode_frame", spy)
    with pytest.raises(BitstreamError, match=f"describes a {size}x{size} picture but the stream is 160x128"):
        decode(blob, conceal=False)
    frames, dec = decode(blob, conceal=True)
    assert frames == [2, 3] and dec.lost_frames == [0, 1]
    assert (size, size) not in sizes  # refused before the payload decoder saw it


def test_feature_payload_picture_size_is_checked() -> None:
    stream = (GOLDEN / "features-x265.vcs").read_bytes()

    def edit(units: list[list[Any]]) -> None:
        p = bytearray(base_units(units)[0][4])
        p[2:6] = struct.pack("<HH", 30000, 30000)
        base_units(units)[0][4] = bytes(p)

    from vcodec.codec import Decoder

    # (its layer 1 codes full frames: only the base layer's readers decode layer 0)
    with pytest.raises(BitstreamError, match="describes a 30000x30000 picture"), \
            Decoder(crafted(stream, edit), layers="base") as dec:
        list(dec.latents())


# -- item 3: strict decode raises instead of returning altered pictures --------------------------
def test_swapped_enhancement_packets_raise_strict_and_are_reported_concealed(golden: bytes) -> None:
    def edit(units: list[list[Any]]) -> None:
        k = [i for i, u in enumerate(units) if u[0] == ENH]
        units[k[1]], units[k[2]] = units[k[2]], units[k[1]]

    blob = crafted(golden, edit)
    with pytest.raises(BitstreamError, match="out of order"):
        decode(blob, conceal=False)
    frames, dec = decode(blob, conceal=True)
    assert frames == [0, 1, 2, 3] and dec.coarse_frames and dec.damage


def test_base_unit_relabelled_to_another_layer_raises_strict(golden: bytes) -> None:
    def edit(units: list[list[Any]]) -> None:
        base_units(units)[1][1] = 2

    blob = crafted(golden, edit)
    with pytest.raises(BitstreamError, match="layer 2, which has no LAYER_CONFIG") as e:
        decode(blob, conceal=False)
    assert e.value.frame == 1
    frames, dec = decode(blob, conceal=True)
    assert frames == [0, 1, 2, 3] and dec.lost_frames == [1]


@pytest.mark.parametrize("which", ["base", "enh"])
def test_deleted_unit_raises_strict(golden: bytes, which: str) -> None:
    def edit(units: list[list[Any]]) -> None:
        k = [i for i, u in enumerate(units) if u[0] == (BASE if which == "base" else ENH)]
        del units[k[1]]

    with pytest.raises(BitstreamError, match="missing|no picture"):
        decode(crafted(golden, edit), conceal=False)


def test_stream_starting_at_an_intra_frame_decodes_strict(golden: bytes) -> None:
    """What `GET ...?start=` and a live join send: a stream cut at a random-access point."""
    def edit(units: list[list[Any]]) -> None:
        for u in [u for u in units if u[0] in (BASE, ENH) and u[3] < 2]:
            units.remove(u)
        units[:] = [u for u in units if u[0] != INDEX]
        units[-1][4] = struct.pack(">IQ", 2, 0) + units[-1][4][12:]

    frames, dec = decode(crafted(golden, edit), conceal=False)
    assert frames == [2, 3] and dec.lost_frames == []


# -- item 4: the first frame is concealed like any other -------------------------------------------
def test_conceal_damaged_first_frame_through_the_cli(golden: bytes, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pre, units = split_units(golden)
    first = len(pre) + sum(HEAD.size + len(u[4]) for u in units[:3])  # after SEQUENCE_HEADER, 2 LAYER_CONFIGs
    assert units[3][0] == BASE and units[3][3] == 0
    hit = bytearray(golden)
    hit[first + HEAD.size + 5] ^= 0x10  # one bit in frame 0's base payload; CRC left as it is
    src = tmp_path / "hit.vcs"
    src.write_bytes(bytes(hit))
    assert main(["decode", str(src), "-o", str(tmp_path / "x.y4m")]) == 1
    one_error_line(capsys, "frame 0", "CRC")
    report = tmp_path / "r.json"
    assert main(["decode", str(src), "-o", str(tmp_path / "x.y4m"), "--conceal", "--json", str(report)]) == 0
    err = capsys.readouterr().err
    assert "concealed" in err and "lost (0-1)" in err
    r = json.loads(report.read_text())
    assert r["frames"] == 2 and r["lost_frames"] == [0, 1] and r["damage"]


# -- item 5: output = input refused ------------------------------------------------------------------
@pytest.mark.parametrize("how", ["same", "dot", "hardlink", "symlink"])
@pytest.mark.parametrize("command", ["decode", "extract", "encode"])
def test_output_that_is_the_input_is_refused(golden: bytes, tmp_path: Path, command: str, how: str,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "s.vcs"
    src.write_bytes(golden)
    monkeypatch.chdir(tmp_path)
    out = {"same": str(src), "dot": "./s.vcs", "hardlink": str(tmp_path / "h.vcs"),
           "symlink": str(tmp_path / "l.vcs")}[how]
    if how == "hardlink":
        os.link(src, out)
    elif how == "symlink":
        os.symlink(src, out)
    assert main([command, "s.vcs", "-o", out]) == 2
    one_error_line(capsys, out, "is the input file")
    assert src.read_bytes() == golden


def test_json_report_into_a_missing_folder_is_refused_before_encoding(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import SEQUENCE

    out = tmp_path / "s.vcs"
    report = str(tmp_path / "no" / "r.json")
    rc = main(["encode", str(SEQUENCE), "-o", str(out), "--frames", "1", "--json", report])
    assert rc == 2 and not out.exists() and not list(tmp_path.iterdir())
    one_error_line(capsys, "--json", "does not exist")


def test_outputs_and_reports_follow_the_umask(golden: bytes, tmp_path: Path) -> None:
    src = tmp_path / "s.vcs"
    src.write_bytes(golden)
    old = os.umask(0o022)
    try:
        assert main(["extract", str(src), "-o", str(tmp_path / "b.vcs"), "-q"]) == 0
        assert main(["decode", str(src), "-o", str(tmp_path / "x.y4m"), "-q", "--json",
                     str(tmp_path / "r.json")]) == 0
    finally:
        os.umask(old)
    for name in ("b.vcs", "x.y4m", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_closed_pipe_ends_quietly() -> None:
    """`vcodec decode s.vcs -o - | head -c 100`: no "Broken pipe" message, exit 0."""
    cmd = (f"{sys.executable} -m vcodec decode {GOLDEN / 'learned-x265.vcs'} -o - -q"
           " | head -c 100 >/dev/null;"
           " exit ${PIPESTATUS[0]}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


# -- the fuzz properties, fast (tools/fuzz_streams.py runs thousands) -------------------------------
@st.composite
def crafted_edit(draw: st.DrawFn, n_units: int) -> tuple[str, int, int]:
    kind = draw(st.sampled_from(["frame", "layer", "intra", "swap", "repeat", "delete", "end"]))
    a = draw(st.integers(3, n_units - 3))  # frame units only (3 header units, INDEX and END at the end)
    b = draw(st.one_of(st.integers(3, n_units - 3), st.sampled_from([0xFFFFFFFE, 2, 7, 254])))
    return kind, a, b


def apply_edit(units: list[list[Any]], edit: tuple[str, int, int]) -> None:
    kind, a, b = edit
    u = units[a]
    if kind == "frame":
        u[3] = b if b > 255 else (u[3] + 1 + b % 3)
    elif kind == "layer":
        u[1] = (u[1] + 1 + b) % 256 if b != 254 else 254
    elif kind == "intra":
        u[2] ^= 1
    elif kind == "swap":
        j = b if 3 <= b < len(units) - 2 else a
        units[a], units[j] = units[j], units[a]
    elif kind == "repeat":
        units.insert(a, list(u))
    elif kind == "delete":
        del units[a]
    else:
        units[-1][4] = struct.pack(">I", b) + units[-1][4][4:]


@pytest.fixture(scope="module")
def golden_md5(golden: bytes) -> str:
    return picture_md5(golden)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_crafted_streams_never_decode_strict_to_other_pictures(golden: bytes, golden_md5: str,
                                                               data: st.DataObject) -> None:
    """Crafted structure (CRCs recomputed): strict gives a typed error or the very same pictures;
    concealed gives pictures with no bare exception, in order, never more than the stream's frames."""
    pre, units = split_units(golden)
    edit = data.draw(crafted_edit(len(units)))
    apply_edit(units, edit)
    blob = join_units(pre, units)
    start = time.monotonic()
    try:
        assert picture_md5(blob) == golden_md5, edit
    except VcodecError:
        pass
    frames, dec = decode(blob, conceal=True)
    assert frames == sorted(set(frames)) and len(frames) <= 4, (edit, frames)
    assert all(isinstance(d, Damage) for d in dec.damage)
    assert time.monotonic() - start < 20.0


def test_conceal_damaged_enhancement_layer_config_shows_base_pictures(golden: bytes) -> None:
    """Item 4: a damaged LAYER_CONFIG of layer 1 loses that layer only; the base layer's stays fatal."""
    from vcodec.codec import Decoder

    pre, units = split_units(golden)
    assert [(u[0], u[1]) for u in units[1:3]] == [(0x02, 0), (0x02, 1)]
    at = {layer: len(pre) + sum(HEAD.size + len(u[4]) for u in units[:k]) for k, layer in ((1, 0), (2, 1))}
    for layer, offset in at.items():
        hit = bytearray(golden)
        hit[offset + HEAD.size + 3] ^= 0x01  # payload CRC fails, the header (and length) is intact
        with pytest.raises(BitstreamError, match="payload CRC"):
            decode(bytes(hit), conceal=False)
        if layer == 0:
            with pytest.raises(BitstreamError, match="payload CRC"):
                decode(bytes(hit), conceal=True)
            continue
        frames, dec = decode(bytes(hit), conceal=True)
        assert frames == [0, 1, 2, 3] and dec.coarse_frames == [0, 1, 2, 3] and dec.enh_lost
        assert dec.damage[0].layer == 1
        with Decoder(bytes(hit), conceal=True, layers="base") as base, Decoder(golden, layers="base") as ref:
            assert [f.y.tobytes() for f in base.frames()] == [f.y.tobytes() for f in ref.frames()]
