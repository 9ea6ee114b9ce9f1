"""Argument types shared by subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
from fractions import Fraction


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
