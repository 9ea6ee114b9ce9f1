#!/usr/bin/env python3
"""Generate the bundled test clip ``sequences/synthetic_416x240_30.y4m``.

The generator itself is :mod:`vcodec.io.synthetic` (integer-only, seeded, so
the output is bit-identical on every machine).

Usage::

    python tools/make_sequence.py                      # writes sequences/synthetic_416x240_30.y4m
    python tools/make_sequence.py --out /tmp/clip.y4m  # elsewhere
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vcodec.io.synthetic import DEFAULT_OUT, FRAMES, HEIGHT, SEED, WIDTH, write


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .y4m (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="PCG64 seed (the bundled clip uses the default)")
    args = ap.parse_args(argv)
    digest = write(args.out, args.seed)
    print(f"{args.out}: {WIDTH}x{HEIGHT}, {FRAMES} frames, md5 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
