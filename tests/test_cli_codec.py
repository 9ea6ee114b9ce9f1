"""`vcodec encode` / `decode` / `demo`: round trips, pipes through real processes, bad input.

Every bad-input case must give one clear line on stderr, a non-zero exit code and
no output file (not even a temporary one).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST_ENCODE, REPO, SEQUENCE, assert_coco_detections, cli_encode, one_error_line

from vcodec.cli import decode as decode_cli
from vcodec.cli import demo as demo_cli
from vcodec.cli import encode as encode_cli
from vcodec.codec import detect_stream
from vcodec.io import open_video


def _md5_frames(path: Path) -> str:
    h = hashlib.md5()
    with open_video(path) as r:
        for f in r:
            h.update(f.to_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory, codec_test_model: Path) -> Path:
    return cli_encode(tmp_path_factory.mktemp("cli-codec") / "clip.vcs", codec_test_model, 6)



def test_encode_decode_roundtrip(
    tmp_path: Path, codec_test_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.vcs"
    summary = tmp_path / "summary.json"
    rc = encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", "5", "--start", "2", "--base-model",
                          str(codec_test_model), "--psnr", "--json", str(summary), "--low-delay",
                          "--enh-qp", "30", "--preset", "ultrafast", "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "kbit/s" in err and "PSNR-Y" in err
    s = json.loads(summary.read_text())
    assert s["frames"] == 5 and s["base_bytes"] > 0 and s["enh_bytes"] > 0 and s["psnr_full"] > 30
    assert s["stream_bytes"] == out.stat().st_size

    y4m, base = tmp_path / "full.y4m", tmp_path / "base_416x240.yuv"
    assert decode_cli.main([str(out), "-o", str(y4m), "--base-model", str(codec_test_model), "-q"]) == 0
    assert decode_cli.main([str(out), "-o", str(base), "--layers", "base", "--base-model",
                            str(codec_test_model), "-q"]) == 0
    with open_video(y4m) as r:
        assert r.info.num_frames == 5 and (r.info.width, r.info.height) == (416, 240)
    assert base.stat().st_size == 5 * 416 * 240 * 3 // 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base_416x240.yuv", "clip.vcs", "full.y4m",
                                                           "summary.json"]


@pytest.mark.slow
def test_pipes_through_processes(tmp_path: Path, stream: Path, codec_test_model: Path,
                                 yolox_nano_onnx: Path) -> None:
    """encode -o - | decode - and encode -o - | detect_stream('-'), as separate processes.

    Also the determinism check across processes and thread counts: the piped decode
    (2 threads, other process) equals the in-process decode of the same stream.
    """
    import shlex

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    model = str(codec_test_model)
    py = shlex.quote(sys.executable)
    enc = (f"{py} -m vcodec encode {shlex.quote(str(SEQUENCE))} --frames 6 --base-model {shlex.quote(model)} "
           f"--threads 1 -o - {' '.join(FAST_ENCODE)}")
    dec = f"{py} -m vcodec decode - -o piped.y4m --base-model {shlex.quote(model)} --threads 2 -q"
    # analytics on the same pipe: MOT lines, written frame by frame
    code = ("from vcodec.codec import detect_stream\n"
            f"n = sum(1 for _ in detect_stream('-', output='dets.txt', weights={str(yolox_nano_onnx)!r}, "
            f"base_model={model!r}, progress=False))\n"
            "open('count.txt', 'w').write(str(n))")
    det = f"{py} -c {shlex.quote(code)}"
    # one encoder feeding two consumers at once (three real processes)
    script = f"set -o pipefail; {enc} | tee >({det}) | {dec}; wait"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    for _ in range(600):  # the process substitution may finish after the pipeline
        if (tmp_path / "count.txt").exists():
            break
        time.sleep(0.5)
    assert (tmp_path / "count.txt").read_text() == "6"
    # the piped decode (2 threads, another process) equals the in-process decode of the file
    assert decode_cli.main([str(stream), "-o", str(tmp_path / "file.y4m"), "--base-model", model, "-q"]) == 0
    assert _md5_frames(tmp_path / "piped.y4m") == _md5_frames(tmp_path / "file.y4m")
    # so it is the same stream, and the piped analytics wrote what detecting on the file writes
    file_dets = detect_stream(stream, output=str(tmp_path / "file_dets.txt"), weights=yolox_nano_onnx,
                              base_model=model, progress=False)
    assert sum(1 for _ in file_dets) == 6
    assert (tmp_path / "dets.txt").read_text() == (tmp_path / "file_dets.txt").read_text()


# -- bad input: one line, non-zero exit, nothing left behind ------------------------------
def test_unreadable_input(tmp_path: Path, codec_test_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.vcs"
    rc = encode_cli.main(
        [str(tmp_path / "missing.mp4"), "-o", str(out), "--base-model", str(codec_test_model)]
    )
    assert rc == 1
    one_error_line(capsys, "vcodec encode: error:", "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 100)
    assert encode_cli.main([str(junk), "-o", str(out), "--base-model", str(codec_test_model)]) == 1
    one_error_line(capsys, "junk.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_wrong_raw_size(tmp_path: Path, codec_test_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "clip.yuv"
    raw.write_bytes(bytes(416 * 240 * 3 // 2 + 100))  # not a whole number of frames
    rc = encode_cli.main([str(raw), "--size", "416x240", "-o", str(tmp_path / "o.vcs"),
                          "--base-model", str(codec_test_model), "-q"])
    assert rc == 1
    one_error_line(capsys, "clip.yuv")
    rc = encode_cli.main([str(raw), "-o", str(tmp_path / "o.vcs"), "--base-model", str(codec_test_model)])
    assert rc == 1
    one_error_line(capsys, "--size")
    assert [p.name for p in tmp_path.iterdir()] == ["clip.yuv"]


def test_unknown_codec(tmp_path: Path, codec_test_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = encode_cli.main([str(SEQUENCE), "-o", str(tmp_path / "o.vcs"), "--enh-codec", "libx999"])
    assert rc == 2
    assert "libx999" in capsys.readouterr().err
    rc = encode_cli.main([str(SEQUENCE), "-o", str(tmp_path / "o.vcs"), "--base-mode", "learned",
                          "--base-model", str(tmp_path / "nope.json"), "--frames", "1"])
    assert rc == 1
    one_error_line(capsys, "nope.json")
    assert list(tmp_path.iterdir()) == []


def test_stream_made_with_other_weights(tmp_path: Path, stream: Path, codec_other_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # --layers base: the base model is needed (a full decode loads it only for residual GOPs)
    rc = decode_cli.main([str(stream), "-o", str(tmp_path / "o.y4m"), "--layers", "base",
                          "--base-model", str(codec_other_model)])
    assert rc == 1
    one_error_line(capsys, "sha256", "install the weights")
    rc = decode_cli.main([str(stream), "-o", str(tmp_path / "o.y4m"), "--layers", "base"])  # id not installed
    assert rc == 1
    one_error_line(capsys, "base-e2e-test-v1", "--base-model")
    assert list(tmp_path.iterdir()) == []


def test_damaged_stream(tmp_path: Path, stream: Path, codec_test_model: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.bitstream import StreamReader

    data = bytearray(stream.read_bytes())
    unit = next(u for u in StreamReader(bytes(data)) if u.layer == 0 and u.frame == 2)
    data[unit.offset + 22 + len(unit.payload) // 2] ^= 0xFF  # inside the payload (after the 22-byte header)
    bad = tmp_path / "bad.vcs"
    bad.write_bytes(bytes(data))
    out = tmp_path / "o.y4m"
    assert decode_cli.main([str(bad), "-o", str(out), "--base-model", str(codec_test_model)]) == 1
    one_error_line(capsys, f"byte {unit.offset}", "frame 2", "CRC")
    assert not out.exists()
    assert decode_cli.main([str(bad), "-o", str(out), "--conceal", "--base-model", str(codec_test_model),
                            "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "3 frame(s) lost (2-3" in err or "lost (2-3)" in err, err
    with open_video(out) as r:
        assert r.info.num_frames == 6
    # a file that is not a stream at all
    assert decode_cli.main([str(SEQUENCE), "-o", str(tmp_path / "x.y4m")]) == 1
    one_error_line(capsys, "not a vcodec stream")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vcs", "o.y4m"]


def test_unwritable_output(tmp_path: Path, stream: Path, codec_test_model: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    rc = encode_cli.main([str(SEQUENCE), "-o", str(missing / "o.vcs"), "--frames", "1", "--base-model",
                          str(codec_test_model), "-q"])
    assert rc == 1
    one_error_line(capsys, "cannot write", "o.vcs")
    rc = encode_cli.main([str(SEQUENCE), "-o", str(tmp_path), "--frames", "1", "--base-model",
                          str(codec_test_model), "-q"])
    assert rc == 1
    one_error_line(capsys, "is a directory")
    rc = decode_cli.main(
        [str(stream), "-o", str(missing / "o.y4m"), "--base-model", str(codec_test_model), "-q"]
    )
    assert rc == 1
    one_error_line(capsys, "o.y4m")
    assert list(tmp_path.iterdir()) == []


def test_help_teaches() -> None:
    for mod, name in ((encode_cli, "encode"), (decode_cli, "decode"), (demo_cli, "demo")):
        proc = subprocess.run(
            [sys.executable, "-m", "vcodec", name, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert mod.HELP and ("Examples" in proc.stdout or "vcodec demo" in proc.stdout), proc.stdout


# -- demo -----------------------------------------------------------------------------------
def test_demo_on_a_short_clip(tmp_path: Path, codec_test_model: Path, yolox_nano_onnx: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    # the synthetic clip by name: the default is the real demo clip (tests/test_demo_pictures.py)
    rc = demo_cli.main([str(SEQUENCE), "--frames", "4", "--out", str(out),
                        "--base-model", str(codec_test_model),
                        "--detector-weights", str(yolox_nano_onnx), "--preset", "ultrafast", "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "analytics need" in text and "PSNR-Y of the full decode" in text and "frames/s" in text
    names = sorted(p.name for p in out.iterdir())
    assert names == ["annotated.mp4", "base.vcs", "contact_sheet.png", "decoded.y4m", "detections.json",
                     "report.json", "stream.vcs"]
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 4 and len(report["detections_per_frame"]) == 4
    assert 0 < report["analytics_share"] < 1
    assert report["bytes"]["base_stream"] == (out / "base.vcs").stat().st_size
    assert report["psnr_y"]["full_decoded"] > 30
    # the decoder rebuilds the encoder's pictures bit-exactly, and both means go through mean_psnr
    assert report["psnr_y"]["full_decoded"] == report["psnr_y"]["full_encoder"]
    with open_video(out / "decoded.y4m") as r:
        assert r.info.num_frames == 4
    # detections.json holds what the report counts, frame by frame (none on the untrained test base)
    dets = json.loads((out / "detections.json").read_text())
    assert_coco_detections(dets, frames=4, width=416, height=240)
    assert [sum(d["image_id"] == i for d in dets) for i in range(4)] == report["detections_per_frame"]
