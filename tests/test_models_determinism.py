"""Determinism matrix of the base layer, in separate processes.

One process encodes a short I/P/P sequence and writes the payloads; then
processes with 1, 2 and 4 torch threads and different ``OMP_NUM_THREADS``
each (a) encode the same frames again and (b) decode the reference payloads.
Stream md5, decoded latents, T(y_hat) features, x_base pictures and (when
YOLOX-Nano is available) detections must be bit-identical everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import CLIPS, YOLOX_NANO_ONNX

REPO = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    r"""
    import hashlib, json, sys
    from pathlib import Path
    import numpy as np, torch
    threads, stream_path, mode = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    from vcodec.io.frame import Frame
    from vcodec.baselayer.learned import BaseCodec, BaseNet, BaseNetConfig, BASE_MODELS, load_base_model

    if "base-yolox-nano-v2" in BASE_MODELS:
        codec = load_base_model("base-yolox-nano-v2")
    else:  # untrained but seeded: the coding path is what is under test
        torch.manual_seed(0)
        codec = BaseCodec(BaseNet(BaseNetConfig()))
    clip = Path(sys.argv[4])
    if clip.exists():
        data = clip.read_bytes()
        frames = [Frame.from_bytes(data[i * 115200:(i + 1) * 115200], 320, 240, index=i) for i in range(3)]
    else:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (240, 340, 3), dtype=np.uint8)
        frames = [Frame.from_rgb(np.ascontiguousarray(base[:, 4 * i: 4 * i + 320]), index=i) """
    r"""for i in range(3)]
    md5 = lambda b: hashlib.md5(b).hexdigest()
    out = {"threads": torch.get_num_threads()}
    enc = codec.encoder(quality=0.5, intra_period=32)
    payloads = []
    out["moved_blocks"] = 0  # the motion field is under test too: the moving cars must use it
    for f in frames:
        payloads.append(enc.encode_frame(f, reconstruct=False)[0])
        out["moved_blocks"] += enc.last_report.moved_blocks
    out["stream_md5"] = md5(b"".join(payloads))
    # every encoder decision as well: lossy skip blocks, RDOQ, latent refinement, z refresh
    from vcodec.baselayer.learned import CodingTools
    tools = CodingTools(skip_mode="rd", rdoq=True, effort="slow", p_quality_offset=-0.1)
    enc2 = codec.encoder(quality=0.5, intra_period=32, tools=tools)
    out["tools_stream_md5"] = md5(b"".join(enc2.encode_frame(f, reconstruct=False)[0] for f in frames))
    if mode == "write":
        stream_path.write_bytes(b"".join(len(p).to_bytes(4, "little") + p for p in payloads))
    blob, payloads, pos = stream_path.read_bytes(), [], 0
    while pos < len(blob):
        n = int.from_bytes(blob[pos:pos + 4], "little"); """
    r"""payloads.append(blob[pos + 4:pos + 4 + n]); pos += 4 + n
    dec = codec.decoder()
    det = None
    onnx = Path(sys.argv[5])
    if onnx.exists() and codec.cfg.detector == "yolox-nano":
        from vcodec.detection.yolox import YOLOX
        det = YOLOX("nano").load(onnx).eval()
    lat, feat, dets, pics = [], [], [], []
    for p in payloads:
        y = dec.decode_frame(p)
        pics.append(codec.reconstruct(y, dec.last_geometry).to_bytes())
        lat.append(y.numpy().tobytes())
        feat.append(codec.features(y).numpy().tobytes())
        if det is not None:
            d = codec.detect(y, det, dec.last_geometry)
            dets.append(d.boxes.tobytes() + d.scores.tobytes() + d.class_ids.tobytes())
    out["latents_md5"] = md5(b"".join(lat))
    out["features_md5"] = md5(b"".join(feat))
    out["x_base_md5"] = md5(b"".join(pics))
    out["detections_md5"] = md5(b"".join(dets)) if det is not None else None
    print(json.dumps(out))
    """
)


def _run(threads: int, omp: str, stream: Path, mode: str) -> dict[str, object]:
    env = dict(os.environ, OMP_NUM_THREADS=omp, MKL_NUM_THREADS=omp, PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-c", WORKER, str(threads), str(stream), mode,
         str(CLIPS / "cars_320x240.i420"), str(YOLOX_NANO_ONNX)],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_determinism_across_processes_and_threads(tmp_path: Path) -> None:
    stream = tmp_path / "base.bin"
    ref = _run(1, "1", stream, "write")
    assert ref["threads"] == 1
    if CLIPS.joinpath("cars_320x240.i420").exists():
        assert ref["moved_blocks"] > 0
    for threads, omp in ((2, "2"), (4, "4"), (4, "1"), (1, "3")):
        got = _run(threads, omp, stream, "read")
        assert got["threads"] == threads
        for key in ("stream_md5", "tools_stream_md5", "latents_md5", "features_md5", "x_base_md5",
                    "detections_md5"):
            assert got[key] == ref[key], f"{key} differs with {threads} threads, OMP_NUM_THREADS={omp}"
