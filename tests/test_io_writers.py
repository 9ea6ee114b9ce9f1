"""Writers: atomic publication, error paths, stdout streaming."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from vcodec.errors import CodecUnavailableError, ConfigError, InputError, OutputError
from vcodec.io import Frame, VideoInfo, open_video, open_writer


def frames(n: int, w: int = 32, h: int = 24, depth: int = 8) -> list[Frame]:
    return [Frame.blank(w, h, depth, value=16 + 7 * i, index=i) for i in range(n)]


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("name", ["a.y4m", "a_32x24.yuv", "a.mp4", "a.mkv"])
def test_exception_inside_with_leaves_nothing(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(Boom):
        with open_writer(path, VideoInfo(32, 24)) as wr:
            for f in frames(3):
                wr.write(f)
            raise Boom("stop half way")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_exception_keeps_an_existing_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "keep.y4m"
    with open_writer(path, VideoInfo(32, 24)) as wr:
        wr.write(frames(1)[0])
    before = path.read_bytes()
    with pytest.raises(Boom):
        with open_writer(path, VideoInfo(32, 24)) as wr:
            for f in frames(4):
                wr.write(f)
            raise Boom()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.y4m"]


def test_file_appears_only_on_close(tmp_path: Path) -> None:
    path = tmp_path / "late.y4m"
    wr = open_writer(path, VideoInfo(32, 24))
    wr.write(frames(1)[0])
    assert not path.exists()
    temps = [p for p in tmp_path.iterdir()]
    assert len(temps) == 1 and temps[0].name.startswith(".late.y4m.") and temps[0].suffix == ".part"
    wr.close()
    assert path.exists() and not temps[0].exists()
    assert wr.frames_written == 1
    # the finished file gets ordinary permissions, not a private temp file's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_dropped_writer_publishes_nothing(tmp_path: Path) -> None:
    wr = open_writer(tmp_path / "dropped.yuv", VideoInfo(32, 24))
    wr.write(frames(1)[0])
    del wr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_paths_raise_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"nodir.*does not exist"):
        open_writer(tmp_path / "nodir" / "x.y4m", VideoInfo(32, 24))
    with pytest.raises(OutputError, match="is a directory"):
        (tmp_path / "d.y4m").mkdir()
        open_writer(tmp_path / "d.y4m", VideoInfo(32, 24))
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(OutputError, match=r"ro/x\.y4m: cannot write"):
                open_writer(ro / "x.y4m", VideoInfo(32, 24))
        finally:
            ro.chmod(0o700)


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot tell the output format"):
        open_writer(tmp_path / "x.avi2", VideoInfo(32, 24))
    with pytest.raises(ConfigError, match="unknown output format"):
        open_writer(tmp_path / "x", VideoInfo(32, 24), format="gif")
    with pytest.raises(CodecUnavailableError, match="encoder 'nosuchcodec' is not in this FFmpeg build"):
        open_writer(tmp_path / "x.mp4", VideoInfo(32, 24), codec="nosuchcodec")
    with pytest.raises(ConfigError, match="crf must be 0..51"):
        open_writer(tmp_path / "x.mp4", VideoInfo(32, 24), crf=99)
    with pytest.raises(ConfigError, match="codec/crf apply to MP4/MKV"):
        open_writer(tmp_path / "x.y4m", VideoInfo(32, 24), crf=20)
    with pytest.raises(ConfigError, match="libx264 cannot encode 12-bit"):
        open_writer(tmp_path / "x.mp4", VideoInfo(32, 24, bit_depth=12))
    with pytest.raises(OutputError, match="cannot be streamed to a pipe"):
        open_writer(io.BytesIO(), VideoInfo(32, 24), format="mp4")
    assert list(tmp_path.iterdir()) == []  # no failed open left a temporary file


def test_frame_must_match_info(tmp_path: Path) -> None:
    with open_writer(tmp_path / "m.y4m", VideoInfo(32, 24)) as wr:
        with pytest.raises(InputError, match=r"frame 0 is 16x8 but the output is 32x24"):
            wr.write(Frame.blank(16, 8))
        with pytest.raises(InputError, match=r"10-bit but the output is 8-bit.*with_bit_depth\(8\)"):
            wr.write(Frame.blank(32, 24, 10))
        wr.write(Frame.blank(32, 24))
    with pytest.raises(OutputError, match="the writer is closed"):
        wr.write(Frame.blank(32, 24))


def test_dash_writes_y4m_or_raw_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStdout:
        buffer = io.BytesIO()

    monkeypatch.setattr(sys, "stdout", FakeStdout)
    fs = frames(2)
    with open_writer("-", VideoInfo(32, 24, 25)) as wr:
        for f in fs:
            wr.write(f)
    data = FakeStdout.buffer.getvalue()
    assert data.startswith(b"YUV4MPEG2 W32 H24 F25:1")
    with open_video(io.BytesIO(data)) as r:
        assert [int(f.y[0, 0]) for f in r] == [16, 23]
    FakeStdout.buffer = io.BytesIO()
    with open_writer("-", VideoInfo(32, 24), format="yuv") as wr:
        for f in fs:
            wr.write(f)
    assert FakeStdout.buffer.getvalue() == b"".join(f.to_bytes() for f in fs)


def test_x265_is_silent_on_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ys = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64)
    with open_writer(tmp_path / "q.mkv", VideoInfo(64, 48, 10), codec="h265") as wr:
        for i in range(3):
            y = ((ys + 5 * i) % 200 + 16).astype(np.uint8)
            wr.write(Frame(y, np.full((24, 32), 128, np.uint8), np.full((24, 32), 128, np.uint8), 8, i))
    out, err = capfd.readouterr()
    assert "x265" not in err and "encoded" not in err, err
    with open_video(tmp_path / "q.mkv") as r:
        assert r.info.facts.codec == "hevc"
        assert sum(1 for _ in r) == 3
