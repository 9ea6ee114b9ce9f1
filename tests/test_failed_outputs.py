"""A failed run leaves no part of its output: detection files (vcodec.detection.formats), `vcodec analyze`,
base weights (save_base_weights).

All write through vcodec._atomic: COCO documents and SFU files appear complete or not at all, MOT
lines are followable while written and removed when the run fails.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vcodec.detection.base import Detections
from vcodec.detection.formats import write_coco, write_detections, write_mot, write_sfu
from vcodec.errors import InputError


class Boom(InputError):
    """The detector's input failing mid-run (a truncated clip, a dropped camera)."""


def _det() -> Detections:
    return Detections(np.array([[10, 20, 50, 80]]), [0.9], [0], 160, 90)


def _failing(after: int, seen: list[Path] | None = None,
             watch: Path | None = None) -> Iterator[tuple[int, Any]]:
    """``after`` frames of detections, then the input fails; ``watch``: record whether it exists by then."""
    for i in range(after):
        yield i, _det()
    if watch is not None and seen is not None and watch.exists():
        seen.append(watch)
    raise Boom("input ended mid-frame")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_coco_appears_complete_with_an_ordinary_mode_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "out" / "dets.json"  # its folder is made, as before
    assert write_coco(path, [(0, _det()), (1, _det())]) == 2
    assert (path.stat().st_mode & 0o777) == (0o666 & ~_umask())
    old = path.read_bytes()
    with pytest.raises(Boom):
        write_coco(path, _failing(3))
    assert path.read_bytes() == old  # the earlier result is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["dets.json"]  # no temporary left


def test_mot_is_followable_while_written_and_removed_when_the_run_fails(tmp_path: Path) -> None:
    path = tmp_path / "dets.txt"
    seen: list[Path] = []
    with pytest.raises(Boom):
        write_mot(path, _failing(2, seen, watch=path))
    assert seen == [path]  # lines were there to follow during the run
    assert list(tmp_path.iterdir()) == []
    assert write_mot(path, [(0, _det())]) == 1
    assert (path.stat().st_mode & 0o777) == (0o666 & ~_umask())


def test_sfu_failure_removes_the_frames_it_wrote_and_the_folder_it_made(tmp_path: Path) -> None:
    folder = tmp_path / "sfu"
    with pytest.raises(Boom):
        write_sfu(folder, _failing(3), "clip")
    assert not folder.exists()
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(Boom):
        write_detections(folder, _failing(2), "sfu", stem="clip")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]  # a folder that was there stays, as it was


def _stats() -> Any:
    from vcodec.serve.analyze import AnalyzeStats

    return AnalyzeStats(frames=1, detections=1)


def _analyze_args(output: str) -> argparse.Namespace:
    return argparse.Namespace(url="http://127.0.0.1:9/streams/cam", output=output, track=False, token=None,
                              token_env=None, weights=None, base_model=None, score_threshold=None,
                              frames=None, retries=0, retry_wait=0.0, timeout=1.0, threads=0, quiet=True)


def test_analyze_output_is_followable_and_removed_when_the_run_fails(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import vcodec.serve.analyze as serve_analyze
    from vcodec.cli import analyze as analyze_cli

    path = tmp_path / "dets.txt"
    during: list[str] = []

    def fails(url: str, *, out: Any, **_: Any) -> Any:
        out.write("1,-1,10.00,20.00,40.00,60.00,0.90000,-1,-1,-1\n")
        out.flush()
        during.append(path.read_text())
        raise Boom("connection lost for good")

    monkeypatch.setattr(serve_analyze, "analyze_url", fails)
    with pytest.raises(Boom):
        analyze_cli.run(_analyze_args(str(path)))
    assert during == ["1,-1,10.00,20.00,40.00,60.00,0.90000,-1,-1,-1\n"]  # followable while it ran
    assert list(tmp_path.iterdir()) == []

    def works(url: str, *, out: Any, **_: Any) -> Any:
        out.write("1,-1,10.00,20.00,40.00,60.00,0.90000,-1,-1,-1\n")
        return _stats()

    monkeypatch.setattr(serve_analyze, "analyze_url", works)
    assert analyze_cli.run(_analyze_args(str(path))) == 0
    assert path.read_text() == "1,-1,10.00,20.00,40.00,60.00,0.90000,-1,-1,-1\n"
    assert (path.stat().st_mode & 0o777) == (0o666 & ~_umask())


def test_analyze_to_stdout_leaves_stdout_open(monkeypatch: pytest.MonkeyPatch,
                                              capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    import sys

    import vcodec.serve.analyze as serve_analyze
    from vcodec.cli import analyze as analyze_cli

    def works(url: str, *, out: Any, **_: Any) -> Any:
        out.write("1,-1,1.00,2.00,3.00,4.00,0.50000,-1,-1,-1\n")
        return _stats()

    monkeypatch.setattr(serve_analyze, "analyze_url", works)
    assert analyze_cli.run(_analyze_args("-")) == 0
    assert not sys.stdout.buffer.closed
    assert capfdbinary.readouterr().out == b"1,-1,1.00,2.00,3.00,4.00,0.50000,-1,-1,-1\n"


def test_base_weights_cut_off_mid_save_leave_neither_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from vcodec.baselayer.learned import weights

    class Config:
        def to_dict(self) -> dict[str, Any]:
            return {}

    class Net:  # what save_base_weights reads of a BaseNet
        cfg = Config()

        def state_dict(self) -> dict[str, torch.Tensor]:
            return {"w": torch.zeros(4)}

    def disk_full(obj: Any, f: Any) -> None:
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    net: Any = Net()
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        weights.save_base_weights(net, "base-test-v1", tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    pt = weights.save_base_weights(net, "base-test-v1", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base-test-v1.json", "base-test-v1.pt"]
    assert torch.load(pt, weights_only=True)["state_dict"]["w"].shape == (4,)
