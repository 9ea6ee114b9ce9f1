"""Argument types shared by subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
import os
import sys
from fractions import Fraction
from typing import Any


def is_url(text: str | os.PathLike[str]) -> bool:
    """True for ``http://`` and ``https://`` addresses: :func:`vcodec.serve.client.is_url`'s rule.

    Restated so that commands can tell a URL from a file without importing ``vcodec.serve``,
    whose package pulls aiohttp (a third of a second per process).
    """
    return isinstance(text, str) and text.lower().startswith(("http://", "https://"))


#: ``--base-tune``'s choices: vcodec.baselayer.learned.tools.TUNES, restated so that parsing the
#: command line does not import the model code (tests/test_rate_control.py checks they agree)
TUNE_CHOICES = ("default", "fixed-camera", "moving-camera")


def parse_size(text: str) -> tuple[int, int]:
    """``416x240`` -> (416, 240)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 416x240, got {text!r}") from None
    return w, h


def parse_fps(text: str) -> Fraction:
    """``30``, ``29.97`` or ``30000/1001`` -> a positive Fraction."""
    try:
        f = Fraction(text).limit_denominator(1001000)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"frame rate must be a number such as 30, 29.97 or 30000/1001, "
                                         f"got {text!r}") from None
    if f <= 0:
        raise argparse.ArgumentTypeError(f"frame rate must be positive, got {text!r}")
    return f


def _warn_deprecated(old: str, new: str) -> None:
    print(f"vcodec: warning: {old} is deprecated and goes in the next release; use {new}", file=sys.stderr)


class _DeprecatedAlias(argparse.Action):
    """An old option spelling kept for one release: same destination, a warning on stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        _warn_deprecated(str(option_string), self.new)
        setattr(namespace, self.dest, values)


class _SizeOrLegacyInt(argparse.Action):
    """``--size WxH`` (raw input size); a bare integer is the old meaning (``legacy``), deprecated."""

    def __init__(self, option_strings: list[str], dest: str, legacy: tuple[str, str] = ("", ""),
                 **kwargs: Any) -> None:
        self.legacy_dest, self.legacy_option = legacy
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        text = str(values)
        if self.legacy_dest and text.strip().isdigit():
            _warn_deprecated(f"{option_string} N (one number)", f"{self.legacy_option} {text.strip()}; "
                             f"{option_string} now means WIDTHxHEIGHT of raw input, as in every command")
            setattr(namespace, self.legacy_dest, int(text))
            return
        try:
            setattr(namespace, self.dest, parse_size(text))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument {option_string}: {exc}")


def add_input_size(parser: Any, *, legacy: tuple[str, str] | None = None,
                   help: str = "WIDTHxHEIGHT of raw YUV input (else from its name)") -> None:  # noqa: A002
    """``--size WxH`` into ``args.input_size`` (one meaning in every command), and the old
    ``--input-size`` as a deprecated alias. ``legacy=(dest, new option)``: a command whose
    ``--size`` took one number keeps that for one release, into ``dest``, with a warning."""
    if legacy is None:
        parser.add_argument("--size", dest="input_size", type=parse_size, metavar="WxH", help=help)
    else:
        parser.add_argument("--size", dest="input_size", action=_SizeOrLegacyInt, legacy=legacy,
                            metavar="WxH", help=help)
    parser.add_argument("--input-size", dest="input_size", type=parse_size, action=_DeprecatedAlias,
                        new="--size WxH", help=argparse.SUPPRESS)
