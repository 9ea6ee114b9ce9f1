"""Base layer (layer 0): round trip, I/P structure, variable rate, weights, geometry.

Most tests use a seeded, randomly initialised model on tiny synthetic frames
(the coding machinery does not depend on training); tests that need the real
clips, YOLOX-Nano or the shipped weights skip when those are missing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vcodec.baselayer.learned import (
    BaseCodec,
    BaseGeometry,
    BaseNet,
    BaseNetConfig,
    BasePayload,
    load_base_model,
    save_base_weights,
)
from vcodec.baselayer.learned.base_codec import BASE_MODELS, WEIGHTS_DIR
from vcodec.errors import BitstreamError, ConfigError, RegistryError, WeightsError, WeightsMismatchError
from vcodec.io.frame import Frame


def _codec(seed: int = 0) -> BaseCodec:
    torch.manual_seed(seed)
    return BaseCodec(BaseNet(BaseNetConfig(n=32, m=48, nz=16, t_channels=32)))


def _moving_frames(n: int, w: int = 128, h: int = 128, seed: int = 0) -> list[Frame]:
    """A textured picture sliding right by 2 pixels per frame (so P-frames have work to do)."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (h // 8, (w + 2 * n) // 8 + 1, 3)).astype(np.uint8)
    big = np.kron(big, np.ones((8, 8, 1), np.uint8))
    return [Frame.from_rgb(np.ascontiguousarray(big[:h, 2 * i: 2 * i + w]), index=i) for i in range(n)]


def test_roundtrip_bit_identical_y_hat() -> None:
    codec = _codec()
    enc, dec = codec.encoder(quality=0.6, intra_period=32), codec.decoder()
    for f in _moving_frames(4):
        payload, x_base = enc.encode_frame(f)
        y_hat = dec.decode_frame(payload)
        assert torch.equal(y_hat, enc.last_y_hat)
        assert x_base is not None and (x_base.width, x_base.height) == (f.width, f.height)
        # the features the decoder feeds the detector come from the same y_hat
        assert torch.equal(codec.features(y_hat), codec.features(enc.last_y_hat))
    assert codec.features(y_hat).shape == (1, codec.cfg.split_channels, 16, 16)


def test_payload_layout_and_errors() -> None:
    codec = _codec()
    enc = codec.encoder(quality=0.25)
    frames = _moving_frames(2)
    p0, _ = enc.encode_frame(frames[0], reconstruct=False)
    p1, _ = enc.encode_frame(frames[1], reconstruct=False)
    head = BasePayload.from_bytes(p0)
    assert head.intra and (head.width, head.height) == (128, 128)
    assert (head.latent_h, head.latent_w) == (8, 8)
    assert head.qcode == round(0.25 * 65535)
    # version 4; intra = bit 0 with z (bit 1); the P-frame reuses z and carries a skip map (bit 2)
    assert p0[0] == 4 and p0[1] == 0b011 and p1[1] & 0b011 == 0
    p_head = BasePayload.from_bytes(p1)
    assert not p_head.intra and p_head.z_string is None and not p_head.has_size
    dec = codec.decoder()
    with pytest.raises(BitstreamError, match="without a reference"):
        dec.decode_frame(p1)
    with pytest.raises(BitstreamError, match="intra"):
        dec.decode_frame(p0, intra=False)
    # the header and z are length-checked; the y string runs to the end of the payload, whose
    # integrity the unit's CRC32 guards (tests/test_bitstream.py)
    z_end = 4 + 8 + 1 + len(head.z_string)
    for cut in (3, 9, 13, z_end - 1):
        with pytest.raises(BitstreamError):
            codec.decoder().decode_frame(p0[:cut])
    with pytest.raises(BitstreamError, match="version"):
        codec.decoder().decode_frame(b"\x07" + p0[1:])


def test_intra_period_and_random_access() -> None:
    codec = _codec()
    enc = codec.encoder(quality=0.5, intra_period=3)
    frames = _moving_frames(7)
    payloads, refs = [], []
    for f in frames:
        p, _ = enc.encode_frame(f, reconstruct=False)
        payloads.append(p)
        refs.append(enc.last_y_hat)
    flags = [BasePayload.from_bytes(p).intra for p in payloads]
    assert flags == [True, False, False, True, False, False, True]
    # a decoder joining at the second intra frame decodes the same latents
    dec = codec.decoder()
    for p, ref in zip(payloads[3:], refs[3:], strict=True):
        assert torch.equal(dec.decode_frame(p), ref)
    # a forced intra frame resets the chain too
    enc2 = codec.encoder(intra_period=32)
    enc2.encode_frame(frames[0], reconstruct=False)
    p, _ = enc2.encode_frame(frames[1], intra=True, reconstruct=False)
    assert BasePayload.from_bytes(p).intra
    with pytest.raises(ConfigError):
        codec.encoder(intra_period=0)
    with pytest.raises(ConfigError):
        codec.encoder(quality=1.5)


def test_variable_rate_monotone_bits() -> None:
    codec = _codec()
    f = _moving_frames(1)[0]
    sizes, errs = [], []
    for q in (0.0, 0.3, 0.6, 1.0):
        enc = codec.encoder(quality=q)
        p, _ = enc.encode_frame(f, reconstruct=False)
        sizes.append(len(p))
        ref = codec.net.g_a(torch.from_numpy(f.to_rgb()).permute(2, 0, 1)[None].float() / 255)
        errs.append(float((enc.last_y_hat - ref).pow(2).mean()))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert errs == sorted(errs, reverse=True)  # finer steps: latent closer to g_a(x)


def test_geometry_hd_is_downscaled_and_restored() -> None:
    g = BaseGeometry.for_size(1920, 1080)
    assert (g.coded_width, g.coded_height) == (832, 468)
    assert (g.padded_width, g.padded_height) == (832, 512)
    g2 = BaseGeometry.for_size(416, 240)
    assert (g2.coded_width, g2.coded_height, g2.padded_width, g2.padded_height) == (416, 240, 448, 256)
    assert g2.scale == 1.0
    codec = _codec()
    frame = Frame.blank(1280, 720, value=100)
    payload, x_base = codec.encoder().encode_frame(frame)
    assert x_base is not None and (x_base.width, x_base.height) == (1280, 720)
    assert BasePayload.from_bytes(payload).latent_h == 512 // 16  # 1280x720 -> 832x468 -> pad 512


def test_weights_files_and_mismatch(tmp_path: Path) -> None:
    codec = _codec()
    pt = save_base_weights(codec.net, "base-test-v1", tmp_path, {"steps": 0})
    desc = json.loads(pt.with_suffix(".json").read_text())
    assert desc["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert desc["config"]["m"] == 48  # config stored, not inferred from tensor shapes
    loaded = BaseCodec.from_weights(pt)
    assert loaded.sha256 == desc["sha256"] and loaded.model_id == "base-test-v1"
    f = _moving_frames(2)
    a = [codec.encoder().encode_frame(x, reconstruct=False)[0] for x in f]
    b = [loaded.encoder().encode_frame(x, reconstruct=False)[0] for x in f]
    assert a == b
    wrong = "0" * 64
    with pytest.raises(WeightsMismatchError) as exc:
        BaseCodec.from_weights(pt, sha256=wrong)
    assert wrong in str(exc.value) and desc["sha256"] in str(exc.value)
    # a replaced/corrupted weights file is refused by its descriptor's hash
    pt.write_bytes(pt.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="sha256"):
        BaseCodec.from_weights(pt)


def test_unknown_model_id() -> None:
    with pytest.raises(RegistryError, match="unknown base model 'base-nonexistent-v9'; known: base-"):
        load_base_model("base-nonexistent-v9")


@pytest.mark.skipif(not any(WEIGHTS_DIR.glob("base-*.json")), reason="no shipped base weights yet")
def test_shipped_weights_load_and_record() -> None:
    for model_id in BASE_MODELS:
        codec = load_base_model(model_id)
        js = json.loads((WEIGHTS_DIR / f"{model_id}.json").read_text())
        assert codec.sha256 == js["sha256"]
        rec = js["training"]
        assert rec["steps"] > 0 and rec["variable_rate"] and "final_val_ref_level" in rec
        assert (WEIGHTS_DIR / f"{model_id}.pt").stat().st_size < 8 * 2**20
        with pytest.raises(WeightsMismatchError):
            load_base_model(model_id, sha256="f" * 64)
