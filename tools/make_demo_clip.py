#!/usr/bin/env python3
"""Make ``sequences/demo_person_768x432.mp4``, the real clip ``vcodec demo`` runs on by default.

A 3.6-second excerpt of Intel's ``one-by-one-person-detection.mp4`` (CC BY 4.0,
intel-iot-devkit/sample-videos; in ``../shared/data/clips/``): frames 64-99 of 1394, a person
walking into a room, seen by YOLOX-Nano as ``person`` (score ~0.8) in every frame, from the
base layer alone too. (The car clip was tried first: seen from above, its cars are labelled
``cell phone``/``suitcase`` even on the original pixels, which teaches nothing.) Never the
whole clip: only the excerpt is committed, with its attribution beside it
(``sequences/demo_person_768x432.ATTRIBUTION.md``, written by this tool with the sha256 of
the source and of the result).

The excerpt is re-encoded at high quality for a source (x264 CRF 14, preset slow, one
thread, no B-frames: deterministic, so the same PyAV/x264 versions make the same bytes);
``--check`` re-makes it in memory and compares with the committed file, frame by frame
(pixels) and byte for byte.

    python tools/make_demo_clip.py                  # (re)write the clip and its attribution
    python tools/make_demo_clip.py --check          # does the committed clip match its recipe?
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VCODEC_SHARED", ROOT.parent / "shared"))
SOURCE_NAME = "one-by-one-person-detection.mp4"
SOURCE_FRAMES = 1394
START, COUNT = 64, 36  # 0-based decode-order frame indices [64, 100)
OUT = ROOT / "sequences" / "demo_person_768x432.mp4"
ATTRIBUTION = OUT.with_name("demo_person_768x432.ATTRIBUTION.md")
CRF, PRESET = 14, "slow"
MAX_BYTES = 2_000_000


def source_frames(source: Path) -> tuple[list[np.ndarray], Fraction]:
    """Frames START..START+COUNT-1 of the source as I420 planes stacked (H*3/2, W) uint8."""
    frames: list[np.ndarray] = []
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate)
        for index, frame in enumerate(container.decode(stream)):
            if index >= START + COUNT:
                break
            if index >= START:
                frames.append(frame.to_ndarray(format="yuv420p"))
    if len(frames) != COUNT:
        raise SystemExit(f"{source}: only {START + len(frames)} frames, need {START + COUNT}")
    return frames, rate


def encode(frames: list[np.ndarray], rate: Fraction) -> bytes:
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_count = 1  # x264's output depends on its thread count
        stream.options = {"crf": str(CRF), "preset": PRESET, "bframes": "0", "threads": "1",
                          "x264-params": f"keyint={COUNT}:min-keyint={COUNT}:scenecut=0"}
        for i, planes in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


def attribution(source_sha: str, clip_sha: str, size: int, rate: Fraction) -> str:
    return f"""# {OUT.name}: attribution

This clip is an excerpt of **"{SOURCE_NAME}"** by **Intel Corporation**, from the
[intel-iot-devkit/sample-videos](https://github.com/intel-iot-devkit/sample-videos) repository,
licensed under the
[Creative Commons Attribution 4.0 International licence (CC BY 4.0)](https://creativecommons.org/licenses/by/4.0/).

Changes: frames {START}-{START + COUNT - 1} (0-based, of {SOURCE_FRAMES}; {COUNT} frames,
{float(COUNT / rate):.2f} s at {rate} frames/s) were cut out and re-encoded with x264 (CRF {CRF},
preset {PRESET}); nothing else was altered. Made by `tools/make_demo_clip.py` (`--check`
verifies this file against its recipe).

| | |
|---|---|
| source sha256 | `{source_sha}` |
| clip sha256 | `{clip_sha}` |
| clip | 768x432, {COUNT} frames, {size} bytes |

The licence applies to this clip only; the rest of vcodec is under its own licence (see NOTICE).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SHARED / "data" / "clips" / SOURCE_NAME)
    ap.add_argument("--check", action="store_true", help="compare the committed clip with a fresh one")
    args = ap.parse_args(argv)
    if not args.source.is_file():
        print(f"make_demo_clip: {args.source} is missing (the shared clips live in ../shared/data/clips/)",
              file=sys.stderr)
        return 1
    source_sha = hashlib.sha256(args.source.read_bytes()).hexdigest()
    frames, rate = source_frames(args.source)
    data = encode(frames, rate)
    if len(data) > MAX_BYTES:
        print(f"make_demo_clip: {len(data)} bytes is over the {MAX_BYTES}-byte budget", file=sys.stderr)
        return 1
    again = decoded(data)
    psnr = [10 * np.log10(255**2 / max(np.mean((a.astype(float) - b) ** 2), 1e-12))
            for a, b in zip(frames, again, strict=True)]
    clip_sha = hashlib.sha256(data).hexdigest()
    if args.check:
        if not OUT.is_file():
            print(f"make_demo_clip: {OUT} does not exist; run without --check", file=sys.stderr)
            return 1
        committed = OUT.read_bytes()
        same_pixels = all(np.array_equal(a, b) for a, b in zip(decoded(committed), again, strict=True))
        print(f"{OUT.name}: bytes {'identical' if committed == data else 'differ (other x264/PyAV?)'}, "
              f"decoded pixels {'identical' if same_pixels else 'DIFFER'}")
        return 0 if same_pixels else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    ATTRIBUTION.write_text(attribution(source_sha, clip_sha, len(data), rate))
    print(f"{OUT.relative_to(ROOT)}: {COUNT} frames (source frames {START}-{START + COUNT - 1}), "
          f"{len(data)} bytes, PSNR-Y/UV vs source {min(psnr):.1f}-{max(psnr):.1f} dB, sha256 {clip_sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
