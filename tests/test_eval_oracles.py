"""The eval judges checked against independent references, not against themselves.

* BD-rate / BD-quality against the third-party ``bjontegaard`` package (test extra) on curves
  whose quality ranges differ, against a PCHIP written here from its definition, and against a
  closed-form partial-overlap case;
* mAP@0.5 and mAP@[.5:.95] against ``COCOeval.summarize()``'s own stats on IoUs just either
  side of 0.5 and 0.55;
* PSNR against closed forms, MS-SSIM against the formula of Wang, Simoncelli & Bovik (2003)
  written here with numpy/scipy.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable
from typing import Any

import bjontegaard
import numpy as np
import pytest
from scipy.signal import convolve2d

from vcodec.detection import Detections
from vcodec.eval import FrameTruth, GroundTruth, bd_quality, bd_rate, detection_map, frame_quality
from vcodec.eval.quality import MS_SSIM_MIN_SIDE
from vcodec.io.frame import Frame

# -- BD-rate ------------------------------------------------------------------------------
# Realistic curves whose quality ranges only partly overlap and whose point counts differ, so
# the common-interval logic decides the answer (equal quality points would hide it).
CURVES = {
    "psnr": (
        [100.0, 180.0, 330.0, 600.0],
        [30.1, 32.9, 35.2, 37.8],
        [90.0, 150.0, 260.0, 480.0, 900.0],
        [31.4, 33.6, 35.9, 38.3, 40.2],
    ),
    "map": (
        [26.0, 46.2, 81.7, 146.2, 268.3],
        [0.479, 0.561, 0.716, 0.805, 0.878],
        [107.7, 180.8, 323.9, 538.5],
        [0.623, 0.694, 0.758, 0.862],
    ),
    "test_below": (  # the test curve starts lower and ends inside the anchor's range
        [200.0, 400.0, 800.0, 1600.0],
        [33.0, 35.5, 38.0, 40.0],
        [120.0, 210.0, 380.0, 700.0],
        [31.0, 33.2, 35.0, 36.9],
    ),
}


Rows = dict[int, list[tuple[float, ...]]]


def _oracle(
    fn: Callable[..., float], ar: list[float], aq: list[float], tr: list[float], tq: list[float], method: str
) -> float:
    # min_overlap=0: partial overlap is the point of these cases, not something to warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # but any other warning (e.g. "no overlap") must not pass
        return fn(ar, aq, tr, tq, method=method, require_matching_points=False, min_overlap=0)


@pytest.mark.parametrize("case", sorted(CURVES))
@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_matches_bjontegaard_package(case: str, method: str) -> None:
    """bjontegaard 1.3 integrates both interpolants exactly (np.polyint for the cubic fit,
    PchipInterpolator.integrate for PCHIP), as vcodec does, so the only legitimate difference is
    floating-point rounding: 1e-9 relative.  A looser tolerance would be dishonest, and a
    wrong integration interval moves these cases by whole percent (see the mutation note)."""
    ar, aq, tr, tq = CURVES[case]
    ours = bd_rate(ar, aq, tr, tq, method)
    ref = _oracle(bjontegaard.bd_rate, ar, aq, tr, tq, method)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-9)
    ours_q = bd_quality(ar, aq, tr, tq, method)
    ref_q = _oracle(bjontegaard.bd_psnr, ar, aq, tr, tq, method)
    assert ours_q == pytest.approx(ref_q, rel=1e-9, abs=1e-12)


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson/Butland derivatives (the shape-preserving choice of VCEG-AL22's PCHIP)."""
    h = np.diff(x)
    m = np.diff(y) / h
    d = np.zeros_like(x)
    if len(x) == 2:
        return np.full_like(x, m[0])
    for k in range(1, len(x) - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    for end, (hh0, hh1, m0, m1) in ((0, (h[0], h[1], m[0], m[1])), (-1, (h[-1], h[-2], m[-1], m[-2]))):
        e = ((2 * hh0 + hh1) * m0 - hh0 * m1) / (hh0 + hh1)  # one-sided three-point estimate
        if np.sign(e) != np.sign(m0):
            e = 0.0
        elif np.sign(m0) != np.sign(m1) and abs(e) > abs(3 * m0):
            e = 3 * m0
        d[end] = e
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral of the PCHIP interpolant over [lo, hi] by 3-point Gauss-Legendre per piece:
    exact for the cubic pieces, and independent of scipy's interpolator."""
    d = _pchip_slopes(x, y)
    nodes, weights = np.polynomial.legendre.leggauss(3)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        t = ((a + b) / 2 + (b - a) / 2 * nodes - x[k]) / h
        h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
        h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
        f = h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1]
        total += (b - a) / 2 * float(np.dot(weights, f))
    return total


@pytest.mark.parametrize("case", sorted(CURVES))
def test_bd_rate_pchip_matches_a_pchip_written_from_its_definition(case: str) -> None:
    """bjontegaard's PCHIP *is* scipy's PchipInterpolator (as ours is); this one is not."""
    ar, aq, tr, tq = (np.asarray(v, np.float64) for v in CURVES[case])
    lo, hi = max(aq.min(), tq.min()), min(aq.max(), tq.max())
    assert lo > min(aq.min(), tq.min()) or hi < max(aq.max(), tq.max())  # really partial overlap
    diff = (_pchip_integral(tq, np.log10(tr), lo, hi) - _pchip_integral(aq, np.log10(ar), lo, hi)) / (hi - lo)
    assert bd_rate(ar, aq, tr, tq, "pchip") == pytest.approx((10**diff - 1) * 100, rel=1e-9, abs=1e-9)


def test_bd_rate_partial_overlap_closed_form() -> None:
    """Straight lines in log-rate on quality ranges [30, 40] and [34, 44].

    anchor log10 R = 2 + 0.05 (Q - 30), test log10 R = 1.8 + 0.06 (Q - 30): the difference
    -0.2 + 0.01 (Q - 30) averaged over the common interval [34, 40] is -0.2 + 0.01 * 7 = -0.13,
    so BD-rate = 10^-0.13 - 1 = -25.87 %.  Both interpolants reproduce straight lines exactly.
    Averaging each curve over its own range instead gives (1.8 + 0.06 * 9) - (2 + 0.05 * 5)
    = +0.09, i.e. +23.0 %.
    """
    qa = np.array([30.0, 33.0, 37.0, 40.0])
    qt = np.array([34.0, 36.5, 41.0, 44.0])
    ra = 10 ** (2 + 0.05 * (qa - 30))
    rt = 10 ** (1.8 + 0.06 * (qt - 30))
    expected = (10**-0.13 - 1) * 100
    for method in ("pchip", "cubic"):
        assert bd_rate(ra, qa, rt, qt, method) == pytest.approx(expected, rel=1e-9)
        # and the anchor/test roles swapped: the inverse rate ratio is not simply the negation
        assert bd_rate(rt, qt, ra, qa, method) == pytest.approx((10**0.13 - 1) * 100, rel=1e-9)
    # BD-quality on the same lines: Q_a = 30 + (L - 2) / 0.05 for L in [2, 2.5] and
    # Q_t = 30 + (L - 1.8) / 0.06 for L in [2.04, 2.64]; over the common log-rate range
    # [2.04, 2.5] the mean of the difference (linear in L) is its value at the midpoint 2.27
    mid = 2.27
    expected_q = (mid - 1.8) / 0.06 - (mid - 2) / 0.05
    for method in ("pchip", "cubic"):
        assert bd_quality(ra, qa, rt, qt, method) == pytest.approx(expected_q, rel=1e-9)


# -- mAP ----------------------------------------------------------------------------------
def _shifted(box: tuple[float, float, float, float], iou: float) -> list[float]:
    """``box`` moved right until its IoU with the original is ``iou`` (same size)."""
    x0, y0, x1, y1 = box
    d = (x1 - x0) * (1 - iou) / (1 + iou)  # overlap (w - d) / union (w + d) = iou
    return [x0 + d, y0, x1 + d, y1]


def _iou(a: list[float], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _coco_summary(truth: Rows, preds: Rows) -> np.ndarray:
    """``COCOeval.summarize()`` stats on datasets built here, with pycocotools' defaults
    (max 100 detections, every category of the dataset)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted(
        {c for rows in truth.values() for *_, c in rows} | {c for rows in preds.values() for *_, c in rows}
    )
    anns = [
        {
            "id": n,
            "image_id": img,
            "category_id": c + 1,
            "iscrowd": 0,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0),
        }
        for n, (img, (x0, y0, x1, y1, c)) in enumerate(
            ((img, row) for img, rows in truth.items() for row in rows), start=1
        )
    ]
    dets = [
        {"image_id": img, "category_id": c + 1, "score": s, "bbox": [x0, y0, x1 - x0, y1 - y0]}
        for img, rows in preds.items()
        for (x0, y0, x1, y1, s, c) in rows
    ]
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "width": 200, "height": 200} for i in truth],
        "annotations": anns,
        "categories": [{"id": c + 1, "name": str(c)} for c in cats],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def _ours(truth: Rows, preds: Rows) -> dict[str, Any]:
    gt = GroundTruth(
        {
            i: FrameTruth.from_rows([(r[0], r[1], r[2], r[3], int(r[4]), -1, False) for r in rows])
            for i, rows in truth.items()
        },
        200,
        200,
        "test",
        "hand-made",
    )
    dets = {
        i: Detections(
            np.array([r[:4] for r in rows], np.float64).reshape(-1, 4),
            np.array([r[4] for r in rows], np.float64),
            np.array([r[5] for r in rows], np.int64),
            200,
            200,
        )
        for i, rows in preds.items()
    }
    return detection_map(gt, dets, max_dets=100)


A, B, C = (10.0, 10.0, 60.0, 60.0), (100.0, 20.0, 160.0, 90.0), (30.0, 110.0, 90.0, 170.0)


def _scene() -> tuple[Rows, Rows]:
    """Three frames, two classes (0 person, 2 car), hits at IoU 0.52, 0.48, 0.57, 0.53 and 1."""
    truth: Rows = {
        0: [(*A, 0), (*B, 2)],
        1: [(*A, 0), (*C, 0)],
        2: [(*B, 2), (*C, 2)],
    }
    preds: Rows = {
        0: [(*_shifted(A, 0.52), 0.9, 0), (*_shifted(B, 0.57), 0.8, 2), (150.0, 150.0, 190.0, 190.0, 0.7, 0)],
        1: [(*_shifted(A, 0.48), 0.95, 0), (*_shifted(C, 0.53), 0.6, 0), (*A, 0.3, 0)],
        2: [(*_shifted(B, 0.53), 0.85, 2), (*C, 0.5, 2), (*_shifted(C, 0.52), 0.4, 2)],
    }
    return truth, preds


def test_map_matches_cocoeval_summarize_near_the_thresholds() -> None:
    truth, preds = _scene()
    # the shifted boxes really sit where the test says: either side of 0.5 and 0.55
    assert _iou(_shifted(A, 0.52), A) == pytest.approx(0.52)
    assert _iou(_shifted(A, 0.48), A) == pytest.approx(0.48)
    stats = _coco_summary(truth, preds)
    m = _ours(truth, preds)
    assert m["map50"] == pytest.approx(stats[1], abs=1e-12)  # stats[1]: AP at IoU 0.50
    assert m["map"] == pytest.approx(stats[0], abs=1e-12)  # stats[0]: AP at IoU 0.50:0.95
    # and the scene separates the thresholds: a reader of the IoU-0.55 slice would not agree
    assert stats[1] > stats[0] > 0


@pytest.mark.parametrize(
    ("iou", "ap50"),
    [(0.52, 1.0), (0.48, 0.0), (0.57, 1.0), (0.53, 1.0)],
)
def test_map_single_detection_either_side_of_threshold(iou: float, ap50: float) -> None:
    """One object, one detection: mAP@0.5 is 1 above IoU 0.5 and 0 below, whatever 0.55 says."""
    truth: Rows = {0: [(*A, 0)], 1: [(*B, 2)]}
    preds: Rows = {0: [(*_shifted(A, iou), 0.9, 0)], 1: [(*B, 0.9, 2)]}
    stats = _coco_summary(truth, preds)
    m = _ours(truth, preds)
    # class person: AP@0.5 = ap50; class car: exact hit, 1.  mAP = mean of the two.
    assert m["map50"] == pytest.approx((ap50 + 1) / 2, abs=1e-12)
    assert m["map50"] == pytest.approx(stats[1], abs=1e-12)
    assert m["map"] == pytest.approx(stats[0], abs=1e-12)
    # mAP@[.5:.95] counts the person at the thresholds 0.50, 0.55, ... not above its IoU
    hits = sum(1 for t in np.linspace(0.5, 0.95, 10) if iou >= t - 1e-12)
    assert m["map"] == pytest.approx((hits / 10 + 1) / 2, abs=1e-12)


def test_map_multi_class_with_a_class_only_predicted() -> None:
    """A predicted class absent from the ground truth counts in neither (as in COCOeval)."""
    truth, preds = _scene()
    preds[0].append((120.0, 120.0, 180.0, 180.0, 0.99, 5))
    m, stats = _ours(truth, preds), _coco_summary(truth, preds)
    assert (m["map50"], m["map"]) == pytest.approx((stats[1], stats[0]), abs=1e-12)
    assert set(m["per_class_ap50"]) == {"person", "car"}


# -- PSNR / MS-SSIM -----------------------------------------------------------------------
def _frame(y: np.ndarray, bit_depth: int = 8) -> Frame:
    f = Frame.blank(y.shape[1], y.shape[0], bit_depth=bit_depth)
    f.y[:] = y
    return f


@pytest.mark.parametrize(("offset", "bit_depth"), [(1, 8), (3, 8), (17, 8), (5, 10)])
def test_psnr_constant_offset_closed_form(offset: int, bit_depth: int) -> None:
    """Every luma sample off by ``offset``: MSE = offset^2, PSNR = 20 log10(peak / offset)."""
    peak = (1 << bit_depth) - 1
    ref = _frame(np.full((64, 96), peak // 2, np.uint16 if bit_depth > 8 else np.uint8), bit_depth)
    test = ref.copy()
    test.y[:] = ref.y + offset
    q = frame_quality(ref, test, ms_ssim=False)
    assert q["psnr_y"] == pytest.approx(20 * math.log10(peak / offset), abs=1e-12)


def test_psnr_mixed_errors_closed_form() -> None:
    """A quarter of the samples off by 4, the rest exact: MSE = 16 / 4 = 4 -> 10 log10(255^2 / 4)."""
    ref = _frame(np.full((64, 64), 128, np.uint8))
    test = ref.copy()
    test.y[::2, ::2] = 124
    assert frame_quality(ref, test, ms_ssim=False)["psnr_y"] == pytest.approx(10 * math.log10(255**2 / 4))


_MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])  # Wang et al. 2003, table 1


def _ms_ssim_reference(x: np.ndarray, y: np.ndarray, peak: float = 255.0) -> float:
    """MS-SSIM from its definition: 11x11 Gaussian (sigma 1.5) statistics over valid positions,
    K1 0.01, K2 0.03, contrast-structure at scales 1..4, full SSIM at scale 5, 2x2 mean between."""
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / g.sum() ** 2
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    cs_values = []
    for scale in range(5):

        def filt(a: np.ndarray) -> np.ndarray:
            return convolve2d(a, w, mode="valid")

        mx, my = filt(x), filt(y)
        vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        cs = (2 * cxy + c2) / (vx + vy + c2)
        if scale < 4:
            cs_values.append(cs.mean())
            # 2x2 mean: these test images have sides divisible by 16, so no padding question
            x = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean(axis=(1, 3))
            y = y.reshape(y.shape[0] // 2, 2, y.shape[1] // 2, 2).mean(axis=(1, 3))
        else:
            ssim = (((2 * mx * my + c1) / (mx**2 + my**2 + c1)) * cs).mean()
    return float(np.prod(np.array(cs_values + [ssim]) ** _MS_WEIGHTS))


def test_ms_ssim_matches_the_reference_formula() -> None:
    """pytorch-msssim (float32) against the float64 formula above on 256x176 images (short side
    176 > the 161 five scales need; sides divisible by 16).  1e-5: float32 accumulation of
    ~45 000 window statistics, well below the 1e-3 a wrong weight, window or scale would cost."""
    assert 176 >= MS_SSIM_MIN_SIDE
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:176, 0:256]
    base = 128 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 20 * np.sin((xx + 2 * yy) / 4.0)
    ref = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).round().astype(np.uint8)
    for sigma in (3.0, 12.0, 30.0):
        test = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255).round().astype(np.uint8)
        expected = _ms_ssim_reference(ref, test)
        got = frame_quality(_frame(ref), _frame(test))["ms_ssim"]
        assert got == pytest.approx(expected, abs=1e-5)
    # a blurred copy: structure lost at the fine scales
    blurred = convolve2d(ref.astype(np.float64), np.ones((5, 5)) / 25, mode="same", boundary="symm")
    blurred = blurred.round().astype(np.uint8)
    expected = _ms_ssim_reference(ref, blurred)
    assert expected < 0.99
    assert frame_quality(_frame(ref), _frame(blurred))["ms_ssim"] == pytest.approx(expected, abs=1e-5)
