"""`--base-kbps`: the base layer's rate control (per-frame quality, see vcodec/codec/ratecontrol.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_ENCODE, SEQUENCE, one_error_line

from vcodec.baselayer.learned import BasePayload
from vcodec.bitstream import StreamReader
from vcodec.cli import encode as encode_cli
from vcodec.codec import Encoder
from vcodec.codec.ratecontrol import BETA, BaseRateController
from vcodec.errors import ConfigError
from vcodec.io import open_video


def _simulate(
    ctrl: BaseRateController, frames: int, intra_bits: float, p_ratio: float, seed: int = 0
) -> float:
    """Frames whose size follows the controller's model family, with +-20 % noise."""
    rng = np.random.default_rng(seed)
    for i in range(frames):
        q = ctrl.next_quality(i)
        intra = i % ctrl.intra_period == 0
        bits = intra_bits * (1 if intra else p_ratio) * 2 ** (BETA * (q - 0.5)) * rng.uniform(0.8, 1.2)
        ctrl.update(intra, int(bits))
    return ctrl.report().achieved_kbps


@pytest.mark.parametrize("target", [30.0, 80.0, 200.0])  # q = 0.04 .. 0.85 in this model
def test_controller_converges_on_a_model_scene(target: float) -> None:
    # I-frame 8 kbit at q = 0.5, P-frames 30 % of it, 30 fps, GOPs of 16
    ctrl = BaseRateController(target, 30.0, 16)
    achieved = _simulate(ctrl, 96, 8000.0, 0.3)
    assert abs(achieved - target) / target < 0.05, (achieved, target)
    assert all(0.0 <= q <= 1.0 for q in ctrl.qualities)


def test_controller_saturates_honestly_when_the_target_is_out_of_reach() -> None:
    ctrl = BaseRateController(1.0, 30.0, 16)  # far below what q = 0 costs
    achieved = _simulate(ctrl, 48, 8000.0, 0.3)
    assert ctrl.qualities[-1] == 0.0 and achieved > 1.0
    report = ctrl.report().to_dict()
    assert report["error_pct"] > 100 and report["quality_min"] == 0.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_controller_refuses_bad_targets(bad: float) -> None:
    with pytest.raises(ConfigError, match="target rate"):
        BaseRateController(bad, 30.0, 16)


def test_base_kbps_changes_the_quality_per_frame(tmp_path: Path, codec_test_model: Path) -> None:
    out = tmp_path / "rc.vcs"
    assert encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", "8",
                            "--base-model", str(codec_test_model),
                            "--base-kbps", "50", *FAST_ENCODE]) == 0
    units = [u for u in StreamReader(out.read_bytes()) if u.layer == 0]
    codes = {BasePayload.from_bytes(u.payload).qcode for u in units}
    assert len(codes) > 1  # the controller moved the quality


def test_bad_base_kbps_is_a_usage_error(tmp_path: Path, codec_test_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.vcs"
    assert encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", "2",
                            "--base-model", str(codec_test_model),
                            "--base-kbps", "-1", *FAST_ENCODE]) == 2
    one_error_line(capsys, "--base-kbps -1")
    assert not out.exists()


def test_feature_mode_refuses_rate_control(tmp_path: Path) -> None:
    with open_video(SEQUENCE, frames=1) as reader:
        with pytest.raises(ConfigError, match="rate control|quality can change"):
            Encoder(tmp_path / "f.vcs", reader.info, base_mode="features", base_kbps=50)
    assert not (tmp_path / "f.vcs").exists()


def test_base_kbps_lands_near_its_target_on_a_real_clip(tmp_path: Path, clips_dir: Path) -> None:
    clip = clips_dir / "cars_320x240.i420"
    if not clip.exists():
        pytest.skip(f"{clip} is missing")
    target = 120.0
    with open_video(clip, size=(320, 240), fps=30) as reader:
        with Encoder(tmp_path / "rc.vcs", reader.info, base_kbps=target, enh_qp=40, preset="ultrafast",
                     intra_period=32) as enc:
            for frame in reader:
                enc.encode(frame)
        summary = enc.summary()
    report = summary.extra["base_rate_control"]
    assert math.isclose(report["achieved_kbps"], summary.base_kbps, rel_tol=0.01)
    assert abs(summary.base_kbps - target) / target <= 0.15, report


def test_base_p_offset_sets_the_p_frames_quality_and_is_recorded(tmp_path: Path, codec_test_model: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``--base-p-offset``: P-frames code at the base quality plus the offset (each payload carries
    its own quality code), and the stream's LAYER_CONFIG records it."""
    from vcodec.baselayer.learned.payload import quality_code

    codes = {}
    for offset in ("-0.1", None):
        out = tmp_path / f"p{offset}.vcs"
        extra = [] if offset is None else ["--base-p-offset", offset]
        assert encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", "3", "--base-model",
                                str(codec_test_model), "--base-quality", "0.5", *extra, *FAST_ENCODE]) == 0
        with StreamReader(out) as reader:
            record = reader.layers[0].params
            units = [u for u in reader if getattr(u, "layer", None) == 0]
        head = [BasePayload.from_bytes(u.payload) for u in units]
        assert record["p_quality_offset"] == (-0.1 if offset else -0.2)  # the default
        assert head[0].qcode == quality_code(0.5)
        codes[offset] = head[1].qcode
    # (the coder adds the offset to the intra frame's code as a number in [0, 1])
    assert codes["-0.1"] == quality_code(quality_code(0.5) / 65535 - 0.1)
    assert codes[None] == quality_code(quality_code(0.5) / 65535 - 0.2)


def test_bad_base_p_offset_is_a_usage_error(tmp_path: Path, codec_test_model: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.vcs"
    assert encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", "2", "--base-model",
                            str(codec_test_model), "--base-p-offset", "2", *FAST_ENCODE]) == 2
    one_error_line(capsys, "P-frame quality offset 2.0 is invalid")
    assert not out.exists()
    with open_video(SEQUENCE, frames=1) as reader:
        with pytest.raises(ConfigError, match="--base-p-offset needs --base-mode learned"):
            Encoder(tmp_path / "f.vcs", reader.info, base_mode="features", base_p_offset=-0.1)


def _encode_with(tmp_path: Path, name: str, *extra: str, frames: int = 4) -> Path:
    """The shipped model: the small test model skips every P-frame block of this clip, so a tool
    that acts on coded symbols would have nothing to act on."""
    out = tmp_path / f"{name}.vcs"
    assert encode_cli.main([str(SEQUENCE), "-o", str(out), "--frames", str(frames),
                            "--base-quality", "0.5", *extra, *FAST_ENCODE]) == 0
    return out


def _base_units(path: Path) -> tuple[dict, list[bytes]]:
    with StreamReader(path) as reader:
        return reader.layers[0].params, [u.payload for u in reader if getattr(u, "layer", None) == 0]


def test_base_tune_sets_the_p_frame_tools_records_them_and_decodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--base-tune``: fixed-camera widens the dead zone, moving-camera halves the P-frame offset, turns
    the dead zone off and keeps 2x2 skip blocks;
    explicit ``--base-deadzone`` / ``--base-p-offset`` win; every stream decodes bit-exactly."""
    from vcodec.cli import decode as decode_cli

    expect = {  # name: (options, p_deadzone, p_quality_offset, skip_block)
        "default": ((), 0.55, -0.2, 4),
        "fixed": (("--base-tune", "fixed-camera"), 0.75, -0.2, 4),
        "moving": (("--base-tune", "moving-camera"), 0.0, -0.1, 2),
        "fixed-0.55": (("--base-tune", "fixed-camera", "--base-deadzone", "0.55"), 0.55, -0.2, 4),
        "moving-0.3": (("--base-tune", "moving-camera", "--base-p-offset", "-0.3"), 0.0, -0.3, 2),
        "off": (("--base-deadzone", "0"), 0.0, -0.2, 4),
    }
    payloads = {}
    for name, (options, deadzone, offset, skip_block) in expect.items():
        out = _encode_with(tmp_path, name, *options)
        params, payloads[name] = _base_units(out)
        assert (params["p_deadzone"], params["p_quality_offset"], params["skip_block"]) == (
            deadzone, offset, skip_block), name
        y4m = tmp_path / f"{name}.y4m"
        assert decode_cli.main([str(out), "-o", str(y4m), "--layers", "base", "-q"]) == 0
    # the tools act on P-frames only: the intra frame is the same, held P-frames are not
    assert payloads["fixed"][0] == payloads["default"][0] == payloads["off"][0]
    assert payloads["fixed-0.55"] == payloads["default"]
    p_bytes = {name: sum(map(len, payloads[name][1:])) for name in ("off", "default", "fixed")}
    assert p_bytes["off"] > p_bytes["default"] > p_bytes["fixed"], p_bytes


def test_bad_base_tune_and_deadzone_are_usage_errors(tmp_path: Path, codec_test_model: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.baselayer.learned.tools import EFFORTS, TUNES
    from vcodec.cli._args import EFFORT_CHOICES, TUNE_CHOICES

    assert TUNE_CHOICES == TUNES and EFFORT_CHOICES == EFFORTS
    out = tmp_path / "x.vcs"
    base = [str(SEQUENCE), "-o", str(out), "--frames", "2", "--base-model", str(codec_test_model)]
    assert encode_cli.main([*base, "--base-deadzone", "-1", *FAST_ENCODE]) == 2
    one_error_line(capsys, "P-frame dead zone -1.0 is invalid")
    assert encode_cli.main([*base, "--base-tune", "tripod", *FAST_ENCODE]) == 2
    assert "invalid choice: 'tripod'" in capsys.readouterr().err
    assert not out.exists()
    with open_video(SEQUENCE, frames=1) as reader:
        for option in ({"base_deadzone": 0.5}, {"base_tune": "fixed-camera"}):
            with pytest.raises(ConfigError, match="needs --base-mode learned"):
                Encoder(tmp_path / "f.vcs", reader.info, base_mode="features", **option)
