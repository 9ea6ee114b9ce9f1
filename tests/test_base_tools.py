"""Base payload version 2: skip blocks, hyperprior reuse, RDOQ, the compact P-frame header.

A seeded, untrained small model on synthetic frames: the coding tools are exact
integer/bit machinery whose properties do not depend on training.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcodec.baselayer.learned import BaseCodec, BaseNet, BaseNetConfig, BasePayload, CodingTools, rdo
from vcodec.baselayer.learned.skipmap import (
    BINARY_CDF_LENGTHS,
    BINARY_CDFS,
    BINARY_OFFSETS,
    SkipContextModel,
    block_grid,
    expand_blocks,
)
from vcodec.errors import BitstreamError, ConfigError
from vcodec.io.frame import Frame


@pytest.fixture(scope="module")
def codec() -> BaseCodec:
    torch.manual_seed(0)
    return BaseCodec(BaseNet(BaseNetConfig(n=32, m=48, nz=16, t_channels=32)))


def _textured(w: int = 128, h: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(
        rng.integers(0, 256, (h // 8, w // 8 + 4, 3)).astype(np.uint8), np.ones((8, 8, 1), np.uint8)
    )


def _static(n: int) -> list[Frame]:
    big = _textured()
    return [Frame.from_rgb(np.ascontiguousarray(big[:, :128]), index=i) for i in range(n)]


def _moving(n: int) -> list[Frame]:
    big = _textured()
    return [Frame.from_rgb(np.ascontiguousarray(big[:, 2 * i: 2 * i + 128]), index=i) for i in range(n)]


def _code(codec: BaseCodec, frames: list[Frame], tools: CodingTools, quality: float = 0.5,
          intra_period: int = 32) -> tuple[list[bytes], list[torch.Tensor], list[int]]:
    enc = codec.encoder(quality, intra_period, tools)
    payloads, refs, skipped = [], [], []
    for f in frames:
        p, _ = enc.encode_frame(f, reconstruct=False)
        payloads.append(p)
        refs.append(enc.last_y_hat)
        skipped.append(enc.last_report.skipped_blocks)
    return payloads, refs, skipped


def _code_maps(maps: list[np.ndarray]) -> bytes:
    from compressai.ans import BufferedRansEncoder

    model, enc = SkipContextModel(), BufferedRansEncoder()
    for flags in maps:
        enc.encode_with_indexes(flags.reshape(-1).astype(int).tolist(), model.indexes(flags),
                                BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS)
        model.finish_frame(flags)
    return enc.flush()


def test_skip_flags_round_trip_through_the_adaptive_coder() -> None:
    from compressai.ans import RansDecoder

    rng = np.random.default_rng(3)
    maps = [(rng.random((5, 7)) < p).astype(np.uint8) for p in (0.1, 0.5, 0.9, 0.0, 1.0)]
    dec_model, dec = SkipContextModel(), RansDecoder()
    dec.set_stream(_code_maps(maps))
    for flags in maps:
        got = np.zeros_like(flags)
        for r in range(flags.shape[0]):
            for c in range(flags.shape[1]):
                i, ctx = dec_model.next_index(got, r, c)
                got[r, c] = dec.decode_stream([i], BINARY_CDFS, BINARY_CDF_LENGTHS, BINARY_OFFSETS)[0]
                dec_model.update(ctx, int(got[r, c]))
        dec_model.finish_frame(got)
        assert np.array_equal(got, flags)


def test_skip_flag_models_adapt_to_their_context() -> None:
    rng = np.random.default_rng(4)
    static = [np.ones((8, 10), np.uint8)] * 6  # a still camera: every block skipped, frame after frame
    noise = [(rng.random((8, 10)) < 0.5).astype(np.uint8) for _ in range(6)]
    flags = 6 * 80
    static_bits, noise_bits = 8 * len(_code_maps(static)), 8 * len(_code_maps(noise))
    assert static_bits < 0.25 * flags, static_bits  # adapted: a fraction of a bit per flag (32 of rANS flush)
    assert 0.9 * flags < noise_bits < 1.2 * flags, noise_bits  # no model beats a fair coin


def test_block_grid_covers_edges() -> None:
    grid = block_grid(6, 10, 4)
    assert (grid.rows, grid.cols) == (2, 3)
    flags = np.array([[1, 0, 1], [0, 0, 1]], np.uint8)
    full = expand_blocks(flags, grid, 6, 10)
    assert full.shape == (6, 10) and full[0, 0] and not full[0, 4] and full[5, 9] and not full[5, 0]


def test_static_clip_p_frames_cost_a_small_fraction_of_the_intra_frame(codec: BaseCodec) -> None:
    payloads, refs, skipped = _code(codec, _static(6), CodingTools())
    i_bits, p_bits = 8 * len(payloads[0]), [8 * len(p) for p in payloads[1:]]
    # every block copied: header, block size, 16 adaptive flags and the rANS flush
    assert max(p_bits) <= 16 * 8 and max(p_bits) < 0.1 * i_bits, (i_bits, p_bits)
    assert all(s > 0 for s in skipped[1:])
    dec = codec.decoder()
    for p, ref in zip(payloads, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)


def test_a_fully_skipped_p_frame_decodes_to_the_previous_latent_exactly(codec: BaseCodec) -> None:
    # a huge lambda makes any distortion dearer than any rate: every block is copied
    frames = _moving(3)
    payloads, refs, skipped = _code(codec, frames, CodingTools(skip_block=4, skip_mode="rd", rdo_lambda=1e5))
    enc_grid = block_grid(8, 8, 4)
    assert skipped[1:] == [enc_grid.rows * enc_grid.cols] * 2
    dec = codec.decoder()
    y0 = dec.decode_frame(payloads[0])
    y1 = dec.decode_frame(payloads[1])
    y2 = dec.decode_frame(payloads[2])
    assert torch.equal(y1, y0) and torch.equal(y2, y0) and torch.equal(y2, refs[2])
    assert np.array_equal(dec.last_skip, np.ones((2, 2), np.uint8))
    # header 4 bytes + block size + the rANS string of 4 flags: a few bytes
    assert len(payloads[2]) <= 16  # 5 header bytes + the rANS string of 4 flags (32-bit words)


@pytest.mark.parametrize("tools", [CodingTools(), CodingTools(skip_block=1), CodingTools(skip_block=8),
                                   CodingTools(z_refresh="always"), CodingTools(z_refresh="never"),
                                   CodingTools(skip_block=0),
                                   CodingTools(rdo_lambda=0.0), CodingTools(skip_mode="rd"),
                                   CodingTools(rdoq=True), CodingTools.version1()],
                         ids=["default", "b1", "b8", "z-every-frame", "z-never", "no-skip", "no-rdo",
                              "rd-skip", "rdoq", "v1"])
def test_every_tool_setting_decodes_bit_exactly_and_joins_at_intra(codec: BaseCodec,
                                                                   tools: CodingTools) -> None:
    payloads, refs, _ = _code(codec, _moving(7), tools, intra_period=3)
    heads = [BasePayload.from_bytes(p) for p in payloads]
    assert [h.intra for h in heads] == [True, False, False, True, False, False, True]
    assert {h.version for h in heads} == {tools.payload_version}
    dec = codec.decoder()
    for p, ref in zip(payloads, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)
    late = codec.decoder()  # random access: join at the second intra frame
    for p, ref in zip(payloads[3:], refs[3:], strict=True):
        assert torch.equal(late.decode_frame(p), ref)


def test_symbol_cost_table_equals_the_formula() -> None:
    sigmas = np.array([0.11, 0.5, 3.0, 40.0])
    costs = rdo.SymbolCosts(sigmas)
    sym = np.array([[0, 1, -1, 5, -63, 64, 200, -1000]] * 4)
    idx = np.repeat(np.arange(4)[:, None], sym.shape[1], axis=1)
    assert np.array_equal(costs(sym, idx), rdo.symbol_bits(sym, sigmas[idx]))


@given(seed=st.integers(0, 2**31 - 1), used=st.integers(1, 12))
@settings(max_examples=25, deadline=None)
def test_coding_with_only_the_used_tables_gives_the_same_bytes(
    codec: BaseCodec, seed: int, used: int
) -> None:
    """The coder is handed only the CDFs a frame uses (a speed-up): same bytes, same symbols back."""
    from compressai.ans import BufferedRansEncoder, RansDecoder

    path = codec._path
    cdfs, lengths, offsets = path.coder_tables()
    rng = np.random.default_rng(seed)
    tables = rng.choice(len(cdfs), size=used, replace=False)
    indexes = rng.choice(tables, size=(3, 5, 7)).astype(np.int64)
    symbols = [int(rng.integers(-3, 4)) for _ in range(indexes.size)]
    full, subset = BufferedRansEncoder(), BufferedRansEncoder()
    full.encode_with_indexes(symbols, indexes.reshape(-1).tolist(), cdfs, lengths, offsets)
    renumbered, sub_cdfs, sub_lengths, sub_offsets = path.coder_tables_for(indexes)
    assert len(sub_cdfs) == used and max(renumbered) == used - 1
    subset.encode_with_indexes(symbols, renumbered, sub_cdfs, sub_lengths, sub_offsets)
    data = full.flush()
    assert subset.flush() == data
    dec = RansDecoder()
    dec.set_stream(data)
    assert dec.decode_stream(*path.coder_tables_for(indexes)) == symbols


def test_zero_mode_skips_only_blocks_whose_symbols_are_all_zero() -> None:
    sym = np.zeros((1, 3, 4, 4))
    sym[0, 2, 0, 3] = 1  # block (0, 1) codes something
    sym[0, 0, 3, 0] = -2  # block (1, 0) too
    assert rdo.zero_blocks(sym, 2).tolist() == [[True, False], [False, True]]
    # copying is cheaper everywhere (zero copy distortion), but only all-zero blocks may be copied
    bits, dist, copy = np.ones_like(sym), np.zeros_like(sym), np.zeros_like(sym)
    free = rdo.decide_skip(bits, dist, copy, 2, 16.0, (1.0, 1.0))
    zero = rdo.decide_skip(bits, dist, copy, 2, 16.0, (1.0, 1.0), rdo.zero_blocks(sym, 2))
    assert free.skip.tolist() == [[1, 1], [1, 1]] and zero.skip.tolist() == [[1, 0], [0, 1]]


def test_hyperprior_reuse_drops_z_from_p_frames(codec: BaseCodec) -> None:
    frames = _moving(4)
    with_z, _, _ = _code(codec, frames, CodingTools(z_refresh="always", skip_block=0))
    reuse, _, _ = _code(codec, frames, CodingTools(z_refresh="never", skip_block=0))
    assert all(BasePayload.from_bytes(p).z_string for p in with_z)
    assert all(BasePayload.from_bytes(p).z_string is None for p in reuse[1:])
    assert with_z[0] == reuse[0]  # the intra frame does not change


def test_rdoq_lowers_rate_and_never_moves_away_from_the_mean() -> None:
    rng = np.random.default_rng(0)
    residual = rng.normal(0, 2.0, (1, 4, 6, 6))
    sigma = np.full_like(residual, 1.5)
    offset = np.zeros_like(residual)
    weights = np.ones(4)
    def bits_of(s: np.ndarray) -> np.ndarray:
        return rdo.symbol_bits(s, sigma)

    plain, plain_bits, plain_d = rdo.rdoq(residual, bits_of, offset, weights, 0.0)
    chosen, bits, dist = rdo.rdoq(residual, bits_of, offset, weights, 2.0)
    assert np.array_equal(plain, np.round(residual))
    moved = chosen != plain
    assert moved.any()
    assert np.all(np.abs(chosen[moved]) == np.abs(plain[moved]) - 1)  # one step toward the mean only
    assert bits.sum() < plain_bits.sum() and dist.sum() > plain_d.sum()
    assert np.all(bits + 2.0 * dist <= plain_bits + 2.0 * plain_d + 1e-12)  # never a worse RD cost


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), lam=st.sampled_from([0.5, 4.0, 8.0, 64.0]),
       block=st.sampled_from([1, 2, 4]), quality=st.sampled_from([0.0, 0.5, 1.0]))
def test_rdoq_and_skip_never_break_decodability(codec: BaseCodec, seed: int, lam: float, block: int,
                                                quality: float) -> None:
    rng = np.random.default_rng(seed)
    frames = [Frame.from_rgb(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), index=i) for i in range(3)]
    payloads, refs, _ = _code(
        codec, frames, CodingTools(skip_block=block, skip_mode="rd", rdo_lambda=lam, rdoq=True), quality
    )
    dec = codec.decoder()
    for p, ref in zip(payloads, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)


def test_damaged_v2_payloads_raise_typed_errors(codec: BaseCodec) -> None:
    payloads, _, _ = _code(codec, _moving(2), CodingTools())
    p0, p1 = payloads
    with pytest.raises(BitstreamError, match="reserved flag"):
        codec.decoder().decode_frame(bytes([2, 0b1011]) + p0[2:])
    with pytest.raises(BitstreamError, match="must carry z"):
        codec.decoder().decode_frame(bytes([2, 0b101]) + p0[2:])
    dec = codec.decoder()
    dec.decode_frame(p0)
    bad_block = bytearray(p1)
    bad_block[4] = 3  # skip block size byte
    with pytest.raises(BitstreamError, match="skip block size 3"):
        dec.decode_frame(bytes(bad_block))
    with pytest.raises(BitstreamError, match="without a reference"):
        codec.decoder().decode_frame(p1)
    for cut in (1, 3, 5, 9):
        with pytest.raises(BitstreamError):
            codec.decoder().decode_frame(p0[:cut])


def test_coding_tools_validate_their_values() -> None:
    with pytest.raises(ConfigError, match="skip block size 3"):
        CodingTools(skip_block=3)
    with pytest.raises(ConfigError, match="lambda"):
        CodingTools(rdo_lambda=-1)
    with pytest.raises(ConfigError, match="version 1 has no coding tools"):
        CodingTools(payload_version=1)
    with pytest.raises(ConfigError, match="skip mode 'always'"):
        CodingTools(skip_mode="always")
    with pytest.raises(ConfigError, match="cannot be written"):
        CodingTools(payload_version=5, skip_block=0)
    with pytest.raises(ConfigError, match="version 2 has no motion field"):
        CodingTools(payload_version=2)
    with pytest.raises(ConfigError, match="motion range 33"):
        CodingTools(motion=33)
    with pytest.raises(ConfigError, match="motion block size 3"):
        CodingTools(motion_block=3)


def test_slow_effort_refines_intra_latents_and_decodes_bit_exactly(codec: BaseCodec) -> None:
    frames = _moving(3)
    slow, refs, _ = _code(codec, frames, CodingTools(effort="slow"))
    dec = codec.decoder()
    for p, ref in zip(slow, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)
    enc = codec.encoder(0.5, 32, CodingTools(effort="slow"))
    enc.encode_frame(frames[0], reconstruct=False)
    report = enc.last_refinement
    assert report is not None and report["cost_after"] <= report["cost_before"] + 1e-3
    enc.encode_frame(frames[1], reconstruct=False)
    assert enc.last_refinement is None  # P-frames are not refined
    with pytest.raises(ConfigError, match="effort 'fastest'"):
        CodingTools(effort="fastest")


def test_slow_effort_lowers_the_shipped_models_objective() -> None:
    from vcodec.baselayer.learned import load_base_model

    shipped = load_base_model("base-yolox-nano-v2")
    frame = Frame.from_rgb(np.ascontiguousarray(_textured(192, 128)[:, :192]), index=0)
    enc = shipped.encoder(1.0, 32, CodingTools(effort="slow"))
    payload, _ = enc.encode_frame(frame, reconstruct=False)
    report = enc.last_refinement
    assert report is not None and report["cost_after"] < report["cost_before"], report
    fast = shipped.encoder(1.0, 32).encode_frame(frame, reconstruct=False)[0]
    assert payload != fast
    assert torch.equal(shipped.decoder().decode_frame(payload), enc.last_y_hat)


def test_auto_z_refresh_sends_z_only_when_it_pays(codec: BaseCodec) -> None:
    # a still scene: the intra frame's hyperprior fits every P-frame, z never pays
    still, _, _ = _code(codec, _static(4), CodingTools(skip_block=0))
    assert all(BasePayload.from_bytes(p).z_string is None for p in still[1:])


def test_auto_z_refresh_pays_for_itself_at_a_scene_cut() -> None:
    from conftest import SEQUENCE

    from vcodec.baselayer.learned import load_base_model
    from vcodec.io import open_video

    shipped = load_base_model("base-yolox-nano-v2")  # a trained hyperprior: the untrained one tells little
    with open_video(SEQUENCE, frames=2) as reader:
        frames = list(reader)
    # the second scene: the picture upside down with its colours rotated
    frames.append(Frame.from_rgb(np.ascontiguousarray(frames[1].to_rgb()[::-1, :, ::-1]), index=2))
    # P-frames at the intra frame's quality: z's price is then measured against a full-quality latent
    payloads, refs, _ = _code(shipped, frames, CodingTools(skip_block=0, p_quality_offset=0.0))
    never, _, _ = _code(shipped, frames, CodingTools(skip_block=0, z_refresh="never", p_quality_offset=0.0))
    assert BasePayload.from_bytes(payloads[1]).z_string is None
    assert BasePayload.from_bytes(payloads[2]).z_string is not None
    assert len(payloads[2]) < len(never[2])
    dec = shipped.decoder()
    for p, ref in zip(payloads, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)


def test_p_quality_offset_codes_p_frames_at_their_own_quality(codec: BaseCodec) -> None:
    payloads, refs, _ = _code(
        codec, _moving(4), CodingTools(p_quality_offset=-0.2), quality=0.5, intra_period=2
    )
    codes = [BasePayload.from_bytes(p).qcode for p in payloads]
    p_code = round((32768 / 65535 - 0.2) * 65535)  # the intra frame's quality (code 32768) minus 0.2
    assert codes == [32768, p_code, 32768, p_code]
    dec = codec.decoder()
    for p, ref in zip(payloads, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)
    low = _code(
        codec, [Frame.from_rgb(np.zeros((64, 64, 3), np.uint8))] * 2, CodingTools(p_quality_offset=-1.0)
    )
    assert BasePayload.from_bytes(low[0][1]).qcode == 0  # clamped at quality 0
    with pytest.raises(ConfigError, match="P-frame quality offset"):
        CodingTools(p_quality_offset=2.0)


def test_temporal_dead_zone_holds_only_what_did_not_move() -> None:
    residual = np.array([0.55, 0.45, 1.6, -0.6, 3.0]).reshape(1, 1, 1, 5)
    prev_residual = np.array([0.2, 0.6, 0.1, -0.3, 0.0]).reshape(1, 1, 1, 5)  # moved 0.35, 0.15, 1.5, 0.3, 3
    sym = np.round(residual)
    sigma = np.full_like(residual, 0.5)

    def bits_of(s: np.ndarray) -> np.ndarray:
        return rdo.symbol_bits(s, sigma)

    bits, offset, weights = bits_of(sym), np.zeros_like(residual), np.ones(1)
    dist = (residual - sym) ** 2
    held, held_bits, held_dist = rdo.hold_stable(residual, prev_residual, sym, bits, dist, bits_of, offset,
                                                 weights, 0.5)
    # elements 1, 2 and 4 barely moved: they take the symbol nearest the reference (0, 1, 0), even
    # where the source alone would round the other way; the large moves are coded as before
    assert held.ravel().tolist() == [0.0, 1.0, 2.0, 0.0, 3.0]
    assert held_bits[0, 0, 0, 0] < bits[0, 0, 0, 0] and held_dist[0, 0, 0, 0] == pytest.approx(0.55 ** 2)
    unchanged, _, _ = rdo.hold_stable(residual, prev_residual, sym, bits, dist, bits_of, offset, weights, 0.0)
    assert np.array_equal(unchanged, sym)


def test_dead_zone_streams_decode_bit_exactly(codec: BaseCodec) -> None:
    rng = np.random.default_rng(5)
    base = _textured().astype(np.int16)[:, :128]
    # a still scene with sensor noise: the dead zone holds the flickering elements
    frames = [
        Frame.from_rgb(np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8), index=i)
        for i in range(4)
    ]
    payloads, refs, _ = _code(codec, frames, CodingTools(p_deadzone=0.75, p_quality_offset=0.0))
    plain, _, _ = _code(codec, frames, CodingTools(p_quality_offset=0.0))
    assert sum(map(len, payloads[1:])) <= sum(map(len, plain[1:]))
    dec = codec.decoder()
    for p, ref in zip(payloads, refs, strict=True):
        assert torch.equal(dec.decode_frame(p), ref)
    with pytest.raises(ConfigError, match="dead zone"):
        CodingTools(p_deadzone=-1)
