"""Serve streams over HTTP: the base layer to analytics, everything to viewers, live.

Stored streams are the .vcs files in --root (named by file name, with or
without .vcs).  Live streams are encoded as they are served (--live
NAME=INPUT: a video file played at its frame rate, a pipe, or a .vcs stream
replayed in real time) or pushed by another process (`vcodec encode ...
--publish http://HOST:PORT/streams/NAME`, which needs --allow-publish or a
publish token).  The server never decodes: it filters units by layer id.

  GET /streams                       JSON list: layers, sizes, rates, clients
  GET /streams/NAME?layers=base      sequence header + base-layer units only
  GET /streams/NAME?layers=all       the whole stream (also layers=0,1)
  GET /streams/NAME?start=F          stored streams: from the intra frame at or before F
  GET /metrics                       Prometheus text: bytes/units per stream, layer, client; drops
  POST /streams/NAME                 publish a live stream (chunked body)
  GET /                              the live dashboard in a browser: streams, per-layer rates and
                                     clients, a preview with the base layer's detections boxed
                                     (with tokens on: open http://HOST:PORT/?token=TOKEN)

A client joining a live stream starts at the next intra frame of each layer.
A client that cannot keep up has a bounded buffer (--buffer); when it
overflows, that client skips to the next intra frame (counted in /metrics);
the encoder and the other clients never wait for it.

Access: --token base=SECRET1,all=SECRET2[,publish=SECRET3] turns on bearer
tokens (Authorization: Bearer SECRET); a base token can only fetch
layers=base.  Missing or unknown tokens get 401, a token without the right
get 403, unknown streams 404, bad parameters 400.  Tokens can also be read
from the environment with --token-env VAR or from a file with --token-file
FILE (both keep them out of `ps`).

Limits (publishing): a unit larger than --max-unit-bytes or than the stream's
own picture size can need is refused from its header (413); at most
--max-publishers streams are published at once (503); unfinished units of all
publishers together are bounded (413); a publisher silent for --idle-timeout
seconds, or a connection without a complete request for 10 s, is closed.
Published units are checked like the strict decoder checks them (frame order,
layers, picture size, END count) before they are relayed.

Examples:
  vcodec serve --root streams/ --port 8080
  vcodec serve --root streams/ --live cam1=BasketballPass_416x240_50.yuv --token base=abc,all=xyz
  vcodec analyze http://127.0.0.1:8080/streams/cam1 --token abc -o dets.txt
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from vcodec.cli._args import add_input_size
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError

HELP = "serve streams over HTTP (base layer to analytics, full stream to viewers, live)"


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = units.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 262144, 256k or 4M, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, help="directory of stored .vcs streams to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    parser.add_argument(
        "--live",
        action="append",
        default=[],
        metavar="NAME=INPUT",
        help="publish INPUT live as NAME (repeatable); INPUT is a video file, a pipe, or a .vcs",
    )
    parser.add_argument("--token", default="", metavar="SCOPE=TOKEN,...",
                        help="bearer tokens per scope: base, all, publish")
    parser.add_argument(
        "--token-env", metavar="VAR", help="read the --token value from environment variable VAR"
    )
    parser.add_argument("--token-file", type=Path, metavar="FILE", help="read the --token value from FILE")
    parser.add_argument("--max-unit-bytes", type=_size, default=None, metavar="BYTES",
                        help="largest unit a publisher may send (default 64m)")
    parser.add_argument("--max-publishers", type=int, default=None, metavar="N",
                        help="streams published at once (default 8)")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                        help="disconnect a publisher silent for S seconds (default 30)")
    parser.add_argument("--allow-publish", action="store_true",
                        help="accept live streams pushed with POST /streams/NAME (`vcodec encode --publish`)")
    parser.add_argument("--buffer", type=_size, default=None, metavar="BYTES",
                        help="per-client live buffer before it skips to the next intra frame (default 256k)")
    parser.add_argument("--loop", type=int, default=1, metavar="N",
                        help="play each --live input N times (0 = forever; default 1)")
    parser.add_argument("--speed", type=float, default=1.0, help="live playback speed factor (default 1)")
    parser.add_argument("--quiet", "-q", action="store_true", help="log warnings only")
    enc = parser.add_argument_group("live encoding (--live with a video INPUT)")
    enc.add_argument("--base-model", help="base model id or .json/.pt (default: the shipped one)")
    enc.add_argument("--base-quality", type=float, default=None,
                     help="0..1, higher = more bits (default: the base model's own operating point, "
                          "0.25 for base-yolox-nano-v3, else 0.5)")
    enc.add_argument("--enh-codec", default="libx265", help="enhancement codec (default libx265)")
    enc.add_argument("--preset", default="ultrafast", help="enhancement encoder preset (default ultrafast)")
    enc.add_argument("--intra-period", type=int, default=32, help="frames between intra frames (default 32)")
    add_input_size(enc, help="WIDTHxHEIGHT of raw YUV --live input (else from its name)")
    enc.add_argument("--threads", type=int, default=0, help="torch/encoder threads (0 = leave as is)")


def _parse_live(items: list[str]) -> list[tuple[str, str]]:
    from vcodec.serve.server import check_name

    out: list[tuple[str, str]] = []
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not source:
            raise ConfigError(f"--live {item!r}: expected NAME=INPUT, e.g. cam1=clip_416x240_50.yuv")
        check_name(name)
        if name in {n for n, _ in out}:
            raise ConfigError(f"--live: name {name!r} given twice")
        out.append((name, source))
    return out


def live_producer(source: str, args: argparse.Namespace):  # -> vcodec.serve.live.Producer
    """A producer for one --live INPUT: replay a .vcs stream, or encode a video."""
    from vcodec.serve.live import replay_producer

    p = Path(source)
    if p.is_file():
        with open(p, "rb") as f:
            if f.read(4) == b"VCDC":
                return replay_producer(p, loop_count=args.loop, speed=args.speed)
    from vcodec.serve.live import encode_producer

    return encode_producer(
        source,
        loop_count=args.loop,
        speed=args.speed,
        size=args.input_size,
        base_model=args.base_model,
        base_quality=args.base_quality,
        enh_codec=args.enh_codec,
        preset=args.preset,
        intra_period=args.intra_period,
        threads=args.threads,
    )


async def _serve(args: argparse.Namespace) -> int:
    from vcodec.serve.live import start_live
    from vcodec.serve.server import ServeConfig, StreamServer, parse_tokens

    token_text = args.token
    if args.token_env:
        token_text = os.environ.get(args.token_env, "")
        if not token_text:
            raise ConfigError(f"--token-env {args.token_env}: the variable is empty or not set")
    if args.token_file is not None:
        try:
            token_text = args.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"--token-file {args.token_file}: cannot read ({exc.strerror or exc})"
            ) from None
        if not token_text:
            raise ConfigError(f"--token-file {args.token_file}: the file is empty")
    config = ServeConfig(root=args.root, tokens=parse_tokens(token_text), allow_publish=args.allow_publish)
    if args.max_unit_bytes is not None:
        config.max_unit_bytes = args.max_unit_bytes
    if args.max_publishers is not None:
        config.max_publishers = args.max_publishers
    if args.idle_timeout is not None:
        config.idle_timeout = args.idle_timeout
    if args.buffer is not None:
        config.buffer_bytes = args.buffer
    lives = _parse_live(args.live)
    if args.root is None and not lives and not (args.allow_publish or "publish" in config.tokens):
        raise ConfigError("nothing to serve: give --root DIR, --live NAME=INPUT or --allow-publish")
    producers = [(name, live_producer(src, args), src) for name, src in lives]
    server = StreamServer(config)
    port = await server.start(args.host, args.port)
    loop = asyncio.get_running_loop()
    tasks = [start_live(server, loop, name, prod, source=src) for name, prod, src in producers]
    print(f"vcodec serve: listening on http://{args.host}:{port}"
          f" (root {args.root or '-'}, live {', '.join(n for n, _, _ in producers) or '-'}, "
          f"tokens {'on' if config.tokens else 'off'}); dashboard: http://{args.host}:{port}/",
          file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            pass
    try:
        await stop.wait()
    finally:
        for t in tasks:
            t.stop_event.set()
        await server.stop()
        for t in tasks:
            await loop.run_in_executor(None, t.stop, 5.0)
    print("vcodec serve: stopped", file=sys.stderr, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="vcodec serve: %(message)s")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected 0..65535")
    return asyncio.run(_serve(args))


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("serve", argv)
