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


#: ``--base-effort``'s choices: vcodec.baselayer.learned.tools.EFFORTS, restated for the same reason
EFFORT_CHOICES = ("faster", "fast", "slow")


def add_base_tool_arguments(group: Any) -> None:
    """``--base-effort``, ``--base-p-offset``, ``--base-tune`` and ``--base-deadzone``: the base
    encoder's tools, one definition for every command that codes (encode, encode-batch, eval)."""
    group.add_argument(
        "--base-effort", choices=EFFORT_CHOICES, default="fast",
        help="encoder effort, like x265's presets: fast (default) searches a motion vector per "
        "block of the latent; slow also refines each intra frame's latent by a few gradient "
        "steps on rate + feature distortion; faster skips the motion search (faster encode, "
        "dearer P-frames where things move; streams vcodec 0.2 decodes)")
    group.add_argument(
        "--base-p-offset", type=float, metavar="DQ",
        help="what P-frames add to the base quality, like x265's P-frame QP offset (default "
        "-0.2: static cameras, where skipped and motion-compensated blocks carry the intra "
        "frame's quality forward; -0.1 keeps more detections on a moving camera, "
        "docs/BASE_LAYER.md); -1..1")
    group.add_argument(
        "--base-tune", choices=TUNE_CHOICES, default="default",
        help="what the base encoder may assume about the camera, like x265's --tune: "
        "fixed-camera widens the P-frames' dead zone to 0.75 step (11-45 %% fewer bits for "
        "the same feature fidelity on the static-camera test clips, P-frames at 4-7 %% of an "
        "intra frame; detections at equal rate went both ways, so compare at equal rate: "
        "raise --base-quality); moving-camera codes P-frames 0.1 below their intra frame "
        "instead of 0.2, turns the dead zone off and skips 2x2 instead of 4x4 latent blocks; "
        "--base-p-offset and --base-deadzone override it (default: default)")
    group.add_argument(
        "--base-deadzone", type=float, metavar="STEPS",
        help="the P-frames' temporal dead zone in quantisation steps, 0 (off) to 4: a "
        "latent element whose source moved by less since the motion-compensated reference "
        "keeps the reference's value (default 0.55; docs/BASE_LAYER.md)")


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
