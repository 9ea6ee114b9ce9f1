#!/usr/bin/env python3
"""Make the committed golden streams ``tests/golden/*.vcs`` and their manifest.

A golden stream is a tiny stream made once, committed, and decoded by every
later version of vcodec (``tests/test_golden.py``): its decoded output must
stay bit-exact as long as the stream format's major version is 1
(docs/FORMAT.md, "Golden streams").  Comparing one run of today's code with
another run of the same code cannot catch a silent drift of the decoder; a
stream written by an older encoder can.

One stream per base mode (learned ``base-vcodec-det-v2``, training-free
``features`` on the shipped ``vcodec-det``) and per enhancement codec
(libx265, libx264, libsvtav1, libvpx-vp9), each a small crop of the first
4 frames of ``sequences/synthetic_416x240_30.y4m`` with intra period 2 (so
an intra and a predicted frame of each layer are decoded).  Both detectors
are shipped with vcodec: nothing from ``../shared`` is needed.

The manifest ``tests/golden/manifest.json`` records for every stream

* ``stream_md5``: the committed file itself (guards against editing it);
* ``full_md5``: every plane of every decoded full picture, in output order;
* ``base_md5``: every plane of every decoded base picture (``null`` when the
  base mode has no picture);
* ``detections_md5``: canonical JSON of the base-layer detections (boxes,
  scores, class ids as exact float32 values) at score threshold
  :data:`DETECTION_SCORE_THRESHOLD`;
* ``extracted_md5``: the base-only stream ``vcodec extract`` makes from it;
* the format version and base payload version it was written with.

Usage::

    python tools/make_golden.py            # encode the cases that have no stream yet, add them
    python tools/make_golden.py --check    # decode the committed streams, compare with the manifest
    python tools/make_golden.py --manifest-only --only NAME   # recompute NAME's digests (on purpose!)
    python tools/make_golden.py --force --only NAME           # re-encode NAME (on purpose!)

Existing streams are never re-encoded and their digests never recomputed by
default: a stream written by an older vcodec (e.g. base payload version 1)
cannot be made again by today's encoder, and re-blessing digests would hide
exactly the drift the golden test is there to catch (docs/FORMAT.md).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import this checkout's vcodec
    sys.path.insert(0, str(ROOT))

GOLDEN_DIR = ROOT / "tests" / "golden"
MANIFEST = GOLDEN_DIR / "manifest.json"
SOURCE = ROOT / "sequences" / "synthetic_416x240_30.y4m"
#: the shipped detectors find nothing above their usual 0.3 on the synthetic clip; a low
#: threshold gives every stream detections whose exact values the md5 then pins down
DETECTION_SCORE_THRESHOLD = 0.01


@dataclass(frozen=True)
class GoldenCase:
    """How one golden stream is encoded (kept in the manifest so it can be remade)."""

    name: str
    base_mode: str  # "learned" | "features"
    enh_codec: str
    crop: tuple[int, int, int, int]  # x0, y0, width, height in the source picture
    frames: int = 4
    intra_period: int = 2
    base_quality: float = 0.2
    enh_crf: float = 40.0
    preset: str | None = None
    inter_layer: bool = True
    base_model: str | None = None


# the crop sits where the synthetic clip's moving objects pass, so detections are non-trivial
_LEARNED = dict(base_mode="learned", base_model="base-vcodec-det-v2", crop=(128, 96, 160, 128))
CASES: tuple[GoldenCase, ...] = (
    GoldenCase("learned-x265", enh_codec="libx265", preset="ultrafast", **_LEARNED),  # type: ignore[arg-type]
    GoldenCase("learned-x264", enh_codec="libx264", preset="ultrafast", **_LEARNED),  # type: ignore[arg-type]
    GoldenCase("learned-svtav1", enh_codec="libsvtav1", enh_crf=55.0, preset="12", **_LEARNED),  # type: ignore[arg-type]
    # VP9 codes full frames (no inter-layer prediction): it covers the "anchor" decode path and
    # avoids clipping the 8-bit residual
    GoldenCase("learned-vp9", enh_codec="libvpx-vp9", enh_crf=55.0, inter_layer=False, **_LEARNED),  # type: ignore[arg-type]
    # base payload version 2 (hyperprior reuse, skip blocks): 6 frames, intra period 4, so three
    # P-frames in a row exercise the skip flags' adaptive contexts (the cases above were written
    # by vcodec 0.1 with payload version 1; re-encoding them today would write version 2)
    GoldenCase("learned-v2-x265", enh_codec="libx265", preset="ultrafast", frames=6, intra_period=4,
               base_quality=0.7, **_LEARNED),  # type: ignore[arg-type]
    # base payload version 3 (motion field): the default model on the whole picture, where the
    # synthetic clip's objects move, 6 frames in one intra period (five P-frames with vectors)
    GoldenCase("learned-v3-x265", base_mode="learned", base_model="base-yolox-nano-v2", enh_codec="libx265",
               crop=(0, 0, 416, 240), preset="ultrafast", frames=6, intra_period=6, base_quality=0.7),
    # base payload version 4 (P-frame headers inherit the quality code and block sizes): the v3
    # case again, so its five P-frames show the first sending and the next four inheriting
    GoldenCase("learned-v4-x265", base_mode="learned", base_model="base-yolox-nano-v2", enh_codec="libx265",
               crop=(0, 0, 416, 240), preset="ultrafast", frames=6, intra_period=6, base_quality=0.7),
    # enhancement payload version 2 (one header byte per packet): the learned-x265 case again
    GoldenCase("learned-x265-pk2", enh_codec="libx265", preset="ultrafast", **_LEARNED),  # type: ignore[arg-type]
    # feature payloads are larger: a smaller crop and the lowest base quality keep it small
    GoldenCase("features-x265", base_mode="features", enh_codec="libx265", crop=(128, 96, 128, 96),
               base_quality=0.0, enh_crf=45.0, preset="ultrafast"),
)


# -- encoding ------------------------------------------------------------------------------
def source_frames(case: GoldenCase) -> tuple[list[Any], Any]:
    """The case's cropped frames and their VideoInfo."""
    from vcodec.io import Frame, VideoInfo, open_video

    x0, y0, w, h = case.crop
    frames: list[Frame] = []
    with open_video(SOURCE) as reader:
        src = reader.info
        for f in reader:
            if len(frames) == case.frames:
                break
            frames.append(Frame(
                f.y[y0:y0 + h, x0:x0 + w].copy(),
                f.u[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2].copy(),
                f.v[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2].copy(),
                bit_depth=f.bit_depth, index=f.index, matrix=f.matrix,
            ))
    info = VideoInfo(w, h, src.fps, src.bit_depth, len(frames), src.matrix, SOURCE.name)
    return frames, info


def encode_case(case: GoldenCase, out: Path) -> None:
    from vcodec.codec import Encoder

    frames, info = source_frames(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # residual clipping notes etc.: the stream is what it is
        enc = Encoder(out, info, base_model=case.base_model, base_quality=case.base_quality,
                      base_mode=case.base_mode, enh_codec=case.enh_codec, enh_crf=case.enh_crf,
                      preset=case.preset, intra_period=case.intra_period, inter_layer=case.inter_layer,
                      threads=1, properties={"golden": case.name})
        with enc:
            for f in frames:
                enc.encode(f)


# -- digests -------------------------------------------------------------------------------
def frames_md5(frames: Any) -> tuple[str, list[int]]:
    """md5 over every plane of every picture in output order, and the output frame indexes."""
    h = hashlib.md5()
    indexes: list[int] = []
    for f in frames:
        indexes.append(int(f.index))
        # the geometry goes in too, so that two layouts of the same bytes cannot collide
        h.update(f"{f.index} {f.width}x{f.height} {f.bit_depth}\n".encode())
        for plane in f.planes:
            h.update(plane.tobytes(order="C"))
    return h.hexdigest(), indexes


def canonical_detections(items: list[tuple[int, Any]]) -> str:
    """Detections as canonical JSON: exact float32 values, sorted keys, no whitespace."""
    rows = [{
        "frame": int(i),
        "boxes": [[float(v) for v in box] for box in d.boxes],
        "scores": [float(s) for s in d.scores],
        "classes": [int(c) for c in d.class_ids],
    } for i, d in items]
    return json.dumps(rows, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _detections(source: bytes) -> tuple[str, int]:
    from vcodec.codec import Decoder

    with Decoder(source, layers="base") as dec:
        dec.detector().score_threshold = DETECTION_SCORE_THRESHOLD
        items = list(dec.detections())
        if dec.lost_frames:
            raise AssertionError(f"golden stream lost base frames {dec.lost_frames}")
    text = canonical_detections(items)
    return hashlib.md5(text.encode()).hexdigest(), sum(len(d) for _, d in items)


def stream_versions(data: bytes) -> dict[str, Any]:
    """Format version from the preamble and base payload version from the first base unit."""
    from vcodec.bitstream import StreamReader, Unit, UnitType

    with StreamReader(data) as r:
        first = next(u for u in r if isinstance(u, Unit) and u.type == UnitType.BASE_FRAME)
        return {"format_version": f"{data[4]}.{data[5]}", "base_kind": r.layers[0].kind,
                "base_codec": r.layers[0].codec, "base_payload_version": first.payload[0]}


def digests(path: Path) -> dict[str, Any]:
    """Everything the manifest records about one committed stream, measured by decoding it."""
    from vcodec.bitstream import extract_layers
    from vcodec.codec import Decoder

    data = path.read_bytes()
    out: dict[str, Any] = {"stream_md5": hashlib.md5(data).hexdigest(), "stream_bytes": len(data)}
    out.update(stream_versions(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Decoder(data) as dec:
            out["full_md5"], out["full_frames"] = frames_md5(dec.frames())
            if dec.lost_frames or dec.coarse_frames or dec.damage:
                raise AssertionError(f"{path.name}: a golden stream must decode without concealment")
            has_picture = bool(dec.base.has_picture)
        if has_picture:
            with Decoder(data, layers="base") as dec:
                out["base_md5"], _ = frames_md5(dec.frames())
        else:
            out["base_md5"] = None
        out["detections_md5"], out["detections"] = _detections(data)
        sink = io.BytesIO()
        extract_layers(data, sink, [0])
        extracted = sink.getvalue()
        out["extracted_md5"] = hashlib.md5(extracted).hexdigest()
        # a base-only stream must give the very same detections (nothing of layer 1 is used)
        if _detections(extracted)[0] != out["detections_md5"]:
            raise AssertionError(f"{path.name}: the extracted base layer gives other detections")
    out["detection_score_threshold"] = DETECTION_SCORE_THRESHOLD
    return out


# -- manifest ------------------------------------------------------------------------------
def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


def write_manifest(manifest: dict[str, Any]) -> None:
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def manifest_entry(case: GoldenCase) -> dict[str, Any]:
    entry = {"file": f"{case.name}.vcs", "case": asdict(case)}
    entry.update(digests(GOLDEN_DIR / entry["file"]))
    return json.loads(json.dumps(entry))  # as the manifest stores it (tuples become lists)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="decode the committed streams and compare")
    g.add_argument("--manifest-only", action="store_true",
                   help="keep the streams, recompute the digests of existing ones")
    g.add_argument("--force", action="store_true", help="re-encode streams that exist (replaces them)")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    if args.check:
        expected = {e["file"]: e for e in load_manifest()["streams"]}
        bad = 0
        for case in cases:
            got = manifest_entry(case)
            want = expected.get(got["file"])
            diff = sorted(k for k in got if want is None or want.get(k) != got[k])
            bad += bool(diff)
            print(f"{case.name:16s} {'OK' if not diff else 'DIFFERS: ' + ', '.join(diff)}")
        return 1 if bad else 0
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    old = {e["file"]: e for e in load_manifest()["streams"]} if MANIFEST.is_file() else {}
    for case in cases:
        path = GOLDEN_DIR / f"{case.name}.vcs"
        exists = path.is_file() and path.name in old
        if exists and not (args.force or args.manifest_only):
            print(f"{case.name:16s} kept (committed stream and digests untouched)")
            continue
        if args.manifest_only and not path.is_file():
            print(f"{case.name:16s} has no stream; run without --manifest-only to encode it")
            continue
        if not args.manifest_only:
            encode_case(case, path)
        old[path.name] = manifest_entry(case)
        e = old[path.name]
        print(f"{case.name:16s} {e['stream_bytes']:6d} B  full {e['full_md5']}  dets {e['detections']}")
    write_manifest({
        "about": "golden streams: decoded by tests/test_golden.py; made by tools/make_golden.py "
                 "(regenerate only on purpose, see docs/FORMAT.md)",
        "streams": [old[k] for k in sorted(old)],
    })
    print(f"wrote {MANIFEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
