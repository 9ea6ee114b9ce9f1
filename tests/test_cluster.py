"""Issue 17: GOP-parallel encode, fleet encode and eval on Ray (optional extra ``vcodec[ray]``).

One Ray head is started by this module (``ray start --head --block`` on 127.0.0.1,
2 CPUs, its own temp dir), used through ``--ray ADDRESS`` and stopped at the end;
the encodes are 10 frames of the bundled clip with the small test model, intra
period 4 (3 GOPs, the last one short).  The "without Ray" tests hide the module.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SEQUENCE

from vcodec.cli.main import main as vcodec_main

FRAMES, PERIOD, QP = 10, 4, 34
CODING = ["--intra-period", str(PERIOD), "--enh-qp", str(QP), "--preset", "ultrafast"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A local Ray head for this module: loopback only, 2 CPUs, bounded start, stopped by its pid."""
    pytest.importorskip("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="vr", dir="/tmp")  # short: Ray's socket paths have a length limit
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115 - closed below
    ray_cli = Path(sys.executable).with_name("ray")
    # a test head on loopback: no token (Ray >= 2.5x turns token auth on by default; a real cluster
    # keeps it, docs/CLUSTER.md); the driver in this process must then not send one either
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")
    env = os.environ | {"OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Ray head did not start: " + (Path(temp) / "head.log").read_text()[-2000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        # our own process group (start_new_session): `ray start --block` stops its processes on SIGINT
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
        mp.undo()


def _serial_closed(model: Path) -> bytes:
    """The reference: the serial Encoder with closed GOPs."""
    from vcodec.codec import Encoder
    from vcodec.io import open_video

    buf = io.BytesIO()
    with open_video(str(SEQUENCE), frames=FRAMES) as r, Encoder(
            buf, r.info, base_model=str(model), intra_period=PERIOD, enh_qp=QP, preset="ultrafast",
            closed_gops=True) as enc:
        for f in r:
            enc.encode(f)
    return buf.getvalue()


@pytest.fixture(scope="module")
def serial_stream(codec_test_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("serial") / "serial.vcs"
    assert vcodec_main(["encode", str(SEQUENCE), "-o", str(p), "--frames", str(FRAMES), "--base-model",
                        str(codec_test_model), "--closed-gops", *CODING, "-q"]) == 0
    return p


def test_serial_cli_closed_gops_is_the_encoder(codec_test_model: Path, serial_stream: Path) -> None:
    from vcodec.bitstream import StreamReader

    assert serial_stream.read_bytes() == _serial_closed(codec_test_model)
    with StreamReader(serial_stream) as r:
        assert r.header.properties.get("closed_gops") is True


def test_parallel_encode_is_byte_identical(ray_head: str, codec_test_model: Path, serial_stream: Path,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.bitstream import StreamReader

    out = tmp_path / "par.vcs"
    assert vcodec_main(["encode", str(SEQUENCE), "-o", str(out), "--frames", str(FRAMES), "--base-model",
                        str(codec_test_model), *CODING, "--ray", ray_head, "--no-progress",
                        "--json", str(tmp_path / "s.json")]) == 0
    err = capsys.readouterr().err
    assert "3 GOPs on 2 workers" in err and "byte-identical" in err
    assert out.read_bytes() == serial_stream.read_bytes()
    par = json.loads((tmp_path / "s.json").read_text())["extra"]["parallel"]
    assert sum(par["worker_gops"].values()) == 3
    assert set(par["weight_loads"].values()) == {1}  # once per worker process, whatever it coded
    with StreamReader(out) as r:
        frames = {u.frame for u in r.units()}
        assert r.end_info is not None and r.end_info[0] == FRAMES
    assert frames == set(range(FRAMES))
    with StreamReader(out) as r:
        assert [f for f, _ in r.read_index()] == [0, 4, 8]


def test_decode_of_parallel_stream(ray_head: str, codec_test_model: Path, tmp_path: Path) -> None:
    """The merged stream decodes whole (closed GOPs in the enhancement layer, IDR at every intra frame)."""
    out = tmp_path / "par.vcs"
    assert vcodec_main(["encode", str(SEQUENCE), "-o", str(out), "--frames", str(FRAMES), "--base-model",
                        str(codec_test_model), *CODING, "--inter-layer", "off", "--ray", ray_head, "-q"]) == 0
    from vcodec.codec import Decoder

    with Decoder(out, base_model=str(codec_test_model)) as dec:
        pics = list(dec.frames())
    assert len(pics) == FRAMES


def test_killed_worker_is_retried(ray_head: str, codec_test_model: Path, serial_stream: Path,
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv("VCODEC_CLUSTER_FAULT", f"crash-once:1:{marker}")
    out = tmp_path / "par.vcs"
    assert vcodec_main(["encode", str(SEQUENCE), "-o", str(out), "--frames", str(FRAMES), "--base-model",
                        str(codec_test_model), *CODING, "--ray", ray_head, "-q"]) == 0
    assert marker.is_file()  # the worker coding GOP 1 did die (os._exit) the first time
    assert out.read_bytes() == serial_stream.read_bytes()


def test_gop_failing_twice_names_it_and_leaves_nothing(ray_head: str, codec_test_model: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VCODEC_CLUSTER_FAULT", "fail:2")
    out = tmp_path / "par.vcs"
    rc = vcodec_main(["encode", str(SEQUENCE), "-o", str(out), "--frames", str(FRAMES), "--base-model",
                      str(codec_test_model), *CODING, "--ray", ray_head, "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1, err
    assert "GOP 2 (frames 8..9) failed twice" in err and "injected failure" in err
    assert list(tmp_path.iterdir()) == []  # no stream, no temporary


def test_encode_batch_resumable_split_and_missing_input(ray_head: str, codec_test_model: Path,
                                                        serial_stream: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    name = SEQUENCE.stem  # the stream records the source's name: keep it for the byte comparison
    (clips / f"{name}.y4m").symlink_to(SEQUENCE)
    lst = tmp_path / "cams.txt"
    lst.write_text(f"{clips / (name + '.y4m')}\n# a camera whose file is not on the workers\n"
                   f"{clips / 'cam2.y4m'}\n")
    out = tmp_path / "out"
    args = ["encode-batch", str(lst), "--out-dir", str(out), "--frames", str(FRAMES), "--base-model",
            str(codec_test_model), *CODING, "--ray", ray_head, "--split-frames", "6", "--no-progress"]
    # cam2 is missing: its probe fails in the driver only when split; without --split-frames the
    # worker finds it missing. Both give a failed report and the batch goes on
    assert vcodec_main(args[:-3] + ["--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 encoded, 0 skipped" in err and "1 failed" in err
    rep2 = json.loads((out / "cam2.json").read_text())
    assert rep2["status"] == "failed" and "cam2.y4m" in rep2["error"] and "failed twice" in rep2["error"]
    assert not (out / "cam2.vcs").exists()
    rep1 = json.loads((out / f"{name}.json").read_text())
    assert rep1["status"] == "ok" and rep1["frames"] == FRAMES
    mtime = (out / f"{name}.vcs").stat().st_mtime_ns
    # second run: cam1 verifies and is skipped; cam2 still fails
    lst.write_text(f"{clips / (name + '.y4m')}\n")
    assert vcodec_main(args[:-3] + ["--no-progress"]) == 0
    assert "0 encoded, 1 skipped" in capsys.readouterr().err
    assert (out / f"{name}.vcs").stat().st_mtime_ns == mtime
    # GOP-split: a damaged output is coded again, per GOP, byte-identical to the serial closed-GOP encode
    (out / f"{name}.vcs").write_bytes((out / f"{name}.vcs").read_bytes()[:-5])
    assert vcodec_main(args) == 0
    assert "1 encoded, 0 skipped" in capsys.readouterr().err
    assert (out / f"{name}.vcs").read_bytes() == serial_stream.read_bytes()
    assert json.loads((out / f"{name}.json").read_text())["extra"]["parallel"]["gops"] == 3


@pytest.mark.slow  # 45 s on 2 cores: four eval runs (as test_eval_parallel_jobs_match_serial, also slow)
def test_eval_on_ray_matches_serial(ray_head: str, codec_test_model: Path, tmp_path: Path) -> None:
    """Two clips, each evaluated serially and on Ray: the same points (timings aside)."""
    from vcodec.cli.eval import main as eval_main

    timings = ("encode_s", "decode_s")
    common = ["--frames", "3", "--base-model", str(codec_test_model), "--detector", "yolox-nano",
              "--preset", "ultrafast", "--no-progress", "--base-qualities", "0.5", "--enh-qps", "40",
              "--anchor-qps", "30,38", "--anchors", "x265"]
    # two clips (two windows of the bundled one): the first on the test's head, the second on a
    # private local Ray (--workers 2)
    for clip, start, how in ((SEQUENCE, "9", ["--ray", ray_head]), (SEQUENCE, "20", ["--workers", "2"])):
        serial, par = tmp_path / f"s{start}", tmp_path / f"p{start}"
        assert eval_main([str(clip), "-o", str(serial), "--start", start, *common]) == 0
        assert eval_main([str(clip), "-o", str(par), "--start", start, *common, *how]) == 0
        ra, rb = (json.loads((d / "results.json").read_text()) for d in (serial, par))
        strip = lambda r: [{k: v for k, v in p.items() if k not in timings} for p in r["points"]]  # noqa: E731
        assert strip(ra) == strip(rb)
        settings = [{k: v for k, v in r["provenance"]["settings"].items() if k != "output"} for r in (ra, rb)]
        assert ra["bd_rate"] == rb["bd_rate"] and settings[0] == settings[1]


# -- without Ray ----------------------------------------------------------------------------------
@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray 'not installed': importing it fails as it would without the package."""
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.mark.parametrize("argv", [
    ["encode", str(SEQUENCE), "-o", "{tmp}/x.vcs", "--workers", "2"],
    ["encode", str(SEQUENCE), "-o", "{tmp}/x.vcs", "--ray", "127.0.0.1:1"],
    ["encode-batch", str(SEQUENCE), "--out-dir", "{tmp}/o", "--workers", "2"],
    ["eval", str(SEQUENCE), "-o", "{tmp}/e", "--workers", "2", "--anchors", "x265", "--base-qualities", ""],
])
def test_without_ray_flags_say_how_to_install(no_ray: None, argv: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert vcodec_main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'vcodec[ray]'" in err, err
    assert not any(tmp_path.iterdir())


def test_without_ray_everything_else_works(no_ray: None, codec_test_model: Path, serial_stream: Path,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Serial batch (no --workers/--ray) runs in this process; the cluster package imports without Ray."""
    import importlib

    for mod in ("vcodec.cluster", "vcodec.cluster.parallel", "vcodec.cluster.batch",
                "vcodec.cli.encode_batch"):
        importlib.import_module(mod)
    out = tmp_path / "out"
    assert vcodec_main(["encode-batch", str(SEQUENCE), "--out-dir", str(out), "--frames", str(FRAMES),
                        "--base-model", str(codec_test_model), *CODING, "--no-progress"]) == 0
    rep = json.loads((out / f"{SEQUENCE.stem}.json").read_text())
    assert rep["status"] == "ok" and rep["frames"] == FRAMES
    assert "1 encoded" in capsys.readouterr().err


def test_usage_errors_of_parallel_encode(codec_test_model: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    base = ["encode", str(SEQUENCE), "-o", str(tmp_path / "x.vcs"), "--workers", "2"]
    for extra, words in ((["--base-kbps", "100"], "--base-kbps"), (["--base-mode", "features"], "features"),
                         (["--ray", "127.0.0.1:1"], "not both")):
        assert vcodec_main([*base, *extra]) == 2
        assert words in capsys.readouterr().err
    assert vcodec_main(["encode", "-", "-o", str(tmp_path / "x.vcs"), "--workers", "2"]) == 2
    assert "stdin" in capsys.readouterr().err
