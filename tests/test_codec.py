"""End-to-end codec (vcodec.codec): Encoder/Decoder, layering, determinism, damage, bad input.

Uses the bundled synthetic sequence (shortened) and a small seeded, untrained base
model written to real weights files (conftest ``codec_test_model``): the stream
machinery does not depend on training.  Tests that need YOLOX-Nano's weights for
meaningful detections use ``../shared`` and skip without it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SEQUENCE, assert_detections_content

from vcodec import __version__
from vcodec.bitstream import StreamReader, UnitType, extract_layers
from vcodec.codec import Decoder, Encoder, FrameStats, bundled_sequence
from vcodec.codec.base_layer import BASE_MODES, LEARNED_KIND, BaseLayer, get_base_factory, kind_for_mode
from vcodec.codec.encoder import DB_PER_RATE_DOUBLING, choose_inter_layer
from vcodec.detection import get_detector
from vcodec.enhancement import frame_psnr
from vcodec.errors import (
    BitstreamError,
    ConfigError,
    InputError,
    OutputError,
    WeightsError,
    WeightsMismatchError,
)
from vcodec.io import Frame, VideoInfo, open_video

FRAMES = 10
INTRA = 4
#: full-decode PSNR-Y floor at default enhancement settings (x265 CRF 28); measured 38.8 dB
#: with the untrained test base (the enhancement carries the picture), more with trained weights
PSNR_FLOOR = 33.0


def _frames(n: int = FRAMES) -> tuple[VideoInfo, list[Frame]]:
    with open_video(SEQUENCE, frames=n) as r:
        return r.info, list(r)


def _md5(frames: list[Frame]) -> str:
    h = hashlib.md5()
    for f in frames:
        h.update(f.to_bytes())
    return h.hexdigest()


@dataclass
class Encoded:
    data: bytes
    frames: list[Frame]
    stats: list[FrameStats]
    summary: object


def _encode(model: Path, n: int = FRAMES, **kw: object) -> Encoded:
    info, frames = _frames(n)
    sink = io.BytesIO()
    with Encoder(sink, info, base_model=str(model), **kw) as enc:  # type: ignore[arg-type]
        stats = [enc.encode(f) for f in frames]
    return Encoded(sink.getvalue(), frames, stats, enc.summary())


@pytest.fixture(scope="module")
def encoded(codec_test_model: Path) -> Encoded:
    """10 frames at default settings (base quality 0.5, x265 CRF 28), intra period 4, PSNR on."""
    torch.set_num_threads(1)
    return _encode(codec_test_model, intra_period=INTRA, psnr=True)


@pytest.fixture(scope="module")
def decoded_md5(encoded: Encoded, codec_test_model: Path) -> str:
    with Decoder(encoded.data, base_model=str(codec_test_model)) as dec:
        return _md5(list(dec.frames()))


# -- the happy path -------------------------------------------------------------------
def test_end_to_end_psnr_and_structure(encoded: Encoded, codec_test_model: Path) -> None:
    with Decoder(encoded.data, base_model=str(codec_test_model)) as dec:
        out = list(dec.frames())
        assert dec.lost_frames == [] and dec.coarse_frames == []
    assert [f.index for f in out] == list(range(FRAMES))
    psnrs = [frame_psnr(a, b)[0] for a, b in zip(encoded.frames, out, strict=True)]
    assert min(psnrs) > PSNR_FLOOR, psnrs
    s = encoded.summary
    # the encoder's own measurement (it decodes its packets) agrees with the real decode
    assert s.psnr_full == pytest.approx(float(np.mean(psnrs)), abs=1e-6)  # type: ignore[attr-defined]
    assert s.frames == FRAMES and s.base_bytes > 0 and s.enh_bytes > 0  # type: ignore[attr-defined]
    assert s.base_bytes == sum(st.base_bytes for st in encoded.stats)  # type: ignore[attr-defined]
    assert 0 < s.base_share < 1 and s.stream_bytes == len(encoded.data)  # type: ignore[attr-defined]
    assert [st.intra for st in encoded.stats] == [i % INTRA == 0 for i in range(FRAMES)]

    reader = StreamReader(encoded.data)
    h = reader.header
    assert h.intra_period == INTRA and h.properties["intra_period"] == INTRA
    assert h.properties["vcodec_version"] == __version__
    assert reader.layers[0].kind == LEARNED_KIND and reader.layers[0].codec == "base-e2e-test-v1"
    assert reader.layers[1].params["base_picture"] is True
    units = [u for u in reader if not isinstance(u, type(None))]
    for layer in (0, 1):
        mine = [u for u in units if u.layer == layer and u.type != UnitType.ENH_GOP]  # GOP records aside
        assert sorted(u.frame for u in mine) == list(range(FRAMES))
        assert {u.frame for u in mine if u.intra} == {i for i in range(FRAMES) if i % INTRA == 0}


def test_base_layer_pictures(encoded: Encoded, codec_test_model: Path) -> None:
    with Decoder(encoded.data, layers="base", base_model=str(codec_test_model)) as dec:
        base = list(dec.frames())
    assert [f.index for f in base] == list(range(FRAMES))
    psnr_base = [frame_psnr(a, b)[0] for a, b in zip(encoded.frames, base, strict=True)]
    assert encoded.summary.psnr_base == pytest.approx(float(np.mean(psnr_base)), abs=1e-6)  # type: ignore[attr-defined]


def test_lossless_is_bit_exact(codec_test_model: Path) -> None:
    enc = _encode(codec_test_model, n=5, lossless=True, preset="ultrafast", intra_period=INTRA)
    with Decoder(enc.data, base_model=str(codec_test_model)) as dec:
        out = list(dec.frames())
    assert len(out) == 5
    for a, b in zip(enc.frames, out, strict=True):
        assert np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)


def test_inter_layer_off_codes_full_frames(encoded: Encoded, codec_test_model: Path) -> None:
    enc = _encode(codec_test_model, intra_period=INTRA, psnr=True, inter_layer=False)
    reader = StreamReader(enc.data)
    assert reader.layers[1].kind == "full-frame" and reader.layers[1].params["anchor"] is True
    assert reader.layers[1].params["base_picture"] is True
    # same base layer, byte for byte: the switch only changes what layer 1 codes
    base = lambda data: [u.payload for u in StreamReader(data) if u is not None and u.layer == 0]  # noqa: E731
    assert base(enc.data) == base(encoded.data)
    with Decoder(enc.data, base_model=str(codec_test_model)) as dec:
        out = list(dec.frames())
    psnrs = [frame_psnr(a, b)[0] for a, b in zip(enc.frames, out, strict=True)]
    assert len(out) == FRAMES and min(psnrs) > PSNR_FLOOR
    assert enc.summary.psnr_full == pytest.approx(float(np.mean(psnrs)), abs=1e-6)  # type: ignore[attr-defined]
    # the full decode is the enhancement picture alone: it no longer depends on the base picture
    lossless = _encode(codec_test_model, n=3, lossless=True, preset="ultrafast", inter_layer=False)
    with Decoder(lossless.data, base_model=str(codec_test_model)) as dec:
        for a, b in zip(lossless.frames, dec.frames(), strict=False):
            assert np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)
    with pytest.raises(ConfigError, match="inter_layer"):
        _encode(codec_test_model, n=1, roi=True, inter_layer=False)


def test_choose_inter_layer_at_equal_quality() -> None:
    # bytes alone decide at equal PSNR; ties keep the residual
    assert choose_inter_layer(900, 40.0, 1000, 40.0) and choose_inter_layer(1000, 40.0, 1000, 40.0)
    assert not choose_inter_layer(1100, 40.0, 1000, 40.0)
    # 5 dB more is worth twice the bytes (DB_PER_RATE_DOUBLING), so 1900 bytes at +5 dB win, 2100 lose
    assert DB_PER_RATE_DOUBLING == 5.0
    assert choose_inter_layer(1900, 45.0, 1000, 40.0) and not choose_inter_layer(2100, 45.0, 1000, 40.0)
    # the measured case from the cars clip: the residual is larger AND worse
    assert not choose_inter_layer(8768, 41.44, 7534, 42.84)
    # lossless (infinite PSNR): bytes only
    assert not choose_inter_layer(5000, float("inf"), 4000, float("inf"))


# inter_layer="auto" (per GOP, the default) is tested in tests/test_codec_per_gop.py


def test_deterministic_across_runs_and_threads(
    encoded: Encoded, codec_test_model: Path, decoded_md5: str
) -> None:
    # encoding again gives the same bytes; decoding with 2 threads gives the same pictures
    again = _encode(codec_test_model, intra_period=INTRA, psnr=True)
    assert again.data == encoded.data
    try:
        with Decoder(encoded.data, base_model=str(codec_test_model), threads=2) as dec:
            assert _md5(list(dec.frames())) == decoded_md5
    finally:
        torch.set_num_threads(1)


def test_base_only_stream_gives_same_latents(encoded: Encoded, codec_test_model: Path) -> None:
    base_only = io.BytesIO()
    extract_layers(io.BytesIO(encoded.data), base_only, [0])
    assert len(base_only.getvalue()) < len(encoded.data)

    def latents(data: bytes) -> list[tuple[int, torch.Tensor]]:
        with Decoder(data, layers="base", base_model=str(codec_test_model)) as dec:
            return list(dec.latents())

    full, base = latents(encoded.data), latents(base_only.getvalue())
    assert [i for i, _ in full] == [i for i, _ in base] == list(range(FRAMES))
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(full, base, strict=True))
    # a base-only stream has no full pictures
    with pytest.raises(ConfigError, match="layers='base'"):
        Decoder(base_only.getvalue(), base_model=str(codec_test_model))


def test_base_only_stream_gives_same_detections(encoded: Encoded, codec_test_model: Path,
                                                yolox_nano_onnx: Path) -> None:
    # low threshold: the test base model is untrained, its features give weak scores
    det = get_detector("yolox-nano", yolox_nano_onnx, score_threshold=0.01)
    base_only = io.BytesIO()
    extract_layers(io.BytesIO(encoded.data), base_only, [0])

    def run(data: bytes) -> list[tuple[int, np.ndarray, np.ndarray]]:
        with Decoder(data, layers="base", base_model=str(codec_test_model), detector=det) as dec:
            return [(i, d.boxes.copy(), d.scores.copy()) for i, d in dec.detections()]

    full, base = run(encoded.data), run(base_only.getvalue())
    assert [i for i, *_ in full] == list(range(FRAMES))
    assert sum(len(b) for _, b, _ in full) > 0
    for (i, b1, s1), (j, b2, s2) in zip(full, base, strict=False):
        assert i == j and np.array_equal(b1, b2) and np.array_equal(s1, s2)
    # the Decoder builds the same detector (default thresholds) from the weights path itself
    with Decoder(base_only.getvalue(), layers="base", base_model=str(codec_test_model),
                 detector_weights=yolox_nano_onnx) as dec:
        dets = list(dec.detections())
    det.score_threshold = get_detector("yolox-nano", yolox_nano_onnx).score_threshold
    assert [(i, d.boxes.tolist(), d.scores.tolist()) for i, d in dets] == [
        (i, b.tolist(), s.tolist()) for i, b, s in run(base_only.getvalue())]
    for _, d in dets:
        assert_detections_content(d, 416, 240)


def test_stream_is_written_frame_by_frame(codec_test_model: Path) -> None:
    """After encode(frame 0) the sink already holds a readable base unit of frame 0."""

    class Recorder(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()
            self.flushes = 0

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

        def flush(self) -> None:
            self.flushes += 1

    info, frames = _frames(2)
    rec = Recorder()
    with Encoder(rec, info, base_model=str(codec_test_model), preset="ultrafast") as enc:
        enc.encode(frames[0])
        reader = StreamReader(bytes(rec.data), allow_open_end=True)
        first = [u for u in reader]
        assert first and first[0].type == UnitType.BASE_FRAME and first[0].frame == 0
        assert rec.flushes >= 2  # after the headers and after the frame
        enc.encode(frames[1])


def test_low_delay_gives_every_frame_at_once(codec_test_model: Path) -> None:
    enc = _encode(codec_test_model, n=4, low_delay=True, psnr=True, preset="ultrafast")
    assert all(st.enh_bytes > 0 and st.psnr_full is not None for st in enc.stats)


def test_bundled_sequence_is_found() -> None:
    assert bundled_sequence().resolve() == SEQUENCE.resolve()


# -- the base-layer protocol -----------------------------------------------------------
def test_base_mode_registry(codec_test_model: Path) -> None:
    assert kind_for_mode("learned") == LEARNED_KIND and LEARNED_KIND in BASE_MODES
    layer = get_base_factory(LEARNED_KIND).for_encoding(str(codec_test_model))
    assert isinstance(layer, BaseLayer) and layer.has_picture
    with pytest.raises(ConfigError, match="unknown base mode"):
        kind_for_mode("pixels")
    with pytest.raises(ConfigError, match="not available"):
        get_base_factory("no-such-kind")


# -- weights -----------------------------------------------------------------------------
def test_other_weights_are_refused(encoded: Encoded, codec_test_model: Path, codec_other_model: Path) -> None:
    from vcodec.baselayer.learned import file_sha256

    # (layers="base": the model is loaded at construction; a full decode of a layer that may code
    # full frames loads it when a residual GOP needs it, tests/test_codec_per_gop.py)
    with pytest.raises(WeightsMismatchError) as ei:
        Decoder(encoded.data, layers="base", base_model=str(codec_other_model))
    msg = str(ei.value)
    assert file_sha256(codec_test_model.with_suffix(".pt")) in msg
    assert file_sha256(codec_other_model.with_suffix(".pt")) in msg
    # a model id that is not installed: say which and what to pass
    with pytest.raises(WeightsError, match="base-e2e-test-v1.*--base-model"):
        Decoder(encoded.data, layers="base")


# -- damage --------------------------------------------------------------------------------
def _units(data: bytes) -> list:
    return [u for u in StreamReader(data)]


def _corrupt(data: bytes, layer: int, frame: int) -> tuple[bytes, int]:
    unit = next(u for u in _units(data) if u.layer == layer and u.frame == frame)
    pos = unit.offset + 22 + len(unit.payload) // 2  # inside the payload: its CRC fails
    b = bytearray(data)
    b[pos] ^= 0x5A
    return bytes(b), unit.offset


def test_damaged_base_unit(encoded: Encoded, codec_test_model: Path, decoded_md5: str) -> None:
    bad, offset = _corrupt(encoded.data, 0, 5)
    with pytest.raises(BitstreamError) as ei:
        with Decoder(bad, base_model=str(codec_test_model)) as dec:
            list(dec.frames())
    assert ei.value.offset == offset and ei.value.frame == 5
    assert f"byte {offset}" in str(ei.value) and "frame 5" in str(ei.value)

    with Decoder(bad, base_model=str(codec_test_model), conceal=True) as dec:
        out = list(dec.frames())
        lost = dec.lost_frames
    # frames 5..7 need the lost reference; 8 is intra again
    assert lost == [5, 6, 7]
    assert [f.index for f in out] == list(range(FRAMES))
    for i in (5, 6, 7):
        assert np.array_equal(out[i].y, out[4].y)  # repeat of the last good picture
    with Decoder(encoded.data, base_model=str(codec_test_model)) as dec:
        clean = list(dec.frames())
    for i in (0, 1, 2, 3, 4, 8, 9):
        assert np.array_equal(out[i].y, clean[i].y), i
    with Decoder(bad, base_model=str(codec_test_model), conceal=True, layers="base") as dec:
        dets_lost = [i for i, _ in dec.latents()]
    assert dets_lost == [0, 1, 2, 3, 4, 8, 9]


def test_damaged_enhancement_unit(encoded: Encoded, codec_test_model: Path) -> None:
    bad, offset = _corrupt(encoded.data, 1, 0)  # the first enhancement key frame
    with pytest.raises(BitstreamError) as ei:
        with Decoder(bad, base_model=str(codec_test_model)) as dec:
            list(dec.frames())
    assert ei.value.offset == offset
    with Decoder(bad, base_model=str(codec_test_model), conceal=True) as dec:
        out = list(dec.frames())
        coarse = dec.coarse_frames
    assert [f.index for f in out] == list(range(FRAMES)) and dec.lost_frames == []
    assert coarse[:4] == [0, 1, 2, 3] and all(f < 4 for f in coarse)  # the first GOP shows x_base
    with Decoder(encoded.data, base_model=str(codec_test_model), layers="base") as dec:
        base = list(dec.frames())
    assert np.array_equal(out[0].y, base[0].y)
    assert frame_psnr(encoded.frames[8], out[8])[0] > PSNR_FLOOR  # recovered at the next intra frame


def test_truncated_stream(encoded: Encoded, codec_test_model: Path) -> None:
    unit = next(u for u in _units(encoded.data) if u.layer == 0 and u.frame == 7)
    cut = encoded.data[: unit.offset + 30]  # inside the base unit of frame 7
    with pytest.raises(BitstreamError, match="truncated|END"):
        with Decoder(cut, base_model=str(codec_test_model)) as dec:
            list(dec.frames())
    with Decoder(cut, base_model=str(codec_test_model), conceal=True) as dec:
        out = list(dec.frames())
    assert len(out) == FRAMES  # the header knows the count: the lost tail repeats the last picture
    assert dec.lost_frames == [7, 8, 9]
    assert np.array_equal(out[9].y, out[6].y)


def test_garbage_input_is_a_bitstream_error(codec_test_model: Path) -> None:
    with pytest.raises(BitstreamError, match="not a vcodec stream"):
        Decoder(SEQUENCE.read_bytes()[:4096], base_model=str(codec_test_model))


# -- bad input at the encoder ------------------------------------------------------------------
def test_encoder_errors_leave_nothing(tmp_path: Path, codec_test_model: Path) -> None:
    info, frames = _frames(2)
    out = tmp_path / "x.vcs"
    with pytest.raises(ConfigError, match="enhancement codec"):
        Encoder(out, info, base_model=str(codec_test_model), enh_codec="libx999")
    with pytest.raises(ConfigError, match="intra_period"):
        Encoder(out, info, base_model=str(codec_test_model), intra_period=0)
    with pytest.raises(OutputError, match="cannot write"):
        Encoder(tmp_path / "missing" / "x.vcs", info, base_model=str(codec_test_model))
    small = Frame.blank(64, 64)
    with pytest.raises(InputError, match="64x64"):
        with Encoder(out, info, base_model=str(codec_test_model), preset="ultrafast") as enc:
            enc.encode(frames[0])
            enc.encode(small)
    assert os.listdir(tmp_path) == []  # no output, no temporary file
    with Encoder(out, info, base_model=str(codec_test_model), preset="ultrafast") as enc:
        enc.encode(frames[0])
    assert [p.name for p in tmp_path.iterdir()] == ["x.vcs"]
    assert re.match(r"VCDC", out.read_bytes()[:4].decode())


def test_feature_base_mode_end_to_end(yolox_nano_onnx: Path) -> None:
    """The training-free feature mode through the same Encoder/Decoder (no base picture:
    the enhancement layer codes full frames)."""
    info, frames = _frames(5)
    sink = io.BytesIO()
    with Encoder(sink, info, base_mode="features", base_model="yolox-nano", detector_weights=yolox_nano_onnx,
                 preset="ultrafast", intra_period=INTRA, psnr=True) as enc:
        for f in frames:
            enc.encode(f)
    reader = StreamReader(sink.getvalue())
    assert reader.layers[0].kind == "feature-base" and reader.layers[1].kind == "full-frame"
    assert reader.layers[1].params["anchor"] is True and reader.layers[1].params["base_picture"] is False
    with Decoder(sink.getvalue(), detector_weights=yolox_nano_onnx) as dec:
        out = list(dec.frames())
    assert [f.index for f in out] == list(range(5))
    assert min(frame_psnr(a, b)[0] for a, b in zip(frames, out, strict=True)) > PSNR_FLOOR
    base_only = io.BytesIO()
    extract_layers(io.BytesIO(sink.getvalue()), base_only, [0])
    with Decoder(base_only.getvalue(), layers="base", detector_weights=yolox_nano_onnx) as dec:
        dets = list(dec.detections())
    assert [i for i, _ in dets] == list(range(5))
    for _, d in dets:
        assert_detections_content(d, info.width, info.height)
    # the quantised features still find about what YOLOX-Nano finds on the uncompressed frames
    direct = get_detector("yolox-nano", yolox_nano_onnx)
    ref = sum(len(direct.detect(f, mode="pad", multiple=64)) for f in frames)
    got = sum(len(d) for _, d in dets)
    assert ref > 0 and abs(got - ref) <= max(2, ref // 5), (got, ref)


def test_ten_bit_lossless(codec_test_model: Path) -> None:
    info, frames = _frames(3)
    frames10 = [f.with_bit_depth(10) for f in frames]
    info10 = VideoInfo(info.width, info.height, info.fps, 10, 3, info.matrix)
    sink = io.BytesIO()
    with Encoder(sink, info10, base_model=str(codec_test_model), lossless=True, preset="ultrafast") as enc:
        for f in frames10:
            enc.encode(f)
    with Decoder(sink.getvalue(), base_model=str(codec_test_model)) as dec:
        out = list(dec.frames())
        assert dec.info.bit_depth == 10
    assert all(o.bit_depth == 10 and np.array_equal(o.y, f.y) and np.array_equal(o.v, f.v)
               for o, f in zip(out, frames10, strict=False))


def test_roi_spends_bits_only_on_detections(codec_test_model: Path, yolox_nano_onnx: Path) -> None:
    common = dict(n=4, preset="ultrafast", low_delay=True, psnr=True, intra_period=INTRA)
    plain = _encode(codec_test_model, **common)  # type: ignore[arg-type]
    roi = _encode(codec_test_model, roi=True, detector_weights=yolox_nano_onnx, **common)  # type: ignore[arg-type]
    assert StreamReader(roi.data).layers[1].params["roi"] is True
    assert roi.summary.enh_bytes < 0.5 * plain.summary.enh_bytes  # type: ignore[attr-defined]
    # the untrained test base finds (almost) nothing: the full decode stays near x_base
    assert roi.summary.psnr_full < plain.summary.psnr_full  # type: ignore[attr-defined]
    assert roi.summary.psnr_full > roi.summary.psnr_base - 0.5  # type: ignore[attr-defined]
    info, _ = _frames(1)
    with pytest.raises(ConfigError, match="roi needs a base picture"):
        Encoder(io.BytesIO(), info, roi=True, base_mode="features", base_model="yolox-nano")
