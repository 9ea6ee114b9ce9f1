"""Tests of the enhancement layer (issue 3): residual coding through PyAV encoders."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vcodec.enhancement import (
    CODECS,
    EnhancementDecoder,
    EnhancementEncoder,
    EnhancementPacket,
    ResidualClippedWarning,
    available_encoders,
    decode_sequence,
    encode_sequence,
    frame_psnr,
    psnr,
    reconstruct,
    roi_mask,
    roi_report,
)
from vcodec.enhancement import codecs as codecs_mod
from vcodec.errors import BitstreamError, CodecUnavailableError, ConfigError, InputError
from vcodec.io.frame import Frame

AVAILABLE = set(available_encoders())


def need(codec: str) -> None:
    if codec not in AVAILABLE:
        pytest.skip(f"encoder {codec} is not in this PyAV build")


@pytest.fixture(scope="module")
def cars_i420(clips_dir: Path) -> bytes:
    """The real 320x240 traffic clip from the shared clips (conftest), raw I420 bytes."""
    path = clips_dir / "cars_320x240.i420"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path.read_bytes()


# -- synthetic content ------------------------------------------------------
def textured(w: int, h: int, n: int, bit_depth: int = 8, seed: int = 0) -> list[Frame]:
    """Smooth moving gradients plus mild noise: codable, but not trivial."""
    rng = np.random.default_rng(seed)
    top = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for i in range(n):
        base = 0.5 + 0.3 * np.sin((xx + 3 * i) / 9.0) * np.cos((yy - 2 * i) / 7.0)
        y = base * top + rng.normal(0, top / 60, (h, w))
        u = (0.5 + 0.2 * np.sin((xx[::2, ::2] - i) / 11.0)) * top
        v = (0.5 + 0.2 * np.cos((yy[::2, ::2] + i) / 5.0)) * top
        planes = [np.clip(np.rint(p), 0, top).astype(dtype) for p in (y, u, v)]
        out.append(Frame(*planes, bit_depth=bit_depth, index=i))
    return out


def perturbed(frames: list[Frame], amp: int, seed: int = 1) -> list[Frame]:
    """A stand-in for a base reconstruction: the frame plus bounded noise."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        planes = [
            np.clip(p.astype(np.int32) + rng.integers(-amp, amp + 1, p.shape), 0, f.max_value).astype(p.dtype)
            for p in f.planes
        ]
        out.append(Frame(*planes, bit_depth=f.bit_depth, index=f.index))
    return out


def full_decode(cfg, extradata, packets, bases):  # type: ignore[no-untyped-def]
    dec = decode_sequence(cfg["codec"], cfg, extradata, packets)
    return [(i, reconstruct(None if bases is None else bases[i], r), r) for i, r in dec]


def same(a: Frame, b: Frame) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a.planes, b.planes, strict=True))


# -- lossless -----------------------------------------------------------------
@pytest.mark.parametrize("codec", ["libx265", "libx264", "libsvtav1"])
@pytest.mark.parametrize("bit_depth", [8, 10])
def test_lossless_residual_round_trip_is_bit_exact(codec: str, bit_depth: int) -> None:
    need(codec)
    xs = textured(322, 186, 5, bit_depth)
    # a 10-bit residual only fits the 10-bit containers (x264, SVT-AV1) while |r| <= 511
    bases = perturbed(xs, amp=200 if bit_depth == 8 else 400)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResidualClippedWarning)
        cfg, ed, pk = encode_sequence(xs, bases, codec=codec, lossless=True, preset="ultrafast",
                                      intra_period=4, threads=1)
    out = full_decode(cfg, ed, pk, bases)
    assert [i for i, _, _ in out] == list(range(5))
    assert all(same(xs[i], xh) for i, xh, _ in out)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_lossless_anchor_round_trip_is_bit_exact(bit_depth: int) -> None:
    xs = textured(322, 186, 3, bit_depth)
    cfg, ed, pk = encode_sequence(xs, None, lossless=True, preset="ultrafast", threads=1)
    assert cfg["anchor"] and cfg["coded_bit_depth"] == bit_depth
    out = full_decode(cfg, ed, pk, None)
    assert all(same(xs[i], xh) for i, xh, _ in out)


def test_x265_codes_10bit_residual_at_12_bits_without_clipping() -> None:
    xs = textured(64, 48, 2, 10)
    bases = [Frame.blank(64, 48, 10, value=0)] * 2  # residual up to +1023: needs 12 bits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResidualClippedWarning)
        cfg, ed, pk = encode_sequence(xs, bases, lossless=True, preset="ultrafast", threads=1)
    assert cfg["coded_bit_depth"] == 12 and cfg["offset"] == 2048
    assert all(same(xs[i], xh) for i, xh, _ in full_decode(cfg, ed, pk, bases))


def test_residual_beyond_container_range_is_clipped_with_a_warning() -> None:
    need("libx264")
    xs = textured(64, 48, 1, 10)
    bases = [Frame.blank(64, 48, 10, value=0)]
    with pytest.warns(ResidualClippedWarning, match="10-bit range"):
        with EnhancementEncoder(
            64, 48, bit_depth=10, codec="libx264", lossless=True, preset="ultrafast"
        ) as enc:
            enc.encode(xs[0], bases[0])
            enc.flush()
    assert enc.clipped_samples > 0


# -- order, count, keyframes ---------------------------------------------------
@pytest.mark.parametrize("low_delay", [False, True])
def test_frame_count_and_order_preserved_with_and_without_bframes(low_delay: bool) -> None:
    n = 13
    xs = textured(64, 48, n)
    for i, f in enumerate(xs):  # stamp each frame so the decode order is observable
        f.y[:8, :8] = 20 + 15 * i
    bases = [Frame.blank(64, 48)] * n
    enc = EnhancementEncoder(
        64, 48, qp=20, preset="ultrafast", low_delay=low_delay, intra_period=8, threads=1
    )
    packets = []
    immediate = 0
    for x, b in zip(xs, bases, strict=True):
        got = enc.encode(x, b)
        immediate += len(got)
        packets += got
    packets += enc.flush()
    enc.close()
    assert len(packets) == n
    assert sorted(p.frame_index for p in packets) == list(range(n))
    reordered = any(p.dts != p.frame_index for p in packets)
    if low_delay:
        assert not reordered and immediate == n  # no delay at all
        assert [p.frame_index for p in packets] == list(range(n))
    else:
        assert reordered  # B-frames really were on
    out = full_decode(enc.config(), enc.extradata, packets, bases)
    assert [i for i, _, _ in out] == list(range(n))
    for i, xh, _ in out:
        assert abs(float(xh.y[:8, :8].mean()) - (20 + 15 * i)) < 4


@pytest.mark.parametrize("codec", list(CODECS))
def test_keyframes_exactly_at_intra_period(codec: str) -> None:
    need(codec)
    n, period = 11, 4
    xs = textured(64, 48, n)
    # a hard scene cut at frame 6 must not create an extra key frame
    xs[6:] = textured(64, 48, n - 6, seed=9)[: n - 6]
    for i, f in enumerate(xs[6:], 6):
        f.y[:] = 255 - f.y
        f.index = i
    bases = [Frame.blank(64, 48)] * n
    cfg, ed, pk = encode_sequence(
        xs, bases, codec=codec, qp=30, preset="ultrafast", intra_period=period, threads=1
    )
    want = {i for i in range(n) if i % period == 0}
    assert {p.frame_index for p in pk if p.keyframe} == want
    out = full_decode(cfg, ed, pk, bases)
    assert {i for i, _, r in out if r.keyframe} == want
    # each key frame decodes on its own (closed GOP): random access from the second GOP
    first = next(i for i, p in enumerate(pk) if p.frame_index == period)
    assert all(p.frame_index >= period for p in pk[first:])
    sub = decode_sequence(codec, cfg, ed, pk[first:])
    assert sorted(i for i, _ in sub) == list(range(period, n))


# -- every encoder -------------------------------------------------------------
@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("anchor", [False, True])
def test_each_encoder_round_trips(codec: str, anchor: bool) -> None:
    need(codec)
    xs = textured(96, 64, 4)
    bases = None if anchor else perturbed(xs, amp=20)
    # SVT-AV1's QP is on its 10-bit scale for residuals (not compensated, see docs)
    qp = 4 if codec == "libsvtav1" and not anchor else 24
    cfg, ed, pk = encode_sequence(
        xs, bases, codec=codec, qp=qp, preset="ultrafast", intra_period=2, threads=1
    )
    assert cfg["codec"] == codec and len(pk) == 4
    if codec != "libvpx-vp9":
        assert ed, "extradata must carry the parameter sets"
    # the header parts survive JSON and the payload survives its byte layout
    import json

    cfg2 = json.loads(json.dumps(cfg))
    pk2 = [EnhancementPacket.from_payload(p.frame_index, p.keyframe, p.to_payload()) for p in pk]
    out = full_decode(cfg2, ed, pk2, bases)
    assert [i for i, _, _ in out] == list(range(4))
    for i, xh, _ in out:
        py, pyuv = frame_psnr(xs[i], xh)
        assert py > 32 and pyuv > 32, (codec, i, py, pyuv)


def test_extradata_available_before_any_frame() -> None:
    enc = EnhancementEncoder(64, 48, preset="ultrafast")
    assert enc.extradata.startswith(b"\x00\x00\x00\x01")  # Annex-B parameter sets
    assert enc.config()["offset"] == 512 and enc.config()["coded_bit_depth"] == 10
    enc.close()


def test_psnr_falls_monotonically_as_qp_rises() -> None:
    xs = textured(128, 96, 4)
    bases = perturbed(xs, amp=25)
    results = []
    for qp in (12, 22, 32, 42):
        cfg, ed, pk = encode_sequence(xs, bases, qp=qp, preset="ultrafast", threads=1)
        out = full_decode(cfg, ed, pk, bases)
        psnr = float(np.mean([frame_psnr(xs[i], xh)[0] for i, xh, _ in out]))
        results.append((psnr, sum(len(p.data) for p in pk)))
    psnrs = [r[0] for r in results]
    sizes = [r[1] for r in results]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:], strict=False)), psnrs
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False)), sizes


def test_qp_means_the_same_step_for_residual_and_anchor() -> None:
    """x265 scales QP with the coded depth: vcodec compensates, so QP 27 is QP 27."""
    xs = textured(128, 96, 3)
    flat = [Frame.blank(128, 96)] * 3
    res = full_decode(*encode_sequence(xs, flat, qp=27, preset="ultrafast", threads=1), flat)
    anc = full_decode(*encode_sequence(xs, None, qp=27, preset="ultrafast", threads=1), None)
    p_res = np.mean([frame_psnr(xs[i], xh)[0] for i, xh, _ in res])
    p_anc = np.mean([frame_psnr(xs[i], xh)[0] for i, xh, _ in anc])
    assert abs(p_res - p_anc) < 1.0, (p_res, p_anc)


@pytest.mark.parametrize("codec", ["libx265", "libx264"])
def test_residual_chroma_is_quantised_like_the_anchor(codec: str, cars_i420: bytes) -> None:
    """At high QP the chroma QP table bends; the residual path must follow it."""
    data = cars_i420
    size = 320 * 240 * 3 // 2
    xs = [Frame.from_bytes(data[i * size:(i + 1) * size], 320, 240, index=i) for i in range(3)]
    flat = [Frame.blank(320, 240)] * 3

    def chroma_psnr(bases):  # type: ignore[no-untyped-def]
        r = encode_sequence(xs, bases, codec=codec, qp=40, preset="ultrafast", threads=1)
        out = full_decode(*r, bases)
        return np.mean([np.mean([psnr(xs[i].u, xh.u, 255), psnr(xs[i].v, xh.v, 255)]) for i, xh, _ in out])

    assert chroma_psnr(flat) > chroma_psnr(None) - 0.3


def test_encoder_logging_is_silent(capfd: pytest.CaptureFixture[str]) -> None:
    for codec in ("libx265", "libsvtav1"):
        if codec in AVAILABLE:
            encode_sequence(
                textured(64, 48, 2), [Frame.blank(64, 48)] * 2, codec=codec, qp=30, preset="ultrafast"
            )
    captured = capfd.readouterr()
    assert "x265 [" not in captured.err and "Svt[info]" not in captured.err, captured.err[:500]


def test_close_without_flush_warns() -> None:
    enc = EnhancementEncoder(64, 48, preset="ultrafast", threads=1)
    enc.encode(textured(64, 48, 1)[0], Frame.blank(64, 48))
    with pytest.warns(RuntimeWarning, match="flush"):
        enc.close()


# -- ROI ------------------------------------------------------------------------
def test_roi_mask_is_one_inside_feathered_then_zero() -> None:
    m = roi_mask([(10, 10, 20, 20)], 40, 30, margin=4)
    assert m[12, 12] == 1.0 and m[19, 19] == 1.0
    assert 0.0 < m[15, 21] < 1.0  # feather just outside the right edge
    assert m[15, 30] == 0.0 and m[2, 2] == 0.0
    assert roi_mask([], 40, 30).max() == 0.0


def test_roi_mode_spends_bits_only_in_regions() -> None:
    xs = textured(128, 96, 3)
    bases = perturbed(xs, amp=30)
    boxes = [(16, 16, 64, 56)]
    def run(with_boxes: bool):  # type: ignore[no-untyped-def]
        enc = EnhancementEncoder(128, 96, qp=22, preset="ultrafast", threads=1, roi_margin=4)
        pk = []
        for x, b in zip(xs, bases, strict=True):
            pk += enc.encode(x, b, boxes=boxes if with_boxes else None)
        pk += enc.flush()
        out = full_decode(enc.config(), enc.extradata, pk, bases)
        return sum(len(p.data) for p in pk) * 8, [xh for _, xh, _ in out]
    bits_full, rec_full = run(False)
    bits_roi, rec_roi = run(True)
    assert bits_roi < 0.6 * bits_full
    rep = roi_report(xs, rec_roi, [boxes] * 3, bits=bits_roi)
    rep_base = roi_report(xs, bases, [boxes] * 3)
    assert rep.bits == bits_roi and 0 < rep.inside_fraction < 1
    assert rep.psnr_y_inside > rep_base.psnr_y_inside + 5  # enhanced inside
    assert abs(rep.psnr_y_outside - rep_base.psnr_y_outside) < 1.0  # base quality outside
    rep_full = roi_report(xs, rec_full, [boxes] * 3)
    assert abs(rep_full.psnr_y_inside - rep.psnr_y_inside) < 1.5


def test_roi_report_exact_values() -> None:
    x = Frame.blank(8, 8, value=100)
    xh = x.copy()
    xh.y[0:4, 0:4] = 110  # error only inside the box
    rep = roi_report(x, xh, [(0, 0, 4, 4)])
    assert rep.psnr_y_outside == math.inf
    assert rep.psnr_y_inside == pytest.approx(10 * math.log10(255**2 / 100))
    assert rep.inside_fraction == pytest.approx(16 / 64)


# -- payload and errors --------------------------------------------------------------
def test_payload_layout() -> None:
    # version 2: one header byte, bit 7 set, zigzag(dts - frame index) = zigzag(-9) = 17
    p = EnhancementPacket(7, False, b"\x00\x00\x01abc", -2)
    raw = p.to_payload()
    assert raw == b"\x91\x00\x00\x01abc"
    assert EnhancementPacket.from_payload(7, False, raw) == p
    # every difference the byte holds round-trips, and the first one it cannot falls back to version 1
    for d in range(-64, 65):
        q = EnhancementPacket(100, True, b"xy", 100 + d)
        raw = q.to_payload()
        assert len(raw) == (3 if -64 <= d <= 63 else 7), d
        assert EnhancementPacket.from_payload(100, True, raw) == q
    # version 1 payloads (vcodec 0.1 streams) still read
    assert EnhancementPacket.from_payload(7, False, b"\x01\xff\xff\xff\xfe\x00\x00\x01abc") == p
    with pytest.raises(BitstreamError, match="shorter"):
        EnhancementPacket.from_payload(7, False, b"\x01\x00")
    with pytest.raises(BitstreamError, match="empty"):
        EnhancementPacket.from_payload(7, False, b"")
    with pytest.raises(BitstreamError, match="version 9"):
        EnhancementPacket.from_payload(7, False, b"\x09\x00\x00\x00\x00xx")


def test_unknown_or_missing_encoder_lists_available(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CodecUnavailableError, match="libx265"):
        EnhancementEncoder(64, 48, codec="libfoo")
    real = codecs_mod._codec_present

    def fake(name: str, mode: str) -> bool:
        return False if name == "libx264" else real(name, mode)

    monkeypatch.setattr(codecs_mod, "_codec_present", fake)
    with pytest.raises(CodecUnavailableError, match=r"missing from this PyAV.*available: libx265"):
        EnhancementEncoder(64, 48, codec="libx264")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(qp=52), r"qp=52 .*\[0, 51\]"),
        (dict(codec="libsvtav1", qp=64), r"qp=64 .*\[1, 63\]"),
        (dict(codec="libsvtav1", qp=0), r"qp=0 .*\[1, 63\]"),
        (dict(qp=-1), r"\[0, 51\]"),
        (dict(crf=60.0), r"crf=60.0 .*\[0.0, 51.0\]"),
        (dict(qp=20, crf=20), "either qp"),
        (dict(lossless=True, qp=0), "lossless"),
        (dict(bit_depth=12), "bit_depth=12 .*8 or 10"),
        (dict(codec="libvpx-vp9", bit_depth=10), r"10-bit input .*\[8\]"),
        (dict(preset="warp9"), "preset='warp9'"),
        (dict(intra_period=0), "intra_period=0"),
        (dict(fps=0), "fps=0"),
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict, pattern: str) -> None:
    codec = kwargs.get("codec", "libx265")
    need(codec)
    with pytest.raises(ConfigError, match=pattern):
        EnhancementEncoder(64, 48, **kwargs)


def test_odd_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="width=65"):
        EnhancementEncoder(65, 48)


def test_bad_frames_raise_input_or_config_error() -> None:
    enc = EnhancementEncoder(64, 48, preset="ultrafast", threads=1)
    x = Frame.blank(64, 48)
    with pytest.raises(InputError, match="base picture is 32x24 .* 64x48"):
        enc.encode(x, Frame.blank(32, 24))
    with pytest.raises(InputError, match="66x48 .* 64x48"):
        enc.encode(Frame.blank(66, 48), Frame.blank(66, 48))
    with pytest.raises(InputError, match="10-bit"):
        enc.encode(Frame.blank(64, 48, 10), Frame.blank(64, 48, 10))
    with pytest.raises(InputError, match="10-bit"):
        enc.encode(x, Frame.blank(64, 48, 10))
    with pytest.raises(ConfigError, match="anchor=True"):
        enc.encode(x, None)
    enc.flush()
    anchor = EnhancementEncoder(64, 48, preset="ultrafast", anchor=True)
    with pytest.raises(ConfigError, match="x_base=None"):
        anchor.encode(x, x)
    anchor.close()


def test_decoder_rejects_bad_config_and_garbage() -> None:
    cfg, ed, pk = encode_sequence(textured(64, 48, 3), [Frame.blank(64, 48)] * 3, qp=30, preset="ultrafast")
    with pytest.raises(ConfigError, match="version"):
        EnhancementDecoder("libx265", {**cfg, "version": 99}, ed)
    with pytest.raises(ConfigError, match="says codec"):
        EnhancementDecoder("libx264", cfg, ed)
    with pytest.raises(ConfigError, match="malformed"):
        EnhancementDecoder("libx265", {k: v for k, v in cfg.items() if k != "width"}, ed)
    # a decoder must not crash on garbage: it either errors (typed) or yields nothing
    dec = EnhancementDecoder("libx265", cfg, ed)
    junk = EnhancementPacket(0, True, bytes(range(256)) * 4, 0)
    try:
        out = dec.decode(junk) + dec.flush()
    except BitstreamError:
        out = []
    assert all(r.width == 64 for _, r in out)
    with pytest.raises(InputError, match="needs the base picture"):
        reconstruct(None, decode_sequence("libx265", cfg, ed, pk)[0][1])


def test_svt_lossless_caps_the_preset() -> None:
    need("libsvtav1")
    with pytest.warns(UserWarning, match="lossless-safe"):
        enc = EnhancementEncoder(64, 48, codec="libsvtav1", lossless=True, preset=12)
    assert enc.config()["preset"] == "10"
    enc.close()


def test_fps_and_time_base_are_owned() -> None:
    enc = EnhancementEncoder(64, 48, fps=Fraction(30000, 1001), preset="ultrafast", low_delay=True)
    assert enc.config()["fps"] == "30000/1001"
    pk = enc.encode(Frame.blank(64, 48), Frame.blank(64, 48)) + enc.flush()
    assert [p.frame_index for p in pk] == [0] and pk[0].keyframe


# -- real clip -------------------------------------------------------------------------
def test_flat_base_residual_costs_about_the_same_as_the_anchor_on_real_video(cars_i420: bytes) -> None:
    data = cars_i420
    size = 320 * 240 * 3 // 2
    xs = [Frame.from_bytes(data[i * size:(i + 1) * size], 320, 240, index=i) for i in range(6)]
    flat = [Frame.blank(320, 240)] * 6
    res = encode_sequence(xs, flat, qp=27, preset="ultrafast", threads=1)
    anc = encode_sequence(xs, None, qp=27, preset="ultrafast", threads=1)
    bits = [sum(len(p.data) for p in r[2]) for r in (res, anc)]
    psnr = [
        np.mean([frame_psnr(xs[i], xh)[0] for i, xh, _ in full_decode(*r, b)])
        for r, b in ((res, flat), (anc, None))
    ]
    # the mapping must not waste bits: same quantiser, similar size and quality
    assert bits[0] < 1.08 * bits[1], bits
    assert abs(psnr[0] - psnr[1]) < 0.5, psnr


def test_config_dataclass_round_trips_the_stored_dict_and_old_module_path_still_works() -> None:
    from vcodec.enhancement import EnhancementConfig
    from vcodec.enhancement import layer as old_layer

    enc = EnhancementEncoder(64, 48, fps=Fraction(30000, 1001), preset="ultrafast", qp=30)
    stored = enc.config()
    enc.close()
    cfg = EnhancementConfig.from_dict(stored, "libx265")
    assert cfg == enc.settings() and cfg.to_dict() == stored
    assert cfg.offset == stored["offset"] and cfg.fps == Fraction(30000, 1001)
    # the encoder's record is informational: a stream is not refused for it
    assert EnhancementConfig.from_dict(stored | {"rate": "odd", "preset": 3}, "libx265").rate == {}
    with pytest.raises(ConfigError, match="incomplete"):
        EnhancementConfig.from_dict({k: v for k, v in stored.items() if k != "width"}, "libx265")
    assert old_layer.EnhancementEncoder is EnhancementEncoder and old_layer.PAYLOAD_VERSION == 2
