#!/usr/bin/env python3
"""Fuzz benchmark of the decoder against accidental and crafted damage (issue 19; not part of the suite).

A short stream is encoded from a real clip (``sequences/demo_person_768x432.mp4``, scaled down so
that one decode takes a fraction of a second), then N mutated copies are decoded, each twice:
strict (``Decoder(conceal=False)``) and concealed (``conceal=True``), full pictures, in worker
processes that the parent kills after ``--timeout`` seconds.  Mutation families:

* ``accidental``: bit flips, truncation, a spliced run of random bytes, a deleted or repeated
  byte range anywhere in the stream, CRCs left as they are;
* ``crafted``: unit header fields (frame index: +-1, random, 0xFFFFFFFE; layer; type; INTRA flag),
  units swapped, repeated or deleted, END and INDEX fields and the SEQUENCE_HEADER's frame count,
  with every CRC recomputed (and END's unit count kept consistent);
* ``crafted-payload``: the first bytes of a base or enhancement payload (versions, flags, picture
  and latent sizes: 8000, 30000, 65534...) or random bytes inside it, CRCs recomputed.

Checked per decode: no untyped exception (only :class:`vcodec.errors.VcodecError`), no hang (the
timeout), peak memory under ``--mem-factor`` times the clean decode's, and for the strict decode
of ``accidental`` and ``crafted`` streams: exit 0 only with the clean stream's pictures (an
unchanged md5).  ``crafted-payload`` streams with valid CRCs may decode to other pictures: the
format cannot tell a forged payload from a real one, so they are counted, not failed.

Usage::

    python tools/fuzz_streams.py --streams 10000 --workers 2 --out fuzz.json
    python tools/fuzz_streams.py --streams 500            # a shorter run

Exit status 0 when every check held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing as mp
import os
import random
import struct
import sys
import threading
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLIP = REPO / "sequences" / "demo_person_768x432.mp4"
PREAMBLE_SIZE = 8
HEAD = struct.Struct(">2sBBBBIIII")


# -- raw unit surgery ---------------------------------------------------------------------------
def split_units(stream: bytes) -> tuple[bytes, list[list[Any]]]:
    """Preamble and ``[type, layer, flags, frame, payload]`` per unit (of an undamaged stream)."""
    pos, units = PREAMBLE_SIZE, []
    while pos + HEAD.size <= len(stream):
        _, t, layer, flags, _, frame, length, _, _ = HEAD.unpack_from(stream, pos)
        units.append([t, layer, flags, frame, stream[pos + HEAD.size: pos + HEAD.size + length]])
        pos += HEAD.size + length
    return stream[:PREAMBLE_SIZE], units


def join_units(pre: bytes, units: list[list[Any]], fix_end: bool = True) -> bytes:
    """Serialise with fresh CRCs; ``fix_end``: END's unit count matches the units written."""
    out = bytearray(pre)
    for k, (t, layer, flags, frame, payload) in enumerate(units):
        if fix_end and t == 0x7F and len(payload) == 16:
            payload = payload[:12] + struct.pack(">I", k)
        h = struct.pack(">2sBBBBIII", b"VU", t, layer, flags, 0, frame, len(payload), zlib.crc32(payload))
        out += h + struct.pack(">I", zlib.crc32(h)) + payload
    return bytes(out)


def mutate(stream: bytes, family: str, rng: random.Random) -> tuple[bytes, str]:
    """One mutated copy of ``stream`` and a short description of what was done."""
    if family == "accidental":
        b = bytearray(stream)
        kind = rng.choice(["flip", "flips", "truncate", "splice", "delete", "repeat"])
        at = rng.randrange(len(b))
        if kind == "flip":
            b[at] ^= 1 << rng.randrange(8)
        elif kind == "flips":
            for _ in range(rng.randint(2, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del b[at:]
        elif kind == "splice":
            n = rng.randint(1, 64)
            b[at:at + n] = bytes(rng.randrange(256) for _ in range(n))
        elif kind == "delete":
            del b[at:at + rng.randint(1, 256)]
        else:
            n = rng.randint(1, 256)
            b[at:at] = b[at:at + n]
        return bytes(b), f"{kind}@{at}"
    pre, units = split_units(stream)
    frames = [k for k, u in enumerate(units) if u[0] in (0x10, 0x20, 0x21)]
    k = rng.choice(frames)
    u = units[k]
    if family == "crafted":
        kind = rng.choice(["frame+1", "frame-1", "frame-rand", "frame-huge", "layer", "type", "intra",
                           "swap", "repeat", "delete", "end-frames", "end-huge", "index", "header-count"])
        if kind == "frame+1":
            u[3] += 1
        elif kind == "frame-1":
            u[3] = max(0, u[3] - 1)
        elif kind == "frame-rand":
            u[3] = rng.randrange((1 << 32) - 1)
        elif kind == "frame-huge":
            u[3] = 0xFFFFFFFE
        elif kind == "layer":
            u[1] = rng.choice([0, 1, 2, 7, 254])
        elif kind == "type":
            u[0] = rng.choice([0x10, 0x20, 0x21, 0x22, 0x30])
        elif kind == "intra":
            u[2] ^= 1
        elif kind == "swap":
            j = rng.choice(frames)
            units[k], units[j] = units[j], units[k]
        elif kind == "repeat":
            units.insert(k, list(u))
        elif kind == "delete":
            del units[k]
        elif kind in ("end-frames", "end-huge"):
            end = units[-1]
            n = struct.unpack_from(">I", end[4])[0]
            end[4] = struct.pack(">I", 0xFFFFFFFF if kind == "end-huge" else n + rng.choice([-2, -1, 1, 5])
                                 ) + end[4][4:]
        elif kind == "index":
            idx = next((x for x in units if x[0] == 0x70), None)
            if idx is not None and len(idx[4]) > 4:
                p = bytearray(idx[4])
                p[rng.randrange(len(p))] ^= 1 << rng.randrange(8)
                idx[4] = bytes(p)
        else:  # the SEQUENCE_HEADER's frame count (u32 at byte 18)
            p = bytearray(units[0][4])
            p[18:22] = struct.pack(">I", rng.choice([1, 2, 0xFFFFFFFF, rng.randrange(1 << 32)]))
            units[0][4] = bytes(p)
        return join_units(pre, units), f"{kind}@unit{k}"
    # crafted-payload
    p = bytearray(u[4])
    kind = rng.choice(["size", "head-byte", "body-flip", "truncate", "append"])
    if kind == "size" and len(p) >= 12:
        n = rng.choice([8000, 30000, 65534, 0, 2, rng.randrange(65536)])
        at = rng.choice([2, 4, 6, 8, 10])
        p[at:at + 2] = struct.pack("<H", n)
    elif kind in ("size", "head-byte") and p:
        p[rng.randrange(min(len(p), 24))] = rng.randrange(256)
    elif kind == "body-flip" and p:
        for _ in range(rng.randint(1, 4)):
            p[rng.randrange(len(p))] ^= 1 << rng.randrange(8)
    elif kind == "truncate" and p:
        del p[rng.randrange(len(p)):]
    else:
        p += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    u[4] = bytes(p)
    return join_units(pre, units), f"{kind}@unit{k}"


# -- worker ----------------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def decode_once(blob: bytes, conceal: bool) -> dict[str, Any]:
    from vcodec.codec import Decoder
    from vcodec.errors import VcodecError

    peak = [_rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    md5 = hashlib.md5()
    n = 0
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        with Decoder(blob, conceal=conceal) as dec:
            for fr in dec.frames():
                md5.update(fr.index.to_bytes(4, "big"))
                for plane in (fr.y, fr.u, fr.v):
                    md5.update(plane.tobytes())
                n += 1
            out.update(status="ok", md5=md5.hexdigest(), frames=n, lost=len(dec.lost_frames),
                       coarse=len(dec.coarse_frames), damage=len(dec.damage))
    except VcodecError as exc:
        out.update(status="typed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
    except BaseException as exc:  # noqa: BLE001 - what the benchmark counts
        out.update(status="untyped", error=f"{type(exc).__name__}: {str(exc)[:200]}",
                   trace=traceback.format_exc()[-1500:])
    finally:
        stop.set()
        t.join()
    out.update(seconds=time.perf_counter() - t0, peak_rss=max(peak[0], _rss()))
    return out


def worker(inbox: Any, outbox: Any) -> None:
    import torch

    torch.set_num_threads(1)
    while True:
        job = inbox.get()
        if job is None:
            return
        key, blob, conceal = job
        outbox.put((key, decode_once(blob, conceal)))


class Pool:
    """Persistent decode workers; a job past the timeout kills its worker (a hang) and starts another."""

    def __init__(self, n: int, timeout: float) -> None:
        self.ctx = mp.get_context("spawn")
        self.timeout = timeout
        self.slots = [self._start() for _ in range(n)]

    def _start(self) -> dict[str, Any]:
        inbox, outbox = self.ctx.Queue(), self.ctx.Queue()
        p = self.ctx.Process(target=worker, args=(inbox, outbox), daemon=True)
        p.start()
        return {"p": p, "in": inbox, "out": outbox, "job": None, "t": 0.0}

    def run(self, jobs: list[tuple[Any, bytes, bool]], done: Any) -> None:
        pending = list(reversed(jobs))
        while pending or any(s["job"] is not None for s in self.slots):
            for i, s in enumerate(self.slots):
                if s["job"] is None and pending:
                    s["job"] = pending.pop()
                    s["t"] = time.monotonic()
                    s["in"].put(s["job"])
                elif s["job"] is not None:
                    try:
                        key, res = s["out"].get(timeout=0.01)
                        s["job"] = None
                        done(key, res)
                    except Exception:  # noqa: BLE001 - queue.Empty
                        if time.monotonic() - s["t"] > self.timeout or not s["p"].is_alive():
                            key = s["job"][0]
                            status = "hang" if s["p"].is_alive() else "crash"
                            s["p"].kill()
                            s["p"].join()
                            self.slots[i] = self._start()
                            done(key, {"status": status, "seconds": time.monotonic() - s["t"]})

    def close(self) -> None:
        for s in self.slots:
            s["in"].put(None)
        for s in self.slots:
            s["p"].join(10)


# -- the stream ----------------------------------------------------------------------------------
def make_stream(frames: int, width: int, height: int, intra_period: int) -> bytes:
    import cv2

    from vcodec.codec import Encoder
    from vcodec.io import open_video
    from vcodec.io.frame import Frame, VideoInfo

    buf = io.BytesIO()
    with open_video(str(CLIP), frames=frames) as r:
        info = r.info
        small = VideoInfo(width, height, info.fps, 8, frames, info.matrix, "fuzz")
        with Encoder(buf, small, base_size=max(width, height), intra_period=intra_period, preset="ultrafast",
                     threads=1) as enc:
            for fr in r:
                rgb = cv2.resize(fr.to_rgb(), (width, height), interpolation=cv2.INTER_AREA)
                enc.encode(Frame.from_rgb(rgb, index=fr.index, matrix=info.matrix))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", default="192x108")
    ap.add_argument("--intra-period", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--mem-factor", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--out", type=Path, help="JSON report (counts and every failure)")
    args = ap.parse_args(argv)
    w, h = map(int, args.size.split("x"))
    t0 = time.time()
    stream = make_stream(args.frames, w, h, args.intra_period)
    pool = Pool(args.workers, args.timeout)
    clean: dict[bool, dict[str, Any]] = {}
    pool.run([((c, -1), stream, c) for c in (False, True)], lambda key, res: clean.__setitem__(key[0], res))
    for c in (False, True):
        if clean[c].get("status") != "ok":
            raise SystemExit(f"the clean stream does not decode: {clean[c]}")
    # the clean peak of each worker differs by what it has loaded: compare with the larger one
    mem_cap = args.mem_factor * max(r["peak_rss"] for r in clean.values())
    families = ["accidental", "crafted", "crafted-payload"]
    rng = random.Random(args.seed)
    blobs: dict[int, tuple[str, str]] = {}
    jobs: list[tuple[Any, bytes, bool]] = []
    counts: dict[str, dict[str, int]] = {f: {} for f in families}
    failures: list[dict[str, Any]] = []
    max_seconds = max_rss = 0.0
    for i in range(args.streams):
        fam = families[i % 3]
        blob, what = mutate(stream, fam, rng)
        blobs[i] = (fam, what)
        jobs += [((False, i), blob, False), ((True, i), blob, True)]

    def bump(fam: str, key: str) -> None:
        counts[fam][key] = counts[fam].get(key, 0) + 1

    def done(key: tuple[bool, int], res: dict[str, Any]) -> None:
        nonlocal max_seconds, max_rss
        conceal, i = key
        fam, what = blobs[i]
        mode = "conceal" if conceal else "strict"
        status = res["status"]
        bump(fam, f"{mode}-{status}")
        max_seconds = max(max_seconds, res.get("seconds", 0.0))
        bad = None
        clean_md5 = clean[False]["md5"]
        if status in ("untyped", "hang", "crash"):
            bad = status
        elif res.get("peak_rss", 0) > mem_cap:
            bad = "memory"
        elif status == "ok" and not conceal and fam != "crafted-payload" and res["md5"] != clean_md5:
            bad = "strict-altered"
        elif status == "ok" and not conceal and fam == "crafted-payload" and res["md5"] != clean_md5:
            bump(fam, "strict-other-pictures (forged payload, valid CRC)")
        if status == "ok" and not conceal and res["md5"] == clean[False]["md5"]:
            bump(fam, "strict-identical")
        max_rss = max(max_rss, res.get("peak_rss", 0))
        if bad is not None:
            bump(fam, f"FAIL-{bad}")
            failures.append({"stream": i, "family": fam, "mutation": what, "mode": mode, "check": bad,
                             **{k: v for k, v in res.items()
                                if k in ("error", "trace", "seconds", "peak_rss")}})
        n = sum(sum(v for k, v in c.items() if k.startswith(("strict-", "conceal-")) and
                    k.split("-")[1] in ("ok", "typed", "untyped", "hang", "crash")) for c in counts.values())
        if n % 200 == 0:
            print(f"  {n}/{len(jobs)} decodes, {len(failures)} failures, {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
            if args.out:  # a partial report, so an interrupted run still says what it found
                args.out.write_text(json.dumps(make_report(n), indent=2, sort_keys=True) + "\n")

    def make_report(decoded: int) -> dict[str, Any]:
        return {
            "command": "python tools/fuzz_streams.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "streams": args.streams, "decodes": len(jobs), "decoded": decoded, "clip": CLIP.name,
            "frames": args.frames, "size": args.size, "intra_period": args.intra_period,
            "stream_bytes": len(stream), "timeout_s": args.timeout,
            "clean_peak_rss_mb": round(max(r["peak_rss"] for r in clean.values()) / 2**20),
            "max_peak_rss_mb": round(max_rss / 2**20), "mem_cap_mb": round(mem_cap / 2**20),
            "max_decode_s": round(max_seconds, 2), "wall_s": round(time.time() - t0),
            "counts": counts, "failures": failures,
        }

    pool.run(jobs, done)
    pool.close()
    report = make_report(len(jobs))
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    summary = {k: v for k, v in report.items() if k != "failures"}
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f"{len(failures)} failures", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
