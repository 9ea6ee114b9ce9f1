"""One meaning per option across commands (issue 16): ``--size WxH`` is the size of raw input
everywhere; old spellings stay for one release with a warning on stderr."""

from __future__ import annotations

import pytest

from vcodec.cli.main import build_parser


def _parse(command: str, *argv: str) -> object:
    return build_parser(command).parse_args([command, *argv])


@pytest.mark.parametrize("command,extra", [("detect", ["in.yuv"]), ("bench", ["in.yuv"]),
                                           ("eval", ["in.yuv", "-o", "out"]), ("serve", [])])
def test_size_is_the_raw_input_size_and_input_size_is_a_deprecated_alias(
        command: str, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(command, *extra, "--size", "320x240")
    assert args.input_size == (320, 240)  # type: ignore[attr-defined]
    assert "deprecated" not in capsys.readouterr().err
    args = _parse(command, *extra, "--input-size", "320x240")
    assert args.input_size == (320, 240)  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert "--input-size is deprecated" in err and "--size WxH" in err


def test_detect_det_size_and_the_old_numeric_size(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("detect", "in.mp4", "--det-size", "512")
    assert args.size == 512 and args.input_size is None  # type: ignore[attr-defined]
    assert capsys.readouterr().err == ""
    args = _parse("detect", "in.mp4", "--size", "512")  # the old meaning, for one release
    assert args.size == 512 and args.input_size is None  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert "deprecated" in err and "--det-size 512" in err
    with pytest.raises(SystemExit):
        _parse("detect", "in.mp4", "--size", "big")
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.parametrize("command,extra", [("encode", ["in.yuv", "-o", "o.vcs"]), ("demo", ["in.yuv"])])
def test_encode_and_demo_size_unchanged(command: str, extra: list[str]) -> None:
    args = _parse(command, *extra, "--size", "320x240")
    size = args.size  # type: ignore[attr-defined]
    assert size in ((320, 240), "320x240")
