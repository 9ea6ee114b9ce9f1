"""Pictures for people (issue 16): the real demo clip, `vcodec demo`'s contact sheet and
annotated video, and the drawing helpers of :mod:`vcodec.annotate`."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import REPO, SEQUENCE, cli_encode

from vcodec.annotate import AnnotatedOutput, SheetRow, contact_sheet, draw_detections, pick_frames
from vcodec.cli import decode as decode_cli
from vcodec.cli import demo as demo_cli
from vcodec.cli import detect as detect_cli
from vcodec.codec.sample import DEMO_CLIP_NAME, demo_clip
from vcodec.detection import Detections
from vcodec.errors import ConfigError, OutputError
from vcodec.io import Frame, open_video

CLIP = REPO / "sequences" / DEMO_CLIP_NAME
ATTRIBUTION = CLIP.with_name("demo_person_768x432.ATTRIBUTION.md")


def _frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# -- the clip ---------------------------------------------------------------------------------
def test_demo_clip_is_small_real_attributed_and_what_demo_finds() -> None:
    assert demo_clip() == CLIP
    data = CLIP.read_bytes()
    assert len(data) <= 2_000_000
    text = ATTRIBUTION.read_text()
    for needle in ("Intel", "CC BY 4.0", "creativecommons.org/licenses/by/4.0",
                   "one-by-one-person-detection.mp4", "tools/make_demo_clip.py",
                   hashlib.sha256(data).hexdigest()):
        assert needle in text, needle
    with open_video(CLIP) as r:
        frames = list(r)
        assert (r.info.width, r.info.height) == (768, 432)
    assert len(frames) == 36 == int(re.search(r"(\d+) frames, ", text).group(1))  # type: ignore[union-attr]
    # a real picture, not a flat test pattern
    assert float(np.std(frames[0].y)) > 10


@pytest.mark.shared
def test_demo_clip_is_remade_by_its_tool(clips_dir: Path) -> None:
    source = clips_dir / "one-by-one-person-detection.mp4"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_demo_clip.py"), "--check", "--source",
                           str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "decoded pixels identical" in proc.stdout


# -- vcodec demo on it --------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_default_clip_writes_pictures_and_finds_objects(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    rc = demo_cli.main(["--frames", "6", "--out", str(out), "--preset", "ultrafast", "--sheet-rows", "3",
                        "--threads", "1", "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert DEMO_CLIP_NAME in text and "contact_sheet.png" in text and "annotated.mp4" in text
    report = json.loads((out / "report.json").read_text())
    assert report["input"] == str(CLIP) and report["frames"] == 6
    # the shipped base layer sees the person of the real clip in most frames, as a person
    per_frame = report["detections_per_frame"]
    assert sum(n > 0 for n in per_frame) >= 4, per_frame
    found = json.loads((out / "detections.json").read_text())
    assert sum(d["category_id"] == 1 and d["score"] > 0.5 for d in found) >= 4, found
    assert report["outputs"]["contact_sheet"] == str(out / "contact_sheet.png")
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > 3 * 400 and sheet.shape[0] > 3 * 200  # 3 columns, 3 rows
    # the annotated video decodes and has the source's frame count, at the source's size
    video = out / "annotated.mp4"
    assert _frames_in(video) == 6
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        assert s.codec_context.width == 768 and s.codec_context.height > 432  # caption strip on top
    # boxes are drawn: the annotated frame differs from the plain full decode inside a box
    dets = json.loads((out / "detections.json").read_text())
    first = next(d for d in dets if d["image_id"] == 0)
    x, y, w, h = (int(v) for v in first["bbox"])
    with av.open(str(video)) as c:
        annotated = next(c.decode(video=0)).to_ndarray(format="bgr24")
    with open_video(out / "decoded.y4m", frames=1) as r:
        plain = next(iter(r)).to_bgr()
    top = annotated.shape[0] - 432
    edge = annotated[top + y: top + y + h, max(x - 1, 0):x + 2].astype(int)
    assert np.abs(edge - plain[y:y + h, max(x - 1, 0):x + 2].astype(int)).mean() > 20


def test_demo_no_pictures_and_bad_rows(tmp_path: Path, codec_test_model: Path, yolox_nano_onnx: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    rc = demo_cli.main([str(SEQUENCE), "--frames", "2", "--out", str(out), "--base-model",
                        str(codec_test_model), "--detector-weights", str(yolox_nano_onnx),
                        "--preset", "ultrafast", "--no-pictures", "-q"])
    assert rc == 0
    assert not (out / "contact_sheet.png").exists() and not (out / "annotated.mp4").exists()
    capsys.readouterr()
    assert demo_cli.main([str(SEQUENCE), "--sheet-rows", "0", "--out", str(out)]) == 2
    assert "--sheet-rows" in capsys.readouterr().err


# -- vcodec.annotate ----------------------------------------------------------------------------
def _picture() -> Frame:
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[..., 1] = 90
    return Frame.from_rgb(rgb)


def _dets() -> Detections:
    return Detections(np.array([[20, 30, 80, 100]], np.float32), np.array([0.87], np.float32),
                      np.array([2]), 160, 120)


def test_draw_detections_boxes_and_labels_inside_the_box_only() -> None:
    pic = _picture()
    plain = pic.to_bgr()
    drawn = draw_detections(pic, _dets())
    changed = np.any(drawn != plain, axis=2)
    assert changed[30:101, 20].all() and changed[30:101, 80].all()  # left and right edges
    assert not changed[110:, :].any() and not changed[:, 100:].any()  # nothing outside box + label
    assert not changed[50:90, 30:70].any()  # the inside stays the picture
    assert np.array_equal(pic.to_bgr(), plain)  # a copy: the picture is untouched
    # half size: boxes scale with the picture
    small = draw_detections(plain[::2, ::2], _dets(), scale=0.5)
    assert np.any(small[15:51, 10] != plain[::2, ::2][15:51, 10])


def test_annotated_output_video_and_folder(tmp_path: Path) -> None:
    pic = draw_detections(_picture(), _dets())
    with AnnotatedOutput(tmp_path / "a.mp4", fps=10) as v:
        for _ in range(5):
            v.write(pic[:119])  # odd height: padded to 4:2:0
    assert _frames_in(tmp_path / "a.mp4") == 5
    with AnnotatedOutput(tmp_path / "pngs", fps=10) as d:
        d.write(pic, index=7)
        d.write(pic, index=8)
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["frame_000007.png", "frame_000008.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "pngs" / "frame_000007.png")), pic)
    # a failed run leaves no video behind
    with pytest.raises(RuntimeError), AnnotatedOutput(tmp_path / "b.mp4", fps=10) as v:
        v.write(pic)
        raise RuntimeError("boom")
    assert not (tmp_path / "b.mp4").exists()
    with pytest.raises(ConfigError, match=".mp4 or .mkv"):
        AnnotatedOutput(tmp_path / "x.avi")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="not a folder"):
        AnnotatedOutput(tmp_path / "file")


def test_contact_sheet_and_pick_frames(tmp_path: Path) -> None:
    assert pick_frames([0, 2, 0, 1, 1, 0, 3, 0], rows=3) == [1, 4, 6]
    assert pick_frames([0, 0, 0, 0], rows=2) == [0, 3]
    assert pick_frames([0, 1], rows=4) == [1]
    assert pick_frames([], rows=4) == []
    pic = _picture()
    path = contact_sheet([SheetRow(0, [pic, None, pic], _dets()), SheetRow(5, [pic, pic, pic], None)],
                         ["original", "base", "full"], tmp_path / "s.png", panel_width=100)
    sheet = cv2.imread(str(path))
    assert sheet.shape[1] == 3 * 100 + 2 * 6 and sheet.shape[0] > 2 * 75
    with pytest.raises(ConfigError):
        contact_sheet([], ["a"], tmp_path / "t.png")


# -- vcodec decode / detect --annotate ----------------------------------------------------------
def test_decode_and_detect_annotate(tmp_path: Path, codec_test_model: Path, yolox_nano_onnx: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    stream = cli_encode(tmp_path / "s.vcs", codec_test_model, frames=3)
    assert decode_cli.main([str(stream), "-o", str(tmp_path / "d.y4m"), "--base-model", str(codec_test_model),
                            "--annotate", str(tmp_path / "dec"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == [f"frame_{i:06d}.png" for i in range(3)]
    assert detect_cli.main([str(stream), "-o", str(tmp_path / "s.json"), "--base-model",
                            str(codec_test_model), "--weights", str(yolox_nano_onnx),
                            "--annotate", str(tmp_path / "s.mp4"), "--no-progress"]) == 0
    assert _frames_in(tmp_path / "s.mp4") == 3
    # plain video: the input frames with the detector's boxes, as many frames as the input
    assert detect_cli.main([str(CLIP), "--frames", "4", "-o", str(tmp_path / "p.json"),
                            "--annotate", str(tmp_path / "p.mp4")]) == 0
    assert _frames_in(tmp_path / "p.mp4") == 4
    # a pipe cannot be read twice: one line, exit code 2
    capsys.readouterr()
    assert decode_cli.main(["-", "-o", str(tmp_path / "x.y4m"), "--annotate", str(tmp_path / "x.mp4")]) == 2
    assert "--annotate" in capsys.readouterr().err
