"""`--base-size`: the base layer's working size is a coding parameter, recorded in the stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST_ENCODE, SEQUENCE, one_error_line

from vcodec.baselayer.learned import BasePayload
from vcodec.bitstream import StreamReader
from vcodec.cli import encode as encode_cli
from vcodec.codec import Decoder


def _encode(out: Path, model: Path, *extra: str) -> int:
    return encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", "3", "--base-model", str(model),
                            *FAST_ENCODE, *extra])


def test_working_size_is_recorded_and_used_by_the_decoder(tmp_path: Path, codec_test_model: Path) -> None:
    small, full = tmp_path / "208.vcs", tmp_path / "full.vcs"
    assert _encode(small, codec_test_model, "--base-size", "208") == 0
    assert _encode(full, codec_test_model) == 0
    with Decoder(small, layers="base", base_model=str(codec_test_model)) as dec:
        assert dec.base_config.params["max_long_side"] == 208
        pictures = list(dec.frames())
    # 416x240 -> 208x120 -> padded 256x128: latent 8 x 16 (it is 16 x 28 at the full 416 size)
    first = next(u for u in StreamReader(small.read_bytes()) if u.layer == 0)
    head = BasePayload.from_bytes(first.payload)
    assert (head.latent_h, head.latent_w) == (8, 16)
    first_full = next(u for u in StreamReader(full.read_bytes()) if u.layer == 0)
    assert (
        BasePayload.from_bytes(first_full.payload).latent_h,
        BasePayload.from_bytes(first_full.payload).latent_w,
    ) == (16, 28)
    # the base picture comes back at the source size
    assert len(pictures) == 3 and all((p.width, p.height) == (416, 240) for p in pictures)
    # a quarter of the latent positions: far fewer base bytes
    base_bytes = [
        sum(len(u.payload) for u in StreamReader(p.read_bytes()) if u.layer == 0) for p in (small, full)
    ]
    assert base_bytes[0] < 0.5 * base_bytes[1], base_bytes


@pytest.mark.parametrize("value, needle", [("0", "--base-size 0"), ("-5", "--base-size -5"),
                                           ("417", "--base-size 417")])
def test_bad_working_sizes_are_usage_errors(
    tmp_path: Path, codec_test_model: Path, capsys: pytest.CaptureFixture[str], value: str, needle: str
) -> None:
    out = tmp_path / "x.vcs"
    assert _encode(out, codec_test_model, "--base-size", value) == 2
    one_error_line(capsys, needle, "416")
    assert not out.exists()
