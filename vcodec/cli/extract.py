"""Keep only some layers of a stream: a byte-level filter, no decoding.

The output is itself a valid stream that every vcodec tool reads; analytics
clients only need the base layer (layer 0).  Units are copied verbatim, so
extraction is fast (O(stream size)) and uses constant memory; `-` reads from
stdin or writes to stdout for pipes.

Examples:
  vcodec extract clip.vcs -o clip-base.vcs              # base layer only
  vcodec extract clip.vcs -o - --layers base | vcodec detect -
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vcodec.bitstream import extract_layers, parse_layers
from vcodec.cli._io import atomic_output, open_input
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError

HELP = "keep only some layers of a stream (e.g. the base layer for analytics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", help="input .vcs stream, or - for stdin")
    parser.add_argument("-o", "--output", required=True, help="output stream, or - for stdout")
    parser.add_argument("--layers", default="base",
                        help="layers to keep: 'base' (default), or ids such as '0' or '0,1'")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    layers = parse_layers(args.layers)
    if layers is None:
        raise ConfigError("--layers all keeps everything: copy the file instead")
    with open_input(args.stream) as src, atomic_output(args.output) as dst:
        counts = extract_layers(src, dst, sorted(layers))
    if not args.quiet:
        print(f"kept layers {','.join(map(str, sorted(layers)))}: {counts['units_out']} of "
              f"{counts['units_in']} units, {counts['bytes_out']} bytes", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("extract", argv)
