"""Per-GOP inter-layer choice (issue 15): ENH_GOP records, mixed streams, base-free full decode.

The probe's decision is forced in places (``choose_inter_layer`` patched to alternate) so that one
short stream mixes residual and full-frame GOPs whatever the untrained test base model predicts.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SEQUENCE

from vcodec.bitstream import StreamReader, UnitType, stream_stats
from vcodec.bitstream.gop import FULL_FRAME, PER_GOP_KIND, RESIDUAL, GopRecord
from vcodec.codec import Decoder, Encoder
from vcodec.codec import encoder as encoder_mod
from vcodec.enhancement import EnhancementDecoder
from vcodec.errors import BitstreamError, ConfigError
from vcodec.io import Frame, VideoInfo, open_video

FRAMES = 10
INTRA = 4  # GOPs start at 0, 4, 8


def _frames(n: int = FRAMES) -> tuple[VideoInfo, list[Frame]]:
    with open_video(SEQUENCE, frames=n) as r:
        return r.info, list(r)


def _md5(f: Frame) -> str:
    return hashlib.md5(f.to_bytes()).hexdigest()


def _encode(model: Path, modes: list[bool] | None, n: int = FRAMES, record: dict[int, str] | None = None,
            monkeypatch: pytest.MonkeyPatch | None = None, **kw: Any) -> tuple[bytes, list[Frame], Encoder]:
    """Encode with inter_layer="auto"; ``modes`` forces the per-GOP choices (True = residual) in turn.

    ``record``: filled with the md5 of every picture the encoder itself reconstructs (psnr=True).
    """
    torch.set_num_threads(1)
    info, frames = _frames(n)
    with pytest.MonkeyPatch.context() as mp:
        if modes is not None:
            it = itertools.cycle(modes)
            mp.setattr(encoder_mod, "choose_inter_layer", lambda *a, **k: next(it))
        if record is not None:
            import vcodec.enhancement as enh

            real = enh.reconstruct

            def spy(x_base: Frame | None, residual: Any, *, index: int | None = None) -> Frame:
                out = real(x_base, residual, index=index)
                record[int(index)] = _md5(out)  # type: ignore[arg-type]
                return out

            mp.setattr(enh, "reconstruct", spy)
        sink = io.BytesIO()
        with Encoder(sink, info, base_model=str(model), intra_period=INTRA, psnr=record is not None,
                     **kw) as enc:
            for f in frames:
                enc.encode(f)
    return sink.getvalue(), frames, enc


class _BaseSpy:
    """Counts base-layer work in a Decoder: latent decodes and g_s (base picture) calls."""

    def __init__(self, dec: Decoder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoded = 0
        self.pictures: list[int] = []
        make = dec.base.decoder
        spy = self

        class Wrapped:
            def __init__(self) -> None:
                self.inner = make()

            def decode_frame(self, payload: bytes, intra: bool) -> Any:
                spy.decoded += 1
                return self.inner.decode_frame(payload, intra)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        monkeypatch.setattr(dec.base, "decoder", Wrapped)
        real = dec._x_base

        def x_base(index: int, decoded: Any, geometry: Any) -> Frame | None:
            self.pictures.append(index)
            return real(index, decoded, geometry)

        monkeypatch.setattr(dec, "_x_base", x_base)


@pytest.fixture(scope="module")
def mixed(codec_test_model: Path) -> tuple[bytes, list[Frame], Encoder, dict[int, str]]:
    """GOPs residual, full-frame, residual (frames 0-3, 4-7, 8-9), with the encoder's reconstructions."""
    recon: dict[int, str] = {}
    data, frames, enc = _encode(codec_test_model, [True, False], record=recon)
    return data, frames, enc, recon


def test_modes_round_trip_and_show_in_info(mixed: Any, codec_test_model: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.cli.main import main

    data, _, enc, _ = mixed
    want = [(0, RESIDUAL), (4, FULL_FRAME), (8, RESIDUAL)]
    assert [(g["frame"], g["mode"]) for g in enc.summary().extra["gops"]] == want
    reader = StreamReader(data)
    assert reader.minor == 1 and reader.layers[1].kind == PER_GOP_KIND
    records = [GopRecord.from_payload(u.frame, u.payload) for u in reader if u.type == UnitType.ENH_GOP]
    assert [(r.frame, r.mode) for r in records] == want
    # each record follows its intra frame's base unit at once (a reader that seeks there sees it)
    units = list(StreamReader(data))
    for i, u in enumerate(units):
        if u.type == UnitType.ENH_GOP:
            assert units[i - 1].type == UnitType.BASE_FRAME and units[i - 1].frame == u.frame and u.intra
    assert stream_stats(data).gops == want
    path = tmp_path / "mixed.vcs"
    path.write_bytes(data)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["gops"] == [{"frame": f, "mode": m} for f, m in want] and info["version"] == "1.1"
    assert info["num_frames"] == FRAMES and info["intra_frames"] == [0, 4, 8]
    assert main(["info", str(path)]) == 0
    assert "GOPs      3: 2 residual, 1 full-frame  RFR" in capsys.readouterr().out
    assert "inter-layer per GOP: 2 residual, 1 full-frame (RFR)" in "\n".join(enc.summary().lines())
    with Decoder(data, base_model=str(codec_test_model)) as dec:
        list(dec.frames())
        assert dec.gop_modes == dict(want)


def test_mixed_stream_decodes_to_the_encoders_reconstruction(mixed: Any, codec_test_model: Path) -> None:
    data, frames, enc, recon = mixed
    assert sorted(recon) == list(range(FRAMES))
    with Decoder(data, base_model=str(codec_test_model)) as dec:
        out = list(dec.frames())
        assert dec.lost_frames == [] and dec.coarse_frames == []
    assert [f.index for f in out] == list(range(FRAMES))
    assert [_md5(f) for f in out] == [recon[i] for i in range(FRAMES)]
    # full-frame GOP pictures are not the base picture plus anything: they differ from a residual decode
    assert enc.summary().psnr_full > 30


def test_full_frame_gops_do_not_run_the_base_model(mixed: Any, codec_test_model: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data, _, _, recon = mixed
    with Decoder(data, base_model=str(codec_test_model)) as dec:
        spy = _BaseSpy(dec, monkeypatch)
        out = list(dec.frames())
    assert [_md5(f) for f in out] == [recon[i] for i in range(FRAMES)]
    residual_frames = [0, 1, 2, 3, 8, 9]
    assert spy.decoded == len(residual_frames) and sorted(spy.pictures) == residual_frames
    # all full-frame GOPs: the base layer is never touched
    full, _, _ = _encode(codec_test_model, [False])
    with Decoder(full, base_model=str(codec_test_model)) as dec:
        spy = _BaseSpy(dec, monkeypatch)
        assert len(list(dec.frames())) == FRAMES
    assert spy.decoded == 0 and spy.pictures == []
    # ... unless base pictures are asked for
    with Decoder(full, layers="base", base_model=str(codec_test_model)) as dec:
        spy = _BaseSpy(dec, monkeypatch)
        assert len(list(dec.frames())) == FRAMES
    assert spy.decoded == FRAMES and len(spy.pictures) == FRAMES


def test_full_frame_gops_need_no_base_model(mixed: Any, codec_test_model: Path,
                                            codec_other_model: Path) -> None:
    from vcodec.errors import WeightsError, WeightsMismatchError

    # the test model is not installed: a viewer without it still sees every full-frame GOP
    full, frames, _ = _encode(codec_test_model, [False], n=6)
    with Decoder(full) as dec:
        assert len(list(dec.frames())) == 6 and dec._base is None
    with Decoder(full, base_model=str(codec_test_model)) as dec:
        list(dec.frames())
        assert dec._base is None  # not even loaded
    # a residual GOP loads it then, and refuses a missing or other model there
    data = mixed[0]
    with pytest.raises(WeightsError, match="base-e2e-test-v1"):
        with Decoder(data) as dec:
            list(dec.frames())
    with pytest.raises(WeightsMismatchError):
        with Decoder(data, base_model=str(codec_other_model)) as dec:
            list(dec.frames())
    # concealment needs base pictures as stand-ins: loaded (and checked) at construction
    with pytest.raises(WeightsError):
        Decoder(full, conceal=True)


def test_lossless_is_bit_exact_in_both_modes(codec_test_model: Path) -> None:
    data, frames, enc = _encode(codec_test_model, [True, False], n=6, lossless=True, preset="ultrafast")
    assert [g["mode"] for g in enc.summary().extra["gops"]] == [RESIDUAL, FULL_FRAME]
    with Decoder(data, base_model=str(codec_test_model)) as dec:
        out = list(dec.frames())
    assert len(out) == 6
    for a, b in zip(frames, out, strict=True):
        assert np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)


def test_auto_is_the_default_and_fixed_modes_keep_the_old_layout(codec_test_model: Path) -> None:
    data, _, enc = _encode(codec_test_model, None, n=5)
    assert enc.per_gop and StreamReader(data).layers[1].kind == PER_GOP_KIND
    # the real probe decides: its numbers and choice are in the summary
    g = enc.summary().extra["gops"][0]
    want = encoder_mod.choose_inter_layer(g["residual_bytes"], g["residual_psnr_y"], g["full_frame_bytes"],
                                          g["full_frame_psnr_y"], margin=encoder_mod.PROBE_MARGIN)
    assert g["mode"] == (RESIDUAL if want else FULL_FRAME) and g["probe_s"] > 0
    for fixed, kind in ((True, "residual"), (False, "full-frame")):
        data, _, enc = _encode(codec_test_model, None, n=5, inter_layer=fixed)
        reader = StreamReader(data)
        assert reader.minor == 0 and reader.layers[1].kind == kind and not enc.per_gop
        assert not any(u.type == UnitType.ENH_GOP for u in reader)
        assert stream_stats(data).gops == [(0, kind), (4, kind)]
    # roi is a residual tool: auto means the residual there, off is refused
    with pytest.raises(ConfigError, match="inter_layer"):
        _encode(codec_test_model, None, n=1, roi=True, inter_layer=False)
    # no frames at all: still a valid (empty) per-GOP stream
    sink = io.BytesIO()
    with Encoder(sink, _frames(1)[0], base_model=str(codec_test_model)):
        pass
    with Decoder(sink.getvalue(), base_model=str(codec_test_model)) as dec:
        assert list(dec.frames()) == []


def test_probe_margin() -> None:
    # the residual must win the intra probe by PROBE_MARGIN: it understates the residual's inter frames
    assert encoder_mod.PROBE_MARGIN == 1.5
    assert encoder_mod.choose_inter_layer(1000, 40.0, 1000, 40.0)
    assert not encoder_mod.choose_inter_layer(1000, 40.0, 1000, 40.0, margin=1.5)
    assert encoder_mod.choose_inter_layer(660, 40.0, 1000, 40.0, margin=1.5)
    assert not encoder_mod.choose_inter_layer(700, float("inf"), 1000, float("inf"), margin=1.5)


def test_old_readers_refuse_the_per_gop_layer_and_damage_is_named(mixed: Any, codec_test_model: Path) -> None:
    data, _, _, recon = mixed
    layer = StreamReader(data).layers[1]
    # vcodec 0.1 builds its enhancement decoder from the layer's params: version 2 is refused, never misread
    with pytest.raises(ConfigError, match="version 2 is not supported"):
        EnhancementDecoder(layer.codec, layer.params, layer.extradata)
    # a record that is missing (e.g. dropped by a tool) is an error naming the frame ...
    units = list(StreamReader(data))
    gop4 = next(u for u in units if u.type == UnitType.ENH_GOP and u.frame == 4)
    cut = data[:gop4.offset] + data[gop4.offset + len(gop4.raw):]
    with pytest.raises(BitstreamError, match="ENH_GOP") as e:
        with Decoder(cut, base_model=str(codec_test_model)) as dec:
            list(dec.frames())
    assert e.value.frame == 4
    # ... and concealed: that GOP shows the base picture, the others are exact
    damaged = bytearray(data)
    damaged[gop4.offset + len(gop4.raw) - 1] ^= 0xFF  # payload byte: CRC fails, the length is intact
    with Decoder(bytes(damaged), base_model=str(codec_test_model), conceal=True) as dec:
        out = list(dec.frames())
        assert dec.coarse_frames == [4, 5, 6, 7] and dec.lost_frames == []
    assert len(out) == FRAMES
    assert [_md5(out[i]) for i in (0, 1, 2, 3, 8, 9)] == [recon[i] for i in (0, 1, 2, 3, 8, 9)]


def test_detections_and_extraction_ignore_the_records(mixed: Any, codec_test_model: Path) -> None:
    from vcodec.bitstream import extract_layers

    data, _, _, _ = mixed
    sink = io.BytesIO()
    extract_layers(data, sink, [0])
    base_only = sink.getvalue()
    assert not any(u.type == UnitType.ENH_GOP for u in StreamReader(base_only))
    with Decoder(data, layers="base", base_model=str(codec_test_model)) as a, \
            Decoder(base_only, layers="base", base_model=str(codec_test_model)) as b:
        assert [_md5(f) for f in a.frames()] == [_md5(f) for f in b.frames()]
