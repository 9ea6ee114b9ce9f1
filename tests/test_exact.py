"""vcodec.detection.exact: thread-independent float64 and float32 copies of networks.

Layer by layer against PyTorch's own kernels (random weights, odd sizes, batches of two):
within 1e-12 in float64 and 1e-5 in float32; SiLU slice by slice equal to PyTorch's and
independent of the thread count.  On a real clip with the shipped base model and YOLOX-Nano:
the float32 T(y_hat) within 1e-5 of a plain float32 copy and the served features exactly its
rounding; the float32 detections those of a plain float64 copy up to float32 precision; and
features and detections bit-identical with 1, 2, 3 and 4 torch threads in separate processes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.conftest import REPO
from vcodec.detection.exact import (
    DenseConvExact,
    DepthwiseConvExact,
    NearestUpsampleExact,
    PointwiseConvExact,
    SeparableMaxPoolExact,
    SerialSiLU,
    SubPixelConvTransposeExact,
    serial_elementwise,
    to_exact,
    to_float64,
)

#: a real clip that ships with the repository (first frames: a person walking)
CLIP = REPO / "sequences" / "demo_person_768x432.mp4"
REL_TOL = 1e-12
#: float32: the same products summed in another order
REL_TOL_32 = 1e-5


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: Iterator[None]) -> None:
    """One torch thread (CI shares 2 cores); the thread matrix runs in its own processes."""


DECONV = SubPixelConvTransposeExact
LAYERS: list[tuple[str, nn.Module, tuple[int, ...], type[nn.Module]]] = [
    ("depthwise 3x3 s1", nn.Conv2d(6, 6, 3, 1, 1, groups=6), (2, 6, 7, 9), DepthwiseConvExact),
    ("depthwise 3x3 s2", nn.Conv2d(6, 6, 3, 2, 1, groups=6, bias=False), (2, 6, 7, 9), DepthwiseConvExact),
    ("depthwise 5x5 s2", nn.Conv2d(4, 4, 5, 2, 2, groups=4), (1, 4, 10, 11), DepthwiseConvExact),
    ("pointwise", nn.Conv2d(6, 5, 1), (2, 6, 7, 9), PointwiseConvExact),
    ("pointwise no bias", nn.Conv2d(6, 5, 1, bias=False), (1, 6, 7, 9), PointwiseConvExact),
    ("dense 3x3", nn.Conv2d(6, 5, 3, 1, 1), (2, 6, 7, 9), DenseConvExact),
    ("dense 5x5 pad 1", nn.Conv2d(6, 5, 5, 1, 1, bias=False), (2, 6, 8, 9), DenseConvExact),
    ("dense 3x2 pad 0", nn.Conv2d(6, 5, (3, 2), 1, 0), (1, 6, 7, 9), DenseConvExact),
    ("deconv 3 s2 op1", nn.ConvTranspose2d(6, 5, 3, 2, 1, output_padding=1), (2, 6, 7, 9), DECONV),
    ("deconv 5 s2 op1", nn.ConvTranspose2d(6, 3, 5, 2, 2, output_padding=1), (1, 6, 7, 9), DECONV),
    ("deconv 4 s2 p1", nn.ConvTranspose2d(6, 5, 4, 2, 1, bias=False), (2, 6, 7, 9), DECONV),
    ("deconv 2 s3 (empty phases)", nn.ConvTranspose2d(6, 5, 2, 3, 1, output_padding=1), (1, 6, 7, 9),
     SubPixelConvTransposeExact),
    ("deconv 5 s1", nn.ConvTranspose2d(6, 5, 5, 1, 2), (1, 6, 7, 9), SubPixelConvTransposeExact),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "layer", "shape", "kind"), LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_pytorch(name: str, layer: nn.Module, shape: tuple[int, ...],
                               kind: type[nn.Module], dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    for p in layer.parameters():
        nn.init.normal_(p)
    fast = to_exact(layer, dtype)
    assert isinstance(fast, kind), f"{name} was not converted"
    x = torch.randn(shape, dtype=dtype)
    with torch.no_grad():
        want = copy.deepcopy(layer).to(dtype)(x)
        got = fast(x)
    assert got.dtype == dtype and got.shape == want.shape
    assert _rel(got, want) < (REL_TOL if dtype == torch.float64 else REL_TOL_32)


@pytest.mark.parametrize("inplace", [False, True])
def test_serial_silu_is_pytorchs_silu_and_ignores_the_thread_count(inplace: bool) -> None:
    fast = to_exact(nn.SiLU(inplace=inplace), torch.float32)
    assert isinstance(fast, SerialSiLU) and fast.inplace == inplace
    x = torch.randn(3, 70, 33, 41) * 4  # 284k elements: PyTorch would split them between threads
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            src = x.clone()
            outs.append(fast(src))
            assert (src is outs[-1]) == inplace and (inplace or torch.equal(src, x))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(o, outs[0]) for o in outs[1:])
    # slice by slice is still SiLU: each element within one float32 rounding of PyTorch's own
    assert torch.allclose(outs[0], nn.functional.silu(x), rtol=2e-7, atol=1e-7)
    # a non-contiguous input is applied to a contiguous copy, and the view is left alone
    view = x[:, :, ::2]
    got = serial_elementwise(torch.sigmoid_, view)
    assert got.is_contiguous() and torch.allclose(got, torch.sigmoid(view), rtol=2e-7, atol=1e-7)
    assert torch.equal(view, x[:, :, ::2])


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9, 11, 13, 15])
def test_stride1_max_pool_is_bit_identical(k: int) -> None:
    pool = nn.MaxPool2d(k, 1, k // 2)
    fast = to_float64(pool)
    assert isinstance(fast, SeparableMaxPoolExact)
    x = torch.randn(2, 3, 8, 14, dtype=torch.float64)
    x[0, 0] = -5.0  # a constant plane: the -inf padding must never win
    assert torch.equal(fast(x), pool(x))


def test_other_layers_keep_pytorch_and_the_source_is_untouched() -> None:
    net = nn.Sequential(
        nn.Conv2d(4, 4, 3, 2, 1),  # dense strided: kept
        nn.Conv2d(4, 4, 3, 1, 1, groups=2),  # grouped, not depthwise: kept
        nn.Conv2d(4, 4, 3, 1, 1, dilation=1, padding_mode="reflect", groups=4),  # reflect padding: kept
        nn.MaxPool2d(2, 2),  # strided pool: kept
        nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1, groups=4), nn.SiLU()),  # nested: converted
    )
    fast: Any = to_float64(net)
    kinds = [type(m) for m in fast]
    assert kinds[:4] == [nn.Conv2d, nn.Conv2d, nn.Conv2d, nn.MaxPool2d]
    assert isinstance(fast[4][0], DepthwiseConvExact) and isinstance(fast[4][1], SerialSiLU)
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the caller's copy stays float32
    assert isinstance(net[4][0], nn.Conv2d)  # type: ignore[index]
    x = torch.randn(1, 4, 12, 10, dtype=torch.float64)
    with torch.no_grad():
        assert _rel(fast(x), copy.deepcopy(net).double()(x)) < REL_TOL


# -- the shipped models on a real clip -------------------------------------------------------


def _shipped() -> Any:
    from vcodec.baselayer import get_base_factory, kind_for_mode
    from vcodec.baselayer.learned import BASE_MODELS

    if "base-yolox-nano-v2" not in BASE_MODELS:
        pytest.skip("the shipped base model base-yolox-nano-v2 is not installed")
    return get_base_factory(kind_for_mode("learned")).for_encoding("base-yolox-nano-v2")


def _payloads(base: Any, frames: int) -> list[tuple[bool, bytes]]:
    from vcodec.io import open_video

    with open_video(CLIP, frames=frames) as reader:
        clip = list(reader)
    enc = base.encoder(0.5, 32)
    return [(i == 0, enc.encode_frame(f, i == 0)[0]) for i, f in enumerate(clip)]


@pytest.fixture(scope="module")
def shipped_decoded() -> tuple[Any, Any, list[tuple[torch.Tensor, Any]]]:
    """(base layer, YOLOX-Nano, [(y_hat, geometry)]) for three frames of the real clip."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = _shipped()
        detector = base.build_detector()
        dec = base.decoder()
        decoded = [(dec.decode_frame(p, intra).clone(), dec.last_geometry) for intra, p in _payloads(base, 3)]
        return base, detector, decoded
    finally:
        torch.set_num_threads(before)


def _detection_bytes(d: Any) -> bytes:
    return d.boxes.tobytes() + d.scores.tobytes() + d.class_ids.tobytes()


def test_real_clip_matches_plain_copies(shipped_decoded: tuple[Any, Any, list[Any]]) -> None:
    base, detector, decoded = shipped_decoded
    codec = base.codec
    fast_t: nn.Module = codec._T32
    analytics = base.analytics_detector(detector)
    plain_t: nn.Module = copy.deepcopy(codec.net.T).float().eval()
    plain_det: Any = copy.deepcopy(analytics).double().eval()
    fast_det: Any = codec.exact_detector(analytics)
    # the conversion did happen: nothing left to PyTorch whose bits follow the thread count
    pytorch_layers = (nn.MaxPool2d, nn.Upsample, nn.SiLU, nn.Conv2d)
    assert not [m for m in fast_det.modules() if isinstance(m, pytorch_layers)]
    assert not [m for m in fast_t.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    found = 0
    with torch.no_grad():
        for y, geometry in decoded:
            got, want = fast_t(y.float()), plain_t(y.float())
            assert got.dtype == torch.float32 and _rel(got, want) < REL_TOL_32
            feat = codec.features(y)
            assert torch.equal(feat, torch.round(got * 4096.0) / 4096.0)
            for a, b in zip(fast_det.head_levels(feat), plain_det.head_levels(feat.double()), strict=True):
                assert _rel(a.double(), b) < REL_TOL_32
            want_det = plain_det.back(feat.double(), geometry.to_detector())[0]
            got_det = codec.detect(y, analytics, geometry)
            assert len(got_det) == len(want_det) and (got_det.class_ids == want_det.class_ids).all()
            assert abs(got_det.boxes - want_det.boxes).max(initial=0.0) < 1e-2  # pixels
            assert abs(got_det.scores - want_det.scores).max(initial=0.0) < 1e-4
            found += len(want_det)
    assert found > 0, "the clip should give detections to compare"


WORKER = textwrap.dedent(
    r"""
    import hashlib, json, sys
    from pathlib import Path
    import torch
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    from vcodec.baselayer import get_base_factory, kind_for_mode
    base = get_base_factory(kind_for_mode("learned")).for_encoding("base-yolox-nano-v2")
    detector = base.build_detector()
    units = [(u["intra"], bytes.fromhex(u["payload"])) for u in json.loads(Path(sys.argv[2]).read_text())]
    dec = base.decoder()
    feats, dets = hashlib.md5(), hashlib.md5()
    for intra, payload in units:
        y = dec.decode_frame(payload, intra)
        feats.update(base.codec.features(y).numpy().tobytes())
        d = base.detect(y, detector, dec.last_geometry)
        dets.update(d.boxes.tobytes() + d.scores.tobytes() + d.class_ids.tobytes())
    print(json.dumps({"threads": torch.get_num_threads(), "features": feats.hexdigest(),
                      "detections": dets.hexdigest()}))
    """
)


def _worker(threads: int, units: Path) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(units)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.slow
def test_features_and_detections_do_not_depend_on_threads(shipped_decoded: tuple[Any, Any, list[Any]],
                                                          tmp_path: Path) -> None:
    base, detector, decoded = shipped_decoded
    units = tmp_path / "units.json"
    payloads = _payloads(base, 2)
    units.write_text(json.dumps([{"intra": i, "payload": p.hex()} for i, p in payloads]))
    # this process's own results (one thread) are the reference: the workers must match them
    dec = base.decoder()
    feats, dets = hashlib.md5(), hashlib.md5()
    for intra, p in payloads:
        y = dec.decode_frame(p, intra)
        feats.update(base.codec.features(y).numpy().tobytes())
        dets.update(_detection_bytes(base.detect(y, detector, dec.last_geometry)))
    for threads in (1, 2, 3, 4):
        got = _worker(threads, units)
        assert got["threads"] == threads
        assert got["features"] == feats.hexdigest(), f"features differ with {threads} torch threads"
        assert got["detections"] == dets.hexdigest(), f"detections differ with {threads} torch threads"


@pytest.mark.parametrize("scale", [2, 3.0])
def test_nearest_upsample_is_bit_identical(scale: float) -> None:
    up = nn.Upsample(scale_factor=scale, mode="nearest")
    fast = to_float64(up)
    assert isinstance(fast, NearestUpsampleExact)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    assert torch.equal(fast(x), up(x))
    assert isinstance(to_float64(nn.Upsample(scale_factor=1.5, mode="nearest")), nn.Upsample)  # kept
    assert isinstance(to_float64(nn.Upsample(scale_factor=2, mode="bilinear")), nn.Upsample)  # kept
