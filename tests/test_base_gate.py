"""The P-frame change gate (``CodingTools(p_gate=...)``): lossy decisions only where nothing moved.

Synthetic frames (a smooth still background and a high-contrast square that
moves) coded with the shipped model, whose latent answers the square with
non-zero symbols (a seeded untrained model's latent barely moves, so every block
would be zero-skipped and nothing tested).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import CLIPS
from vcodec.baselayer.learned import BaseCodec, CodingTools, load_base_model, rdo
from vcodec.baselayer.learned.geometry import frame_to_tensor
from vcodec.baselayer.learned.skipmap import block_grid
from vcodec.errors import ConfigError
from vcodec.io.frame import Frame

REPO = Path(__file__).resolve().parents[1]
PERSON_CLIP = CLIPS / "one-by-one-person-detection.mp4"
SIZE = 128
SQUARE = 24


MODEL = "base-yolox-nano-v2"
#: rd skip at a tiny lambda: distortion is free, so copying (one flag) beats coding every block
LOSSY = CodingTools(skip_block=2, skip_mode="rd", rdo_lambda=1e-3, p_quality_offset=0.0)


@pytest.fixture(scope="module")
def codec() -> BaseCodec:
    return load_base_model(MODEL)


def _square_frames(n: int, step: int = 12, noise: int = 0) -> list[Frame]:
    """A still, smooth background (plus optional +-noise flicker) and a white square moving right."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    bg = np.stack([60 + xx // 4, 80 + yy // 4, 100 + (xx + yy) // 8], axis=-1).astype(np.int16)
    out = []
    for i in range(n):
        img = bg + (rng.integers(-noise, noise + 1, bg.shape) if noise else 0)
        x0 = 8 + step * i
        img[48:48 + SQUARE, x0:x0 + SQUARE] = 250
        out.append(Frame.from_rgb(np.clip(img, 0, 255).astype(np.uint8), index=i))
    return out


def _square_positions(i: int, step: int = 12) -> np.ndarray:
    """Latent positions (stride 16) the square covers in frame i."""
    mask = np.zeros((SIZE // 16, SIZE // 16), dtype=bool)
    x0 = 8 + step * i
    mask[48 // 16:(48 + SQUARE - 1) // 16 + 1, x0 // 16:(x0 + SQUARE - 1) // 16 + 1] = True
    return mask


def test_pixel_change_maps_patches_onto_the_latent_grid() -> None:
    a = np.zeros((3, 64, 64), dtype=np.float32)
    b = a.copy()
    b[:, 16:32, 32:48] = 8 / 255  # one patch brighter by 8 levels
    b[:, 0:4, 0:4] = 32 / 255  # a 4x4 corner of another: 32 * 16 / 256 = 2 levels on average
    change = rdo.pixel_change(a, b)
    assert change.shape == (4, 4)
    assert change[1, 2] == pytest.approx(8.0) and change[0, 0] == pytest.approx(2.0)
    assert np.count_nonzero(change) == 2
    moved = rdo.changed_positions(change, 4.0)
    # the changed patch and its 8 neighbours; the corner stays under the threshold
    expected = np.zeros((4, 4), dtype=bool)
    expected[0:3, 1:4] = True
    assert np.array_equal(moved, expected)
    assert not rdo.changed_positions(change, 8.5).any()
    assert np.array_equal(rdo.block_any(moved, 2), np.array([[True, True], [True, True]]))
    assert np.array_equal(rdo.block_any(expected & False, 2), np.zeros((2, 2), dtype=bool))


def test_the_gate_never_copies_a_block_where_the_square_moved(codec: BaseCodec) -> None:
    frames = _square_frames(5)
    # without the gate, lossy rd skip copies every block, the moving square included
    lossy, gated = LOSSY, replace(LOSSY, p_gate=8.0)
    grid = block_grid(SIZE // 16, SIZE // 16, 2)
    enc_lossy, enc_gated = codec.encoder(0.5, 32, lossy), codec.encoder(0.5, 32, gated)
    enc_gated.keep_detail = True
    dec = codec.decoder()
    for i, f in enumerate(frames):
        enc_lossy.encode_frame(f, reconstruct=False)
        payload, _ = enc_gated.encode_frame(f, reconstruct=False)
        assert torch.equal(dec.decode_frame(payload), enc_gated.last_y_hat)
        if i == 0:
            continue
        assert enc_lossy.last_report.skipped_blocks == grid.rows * grid.cols
        d = enc_gated.last_detail
        assert d is not None and d.flags is not None
        square = _square_positions(i) | _square_positions(i - 1)
        # every position under the square (now or a frame ago) is coded: its blocks are never copied
        assert d.coded[square].all(), i
        assert np.array_equal(dec.last_skip, d.flags)
        # far from the square nothing changed: those blocks are copied
        far = ~rdo.block_any(rdo.changed_positions(square.astype(np.float64), 0.5), 2)
        assert far.any() and d.flags[far].all(), i


def test_the_gate_reads_the_source_each_block_was_last_coded_from(codec: BaseCodec) -> None:
    # a square that creeps by 1 pixel a frame: one step changes a 16 x 16 patch by ~10 levels (one
    # column of ~160), under a gate of 16; two steps since the block was last coded exceed it
    frames = _square_frames(4, step=1)
    tools = replace(LOSSY, p_gate=16.0)
    enc = codec.encoder(0.5, 32, tools)
    enc.keep_detail = True
    coded_any = []
    for f in frames:
        enc.encode_frame(f, reconstruct=False)
        d = enc.last_detail
        assert d is not None
        coded_any.append(bool(d.coded.any()))
    assert coded_any[:3] == [True, False, True], coded_any


WORKER = textwrap.dedent(
    r"""
    import hashlib, json, sys
    import numpy as np, torch
    torch.set_num_threads(int(sys.argv[1]))
    sys.path.insert(0, sys.argv[2])
    from test_base_gate import MODEL, _square_frames
    from vcodec.baselayer.learned import CodingTools, load_base_model
    codec = load_base_model(MODEL)
    tools = CodingTools(p_gate=4.0, p_deadzone=0.75)
    enc, dec = codec.encoder(0.5, 32, tools), codec.decoder()
    payloads, lat = [], []
    for f in _square_frames(5, noise=3):
        p, _ = enc.encode_frame(f, reconstruct=False)
        payloads.append(p)
        y = dec.decode_frame(p)
        assert torch.equal(y, enc.last_y_hat)
        lat.append(y.numpy().tobytes())
    clip = sys.argv[3]
    if clip:  # a person the detector finds: object protection on real frames
        from vcodec.io import open_video
        with open_video(clip, start=64, frames=3) as reader:
            real = list(reader)
        enc, dec = codec.encoder(0.5, 32, CodingTools(p_roi=0.1, p_deadzone=0.75)), codec.decoder()
        for f in real:
            p, _ = enc.encode_frame(f, reconstruct=False)
            payloads.append(p)
            y = dec.decode_frame(p)
            assert torch.equal(y, enc.last_y_hat)
            lat.append(y.numpy().tobytes())
    md5 = lambda b: hashlib.md5(b).hexdigest()
    print(json.dumps({"threads": torch.get_num_threads(), "stream": md5(b"".join(payloads)),
                      "latents": md5(b"".join(lat)), "real": bool(clip)}))
    """
)


def test_gated_and_protected_streams_decode_bit_exactly_with_one_and_two_threads() -> None:
    out = []
    for threads in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
        clip = PERSON_CLIP if PERSON_CLIP.exists() else ""
        res = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(REPO / "tests"), str(clip)],
                             env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert res.returncode == 0, res.stderr[-3000:]
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert [o["threads"] for o in out] == [1, 2]
    assert out[0]["stream"] == out[1]["stream"] and out[0]["latents"] == out[1]["latents"]


def test_gated_streams_differ_from_ungated_ones_only_by_the_encoders_choices(codec: BaseCodec) -> None:
    frames = _square_frames(4, noise=3)
    enc_gate = codec.encoder(0.5, 32, CodingTools(p_gate=4.0, p_deadzone=0.75))
    enc_dz = codec.encoder(0.5, 32, CodingTools(p_deadzone=0.75))
    dec = codec.decoder()
    for f in frames:
        p, _ = enc_gate.encode_frame(f, reconstruct=False)
        enc_dz.encode_frame(f, reconstruct=False)
        assert torch.equal(dec.decode_frame(p), enc_gate.last_y_hat)
    # the dead zone holds fewer symbols under the gate (never where the square moved)
    assert enc_gate.last_report.changed_by_rdoq <= enc_dz.last_report.changed_by_rdoq


def test_gate_setting_is_validated_and_recorded_only_when_on() -> None:
    for bad in (-1.0, 300.0, True, "8"):
        with pytest.raises(ConfigError, match="change gate"):
            CodingTools(p_gate=bad)  # type: ignore[arg-type]
    assert "p_gate" not in CodingTools().to_dict()  # streams without the gate keep their records
    assert CodingTools(p_gate=8).to_dict()["p_gate"] == 8.0
    with pytest.raises(ConfigError, match="version 1"):
        CodingTools(skip_block=0, z_refresh="always", rdo_lambda=0.0, p_quality_offset=0.0, p_gate=8.0,
                    payload_version=1)


def test_box_positions_cover_boxes_plus_one_position() -> None:
    boxes = np.array([[20.0, 40.0, 50.0, 47.0]])  # columns 1..3, row 2 at stride 16
    got = rdo.box_positions(boxes, 1.0, (6, 8))
    expected = np.zeros((6, 8), dtype=bool)
    expected[1:4, 0:5] = True
    assert np.array_equal(got, expected)
    assert np.array_equal(rdo.box_positions(boxes * 2, 0.5, (6, 8)), expected)  # source twice the coded size
    assert not rdo.box_positions(np.zeros((0, 4)), 1.0, (6, 8)).any()


def test_protected_positions_are_never_copied_lossily(codec: BaseCodec,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _square_frames(4)
    enc = codec.encoder(0.5, 32, replace(LOSSY, p_roi=0.1))
    enc.keep_detail = True
    # stand-in for the detector: a box around the square's path (the detector path is tested below)
    region = np.zeros((SIZE // 16, SIZE // 16), dtype=bool)
    region[2:6, 0:6] = True
    monkeypatch.setattr(enc, "_object_positions", lambda x, geom, score: region.copy())
    for i, f in enumerate(frames):
        enc.encode_frame(f, reconstruct=False)
        d = enc.last_detail
        assert d is not None
        if i:
            assert d.flags is not None
            protected = rdo.block_any(region, 2)
            nonzero = ~rdo.zero_blocks(d.symbols, 2)
            # a protected block is copied only when all its symbols are 0; the rest is all copied
            assert not (d.flags.astype(bool) & protected & nonzero).any()
            assert (protected & nonzero).any() and d.flags[~protected].all()


@pytest.mark.skipif(not PERSON_CLIP.exists(), reason=f"{PERSON_CLIP} is not available")
def test_the_person_the_detector_finds_is_protected(codec: BaseCodec) -> None:
    from vcodec.io import open_video

    with open_video(PERSON_CLIP, start=64, frames=4) as reader:
        frames = list(reader)
    # without motion compensation: on these frames the dead zone holds a single symbol outside the
    # person, and the warped reference of the default tools predicts that one too
    # (P-frames 0.1 below the intra frame, the setting these frames were chosen for)
    enc = codec.encoder(0.5, 32, CodingTools(p_roi=0.1, p_deadzone=0.75, motion=0, payload_version=2,
                                             p_quality_offset=-0.1))
    enc.keep_detail = True
    dec = codec.decoder()
    held = 0
    for i, f in enumerate(frames):
        payload, _ = enc.encode_frame(f, reconstruct=False)
        assert torch.equal(dec.decode_frame(payload), enc.last_y_hat)
        d = enc.last_detail
        assert d is not None
        if i:
            geom = codec.geometry(f.width, f.height)
            region = enc._object_positions(frame_to_tensor(f, geom), geom, 0.1)
            assert 0 < region.sum() < region.size
            # no symbol under the person was held by the dead zone: plain rounding there
            plain = np.round((d.source - d.means) * d.gain)
            assert np.array_equal(d.symbols[:, :, region], plain[:, :, region])
            held += int((d.symbols != plain).sum())
    assert held > 0  # ... while the dead zone did act elsewhere
