"""vcodec._atomic: the one atomic writer every output goes through."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from vcodec._atomic import AtomicOutput, atomic_output
from vcodec.errors import ConfigError, OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_file_appears_complete_with_an_ordinary_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = tmp_path / "out.bin"
    with atomic_output(path) as f:
        f.write(b"abc")
        [temp] = list(tmp_path.iterdir())
        assert temp.name.startswith(".out.bin.") and temp.suffix == ".part" and not path.exists()
    assert path.read_bytes() == b"abc" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert (path.stat().st_mode & 0o777) == (0o666 & ~_umask())
    assert synced  # the data reached the disk before the rename


def test_abort_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "keep.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as f:
            f.write(b"new, half written")
            raise RuntimeError("stop")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["keep.bin"]


def test_in_place_output_is_visible_while_written_and_removed_on_abort(tmp_path: Path) -> None:
    path = tmp_path / "dets.txt"
    out = AtomicOutput(path, in_place=True)
    out.stream.write(b"1,1\n")
    out.flush()
    assert path.read_bytes() == b"1,1\n"  # a user following the file sees each line
    out.abort()
    assert list(tmp_path.iterdir()) == []
    out = AtomicOutput(path, in_place=True)
    out.stream.write(b"2,2\n")
    out.commit()
    assert path.read_bytes() == b"2,2\n" and (path.stat().st_mode & 0o777) == (0o666 & ~_umask())


def test_stdout_and_streams_are_written_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStdout:
        buffer = io.BytesIO()

    monkeypatch.setattr(sys, "stdout", FakeStdout)
    with atomic_output("-") as f:
        f.write(b"to stdout")
    assert FakeStdout.buffer.getvalue() == b"to stdout"
    sink = io.BytesIO()
    with AtomicOutput(sink) as out:
        out.stream.write(b"to a stream")
    assert sink.getvalue() == b"to a stream" and not sink.closed


def test_unusable_targets_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"cannot write: directory .*nodir does not exist"):
        AtomicOutput(tmp_path / "nodir" / "x")
    with pytest.raises(OutputError, match="is a directory"):
        AtomicOutput(tmp_path)
    with pytest.raises(ConfigError, match=r"Encoder output needs a path, '-' or a binary file object"):
        AtomicOutput(3, what="Encoder output")  # type: ignore[arg-type]
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(OutputError, match=r"ro/x: cannot write in .*ro"):
                AtomicOutput(ro / "x")
        finally:
            ro.chmod(0o700)
    assert [p.name for p in tmp_path.iterdir()] == ["ro"] or os.geteuid() == 0


def test_make_output_folder_creates_or_names_the_problem(tmp_path: Path) -> None:
    from vcodec._atomic import make_output_folder

    made = make_output_folder(tmp_path / "a" / "b", what="--out")
    assert made.is_dir() and make_output_folder(made, what="--out") == made  # existing folder: fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"^--out .*file exists and is not a folder; choose a folder name$"):
        make_output_folder(tmp_path / "file", what="--out")
    with pytest.raises(OutputError, match=r"^SFU output .*file/sub: cannot create the folder"):
        make_output_folder(tmp_path / "file" / "sub", what="SFU output")
