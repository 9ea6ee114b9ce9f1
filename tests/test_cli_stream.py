"""`vcodec info` and `vcodec extract`: outputs, pipes, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bitstream import make_stream
from vcodec.bitstream import StreamReader, Unit
from vcodec.cli import extract as extract_cli
from vcodec.cli import info as info_cli
from vcodec.cli.main import main
from vcodec.errors import InputError


@pytest.fixture
def stream_file(tmp_path: Path) -> Path:
    p = tmp_path / "clip.vcs"
    p.write_bytes(make_stream(frames=10))
    return p


def test_info_text_and_json(stream_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert info_cli.main([str(stream_file)]) == 0
    text = capsys.readouterr().out
    assert "416x240" in text and "base (machines)" in text and "enhancement (humans)" in text
    assert info_cli.main([str(stream_file), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["num_frames"] == 10 and d["intra_frames"] == [0, 4, 8]
    assert [layer["id"] for layer in d["layers"]] == [0, 1]
    assert sum(layer["bytes"] for layer in d["layers"]) < d["total_bytes"]


def test_extract_then_info(stream_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "base.vcs"
    assert extract_cli.main([str(stream_file), "-o", str(out)]) == 0
    with StreamReader(out) as r, StreamReader(stream_file) as full:
        kept = list(r)
        assert [u.raw for u in kept] == [u.raw for u in full if isinstance(u, Unit) and u.layer == 0]
        # the rebuilt INDEX is exactly the intra frames 0, 4, 8 at the offsets the reader found
        # them at in the extracted file (not merely "every entry looks plausible")
        intra = [(u.frame, u.offset) for u in kept if isinstance(u, Unit) and u.intra]
        assert [f for f, _ in intra] == [0, 4, 8]
        assert r.index == intra
    with StreamReader(out) as r:  # and through END -> INDEX, as random access uses it
        assert r.read_index() == intra
    capsys.readouterr()
    assert info_cli.main([str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [layer["id"] for layer in d["layers"]] == [0]


def test_extract_through_real_pipes(stream_file: Path) -> None:
    cmd = [sys.executable, "-m", "vcodec"]
    ext = subprocess.Popen(cmd + ["extract", "-", "-o", "-", "-q"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    info = subprocess.Popen(cmd + ["info", "-", "--json"], stdin=ext.stdout, stdout=subprocess.PIPE)
    assert ext.stdin is not None and ext.stdout is not None
    ext.stdout.close()  # the info process owns the read end now
    ext.stdin.write(stream_file.read_bytes())
    ext.stdin.close()
    out, _ = info.communicate(timeout=120)
    assert ext.wait(timeout=60) == 0 and info.returncode == 0
    assert [layer["id"] for layer in json.loads(out)["layers"]] == [0]


def test_data_error_exit_code_1_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.vcs"
    bad.write_bytes(make_stream()[:-3])
    assert info_cli.main([str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "vcodec info: error:" in err and "truncated" in err
    assert "Traceback" not in err


def test_not_a_stream_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    txt = tmp_path / "x.mp4"
    txt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    assert info_cli.main([str(txt)]) == 1
    assert "not a vcodec stream" in capsys.readouterr().err
    assert info_cli.main([str(tmp_path / "nope.vcs")]) == 1
    assert "cannot open" in capsys.readouterr().err


def test_usage_error_exit_code_2(stream_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert extract_cli.main([str(stream_file)]) == 2  # -o missing
    assert "required" in capsys.readouterr().err
    assert extract_cli.main([str(stream_file), "-o", "x.vcs", "--layers", "people"]) == 2
    assert "--layers" in capsys.readouterr().err


def test_failed_extract_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.vcs"
    bad.write_bytes(make_stream()[:-40])
    out = tmp_path / "out.vcs"
    assert extract_cli.main([str(bad), "-o", str(out)]) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.vcs.*"))  # nor its temporary


def test_unwritable_output(stream_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert extract_cli.main([str(stream_file), "-o", str(tmp_path / "no" / "such" / "dir.vcs")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_help_and_debug(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--help"]) == 0
    assert "extract" in capsys.readouterr().out
    assert main(["extract", "--help"]) == 0
    assert "byte-level filter" in capsys.readouterr().out
    # --debug lets the typed error (and so its traceback) through instead of one line on stderr
    with pytest.raises(InputError, match="nope.vcs: cannot open"):
        main(["info", "--debug", str(tmp_path / "nope.vcs")])
