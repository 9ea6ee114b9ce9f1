"""Show what a vcodec stream holds, without decoding it.

Prints the sequence header (size, frame rate, bit depth, colour), each layer's
configuration (codec or model, weights hash, parameters), the frame count, the
bytes and kbit/s of each layer with its share of the stream, the intra
frames (random-access points) and what layer 1 codes in each GOP (R: the
residual over the base picture, F: full frames).

Examples:
  vcodec info clip.vcs
  vcodec info clip.vcs --json > clip-info.json
  vcodec extract clip.vcs -o - --layers base | vcodec info -
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from vcodec.bitstream import stream_stats
from vcodec.cli._io import open_input
from vcodec.cli.main import subcommand_main

HELP = "show a stream's header, layers, frame count, bytes per layer and intra frames"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", help="a .vcs stream, or - for stdin")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _layer_name(i: int) -> str:
    return {0: "base (machines)", 1: "enhancement (humans)"}.get(i, f"layer {i}")


def run(args: argparse.Namespace) -> int:
    with open_input(args.stream) as f:
        stats = stream_stats(f)
    d = stats.to_dict()
    if args.json:
        json.dump(d, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    out.write(f"{args.stream}: vcodec stream v{d['version']}\n")
    out.write(f"  picture   {d['width']}x{d['height']} {d['bit_depth']}-bit 4:2:0, {d['matrix']} "
              f"{'full' if d['full_range'] else 'limited'} range, {d['fps']} fps\n")
    out.write(f"  frames    {d['num_frames']} ({d['duration_s']:.3f} s), intra period {d['intra_period']}\n")
    out.write(f"  intra     {', '.join(map(str, d['intra_frames'])) or '-'}"
              f"{'' if d['has_index'] else ' (no index)'}\n")
    out.write(f"  size      {d['total_bytes']} bytes\n")
    if d["gops"]:
        # one letter per GOP: R residual over the base picture, F full frames (base not needed to view)
        modes = "".join("R" if g["mode"] == "residual" else "F" for g in d["gops"])
        n_res = modes.count("R")
        out.write(f"  GOPs      {len(modes)}: {n_res} residual, {len(modes) - n_res} full-frame  {modes}\n")
    for layer in d["layers"]:
        out.write(f"  layer {layer['id']}  {_layer_name(layer['id'])}: {layer['kind']} / {layer['codec']}\n")
        out.write(f"            {layer['bytes']} bytes, {layer['kbps']:.2f} kbit/s, "
                  f"{100 * layer['share']:.1f}% of the stream, {layer['units']} units\n")
        if layer["weights_sha256"]:
            out.write(f"            weights sha256 {layer['weights_sha256']}\n")
        if layer["params"]:
            out.write(f"            params {json.dumps(layer['params'], sort_keys=True)}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("info", argv)
