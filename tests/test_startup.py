"""Start-up: what each path imports (issue 16). Not timed: the times are tools/bench_startup.py's.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEQUENCE = REPO / "sequences" / "synthetic_416x240_30.y4m"
#: imported by ``import compressai`` / torchvision.ops, never needed by vcodec
HEAVY = ("torch_geometric", "compressai.datasets", "compressai.zoo", "compressai.registry",
         "compressai.models", "torchvision", "torch._dynamo", "scipy.stats")


def _python(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_model_paths_leave_compressai_init_torch_geometric_and_torchvision_out() -> None:
    out = _python("""
        import json, sys
        import vcodec.baselayer.learned, vcodec.codec.decoder, """
        """vcodec.detection, vcodec.baselayer.features.entropy
        from vcodec.baselayer.learned import load_base_model
        load_base_model("base-yolox-nano-v2")  # a shipped model: its CDF tables (GaussianConditional.update)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
                                {"torch_geometric", "compressai", "torchvision", "scipy", "torch"})))
    """)
    loaded = set(json.loads(out))
    assert "compressai.entropy_models" in loaded and "compressai.ans" in loaded  # still the entropy coder
    assert not {m for m in loaded for h in HEAVY if m == h or m.startswith(h + ".")}, loaded


def test_scipy_stats_is_real_after_the_placeholder() -> None:
    out = _python("""
        import vcodec.baselayer.learned
        import scipy.stats
        print(scipy.stats.norm.ppf(0.975), float(scipy.stats.norm.cdf(0.0)))
    """)
    ppf, cdf = map(float, out.split())
    assert abs(ppf - 1.959963984540054) < 1e-12 and cdf == 0.5


def test_shim_scale_table_and_quantile_equal_compressai() -> None:
    # compressai's own functions, imported in full here (that is what the shim avoids)
    out = _python("""
        import json, torch, scipy.stats
        from vcodec import _compressai as shim
        shim.GaussianConditional  # the patched class (bare package)
        from compressai.entropy_models import GaussianConditional
        table = shim.get_scale_table()
        gc = GaussianConditional(None); gc.update_scale_table(table)
        patched = (gc._quantized_cdf.clone(), gc._offset.clone(), gc._cdf_length.clone())
        GaussianConditional._standardized_quantile = staticmethod(lambda q: scipy.stats.norm.ppf(q))
        ref = GaussianConditional(None); ref.update_scale_table(table)
        refs = (ref._quantized_cdf, ref._offset, ref._cdf_length)
        same = [torch.equal(a, b) for a, b in zip(patched, refs)]
        import compressai.models.base as cmb   # pulls torch_geometric: fine in this throw-away process
        print(json.dumps({"table": torch.equal(table, cmb.get_scale_table()), "cdf": same,
                          "q": [float(shim._standardized_quantile(q)) == float(scipy.stats.norm.ppf(q))
                                for q in (gc.tail_mass / 2, 1e-9, 0.01, 0.3, 0.5, 0.9)]}))
    """)
    got = json.loads(out)
    assert got["table"] is True
    assert got["cdf"] == [True, True, True]
    assert all(got["q"])


def test_nms_without_torchvision_equals_torchvision(tmp_path: Path) -> None:
    import torch
    from torchvision.ops import batched_nms, nms

    cases = tmp_path / "cases.pt"
    g = torch.Generator().manual_seed(7)
    data = []
    for n in (0, 1, 30, 400, 1500):  # 1500 boxes = 6000 numbers: torchvision's per-class loop
        xy = torch.rand(n, 2, generator=g) * 300
        wh = torch.rand(n, 2, generator=g) * 80 + 1
        boxes = torch.cat([xy, xy + wh], 1)
        scores = torch.rand(n, generator=g).round(decimals=2)  # ties, as real detectors give
        idxs = torch.randint(0, 5, (n,), generator=g)
        data.append((boxes, scores, idxs))
    torch.save(data, cases)
    out = tmp_path / "ours.pt"
    _python("""
        import sys, torch
        from vcodec._torchvision import batched_nms, nms
        data = torch.load(sys.argv[1])
        res = [(nms(b, s, 0.45), batched_nms(b, s, i, 0.45), batched_nms(b, s, i, 0.65)) for b, s, i in data]
        assert "torchvision" not in sys.modules, "torchvision was imported"
        torch.save(res, sys.argv[2])
    """, str(cases), str(out))
    ours = torch.load(out)
    for (boxes, scores, idxs), (a, b, c) in zip(data, ours, strict=True):
        assert torch.equal(a, nms(boxes, scores, 0.45))
        assert torch.equal(b, batched_nms(boxes, scores, idxs, 0.45))
        assert torch.equal(c, batched_nms(boxes, scores, idxs, 0.65))
    assert any(len(r[1]) > 10 for r in ours)


@pytest.mark.parametrize("argv", [["--help"], ["decode", "--help"], ["info", "STREAM"], ["serve", "--help"]])
def test_commands_without_a_model_do_not_import_torch(argv: list[str], tmp_path: Path) -> None:
    stream = REPO / "tests" / "golden"
    streams = sorted(stream.glob("*.vcs"))
    if not streams:
        pytest.skip("no golden stream to run `vcodec info` on")
    argv = [str(streams[0]) if a == "STREAM" else a for a in argv]
    out = _python("""
        import contextlib, io, json, sys
        from vcodec.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(sys.argv[1:])
        print(json.dumps([rc, sorted(m for m in ("torch", "compressai", "cv2", "av") if m in sys.modules)]))
    """, *argv)
    rc, heavy = json.loads(out.splitlines()[-1])
    assert rc == 0
    assert heavy == [], f"vcodec {' '.join(argv)} imported {heavy}"


def test_decoding_a_file_does_not_import_the_server(tmp_path: Path) -> None:
    streams = sorted((REPO / "tests" / "golden").glob("learned-x265.vcs"))
    if not streams:
        pytest.skip("no golden stream to decode")
    out = _python("""
        import contextlib, io, json, sys
        from vcodec.cli.main import main
        rc = main(["decode", sys.argv[1], "-o", sys.argv[2], "-q"])
        heavy = ("aiohttp", "vcodec.serve", "torch_geometric")
        print(json.dumps([rc, sorted(m for m in heavy if m in sys.modules)]))
    """, str(streams[0]), str(tmp_path / "out.y4m"))
    rc, loaded = json.loads(out.splitlines()[-1])
    assert rc == 0 and loaded == [], loaded
