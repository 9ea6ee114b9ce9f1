"""Argument types shared by subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
import os
from fractions import Fraction


def is_url(text: str | os.PathLike[str]) -> bool:
    """True for ``http://`` and ``https://`` addresses: :func:`vcodec.serve.client.is_url`'s rule.

    Restated so that commands can tell a URL from a file without importing ``vcodec.serve``,
    whose package pulls aiohttp (a third of a second per process).
    """
    return isinstance(text, str) and text.lower().startswith(("http://", "https://"))


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
