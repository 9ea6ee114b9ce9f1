"""Training pack (tools/make_train_pack.py) and tools/train_base.py on CPU, on a tiny pack.

The pack round-trips (pixels and record), never holds a held-out frame, and one training
step of each kind (all networks; the P path on unrolled GOPs) runs on CPU in seconds,
resumes from its checkpoint and writes loadable weights with a training record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import make_train_pack  # noqa: E402
import train_base  # noqa: E402

W, H, N = 128, 128, 12


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A pack of 64x64 x 6-frame GOPs from a synthetic 128x128 clip (frame i has value 10*i + x)."""
    d = tmp_path_factory.mktemp("clips")
    frames = np.zeros((N, H * 3 // 2, W), dtype=np.uint8)
    ramp = np.arange(W, dtype=np.uint8)[None, :]
    for i in range(N):
        frames[i, :H] = (10 * i + ramp) % 200 + 20  # luma: a moving ramp
        frames[i, H:] = 128
    (d / f"synt_{W}x{H}.yuv").write_bytes(frames.tobytes())
    mp = pytest.MonkeyPatch()
    mp.setattr(make_train_pack, "CLIPS", d)
    out = tmp_path_factory.mktemp("pack") / "tiny.npz"
    make_train_pack.build([(f"synt_{W}x{H}.yuv", 1.0)], out, size=64, length=6, max_mib=0.2,
                          holdout=0.2, seed=0)
    mp.undo()
    return out, d / f"synt_{W}x{H}.yuv"


def test_pack_round_trips_and_keeps_held_out_frames_out(tiny_pack: tuple[Path, Path]) -> None:
    path, clip_path = tiny_pack
    clip_rgb = train_base.read_clip(clip_path)
    seqs, record = make_train_pack.load_pack(path)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["sequences"] == record["sequences"] and side["file_mib"] <= 0.2
    assert seqs.dtype == np.uint8 and seqs.shape[1:] == (6, 64, 64, 3)
    assert len(seqs) == len(record["sequences"])
    held = record["clips"][0]["held_out"]
    assert held[-1] == [N - 3, N]  # the last 20 % (ceil) of the clip's frames
    for seq, meta in zip(seqs, record["sequences"], strict=True):
        assert not any(a <= i < b for i in meta["frames"] for a, b in held)
        # pixels are exactly the crop of the recorded frames
        y0, x0 = meta["y0"], meta["x0"]
        for k, i in enumerate(meta["frames"]):
            assert np.array_equal(seq[k], clip_rgb[i][y0:y0 + 64, x0:x0 + 64])


def test_train_all_one_step_on_cpu_and_resume(tiny_pack: tuple[Path, Path], tmp_path: Path,
                                              one_torch_thread: None) -> None:
    pack, _ = tiny_pack
    common = ["--detector", "standin", "--pack", str(pack), "--val-every", "4", "--workdir", str(tmp_path),
              "--batch", "1", "--crop", "64", "--epoch-steps", "1", "--device", "cpu", "--model-id", "t-all"]
    assert train_base.main(common + ["--steps", "1"]) == 0
    with pytest.raises(SystemExit):  # an existing checkpoint is never silently continued or overwritten
        train_base.main(common + ["--steps", "2"])
    assert train_base.main(common + ["--steps", "2", "--resume"]) == 0
    rec = json.loads((tmp_path / "t-all.json").read_text())["training"]
    assert rec["steps"] == 2 and rec["device"] == "cpu" and rec["data"]["pack"] == pack.name
    assert rec["data"]["held_out_frames"] and "minutes" in rec


def test_train_p_path_gop_step_on_cpu(tiny_pack: tuple[Path, Path], tmp_path: Path,
                                      yolox_nano_onnx: Path, one_torch_thread: None) -> None:
    import torch

    from vcodec.baselayer.learned import BaseCodec

    pack, _ = tiny_pack
    src = BaseCodec.from_weights("base-yolox-nano-v2")  # the shipped model: its P path codes something
    args = ["--train", "p-path", "--pack", str(pack), "--init", "base-yolox-nano-v2", "--val-every", "4",
            "--workdir", str(tmp_path), "--batch", "2", "--epoch-steps", "1", "--steps", "2",
            "--device", "auto", "--model-id", "t-p", "--lam-t", "1"]
    assert train_base.main(args) == 0
    out = BaseCodec.from_weights(tmp_path / "t-p.json")
    rec = out.record
    assert rec["steps"] == 2 and rec["trainable"] == ["ctx", "ep_p"] and "zero-skip" in rec["gop"]
    assert rec["validation_before"]["step"] == 0 and "p_over_i" in rec["validation_before"]["val"]["q0.5"]
    a, b = src.net.state_dict(), out.net.state_dict()
    moved = {k.split(".")[0] for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])}
    assert moved and moved <= {"ctx", "ep_p"}  # only the P path trains; g_a, T, h_s... are the init's


def test_gop_coding_skips_static_blocks_exactly() -> None:
    """A block whose symbols all round to 0 copies y_hat(t-1) bit for bit (zero-skip in the loop)."""
    import torch

    from vcodec.baselayer.learned import BaseNet, BaseNetConfig

    torch.manual_seed(0)
    net = BaseNet(BaseNetConfig(n=16, m=8, nz=4, t_channels=8))
    with torch.no_grad():  # a P path that predicts "no change" with a wide scale
        for m in net.ep_p.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
                m.bias.zero_()
        net.ep_p[-1].bias[8:] = 3.0
        net.quant_offset[-1].weight.zero_()  # no reconstruction offset: |y - y_hat(I)| <= half a step
        net.quant_offset[-1].bias.zero_()
    y = torch.randn(1, 1, 8, 4, 4).repeat(1, 6, 1, 1, 1)  # static: every frame the same latent
    f = torch.zeros(1, 6, 64, 8, 8)
    x8 = torch.zeros(1, 6, 3, 64, 64, dtype=torch.uint8)
    gain = net.gain_at(0.75).detach()
    r = train_base.run_gop(net, None, y, f, x8, gain, 1.0, skip_block=2, lam_x=0.0, lam_t=0.0)  # type: ignore[arg-type]
    assert (
        float(r["skip"].detach()) == 1.0
        and float(r["bpp_p"].detach()) < 0.01 * float(r["bpp_i"].detach()) + 1e-3
    )


def test_front_end_fast_path_equals_prepare(yolox_nano_onnx: Path, one_torch_thread: None) -> None:
    """F(x) of a picture already padded to 64 skips prepare() (device-agnostic) with the same result."""
    import torch

    fe = train_base.FrontEnd("yolox-nano")
    x = (torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(0)) * 255).round() / 255
    rgb = x.mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    ts = [fe.det.prepare(np.ascontiguousarray(im[..., ::-1]), mode="pad", multiple=64)[0] for im in rgb]
    with torch.no_grad():
        ref = fe.det.front(torch.cat(ts, 0))
    assert torch.equal(fe(x), ref)
