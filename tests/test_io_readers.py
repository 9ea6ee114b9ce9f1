"""Readers and writers on tiny generated inputs: round trips, naming, errors, streaming."""

from __future__ import annotations

import io
import os
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vcodec.errors import ConfigError, InputError
from vcodec.io import Frame, ReadOptions, VideoInfo, open_video, open_writer, parse_raw_name
from vcodec.io.readers import AVReader, ImageFolderReader, RawYUVReader, Y4MReader


def make_frames(n: int, w: int = 32, h: int = 24, depth: int = 8, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if depth == 8 else np.uint16
    top = 1 << depth
    out = []
    for i in range(n):
        y = rng.integers(0, top, (h, w)).astype(dtype)
        u = rng.integers(0, top, (h // 2, w // 2)).astype(dtype)
        v = rng.integers(0, top, (h // 2, w // 2)).astype(dtype)
        out.append(Frame(y, u, v, depth, i))
    return out


def smooth_frames(n: int, w: int = 64, h: int = 48) -> list[Frame]:
    """Compressible content (moving gradient + square) for lossy codecs."""
    ys, xs = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        y = (40 + (xs * 2 + ys + 3 * i) % 150).astype(np.uint8)
        y[10:26, 8 + 2 * i : 24 + 2 * i] = 220
        u = np.full((h // 2, w // 2), 110, np.uint8) + (xs[::2, ::2] // 4).astype(np.uint8)
        v = np.full((h // 2, w // 2), 140, np.uint8)
        out.append(Frame(y, u, v.copy(), 8, i))
    return out


def assert_same(a: Frame, b: Frame) -> None:
    assert a.bit_depth == b.bit_depth
    for pa, pb in zip(a.planes, b.planes, strict=True):
        assert pa.dtype == pb.dtype
        np.testing.assert_array_equal(pa, pb)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    "name, want",
    [
        ("BasketballPass_416x240_50.yuv", (416, 240, Fraction(50), None)),
        ("x_832x480_30_10bit.yuv", (832, 480, Fraction(30), 10)),
        ("CiscoVT2people_320x192_12fps.yuv", (320, 192, Fraction(12), None)),
        ("cars_320x240.i420", (320, 240, None, None)),
        ("Kimono_1920x1080_24_8bit.yuv", (1920, 1080, Fraction(24), 8)),
        ("clip_1280x720_29.97.yuv", (1280, 720, Fraction(30000, 1001), None)),
        ("seq-640x360-60hz-yuv420p10le.yuv", (640, 360, Fraction(60), 10)),
        ("no_size_here.yuv", (None, None, None, None)),
        ("abc_123456x5.yuv", (None, None, None, None)),  # 6-digit "width" is not a size
    ],
)
def test_parse_raw_name(name: str, want: tuple[object, ...]) -> None:
    got = parse_raw_name(name)
    assert (got.width, got.height, got.fps, got.bit_depth) == want


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("depth", [8, 10])
def test_raw_round_trip_bit_exact(tmp_path: Path, depth: int) -> None:
    frames = make_frames(5, depth=depth, seed=depth)
    suffix = "_10bit" if depth == 10 else ""
    path = tmp_path / f"clip_32x24_25{suffix}.yuv"
    info = VideoInfo(32, 24, 25, depth)
    with open_writer(path, info) as wr:
        for f in frames:
            wr.write(f)
    bps = 1 if depth == 8 else 2
    assert path.stat().st_size == 5 * 32 * 24 * 3 // 2 * bps
    with open_video(path) as r:  # everything from the name
        assert isinstance(r, RawYUVReader)
        assert (r.info.width, r.info.height, r.info.fps, r.info.bit_depth) == (32, 24, 25, depth)
        assert r.info.num_frames == 5
        got = list(r)
    assert [f.index for f in got] == [0, 1, 2, 3, 4]
    for a, b in zip(frames, got, strict=True):
        assert_same(a, b)


@pytest.mark.parametrize("depth", [8, 10, 12])
def test_y4m_round_trip_bit_exact(tmp_path: Path, depth: int) -> None:
    frames = make_frames(4, 48, 32, depth, seed=depth)
    path = tmp_path / "clip.y4m"
    info = VideoInfo(48, 32, Fraction(30000, 1001), depth, matrix="bt709")
    with open_writer(path, info) as wr:
        for f in frames:
            wr.write(f)
    head = path.read_bytes()[:80]
    assert head.startswith(b"YUV4MPEG2 W48 H32 F30000:1001 ")
    with open_video(path) as r:
        assert isinstance(r, Y4MReader)
        i = r.info
        assert (i.width, i.height, i.fps, i.bit_depth, i.num_frames, i.matrix) == (
            48, 32, Fraction(30000, 1001), depth, 4, "bt709"
        )
        got = list(r)
    assert len(got) == 4
    for a, b in zip(frames, got, strict=True):
        assert_same(a, b)


def test_y4m_frame_parameters_and_ffmpeg_style_header(tmp_path: Path) -> None:
    frames = make_frames(3, 16, 8)
    hdr = b"YUV4MPEG2 W16 H8 F25:1 Ip A0:0 C420mpeg2 XYSCSS=420MPEG2\n"
    body = b"".join(b"FRAME Ixyz\n" + f.to_bytes() for f in frames)
    path = tmp_path / "x.y4m"
    path.write_bytes(hdr + body)
    with open_video(path) as r:
        assert r.info.num_frames == 3 and r.info.fps == 25
        assert r.info.matrix == "bt601"  # no tag: the size convention
        for a, b in zip(frames, r, strict=False):
            assert_same(a, b)


def test_y4m_full_range_is_converted_to_limited(tmp_path: Path) -> None:
    y = np.array([[0, 255], [128, 64]], np.uint8).repeat(2, 0).repeat(2, 1)
    c = np.array([[0, 255], [128, 1]], np.uint8)
    f = Frame(y, c, c.copy())
    path = tmp_path / "full.y4m"
    path.write_bytes(b"YUV4MPEG2 W4 H4 F1:1 C420jpeg XCOLORRANGE=FULL\nFRAME\n" + f.to_bytes())
    with open_video(path) as r:
        assert r.info.facts.converted_from_full_range is True
        g = next(r)
    assert g.y[0, 0] == 16 and g.y[0, 2] == 235 and g.y[2, 0] == 126
    assert g.u[0, 0] == 16 and g.u[0, 1] == 240 and g.u[1, 0] == 128


def test_start_and_frames_window(tmp_path: Path) -> None:
    frames = make_frames(8)
    path = tmp_path / "w_32x24.yuv"
    path.write_bytes(b"".join(f.to_bytes() for f in frames))
    ypath = tmp_path / "w.y4m"
    with open_writer(ypath, VideoInfo(32, 24)) as wr:
        for f in frames:
            wr.write(f)
    for p in (path, ypath):
        with open_video(p, start=3, frames=2) as r:
            assert r.info.num_frames == 2 and r.info.facts.source_frames == 8
            got = list(r)
        assert [f.index for f in got] == [3, 4]
        assert_same(got[0], frames[3])
        with open_video(p, start=6) as r:
            assert r.info.num_frames == 2
            assert [f.index for f in r] == [6, 7]
        with pytest.raises(InputError, match="past the end"):
            open_video(p, start=8)
    with pytest.raises(ConfigError):
        open_video(path, start=-1)


def test_bit_depth_option_converts_y4m(tmp_path: Path) -> None:
    frames = make_frames(2, 16, 8)
    path = tmp_path / "a.y4m"
    with open_writer(path, VideoInfo(16, 8)) as wr:
        for f in frames:
            wr.write(f)
    with open_video(path, bit_depth=10) as r:
        assert r.info.bit_depth == 10
        g = next(r)
    np.testing.assert_array_equal(g.y, frames[0].y.astype(np.uint16) << 2)


# ---------------------------------------------------------------- raw errors


def test_raw_unknown_size_names_file_and_option(tmp_path: Path) -> None:
    path = tmp_path / "mystery.yuv"
    path.write_bytes(bytes(1152))
    with pytest.raises(InputError, match=r"mystery\.yuv.*--size WxH"):
        open_video(path)
    with open_video(path, size=(32, 24)) as r:  # the option makes it readable
        assert r.info.num_frames == 1 and r.info.facts.size_source == "option"
        assert r.info.matrix == "bt601" and next(r).matrix == "bt601"
    with open_video(path, size=(32, 24), matrix="bt709") as r:
        assert r.info.matrix == "bt709" and next(r).matrix == "bt709"
    with pytest.raises(ConfigError, match="unknown colour matrix 'bt2020'"):
        open_video(path, size=(32, 24), matrix="bt2020")


def test_read_options_checked_once_and_shared_by_every_reader(tmp_path: Path) -> None:
    opts = ReadOptions(size=(32, 24), fps=12.5, bit_depth=8, matrix="bt709", start=1, frames=2)
    checked = opts.checked("x")
    assert checked.fps == Fraction(25, 2) and isinstance(checked.fps, Fraction)
    assert checked.checked("x") == checked  # idempotent: a reader may check again
    for bad, pattern in (
        (ReadOptions(size=(0, 24)), "size must be positive"),
        (ReadOptions(fps=-1), "frame rate must be positive"),
        (ReadOptions(bit_depth=7), "bit depth must be 8..16"),
        (ReadOptions(matrix="bt2020"), "unknown colour matrix"),
        (ReadOptions(start=-1), "start frame must be >= 0"),
        (ReadOptions(frames=-2), "frame count must be >= 0"),
    ):
        with pytest.raises(ConfigError, match=r"^x: " + pattern):
            bad.checked("x")
    frames = make_frames(4)
    path = tmp_path / "o_32x24.yuv"
    path.write_bytes(b"".join(f.to_bytes() for f in frames))
    with open_video(path, size=(32, 24), fps=12.5, bit_depth=8, matrix="bt709", start=1, frames=2) as r:
        assert r.options == checked
        assert [f.index for f in r] == [1, 2]
    # a reader made directly takes the same value
    with path.open("rb") as fh, RawYUVReader(str(path), fh, checked, own=False) as r:
        assert r.info.fps == Fraction(25, 2) and r.info.matrix == "bt709" and r.info.num_frames is None
        assert [f.index for f in r] == [1, 2]


def test_reader_keywords_still_work_with_a_deprecation_warning(tmp_path: Path) -> None:
    frames = make_frames(3)
    path = tmp_path / "k.y4m"
    with open_writer(path, VideoInfo(32, 24)) as wr:
        for f in frames:
            wr.write(f)
    with path.open("rb") as fh:
        with pytest.warns(DeprecationWarning, match="ReadOptions") as rec:
            r = Y4MReader(str(path), fh, own=False, size=None, fps=None, bit_depth=None, matrix=None,
                          start=2, frames=None, file_size=path.stat().st_size)
        assert rec[0].filename == __file__  # blamed on the caller, not on vcodec
        with r:
            assert r.info.num_frames == 1 and [f.index for f in r] == [2]
    with path.open("rb") as fh, pytest.raises(ConfigError, match="not both"):
        Y4MReader(str(path), fh, ReadOptions(), own=False, start=1)
    with path.open("rb") as fh, pytest.raises(TypeError, match="colour"):
        Y4MReader(str(path), fh, own=False, colour="bt709")


def test_raw_length_not_multiple_reports_frame_size_and_remainder(tmp_path: Path) -> None:
    path = tmp_path / "bad_32x24.yuv"
    path.write_bytes(bytes(1152 * 2 + 100))
    with pytest.raises(InputError) as ei:
        open_video(path)
    msg = str(ei.value)
    assert "bad_32x24.yuv" in msg and "1152 bytes" in msg and "remainder of 100 bytes" in msg


def test_raw_odd_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "odd_33x24.yuv"
    path.write_bytes(bytes(100))
    with pytest.raises(InputError, match=r"odd_33x24\.yuv.*even width and height, got 33x24"):
        open_video(path)
    path2 = tmp_path / "plain.yuv"
    path2.write_bytes(bytes(100))
    with pytest.raises(InputError, match=r"plain\.yuv.*even"):
        open_video(path2, size=(31, 20))


def test_raw_10bit_value_check_catches_wrong_depth(tmp_path: Path) -> None:
    # 8-bit samples read as 16-bit words give values far above 1023
    frames = make_frames(2, 32, 24)
    # two 8-bit 32x24 frames are exactly two 10-bit 16x24 frames (1152 bytes each)
    path = tmp_path / "x_16x24_10bit.yuv"
    path.write_bytes(b"".join(f.to_bytes() for f in frames))
    with open_video(path) as r:
        with pytest.raises(InputError, match=r"x_16x24_10bit\.yuv.*sample value .* > 1023"):
            next(r)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "e_32x24.yuv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="e_32x24.yuv: the file is empty"):
        open_video(empty)
    with pytest.raises(InputError, match="nope.mp4: no such file"):
        open_video(tmp_path / "nope.mp4")


# ---------------------------------------------------------------- Y4M errors


@pytest.mark.parametrize(
    "header, pattern",
    [
        (b"YUV4MPEG2 W16 H8 F25:1 C422\n", r"C422 is not supported.*C420jpeg.*C420p10"),
        (b"YUV4MPEG2 W16 H8 F25:1 Cmono\n", r"Cmono is not supported"),
        (b"YUV4MPEG2 W15 H8 F25:1\n", r"even width and height, got 15x8"),
        (b"YUV4MPEG2 H8 F25:1\n", r"lacks a valid W/H"),
        (b"YUV4MPEG2 W16 H8 Fx:1\n", r"bad Y4M header field 'Fx:1'"),
    ],
)
def test_y4m_header_errors(tmp_path: Path, header: bytes, pattern: str) -> None:
    path = tmp_path / "h.y4m"
    path.write_bytes(header + b"FRAME\n" + bytes(192))
    with pytest.raises(InputError, match=r"h\.y4m: .*" + pattern):
        open_video(path)


def test_y4m_truncated_and_damaged(tmp_path: Path) -> None:
    hdr = b"YUV4MPEG2 W16 H8 F25:1\n"
    path = tmp_path / "t.y4m"
    path.write_bytes(hdr + b"FRAME\n" + bytes(192) + b"FRAME\n" + bytes(50))
    with pytest.raises(InputError, match=r"t\.y4m: truncated: frame 1 has 50 of 192 bytes"):
        open_video(path)
    path.write_bytes(hdr + b"FRAME\n" + bytes(192) + b"JUNK!\n" + bytes(192))
    with pytest.raises(InputError, match=r"expected a FRAME header at byte 221 \(frame 1\)"):
        open_video(path)
    path.write_bytes(b"RIFF....not y4m")
    with pytest.raises(InputError, match="not a Y4M file"):
        open_video(path)


# ---------------------------------------------------------------- streaming


class CountingSource(io.RawIOBase):
    """A non-seekable byte source that produces data on demand and counts what was taken."""

    def __init__(self, header: bytes, frame_bytes: bytes, frames: int, tag: bytes = b"") -> None:
        self._parts = iter([header] + [tag + frame_bytes] * frames)
        self._buf = b""
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._parts, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.served += n
        return n


def test_y4m_reads_lazily_from_a_non_seekable_stream() -> None:
    f = make_frames(1, 64, 48)[0]
    hdr = b"YUV4MPEG2 W64 H48 F30:1 Ip C420jpeg\n"
    src = CountingSource(hdr, f.to_bytes(), 1000, b"FRAME\n")
    with open_video(src) as r:
        assert r.info.num_frames is None  # a pipe cannot tell
        first = next(r)
        # only the header and the first frame have been taken from 1000 frames
        assert src.served <= len(hdr) + 6 + len(f.to_bytes())
        assert_same(first, f)
        rest = sum(1 for _ in r)
    assert rest == 999


def test_raw_from_pipe_with_size_and_truncation() -> None:
    frames = make_frames(3)
    data = b"".join(fr.to_bytes() for fr in frames)
    r_fd, w_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(w_fd, "wb") as w:
            w.write(data + b"\x10" * 7)  # a partial 4th frame

    t = threading.Thread(target=feed)
    t.start()
    with os.fdopen(r_fd, "rb") as pipe, open_video(pipe, size=(32, 24), fps=24) as r:
        assert r.info.fps == 24
        got = [next(r) for _ in range(3)]
        with pytest.raises(InputError, match="truncated: frame 3 has 7 of 1152 bytes"):
            next(r)
    t.join()
    for a, b in zip(frames, got, strict=True):
        assert_same(a, b)


def test_stdin_dash_reads_y4m(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = make_frames(2, 16, 8)
    buf = io.BytesIO()
    with open_writer(buf, VideoInfo(16, 8, 50)) as wr:
        for f in frames:
            wr.write(f)

    class FakeStdin:
        buffer = io.BytesIO(buf.getvalue())

    monkeypatch.setattr("sys.stdin", FakeStdin)
    with open_video("-") as r:
        assert r.info.fps == 50 and r.source == "<stdin>"
        got = list(r)
    assert len(got) == 2
    assert_same(got[1], frames[1])


def test_unknown_stream_format_asks_for_size() -> None:
    with pytest.raises(InputError, match=r"<stream>: cannot tell the format.*--size WxH"):
        open_video(io.BytesIO(b"\x50" * 500))


# ---------------------------------------------------------------- image folders


def _write_images(folder: Path, frames: list[Frame]) -> None:
    import cv2

    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), f.to_bgr())


def test_image_folder_mot_layout(tmp_path: Path) -> None:
    frames = smooth_frames(4, 32, 24)
    seq = tmp_path / "MOT-01"
    _write_images(seq / "img1", frames)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=MOT-01\nframeRate=14\nseqLength=4\n")
    for p in (seq, seq / "img1"):
        with open_video(p) as r:
            assert isinstance(r, ImageFolderReader)
            assert (r.info.width, r.info.height, r.info.fps, r.info.num_frames) == (32, 24, 14, 4)
            assert r.info.facts.fps_source == "seqinfo"
            got = list(r)
        assert [g.index for g in got] == [0, 1, 2, 3]
        # PNG is lossless; only the RGB<->YUV conversion rounds
        for a, b in zip(frames, got, strict=True):
            assert np.abs(a.y.astype(int) - b.y.astype(int)).max() <= 2


def test_image_folder_natural_order_and_errors(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for n in (1, 2, 10):  # unpadded names: 10 must come after 2
        cv2.imwrite(str(folder / f"{n}.png"), np.full((8, 16, 3), n * 20, np.uint8))
    with open_video(folder, fps=5) as r:
        assert r.info.fps == 5 and r.info.facts.fps_source == "option"
        lumas = [int(f.y[0, 0]) for f in r]
    assert lumas == sorted(lumas)
    cv2.imwrite(str(folder / "11.png"), np.zeros((10, 16, 3), np.uint8))
    with open_video(folder) as r, pytest.raises(InputError, match=r"11\.png: image is 16x10"):
        list(r)
    odd = tmp_path / "odd"
    odd.mkdir()
    cv2.imwrite(str(odd / "1.png"), np.zeros((9, 16, 3), np.uint8))
    with pytest.raises(InputError, match=r"1\.png: 4:2:0 needs even .* crop the images to 16x8"):
        open_video(odd)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty: folder holds no images"):
        open_video(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"1\.jpg: OpenCV cannot decode"):
        open_video(broken)


# ---------------------------------------------------------------- PyAV


@pytest.mark.parametrize("suffix, codec", [(".mp4", None), (".mkv", "libx265")])
def test_container_write_then_read(tmp_path: Path, suffix: str, codec: str | None) -> None:
    frames = smooth_frames(12)
    path = tmp_path / f"v{suffix}"
    info = VideoInfo(64, 48, 15, 8, matrix="bt709")
    with open_writer(path, info, codec=codec, crf=18) as wr:
        for f in frames:
            wr.write(f)
    with open_video(path) as r:
        assert isinstance(r, AVReader)
        assert (r.info.width, r.info.height, r.info.fps) == (64, 48, 15)
        assert r.info.matrix == "bt709" and r.info.facts.matrix_source == "container"
        got = list(r)
    assert len(got) == 12
    assert r.info.num_frames in (12, None)
    for a, b in zip(frames, got, strict=True):
        assert b.y.shape == (48, 64) and b.u.shape == (24, 32)
        assert psnr(a.y, b.y) > 30


@pytest.mark.parametrize("depth, name, codec", [(10, "v10.mp4", None), (12, "v12.mkv", "h265")])
def test_container_high_bit_depth_write_then_read(
    tmp_path: Path, depth: int, name: str, codec: str | None
) -> None:
    frames = [f.with_bit_depth(depth) for f in smooth_frames(6)]
    path = tmp_path / name
    with open_writer(path, VideoInfo(64, 48, 30, depth), codec=codec) as wr:
        for f in frames:
            wr.write(f)
    with open_video(path) as r:
        assert r.info.bit_depth == depth
        got = list(r)
    assert len(got) == 6 and got[0].y.dtype == np.uint16
    scale = float(1 << (depth - 8))
    assert psnr(frames[3].y.astype(float) / scale, got[3].y.astype(float) / scale) > 30


def _annexb(path: Path, frames: list[Frame]) -> None:
    import av

    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for i, f in enumerate(frames):
            a = np.concatenate([f.y.ravel(), f.u.ravel(), f.v.ravel()]).reshape(-1, f.width)
            vf = av.VideoFrame.from_ndarray(a, format="yuv420p")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def test_annexb_elementary_stream(tmp_path: Path) -> None:
    frames = smooth_frames(7)
    path = tmp_path / "e.264"
    _annexb(path, frames)
    with open_video(path) as r:
        assert r.info.fps == 25 and r.info.facts.fps_source == "default"
        assert "assumed 25 fps" in str(r.info.facts.fps_note)
        assert r.info.num_frames == 7
        got = list(r)
    assert len(got) == 7 and psnr(frames[6].y, got[6].y) > 30
    with open_video(path, fps=12, start=5) as r:
        assert r.info.fps == 12 and r.info.num_frames == 2
        assert [f.index for f in r] == [5, 6]
    # the same stream through a pipe-like object: sniffed as H.264, no seeking
    with open_video(io.BufferedReader(io.BytesIO(path.read_bytes()))) as r:  # type: ignore[arg-type]
        assert r.info.num_frames is None
        assert sum(1 for _ in r) == 7


def test_unreadable_container_names_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InputError, match=r"junk\.mp4: cannot open as a video container"):
        open_video(path)
    with pytest.raises(InputError, match=r"junk\.mp4: the file states size 64x48"):
        frames = smooth_frames(2)
        good = tmp_path / "junk.mp4"
        with open_writer(good, VideoInfo(64, 48)) as wr:
            for f in frames:
                wr.write(f)
        open_video(good, size=(32, 24))


def test_odd_sized_container_suggests_crop(tmp_path: Path) -> None:
    import av

    path = tmp_path / "odd.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 33, 24, "yuv444p"
        for i in range(2):
            vf = av.VideoFrame.from_ndarray(np.zeros((3, 24, 33), np.uint8), format="yuv444p")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    with pytest.raises(
        InputError, match=r"odd\.mkv: decoded pictures: 4:2:0 needs even .* got 33x24.*crop=32:24"
    ):
        open_video(path)
