"""Payload version 3: motion-compensated prediction of P-frames in the latent domain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcodec._compressai import BufferedRansEncoder, RansDecoder
from vcodec.baselayer.learned import BaseCodec, BaseNet, BaseNetConfig, BasePayload, CodingTools, motion
from vcodec.baselayer.learned.entropy import MIN_RANS_SYMBOLS, PAD_CDF
from vcodec.baselayer.learned.skipmap import BINARY_CDF_LENGTHS, BINARY_CDFS, BINARY_OFFSETS
from vcodec.errors import BitstreamError, ConfigError
from vcodec.io.frame import Frame


@pytest.fixture(scope="module")
def small() -> BaseCodec:
    torch.manual_seed(0)
    return BaseCodec(BaseNet(BaseNetConfig(n=32, m=48, nz=16, t_channels=32)))


@pytest.fixture(scope="module")
def trained() -> BaseCodec:
    return BaseCodec.from_weights("base-yolox-nano-v2")


def _scene(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (blurred noise: what a camera sees, not per-pixel noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h // 4, w // 4, 3)).astype(np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def _panning(n: int, step: int, w: int = 256, h: int = 192) -> list[Frame]:
    big = _scene(w + step * n, h)
    return [Frame.from_rgb(np.ascontiguousarray(big[:, step * i: step * i + w]), index=i) for i in range(n)]


def test_zero_vectors_reproduce_the_reference_exactly() -> None:
    ref = torch.randn(1, 6, 8, 12)
    assert motion.compensate(ref, None) is ref
    field = motion.MotionField(4, np.zeros((2, 3, 2), dtype=np.int64))
    assert torch.equal(motion.compensate(ref, field), ref)
    zero = np.zeros((8, 12), dtype=np.int64)
    assert np.array_equal(motion.warp(ref[0].numpy(), zero, zero), ref[0].double().numpy())


def test_whole_and_fractional_shifts() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3, 8, 10)).astype(np.float32)
    zero = np.zeros((8, 10), dtype=np.int64)
    # one whole position right: each position takes its right neighbour (the edge repeats)
    out = motion.warp(ref, zero + 4, zero)
    assert np.array_equal(out[:, :, :-1], ref[:, :, 1:].astype(np.float64))
    assert np.array_equal(out[:, :, -1], ref[:, :, -1].astype(np.float64))
    # minus one row: the row above
    out = motion.warp(ref, zero, zero - 4)
    assert np.array_equal(out[:, 1:], ref[:, :-1].astype(np.float64))
    # half a position: the mean of the two neighbours; a quarter: 3:1
    a, b = ref[:, :, :-1].astype(np.float64), ref[:, :, 1:].astype(np.float64)
    assert np.allclose(motion.warp(ref, zero + 2, zero)[:, :, :-1], (a + b) / 2, rtol=0, atol=1e-12)
    assert np.allclose(motion.warp(ref, zero + 1, zero)[:, :, :-1], (3 * a + b) / 4, rtol=0, atol=1e-12)


def test_search_finds_a_known_shift() -> None:
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((4, 16, 16))
    zero = np.zeros((16, 16), dtype=np.int64)
    source = motion.warp(ref, zero + 6, zero - 3)  # 1.5 right, 0.75 up
    found = motion.search(source, ref, np.ones(4), 4, 8)
    vectors = found.vectors
    assert (found.error <= found.still_error).all()
    # interior blocks (the edge blocks see the repeated border)
    assert (vectors[1:3, 1:3] == (6, -3)).all()
    whole = motion.search(source, ref, np.ones(4), 4, 8, precision=1).vectors
    assert (whole % 4 == 0).all()


def _roundtrip(fields: list[np.ndarray], block: int, rng_: int) -> list[motion.MotionField]:
    enc_model, dec_model = motion.MotionCoder(), motion.MotionCoder()
    enc = BufferedRansEncoder()
    for vectors in fields:
        enc_model.write(enc, motion.MotionField(block, vectors), rng_)
    enc.encode_with_indexes([0] * MIN_RANS_SYMBOLS, [PAD_CDF] * MIN_RANS_SYMBOLS, BINARY_CDFS,
                            BINARY_CDF_LENGTHS, BINARY_OFFSETS)
    dec = RansDecoder()
    dec.set_stream(enc.flush() + bytes(4096))

    def read(cdf: list[int]) -> int:
        return int(dec.decode_stream([0], [cdf], [len(cdf)], [0])[0])

    rows, cols, _ = fields[0].shape
    return [dec_model.decode(read, rows, cols, block, rng_) for _ in fields]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 32), st.integers(0, 2**31 - 1))
def test_motion_fields_round_trip(rows: int, cols: int, rng_: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(3):  # three P-frames of one GOP: the models adapt across them
        vectors = rng.integers(-rng_, rng_ + 1, (rows, cols, 2))
        vectors[rng.random((rows, cols)) < 0.5] = 0
        fields.append(vectors)
    decoded = _roundtrip(fields, 4, rng_)
    for want, got in zip(fields, decoded, strict=True):
        assert np.array_equal(got.vectors, want)


def test_moving_picture_costs_less_with_motion_and_decodes_exactly(trained: BaseCodec) -> None:
    frames = _panning(5, 8)  # half a latent position per frame
    bits = {}
    # the same tools but the motion field (version 2 streams cannot carry one); P-frames 0.1 below
    # the intra frame, where this small model's residual is dear enough for every field to pay
    still = CodingTools(motion=0, payload_version=2, p_quality_offset=-0.1)
    for name, tools in (("still", still), ("motion", CodingTools(p_quality_offset=-0.1))):
        enc, dec = trained.encoder(0.5, 32, tools), trained.decoder()
        p_bits = 0
        for i, f in enumerate(frames):
            payload, _ = enc.encode_frame(f, reconstruct=False)
            assert torch.equal(dec.decode_frame(payload), enc.last_y_hat)
            if i:
                p_bits += 8 * len(payload)
                head = BasePayload.from_bytes(payload)
                assert head.version == (4 if name == "motion" else 2)
                if name == "motion":
                    # version 4: the first P-frame sends the sizes, later ones inherit them
                    assert head.same_blocks == (i > 1)
                    assert dec.last_payload is not None
                    assert (dec.last_payload.motion_block, dec.last_payload.motion_range) == (4, 8)
                    assert enc.last_report.moved_blocks > 0
                    assert dec.last_motion is not None
                    assert np.array_equal(dec.last_motion.vectors, enc.last_motion.vectors)
        bits[name] = p_bits
    assert bits["motion"] < 0.6 * bits["still"], bits


def test_still_picture_sends_no_field(small: BaseCodec) -> None:
    big = _scene(128, 128)
    frames = [Frame.from_rgb(big, index=i) for i in range(3)]
    enc = small.encoder(0.5, 32, CodingTools())
    for f in frames:
        payload, _ = enc.encode_frame(f, reconstruct=False)
        assert BasePayload.from_bytes(payload).motion_block == 0
        assert enc.last_report.moved_blocks == 0


def test_every_block_skipped_copies_the_warped_reference(trained: BaseCodec) -> None:
    """A P-frame whose blocks are all skipped decodes to y_hat(t-1) warped by its field."""
    frames = _panning(2, 16)
    # a tiny lambda makes distortion free: copying (a flag) beats coding any symbol
    enc = trained.encoder(0.5, 32, CodingTools(skip_mode="rd", rdo_lambda=1e-9))
    dec = trained.decoder()
    dec.decode_frame(enc.encode_frame(frames[0], reconstruct=False)[0])
    reference = dec.reference
    payload, _ = enc.encode_frame(frames[1], reconstruct=False)
    y_hat = dec.decode_frame(payload)
    assert dec.last_skip is not None and dec.last_skip.all()
    assert dec.last_motion is not None and dec.last_motion.moved.any()
    assert torch.equal(y_hat, motion.compensate(reference, dec.last_motion))
    assert not torch.equal(y_hat, reference)


def test_damaged_motion_headers_are_refused(small: BaseCodec) -> None:
    head = BasePayload(False, 100, 0, 0, 0, 0, None, b"\x00" * 8, skip_block=2, motion_block=4,
                       motion_range=8, version=3)
    data = bytearray(head.to_bytes())
    assert data[0] == 3 and data[1] == 0b1100 and data[4:7] == bytes([2, 4, 8])
    assert BasePayload.from_bytes(bytes(data)) == head
    for pos, value, match in ((5, 3, "motion block size 3"), (6, 0, "motion range 0"),
                              (6, 33, "motion range 33")):
        bad = bytearray(data)
        bad[pos] = value
        with pytest.raises(BitstreamError, match=match):
            BasePayload.from_bytes(bytes(bad))
    with pytest.raises(BitstreamError, match="truncated inside the motion"):
        BasePayload.from_bytes(bytes(data[:6]))
    v2 = bytearray(data)
    v2[0] = 2  # version 2 has no motion flag: a reserved bit
    with pytest.raises(BitstreamError, match="reserved flag bits"):
        BasePayload.from_bytes(bytes(v2))
    with pytest.raises(ValueError, match="version 3"):
        BasePayload(False, 1, 0, 0, 0, 0, None, b"", version=2, motion_block=4, motion_range=8).to_bytes()


def test_a_damaged_field_is_a_bitstream_error(trained: BaseCodec) -> None:
    frames = _panning(2, 16)
    enc = trained.encoder(0.5, 32, CodingTools(motion=1, p_quality_offset=-0.1))  # a field that pays
    p0, _ = enc.encode_frame(frames[0], reconstruct=False)
    p1, _ = enc.encode_frame(frames[1], reconstruct=False)
    head = BasePayload.from_bytes(p1)
    assert head.motion_block
    failures = 0
    for k in range(8):  # flip bytes at the start of the y string, where the field is coded
        bad = BasePayload(**{**head.__dict__, "y_string": bytes([head.y_string[0] ^ (1 << k)])
                             + head.y_string[1:]}).to_bytes()
        dec = trained.decoder()
        dec.decode_frame(p0)
        try:
            dec.decode_frame(bad)
        except BitstreamError:
            failures += 1
    # range 1 leaves few legal values: damage is mostly caught, never a crash or another exception type
    assert failures > 0


def test_effort_presets_and_their_record() -> None:
    assert CodingTools.for_effort("fast") == CodingTools()
    faster = CodingTools.for_effort("faster")
    assert faster.motion == 0 and faster.payload_version == 2
    assert "motion" not in faster.to_dict()
    record = CodingTools().to_dict()
    assert record["payload_version"] == 4
    assert (record["motion"], record["motion_block"], record["motion_precision"]) == (8, 4, 4)
    assert CodingTools.for_effort("slow").motion == 8
    with pytest.raises(ConfigError, match="faster"):
        CodingTools(effort="faster")


def test_faster_effort_writes_streams_vcodec_0_2_reads(small: BaseCodec) -> None:
    frames = _panning(3, 8, 128, 128)
    enc = small.encoder(0.5, 32, CodingTools.for_effort("faster"))
    dec = small.decoder()
    for f in frames:
        payload, _ = enc.encode_frame(f, reconstruct=False)
        assert payload[0] == 2
        assert torch.equal(dec.decode_frame(payload), enc.last_y_hat)


def test_version4_p_frames_inherit_quality_and_block_sizes(trained: BaseCodec) -> None:
    frames = _panning(4, 8)
    enc, dec = trained.encoder(0.5, 32), trained.decoder()
    payloads = []
    for f in frames:
        payload, _ = enc.encode_frame(f, reconstruct=False)
        assert torch.equal(dec.decode_frame(payload), enc.last_y_hat)
        payloads.append(payload)
    heads = [BasePayload.from_bytes(p) for p in payloads]
    # the first P-frame sends its quality (0.1 below the intra frame's) and both block sizes;
    # the next ones inherit all of it: a two-byte header, version 4 with flag bits 4 and 5
    assert not heads[1].same_q and not heads[1].same_blocks
    for p, head in zip(payloads[2:], heads[2:], strict=True):
        assert head.same_q and head.same_blocks and head.motion_block == -1
        assert p[0] == 4 and p[1] & 0b110000 == 0b110000 and p[2:] == head.y_string
    full = BasePayload(**{**heads[2].__dict__, "same_q": False, "same_blocks": False,
                          **{k: getattr(dec.last_payload, k) for k in ("qcode", "skip_block", "motion_block",
                                                                       "motion_range")}})
    assert len(full.to_bytes()) == len(payloads[2]) + 5  # q (2) + B (1) + Bm, R (2)
    # a decoder that did not see the frames they inherit from refuses them, never guesses
    with pytest.raises(BitstreamError, match="previous frame's quality"):
        BasePayload.from_bytes(payloads[2]).resolve(None, 0, (0, 0))
    with pytest.raises(BitstreamError, match="skip block size that no earlier frame"):
        BasePayload.from_bytes(payloads[2]).resolve(100, 0, (4, 8))
    with pytest.raises(BitstreamError, match="motion block size that no earlier frame"):
        BasePayload.from_bytes(payloads[2]).resolve(100, 2, (0, 0))
    # an intra frame may not inherit anything
    bad = bytearray(payloads[0])
    bad[1] |= 0b010000
    with pytest.raises(BitstreamError, match="intra base payload"):
        BasePayload.from_bytes(bytes(bad))
    # a quality that changes from frame to frame (rate control) is sent in every frame that changes it
    # (P-frames code 0.1 below the set quality: 0.5, then 0.7, 0.7, 0.2)
    enc, dec = trained.encoder(0.5, 32), trained.decoder()
    same = []
    for f, q in zip(frames, (0.5, 0.8, 0.8, 0.3), strict=True):
        enc.set_quality(q)
        payload, _ = enc.encode_frame(f, reconstruct=False)
        assert torch.equal(dec.decode_frame(payload), enc.last_y_hat)
        same.append(BasePayload.from_bytes(payload).same_q)
    assert same == [False, False, True, False]
