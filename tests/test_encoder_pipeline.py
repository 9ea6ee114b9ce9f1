"""The encoder's two-thread pipeline (issue 15): same streams as the serial path, typed errors, no g_s waste.

``Encoder(overlap=True)`` (the default) codes layer 1 of full-frame GOPs, and the full-frame half of
each GOP's probe, in a worker thread beside the base layer; ``overlap=False`` does everything in the
caller's thread.  The streams must be the same bytes at every thread count, for residual and
full-frame GOPs, and an error in the worker must surface as the same typed error, leaving no file.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import CLIPS

from vcodec.baselayer.learned.base_codec import BaseCodec
from vcodec.codec import Encoder
from vcodec.codec import encoder as encoder_mod
from vcodec.codec.pipeline import LayerOverlap
from vcodec.enhancement import EnhancementEncoder
from vcodec.errors import EncoderError, InputError
from vcodec.io import Frame, VideoInfo, open_video

CLIP = CLIPS / "cars_320x240.i420"  # a short real clip (its first 10 frames)
FRAMES = 10
INTRA = 4  # GOPs at 0, 4, 8


@pytest.fixture(scope="module")
def clip() -> tuple[VideoInfo, list[Frame]]:
    if not CLIP.is_file():
        pytest.skip(f"real clip not available ({CLIP} is missing)")
    with open_video(CLIP, size=(320, 240), frames=FRAMES) as r:
        return r.info, list(r)


def _encode(model: Path, clip: tuple[VideoInfo, list[Frame]], *, overlap: bool, threads: int = 1,
            modes: list[bool] | None = None, output: Any = None, **kw: Any) -> tuple[bytes, Encoder]:
    """Encode the clip; ``modes`` forces the per-GOP choices in turn (True = residual)."""
    info, frames = clip
    before = torch.get_num_threads()
    sink = io.BytesIO() if output is None else output
    try:
        with pytest.MonkeyPatch.context() as mp:
            if modes is not None:
                it = itertools.cycle(modes)
                mp.setattr(encoder_mod, "choose_inter_layer", lambda *a, **k: next(it))
            with Encoder(sink, info, base_model=str(model), intra_period=INTRA, threads=threads,
                         overlap=overlap, preset="ultrafast", **kw) as enc:
                for f in frames:
                    enc.encode(f)
    finally:
        torch.set_num_threads(before)
    return (sink.getvalue() if output is None else b""), enc


def _layer1_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vcodec-layer1")]


@pytest.mark.parametrize("threads", [1, 2])
def test_overlap_gives_the_serial_stream_in_mixed_gops(codec_test_model: Path, clip: Any,
                                                       threads: int) -> None:
    # residual, full-frame, residual GOPs: the worker codes frames 4-7 and the probes' full-frame halves
    serial, enc_s = _encode(codec_test_model, clip, overlap=False, threads=threads, modes=[True, False])
    overlapped, enc_o = _encode(codec_test_model, clip, overlap=True, threads=threads, modes=[True, False])
    assert [g["mode"] for g in enc_o.gops] == ["residual", "full-frame", "residual"]
    assert overlapped == serial
    # the probes measured the same pictures in both threads
    keys = ("residual_bytes", "residual_psnr_y", "full_frame_bytes", "full_frame_psnr_y")
    assert [[g[k] for k in keys] for g in enc_o.gops] == [[g[k] for k in keys] for g in enc_s.gops]
    assert not _layer1_threads()  # close() ended the worker


@pytest.mark.parametrize("kw", [dict(inter_layer=False, closed_gops=True), dict(modes=[False], psnr=True)],
                         ids=["fixed-full-frame-closed", "per-gop-full-frame-psnr"])
def test_overlap_gives_the_serial_stream_in_full_frame_modes(codec_test_model: Path, clip: Any,
                                                             kw: dict[str, Any]) -> None:
    serial, enc_s = _encode(codec_test_model, clip, overlap=False, threads=2, **kw)
    overlapped, enc_o = _encode(codec_test_model, clip, overlap=True, threads=2, **kw)
    assert overlapped == serial
    assert enc_o.summary().psnr_full == enc_s.summary().psnr_full


def test_base_picture_only_where_layer_1_uses_it(codec_test_model: Path, clip: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    real = BaseCodec.reconstruct

    def spy(self: BaseCodec, *a: Any, **k: Any) -> Frame:
        out = real(self, *a, **k)
        made.append(out.index)
        return out

    monkeypatch.setattr(BaseCodec, "reconstruct", spy)
    _encode(codec_test_model, clip, overlap=True, modes=[True, False])
    # residual GOP 0-3 and 8-9; in the full-frame GOP only frame 4, whose probe codes the residual
    assert made == [0, 1, 2, 3, 4, 8, 9]
    made.clear()
    _encode(codec_test_model, clip, overlap=True, modes=[False], psnr=True)  # psnr reports x_base's PSNR
    assert made == list(range(FRAMES))


def test_error_in_the_worker_surfaces_typed_and_leaves_nothing(codec_test_model: Path, clip: Any,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    real = EnhancementEncoder.encode
    seen: list[str] = []

    def failing(self: EnhancementEncoder, x: Frame, *a: Any, **k: Any) -> Any:
        seen.append(threading.current_thread().name)
        if x.index == 6 and self.intra_period == INTRA:  # a full-frame GOP's frame, not a probe
            raise EncoderError("libx265 failed on frame 6: test")
        return real(self, x, *a, **k)

    monkeypatch.setattr(EnhancementEncoder, "encode", failing)
    out = tmp_path / "x.vcs"
    with pytest.raises(EncoderError, match="frame 6: test"):
        _encode(codec_test_model, clip, overlap=True, modes=[False], output=out)
    assert any(n.startswith("vcodec-layer1") for n in seen)  # it did fail in the worker
    assert list(tmp_path.iterdir()) == []  # no partial output, no temporary file
    assert not _layer1_threads()


def test_error_in_the_base_layer_waits_for_the_worker(codec_test_model: Path, clip: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    # the base layer fails while x265 codes the same frame in the worker: the base layer's error is
    # reported, and the worker is done before the encoder aborts (closes the enhancement encoder)
    real_base = BaseCodec.encoder
    real_enh = EnhancementEncoder.encode
    finished: list[int] = []

    def slow_enh(self: EnhancementEncoder, x: Frame, *a: Any, **k: Any) -> Any:
        if x.index == 5 and self.intra_period == INTRA:
            time.sleep(0.3)
        out = real_enh(self, x, *a, **k)
        finished.append(x.index)
        return out

    def base_encoder(self: BaseCodec, *a: Any, **k: Any) -> Any:
        enc = real_base(self, *a, **k)
        encode_frame = enc.encode_frame

        def failing(frame: Frame, *fa: Any, **fk: Any) -> Any:
            if frame.index == 5:
                raise InputError("frame 5 is unreadable: test")
            return encode_frame(frame, *fa, **fk)

        enc.encode_frame = failing  # type: ignore[method-assign]
        return enc

    monkeypatch.setattr(BaseCodec, "encoder", base_encoder)
    monkeypatch.setattr(EnhancementEncoder, "encode", slow_enh)
    out = tmp_path / "x.vcs"
    with pytest.raises(InputError, match="frame 5 is unreadable"):
        _encode(codec_test_model, clip, overlap=True, modes=[False], output=out)
    assert 5 in finished
    assert list(tmp_path.iterdir()) == []
    assert not _layer1_threads()


def test_layer_overlap_joins_and_reraises_the_same_error() -> None:
    overlap = LayerOverlap()
    assert overlap.run(lambda: threading.current_thread().name, lambda: 2)[0].startswith("vcodec-layer1")
    err = EncoderError("boom")

    def bad() -> None:
        raise err

    with pytest.raises(EncoderError) as caught:
        overlap.run(bad, lambda: 1)
    assert caught.value is err
    done = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        done.set()

    def fg_fails() -> None:
        raise InputError("fg")

    with pytest.raises(InputError):
        overlap.run(slow, fg_fails)
    assert done.is_set()  # joined before the caller's error propagated
    overlap.close()
    assert not _layer1_threads()
    assert LayerOverlap(enabled=False).run(lambda: threading.current_thread().name, lambda: 0)[0] == \
        threading.current_thread().name
