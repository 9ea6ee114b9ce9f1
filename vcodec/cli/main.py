"""``vcodec`` command-line entry point.

Each subcommand lives in its own module ``vcodec.cli.<name>`` that defines

* ``HELP``: one line for the command list,
* ``add_arguments(parser)``: fills an ``argparse`` parser (its description is
  the module docstring, so ``vcodec NAME --help`` teaches),
* ``run(args) -> int``: does the work and returns the exit code,
* ``main(argv) -> int``: the same, parsing ``argv`` itself (tests call this).

Modules are imported lazily so that ``vcodec info`` does not pay for torch.
Errors: a :class:`vcodec.errors.VcodecError` is printed as one line on stderr
(``vcodec NAME: error: ...``) with exit code 1 for data errors and 2 for usage
errors; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

from vcodec import __version__
from vcodec.cli._io import refuse_in_place
from vcodec.errors import VcodecError

#: subcommand name -> module; the order is the order of ``vcodec --help``
COMMANDS: dict[str, str] = {
    "demo": "vcodec.cli.demo",
    "encode": "vcodec.cli.encode",
    "encode-batch": "vcodec.cli.encode_batch",
    "decode": "vcodec.cli.decode",
    "detect": "vcodec.cli.detect",
    "extract": "vcodec.cli.extract",
    "info": "vcodec.cli.info",
    "eval": "vcodec.cli.eval",
    "bench": "vcodec.cli.bench",
    "serve": "vcodec.cli.serve",
    "analyze": "vcodec.cli.analyze",
}


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(COMMANDS[name])
    except ModuleNotFoundError as exc:
        if exc.name == COMMANDS[name]:
            return None  # reserved name, not implemented in this version
        raise


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors; we keep that and its one-line message."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vcodec",
        description=(
            "Hybrid scalable video codec for humans and machines. One stream, two layers: "
            "a learned base layer that object detectors consume directly (layer 0) and a "
            "conventional enhancement layer for viewing (layer 1). Start with `vcodec demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vcodec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            # still list the name, but do not import its module
            sub.add_parser(name, help=f"(see vcodec {name} --help)", add_help=False)
            continue
        module = _load(name)
        if module is None:
            sub.add_parser(name, help="(reserved: not available in this version)")
            continue
        if only is None:
            # the command list only needs each HELP line; filling every parser would import
            # torch, the detectors and the encoders just to print `vcodec --help`
            sub.add_parser(name, help=getattr(module, "HELP", ""))
            continue
        p = sub.add_parser(
            name,
            help=getattr(module, "HELP", ""),
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def run_module(module: ModuleType, args: argparse.Namespace, prog: str) -> int:
    """Run ``module.run(args)`` with vcodec's error conventions."""
    try:
        refuse_in_place(args)
        return int(module.run(args) or 0)
    except VcodecError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our stdout went away (e.g. `| head`); not an error of ours. Point stdout at
        # /dev/null so that the interpreter's final flush does not report the closed pipe either
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        return 0


def subcommand_main(name: str, argv: Sequence[str] | None) -> int:
    """``main(argv)`` of one subcommand (what tests call)."""
    return main([name, *(list(argv) if argv is not None else sys.argv[1:])])


def main(argv: Sequence[str] | None = None) -> int:
    # compressai scripts a few functions at import; torch's deprecation notice about that
    # is not something a vcodec user can act on
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return int(exc.code or 0)
    module = getattr(args, "_module", None)
    if module is None:
        if args.command:
            print(f"vcodec: error: '{args.command}' is not available in this version", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    return run_module(module, args, f"vcodec {args.command}")


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
