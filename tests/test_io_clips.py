"""Readers on the real clips in the shared data/clips/ folder (conftest ``clips_dir``; skipped if absent)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vcodec.io import VideoInfo, open_video, open_writer

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def clips(clips_dir: Path) -> Path:
    """The shared clips folder as conftest finds it (VCODEC_SHARED or ../shared)."""
    return clips_dir


def _need(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def test_cars_i420_size_from_name(clips: Path) -> None:
    path = _need(clips, "cars_320x240.i420")
    with open_video(path) as r:
        i = r.info
        assert (i.width, i.height, i.bit_depth, i.num_frames) == (320, 240, 8, 30)
        assert i.fps == 30 and i.facts.fps_source == "default"  # the name states no rate
        assert i.matrix == "bt601"
        frames = list(r)
    assert len(frames) == 30 and frames[-1].index == 29
    # real footage: luma spans a wide range and frames differ (traffic moves)
    assert frames[0].y.max() - frames[0].y.min() > 150
    assert np.abs(frames[0].y.astype(int) - frames[29].y.astype(int)).mean() > 1.0


def test_cisco_yuv_rate_from_name(clips: Path) -> None:
    path = _need(clips, "CiscoVT2people_320x192_12fps.yuv")
    with open_video(path) as r:
        i = r.info
        assert (i.width, i.height, i.fps, i.num_frames) == (320, 192, Fraction(12), 9)
        assert i.facts.fps_source == "name"
        assert sum(1 for _ in r) == 9


def test_mp4_first_frames(clips: Path) -> None:
    path = _need(clips, "one-by-one-person-detection.mp4")
    with open_video(path, frames=3) as r:
        i = r.info
        assert (i.width, i.height, i.fps, i.bit_depth) == (768, 432, 10, 8)
        assert i.facts.source_frames == 1394 and i.num_frames == 3
        assert i.matrix == "bt601"  # tagged SMPTE 170M in the container
        frames = list(r)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].y.shape == (432, 768) and frames[0].u.shape == (216, 384)


def test_mp4_start_skips_decoded_frames(clips: Path) -> None:
    path = _need(clips, "one-by-one-person-detection.mp4")
    with open_video(path, frames=6) as r:
        sixth = list(r)[5]
    with open_video(path, start=5, frames=1) as r:
        got = next(r)
    assert got.index == 5
    np.testing.assert_array_equal(got.y, sixth.y)


@pytest.mark.parametrize(
    "name, size, count",
    [("Zhling_1280x720.264", (1280, 720), 19), ("VID_1920x1080_cabac_temporal_direct.264", (1920, 1080), 54)],
)
def test_annexb_clips_count_and_size(clips: Path, name: str, size: tuple[int, int], count: int) -> None:
    path = _need(clips, name)
    with open_video(path) as r:
        i = r.info
        assert (i.width, i.height) == size and i.num_frames == count
        assert i.fps == 25 and "assumed 25 fps" in str(i.facts.fps_note)
        assert i.matrix == "bt709"  # HD, untagged: the size convention
        n = 0
        for f in r:
            if n == 0:
                first = f
                assert (f.width, f.height) == size
            n += 1
    assert n == count
    if i.facts.source_pix_fmt == "yuvj420p":
        # the 1080p clip is full range: samples must come out rescaled to limited range
        import av

        with av.open(str(path)) as c:
            full = next(c.decode(video=0)).to_ndarray()[: size[1]].astype(np.float64)
        want = 16 + full * 219 / 255
        assert np.abs(first.y.astype(np.float64) - want).max() <= 1.0
        assert 16 <= int(first.y.min()) and int(first.y.max()) <= 235


def test_real_clip_y4m_round_trip(clips: Path, tmp_path: Path) -> None:
    path = _need(clips, "CiscoVT2people_320x192_12fps.yuv")
    with open_video(path) as r:
        src = list(r)
        info = VideoInfo(r.info.width, r.info.height, r.info.fps, 8, matrix=r.info.matrix)
    out = tmp_path / "cisco.y4m"
    with open_writer(out, info) as wr:
        for f in src:
            wr.write(f)
    with open_video(out) as r:
        assert r.info.fps == 12
        for a, b in zip(src, r, strict=True):
            np.testing.assert_array_equal(a.y, b.y)
            np.testing.assert_array_equal(a.v, b.v)
