"""Metric core of vcodec eval against hand-computed cases: mAP, BD-rate, PSNR, MS-SSIM, tracker/MOTA."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vcodec.detection import Detections
from vcodec.errors import InputError
from vcodec.eval import (
    BDRateError,
    FrameTruth,
    GroundTruth,
    Tracker,
    bd_quality,
    bd_rate,
    detection_map,
    frame_quality,
    ground_truth_tracks,
    mot_metrics,
    track_detections,
)
from vcodec.eval.bdrate import BDResult, bd_quality_result, bd_rate_result, upper_envelope
from vcodec.eval.report import bd_cell
from vcodec.eval.tracking import TrackedFrame, iou_matrix
from vcodec.io.frame import Frame


def _gt(frames: dict[int, FrameTruth], w: int = 200, h: int = 200) -> GroundTruth:
    return GroundTruth(frames, w, h, "test", "hand-made")


def _box_with_iou(box: tuple[float, float, float, float], iou: float) -> list[float]:
    """A box of the same height shifted right so that its IoU with ``box`` is ``iou``."""
    x0, y0, x1, y1 = box
    w = x1 - x0
    # overlap (w - d) / union (w + d) = iou  ->  d = w (1 - iou) / (1 + iou)
    d = w * (1 - iou) / (1 + iou)
    return [x0 + d, y0, x1 + d, y1]


# -- mAP ---------------------------------------------------------------------------------
def test_map_hand_computed() -> None:
    a, b = (10.0, 10.0, 60.0, 60.0), (100.0, 100.0, 150.0, 150.0)
    truth = _gt({0: FrameTruth(np.array([a, b]), [0, 0])})
    # ranked: 0.9 on `a` at IoU 0.72, 0.8 a false positive, 0.7 exactly on `b`
    pred = Detections(
        np.array([_box_with_iou(a, 0.72), [150, 10, 190, 50], b]), [0.9, 0.8, 0.7], [0, 0, 0], 200, 200
    )
    m = detection_map(truth, [pred])
    # IoU 0.5..0.70 (5 thresholds): precision 1, 1/2, 2/3 at recall .5, .5, 1 -> interpolated
    # 101-point AP = (51 * 1 + 50 * 2/3) / 101
    ap_low = (51 + 50 * 2 / 3) / 101
    # IoU 0.75..0.95 (5 thresholds): only the 0.7 detection is a hit: precision 1/3 up to recall .5
    ap_high = 51 * (1 / 3) / 101
    assert m["map50"] == pytest.approx(ap_low, abs=1e-9)
    assert m["map"] == pytest.approx((5 * ap_low + 5 * ap_high) / 10, abs=1e-9)
    assert m["num_gt"] == 2 and m["num_pred"] == 3
    assert m["per_class_ap50"]["person"] == pytest.approx(ap_low, abs=1e-9)


def test_map_classes_ignore_and_empty() -> None:
    a = (10.0, 10.0, 60.0, 60.0)
    crowd = (100.0, 100.0, 180.0, 180.0)
    truth = _gt({0: FrameTruth(np.array([a, crowd]), [2, 0], [-1, -1], [False, True]), 1: FrameTruth()})
    # a car found perfectly; a person on the ignore region must not count as a false positive
    pred = {0: Detections(np.array([a, crowd]), [0.9, 0.95], [2, 0], 200, 200), 1: Detections()}
    m = detection_map(truth, pred)
    assert m["map50"] == pytest.approx(1.0) and m["map"] == pytest.approx(1.0)
    assert m["num_gt"] == 1
    # wrong class is a miss: AP 0
    wrong = {0: Detections(np.array([a]), [0.9], [7], 200, 200), 1: Detections()}
    assert detection_map(truth, wrong)["map50"] == pytest.approx(0.0)
    assert detection_map(truth, {0: Detections(), 1: Detections()})["map50"] == 0.0
    assert math.isnan(detection_map(_gt({0: FrameTruth()}), [Detections()])["map50"])


def test_rare_pseudo_classes_leave_the_class_mean() -> None:
    """Six frames of one person, plus a one-frame "teddy bear" (the reference detector's own
    mistake): a codec that finds every person but not the bear scores 0.5 over every class, 1.0
    over the classes with at least 5 objects; the summary names what was left out."""
    from vcodec.eval.detection import PSEUDO_MIN_CLASS_OBJECTS, scored_classes

    person, bear = (10.0, 10.0, 60.0, 90.0), (120.0, 120.0, 160.0, 160.0)
    frames = {i: FrameTruth(np.array([person]), [0]) for i in range(6)}
    frames[2] = FrameTruth(np.array([person, bear]), [0, 77])
    truth = _gt(frames)
    assert truth.class_counts() == {0: 6, 77: 1}
    pred = {i: Detections(np.array([person]), [0.9], [0], 200, 200) for i in range(6)}
    assert detection_map(truth, pred)["map50"] == pytest.approx(0.5)
    scored = scored_classes(truth.class_counts(), PSEUDO_MIN_CLASS_OBJECTS)
    assert scored.classes == (0,) and scored.left_out == {77: 1}
    assert detection_map(truth, pred, scored.classes)["map50"] == pytest.approx(1.0)
    assert scored.describe() == ("mAP over the classes with at least 5 objects (person 6); "
                                 "left out: teddy bear 1")
    # nothing reaches the minimum: every class is scored (never a mean over no class)
    few = scored_classes({0: 2, 77: 1}, 5)
    assert few.classes is None and few.left_out == {} and few.describe().startswith("mAP over every class")
    assert scored_classes(truth.class_counts(), 1).classes is None


# -- BD-rate -----------------------------------------------------------------------------
def test_bd_rate_constant_ratio_is_exact() -> None:
    q = [30.0, 33.0, 36.0, 39.0]
    ra = [100.0, 180.0, 330.0, 600.0]
    rt = [0.8 * r for r in ra]
    for method in ("pchip", "cubic"):
        assert bd_rate(ra, q, rt, q, method) == pytest.approx(-20.0, abs=1e-9)
        assert bd_rate(rt, q, ra, q, method) == pytest.approx(25.0, abs=1e-9)


def test_bd_rate_hand_integrated() -> None:
    # anchor: log10 R = 2 + 0.05 (Q - 30); test adds 0.002 (Q - 30)^2, both cubic-exact on 4 points.
    # mean difference over Q in [30, 40] = 0.002 * 100 / 3 -> BD-rate = 10^(0.2/3) - 1
    q = np.array([30.0, 33.0, 37.0, 40.0])
    la = 2 + 0.05 * (q - 30)
    lt = la + 0.002 * (q - 30) ** 2
    expected = (10 ** (0.2 / 3) - 1) * 100
    assert bd_rate(10**la, q, 10**lt, q, "cubic") == pytest.approx(expected, rel=1e-9)
    # PCHIP interpolates between the points: close to, not equal to, the exact value
    assert bd_rate(10**la, q, 10**lt, q, "pchip") == pytest.approx(expected, abs=0.3)
    # linear curves are reproduced exactly by PCHIP: shift 0.01 (Q - 30) -> mean 0.05 over [30, 40]
    lt2 = la + 0.01 * (q - 30)
    assert bd_rate(10**la, q, 10**lt2, q, "pchip") == pytest.approx((10**0.05 - 1) * 100, rel=1e-9)


def test_bd_quality_and_errors() -> None:
    r = [100.0, 200.0, 400.0, 800.0]
    qa = [30.0, 32.0, 34.0, 36.0]
    qt = [31.5, 33.5, 35.5, 37.5]
    assert bd_quality(r, qa, r, qt, "cubic") == pytest.approx(1.5, abs=1e-9)
    assert bd_quality(r, qa, r, qt, "pchip") == pytest.approx(1.5, abs=1e-9)
    with pytest.raises(BDRateError, match="at least 4"):
        bd_rate(r[:3], qa[:3], r[:3], qt[:3], "cubic")
    with pytest.raises(BDRateError, match="strictly increasing"):
        bd_rate(r, [30, 29, 34, 36], r, qt)
    with pytest.raises(BDRateError, match="overlap"):
        bd_rate(r, qa, r, [50, 51, 52, 53])


# -- quality -----------------------------------------------------------------------------
def test_psnr_hand_computed_and_yuv_weighting() -> None:
    ref = Frame.blank(192, 176, value=100)
    test = ref.copy()
    test.y[:] = 102  # MSE 4 on luma
    test.u[:] = 101  # MSE 1 on U
    q = frame_quality(ref, test)
    py = 10 * math.log10(255**2 / 4)
    pu = 10 * math.log10(255**2 / 1)
    assert q["psnr_y"] == pytest.approx(py)
    assert q["psnr_u"] == pytest.approx(pu)
    assert q["psnr_v"] == 100.0  # identical plane: the cap
    assert q["psnr_yuv"] == pytest.approx((6 * py + pu + 100.0) / 8)
    assert q["ms_ssim"] == pytest.approx(1.0, abs=1e-4)  # flat offset: structure unchanged
    rng = np.random.default_rng(0)
    noisy = ref.copy()
    noisy.y[:] = np.clip(100 + rng.normal(0, 20, ref.y.shape), 0, 255).astype(np.uint8)
    assert frame_quality(ref, noisy)["ms_ssim"] < 0.9
    assert math.isnan(frame_quality(Frame.blank(64, 64), Frame.blank(64, 64))["ms_ssim"])


# -- tracking ----------------------------------------------------------------------------
def _scene(frames: int = 30) -> dict[int, FrameTruth]:
    """Three objects with known ids: two cross each other, one enters late and one leaves early."""
    out = {}
    for t in range(frames):
        rows = [
            (10 + 8 * t, 50, 50 + 8 * t, 90, 0, 1, False),  # left -> right
            (290 - 8 * t, 70, 330 - 8 * t, 110, 0, 2, False),  # right -> left, crosses object 1
        ]
        if t >= 10:
            rows.append((100, 200 + 3 * (t - 10), 160, 240 + 3 * (t - 10), 2, 3, False))  # a car enters
        if t < 20:
            rows.append((300, 250, 340, 330, 0, 4, False))  # static person, leaves at frame 20
        out[t] = FrameTruth.from_rows(rows)
    return out


def test_tracker_on_synthetic_scene_gives_mota_one() -> None:
    truth = _scene()
    dets = [(t, Detections(f.boxes, np.ones(len(f)), f.class_ids, 400, 400)) for t, f in truth.items()]
    tracks = track_detections(dets, min_score=0.5)
    m = mot_metrics(truth, tracks)
    assert m["mota"] == pytest.approx(1.0)
    assert m["idf1"] == pytest.approx(1.0)
    assert m["id_switches"] == 0
    # four distinct ids over the sequence, like the ground truth
    assert len({int(i) for f in tracks.values() for i in f.ids}) == 4
    # min_hits=2 holds a new track back one frame: the late car is missed once (1 of 100 boxes)
    delayed = mot_metrics(truth, track_detections(dets, min_score=0.5, min_hits=2))
    assert delayed["misses"] == 1 and delayed["mota"] == pytest.approx(0.99)


def test_mot_metrics_counts_switches_and_misses() -> None:
    truth = _scene(10)
    # swap the hypothesis ids of the two crossing objects half-way: id switches
    hyp = {}
    for t, f in truth.items():
        ids = f.track_ids.copy()
        if t >= 5:
            ids = np.where(ids == 1, 2, np.where(ids == 2, 1, ids))
        hyp[t] = TrackedFrame(ids, f.boxes.astype(float), f.class_ids)
    m = mot_metrics(truth, hyp)
    assert m["id_switches"] == 2 and m["mota"] < 1.0
    # no hypotheses at all: MOTA 0 (all misses)
    assert mot_metrics(truth, {})["mota"] == pytest.approx(0.0)


def test_tracker_keeps_class_apart_and_ages_out() -> None:
    tr = Tracker(iou_threshold=0.3, max_age=1, min_hits=1)
    f0 = tr.update(np.array([[0, 0, 10, 10.0]]), np.array([0]))
    f1 = tr.update(np.array([[0, 0, 10, 10.0]]), np.array([2]))  # same place, other class: new id
    assert f0.ids.tolist() == [1] and f1.ids.tolist() == [2]
    tr.update(np.zeros((0, 4)))
    tr.update(np.zeros((0, 4)))
    assert tr.tracks == []  # both unmatched for more than max_age frames


def test_ground_truth_tracks_assigns_ids_when_missing() -> None:
    truth = _scene(12)
    no_ids = {t: FrameTruth(f.boxes, f.class_ids) for t, f in truth.items()}
    g = GroundTruth(no_ids, 400, 400, "sfu-objects", "hand-made")
    frames, assigned = ground_truth_tracks(g)
    assert assigned
    assert all(len(frames[t]) == len(truth[t]) for t in truth)
    dets = [(t, Detections(f.boxes, np.ones(len(f)), f.class_ids, 400, 400)) for t, f in truth.items()]
    assert mot_metrics(frames, track_detections(dets))["mota"] == pytest.approx(1.0)


def test_iou_matrix() -> None:
    m = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert m[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_map_missing_frame_counts_as_misses() -> None:
    a = (10.0, 10.0, 60.0, 60.0)
    truth = _gt({0: FrameTruth(np.array([a]), [0]), 1: FrameTruth(np.array([a]), [0])})
    hit = Detections(np.array([a]), [0.9], [0], 200, 200)
    # frame 1 not delivered: recall 1/2, precision 1 -> 101-point AP = 51/101
    assert detection_map(truth, {0: hit})["map50"] == pytest.approx(51 / 101)
    with pytest.raises(InputError, match="frame indexes"):
        detection_map(truth, {7: hit})


# -- BD on noisy curves: strict and envelope ----------------------------------------------
def test_upper_envelope_drops_dominated_points() -> None:
    rates = [400, 50, 100, 200, 300, 30, 100]
    quality = [1.0, 0.5, 0.8, 1.0, 0.9, float("nan"), 0.7]
    env = upper_envelope(rates, quality)
    # saturated (400 -> 1.0) and worse-than-cheaper (300 -> 0.9) points are dropped, and of two
    # points at one rate the worse (100 -> 0.7); NaN is no measurement: neither kept nor dropped
    assert (env.rates, env.quality) == ((50, 100, 200), (0.5, 0.8, 1.0))
    assert env.dropped == ((100, 0.7), (300, 0.9), (400, 1.0))
    monotone = upper_envelope([1, 2, 3], [1, 2, 3])
    assert monotone.dropped == () and monotone.rates == (1, 2, 3)
    with pytest.raises(BDRateError, match="rates but"):
        upper_envelope([1, 2], [1])


_ANCHOR = ([100.0, 180.0, 330.0, 600.0], [30.0, 33.0, 36.0, 39.0])


def test_bd_result_strict_when_monotonic() -> None:
    ar, aq = _ANCHOR
    rt = [0.8 * r for r in ar]
    for method in ("pchip", "cubic"):
        r = bd_rate_result(ar, aq, rt, aq, method)
        assert r.value == r.strict_value == pytest.approx(-20.0, abs=1e-9)
        assert r.value == bd_rate(ar, aq, rt, aq, method)
        assert not r.uses_envelope and r.caveat() == "" and r.reason == "" and r.method == method
        assert bd_cell(r.to_dict()) == "-20.0 %"


def test_bd_result_envelope_on_a_noisy_curve() -> None:
    ar, aq = _ANCHOR
    # the test curve dips at 120.5 kbit/s: strict BD refuses it, the envelope drops that point
    tr = [80.0, 120.5, 144.0, 264.0, 480.0]
    tq = [30.0, 29.5, 33.0, 36.0, 39.0]
    with pytest.raises(BDRateError, match="strictly increasing"):
        bd_rate(ar, aq, tr, tq)
    for method in ("pchip", "cubic"):
        r = bd_rate_result(ar, aq, tr, tq, method)
        assert r.strict_value is None and "strictly increasing" in r.strict_reason
        assert r.dropped_test == ((120.5, 29.5),) and r.dropped_anchor == ()
        # the envelope is the constant-ratio curve 0.8 x anchor: exactly -20 %
        assert r.value == pytest.approx(-20.0, abs=1e-9)
        assert r.value == bd_rate(ar, aq, [80.0, 144.0, 264.0, 480.0], aq, method)
        assert r.caveat() == "envelope; dropped test point at 120.5 kbit/s"
        back = BDResult.from_dict(r.to_dict())
        assert back == r
    cell = bd_cell(bd_rate_result(ar, aq, tr, tq).to_dict())
    assert cell == "-20.0 % (envelope; dropped test point at 120.5 kbit/s; strict n/a (not monotonic))"
    assert bd_cell(bd_rate_result(ar, aq, tr, tq).to_dict(), strict=False) == (
        "-20.0 % (envelope; dropped test point at 120.5 kbit/s)"
    )
    # BD-quality on the same curves: the envelope's anchor and test share the quality points
    q = bd_quality_result(ar, aq, tr, tq)
    assert q.strict_value is None and q.dropped_test == ((120.5, 29.5),)
    assert q.value == pytest.approx(bd_quality(ar, aq, [80.0, 144.0, 264.0, 480.0], aq))


def test_bd_result_dropped_anchor_points_and_na_only_without_overlap() -> None:
    ar, aq = _ANCHOR
    # the anchor saturates: its last two points are no better than 330 kbit/s
    r = bd_rate_result([*ar, 900.0, 1500.0], [*aq, 38.5, 39.0], [0.8 * v for v in ar], aq)
    assert r.dropped_anchor == ((900.0, 38.5), (1500.0, 39.0))
    assert r.caveat() == "envelope; dropped anchor points at 900.0, 1500.0 kbit/s"
    assert r.value == pytest.approx(-20.0, abs=1e-9)
    # envelope down to one point: n/a, with the reason (too few), the strict reason kept beside it
    flat = bd_rate_result(ar, aq, [50.0, 90.0, 200.0], [35.0, 34.0, 35.0])
    assert flat.value is None and "at least 2" in flat.reason and "strictly increasing" in flat.strict_reason
    assert bd_cell(flat.to_dict()) == "n/a (too few points)"
    # no overlap even on the envelopes
    apart = bd_rate_result(ar, aq, [50.0, 60.0, 90.0], [40.0, 39.9, 45.0])
    assert apart.value is None and "overlap" in apart.reason
    assert bd_cell(apart.to_dict()) == "n/a (no overlap)"
    # caller errors are still errors, not "n/a"
    with pytest.raises(BDRateError, match="unknown BD method"):
        bd_rate_result(ar, aq, ar, aq, "akima")
    with pytest.raises(BDRateError, match="rates but"):
        bd_rate_result(ar, aq[:3], ar, aq)
    # entries written before the envelope existed read as strict numbers
    old = BDResult.from_dict({"method": "pchip", "bd_rate": 5.0, "reason": ""})
    assert old.value == old.strict_value == 5.0 and not old.uses_envelope


def test_runner_bd_entries_report_the_envelope() -> None:
    from vcodec.eval.curves import bd_entries
    from vcodec.eval.points import EvalPoint
    from vcodec.eval.report import replace_bd_section

    base = [(107.7, 0.587), (180.8, 0.657), (323.9, 0.708), (538.5, 0.699)]
    x265 = [(26.0, 0.563), (46.2, 0.652), (81.7, 0.767), (146.2, 0.824), (268.3, 0.87), (509.7, 0.925)]
    rows = [
        EvalPoint(f"b{i}", "vcodec-base", kbps_base=r, kbps_total=r, map50=q, map=q / 2, base_quality=0.5)
        for i, (r, q) in enumerate(base)
    ]
    rows += [EvalPoint(f"a{i}", "x265", kbps_total=r, map50=q, map=q / 2) for i, (r, q) in enumerate(x265)]
    rows.append(EvalPoint("x265_nan", "x265", kbps_total=20.0, map50=float("nan"), map=None))
    entries = bd_entries(rows)
    e = next(x for x in entries if x.metric == "map50" and x.method == "pchip")
    assert (e.test, e.anchor) == ("vcodec-base", "x265")
    assert e.result.dropped_test == ((538.5, 0.699),) and e.result.dropped_anchor == ()
    assert e.points == (3, 6) and e.result.strict_value is None
    assert e.value == pytest.approx(
        bd_rate(
            [r for r, _ in x265], [q for _, q in x265], [r for r, _ in base[:3]], [q for _, q in base[:3]]
        )
    )
    cubic = next(x for x in entries if x.metric == "map50" and x.method == "cubic")
    assert cubic.value is None and "at least 4" in cubic.result.reason
    # results.json's form of the entry
    j = e.to_json()
    assert j["dropped_test"] == [[538.5, 0.699]] and j["points"] == [3, 6] and j["bd_rate_strict"] is None
    summary = "# x\n\nBD-rate: negative old note\n\n## BD-rate\n\n| old |\n\n## Points\n\n| p |\n"
    new = replace_bd_section(summary, entries)
    assert new.startswith("# x\n\nBD-rate: negative") and new.endswith("## Points\n\n| p |\n")
    assert "| old |" not in new
    assert f"{e.value:+.1f} % (envelope; dropped test point at 538.5 kbit/s; strict n/a" in new
    with pytest.raises(InputError, match="Points"):
        replace_bd_section("# no tables\n", entries)
    # the old dict form, kept one release behind a DeprecationWarning: the same entries
    from vcodec.eval.runner import bd_entries as old_bd_entries

    with pytest.warns(DeprecationWarning, match="curves.bd_entries"):
        old = old_bd_entries([r.to_json() for r in rows])
    assert old == [x.to_json() for x in entries]
