"""The metrics engine against hand-computed cases and an independent reference re-implementation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage import measure

from irstd.errors import InputError
from irstd.metrics import (
    DEFAULT_SWEEP,
    EPS,
    Evaluator,
    as_mask,
    components,
    match_centroids,
    match_targets,
    pr_curve,
    precision_recall_f1,
    roc_curve,
)
from reference_basicirstd import ReferencePdFa, reference_evaluate, reference_roc_auc_ap

TOL = 1e-9


# -- random prediction maps ----------------------------------------------------------------------


def _random_gt(rng, h, w, max_targets=5):
    gt = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(0, max_targets + 1)):
        r, c = rng.integers(0, h), rng.integers(0, w)
        if rng.random() < 0.5:
            gt[r : r + rng.integers(1, 7), c : c + rng.integers(1, 7)] = 255
        else:
            rr, cc = np.ogrid[:h, :w]
            gt[(rr - r) ** 2 + (cc - c) ** 2 <= rng.integers(1, 17)] = 255
    return gt


def _random_scores(rng, gt, kind):
    """A float64 score map in [0, 1] made from ``gt`` in one of several ways."""
    h, w = gt.shape
    mask = gt > 127
    if kind == "empty":
        return np.zeros((h, w))
    if kind == "noise":
        return rng.random((h, w))
    if kind == "perfect":
        return mask.astype(float)
    # "blobs": a distorted copy of the GT plus false alarms, smoothed and noised.
    pred = mask.copy()
    if rng.random() < 0.4:
        pred = ndimage.binary_dilation(pred, iterations=int(rng.integers(1, 3)))
    elif rng.random() < 0.3:
        pred = ndimage.binary_erosion(pred)
    pred = np.roll(pred, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
    for _ in range(rng.integers(0, 6)):  # false alarms, some the size of typical hits
        r, c = rng.integers(0, h), rng.integers(0, w)
        size = int(rng.choice([1, 2, 3]))
        pred[r : r + size, c : c + size] = True
    scores = ndimage.gaussian_filter(pred.astype(float), sigma=rng.uniform(0.3, 1.5))
    scores = scores / max(scores.max(), 1e-12) * rng.uniform(0.6, 1.0)
    scores += rng.normal(0, rng.uniform(0, 0.15), size=(h, w))
    return np.clip(scores, 0.0, 1.0)


def _random_dataset(seed, count=40):
    rng = np.random.default_rng(seed)
    kinds = ["blobs"] * 6 + ["noise", "empty", "perfect"]
    cases = []
    for _ in range(count):
        h, w = int(rng.integers(8, 70)), int(rng.integers(8, 90))
        gt = _random_gt(rng, h, w)
        scores = _random_scores(rng, gt, kinds[rng.integers(len(kinds))])
        cases.append((scores, gt))
    return cases


def _to_uint8(scores):
    return np.floor(scores * 255).astype(np.uint8)  # ToPILImage's truncation


def _ours(cases, threshold=0.5, **kwargs):
    ev = Evaluator(threshold, **kwargs)
    for k, (scores, gt) in enumerate(cases):
        ev.update(scores, gt, image_id=f"img{k}")
    return ev


def _assert_agrees(summary, ref):
    for key in ("miou", "niou", "pd", "fa"):
        assert abs(summary[key] - ref[key]) <= TOL, (key, summary[key], ref[key])
    assert abs(summary["recall"] - ref["pixacc"]) <= TOL
    assert summary["hits"] == ref["hits"]
    assert summary["targets"] == ref["targets"]
    assert summary["false_alarm_pixels"] == ref["false_alarm_pixels"]


# -- agreement with the reference ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.7])
def test_agrees_with_reference_on_8bit_maps(seed, threshold):
    cases = [(_to_uint8(s), g) for s, g in _random_dataset(seed)]
    ours = _ours(cases, threshold, sweep=None).summary()
    # The reference reads PNGs as float32 / 255 and thresholds those.
    ref = reference_evaluate(
        [(s.astype(np.float32) / 255.0, g.astype(np.float32) / 255.0) for s, g in cases], threshold
    )
    assert ref["targets"] > 20 and ref["hits"] > 0 and ref["false_alarm_pixels"] > 0
    _assert_agrees(ours, ref)


@pytest.mark.parametrize("seed", [3, 4])
def test_agrees_with_reference_on_float_maps(seed):
    cases = [(s.astype(np.float32), g) for s, g in _random_dataset(seed)]
    ours = _ours(cases, sweep=None).summary()
    ref = reference_evaluate([(s, g.astype(np.float32) / 255.0) for s, g in cases])
    _assert_agrees(ours, ref)


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.2])
def test_uint8_float32_float64_inputs_give_the_same_numbers(threshold):
    # 0.6 = 153/255 and 0.2 = 51/255: an 8-bit value equal to the threshold is never above it.
    cases = [(_to_uint8(s), g) for s, g in _random_dataset(5, 20)]
    a = _ours(cases, threshold).summary()
    for dtype in (np.float32, np.float64):
        b = _ours([(s.astype(dtype) / dtype(255), g > 127) for s, g in cases], threshold).summary()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-12, nan_ok=True), (dtype, key)


def test_pd_fa_curve_matches_reference_at_every_threshold():
    cases = [(_to_uint8(s), g) for s, g in _random_dataset(6, 12)]
    curve = _ours(cases).pd_fa_curve()
    assert np.array_equal(curve.thresholds, DEFAULT_SWEEP)
    for k in range(0, 101, 3):
        t = float(curve.thresholds[k])  # a Python float, compared at float32 as in PyTorch
        ref = reference_evaluate(
            [(s.astype(np.float32) / 255.0, g.astype(np.float32) / 255.0) for s, g in cases], t
        )
        assert curve.hits[k] == ref["hits"], t
        assert curve.false_alarm_pixels[k] == ref["false_alarm_pixels"], t
        assert abs(curve.pd[k] - ref["pd"]) <= TOL and abs(curve.fa[k] - ref["fa"]) <= TOL
    assert curve.hits[-1] == 0 and curve.false_alarm_pixels[-1] == 0  # score > 1 never holds


def test_summary_at_threshold_equals_its_sweep_point():
    cases = _random_dataset(7, 15)
    ev = _ours(cases, 0.37, sweep=[0.1, 0.37, 0.9])
    s, curve = ev.summary(), ev.pd_fa_curve()
    assert curve.hits[1] == s["hits"] and curve.false_alarm_pixels[1] == s["false_alarm_pixels"]


def test_best_threshold_is_the_sweep_point_with_the_highest_iou():
    cases = _random_dataset(11, 25)
    ev = _ours(cases)
    best = ev.best_threshold()
    at = _ours(cases, best["threshold"]).summary()  # a plain evaluation at that threshold
    for key in ("miou", "niou", "pd", "fa", "precision", "recall", "f1", "hits", "false_alarm_pixels", "tp", "fp",
                "fn"):
        assert best[key] == pytest.approx(at[key], abs=1e-12), key
    ious = [_ours(cases, t, sweep=None).summary()["miou"] for t in DEFAULT_SWEEP]
    assert best["miou"] == pytest.approx(max(ious), abs=1e-12)
    assert best["threshold"] == DEFAULT_SWEEP[int(np.argmax(ious))]  # ties: the lowest threshold
    assert Evaluator(sweep=None).best_threshold() is None and Evaluator().best_threshold() is None


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_sweep_counts_at_the_maps_precision(dtype):
    # Scores exactly on the sweep thresholds (float32 k/100, or 8-bit v/255 with 153/255 = 0.6):
    # the sweep's counts must agree with threshold_scores at every threshold.
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(8):
        gt = _random_gt(rng, 40, 50)
        if dtype == np.float32:
            scores = (rng.integers(0, 101, gt.shape) / 100).astype(np.float32)
        else:
            scores = rng.choice(np.array([0, 51, 102, 153, 204, 255], np.uint8), gt.shape)
        cases.append((scores, gt))
    ev = _ours(cases)
    for t in (0.2, 0.3, 0.6, 0.7):
        at = _ours(cases, t, sweep=None).summary()
        k = int(round(t * 100))
        assert ev.sweep_pred_pixels[k] == at["tp"] + at["fp"] and ev.sweep_intersection[k] == at["tp"]
        assert ev.pd_fa_curve().hits[k] == at["hits"]
    best = ev.best_threshold()
    at = _ours(cases, best["threshold"]).summary()
    for key in ("miou", "niou", "pd", "fa", "f1"):
        assert best[key] == pytest.approx(at[key], abs=1e-12), key


def test_best_threshold_uses_scores_under_an_own_rule_mask():
    cases = _random_dataset(12, 10)
    plain, own = _ours(cases), Evaluator()
    for k, (scores, gt) in enumerate(cases):
        own.update(scores, gt, image_id=f"img{k}", pred=np.zeros(scores.shape, bool))
    assert own.summary()["miou"] == 0.0
    assert own.best_threshold() == plain.best_threshold()


# -- curves --------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [8, 16])
def test_auc_ap_exact_for_integer_maps(depth):
    rng = np.random.default_rng(depth)
    cases = _random_dataset(8, 12)
    if depth == 8:
        maps = [_to_uint8(s) for s, _ in cases]
        scale = 255.0
    else:
        # Few distinct 16-bit values, so that ties matter.
        maps = [(np.round(s * 40) * 1000 + rng.integers(0, 3, s.shape)).astype(np.uint16) for s, _ in cases]
        scale = 65535.0
    gts = [g > 127 for _, g in cases]
    ev = _ours(list(zip(maps, gts)), sweep=None)
    auc, ap = reference_roc_auc_ap([m / scale for m in maps], gts)
    s = ev.summary()
    assert abs(s["auc"] - auc) <= TOL and abs(s["ap"] - ap) <= TOL
    # The exact (sort-based) functions agree with both.
    flat = np.concatenate([m.ravel() / scale for m in maps])
    flat_gt = np.concatenate([g.ravel() for g in gts])
    assert abs(roc_curve(flat, flat_gt).auc - auc) <= TOL
    assert abs(pr_curve(flat, flat_gt).ap - ap) <= TOL


def test_float_maps_curves_are_those_of_the_quantised_scores():
    cases = _random_dataset(9, 10)
    ev = _ours(cases, sweep=None)
    quantised = [np.rint(s * 65535) / 65535 for s, _ in cases]
    auc, ap = reference_roc_auc_ap(quantised, [g > 127 for _, g in cases])
    assert abs(ev.summary()["auc"] - auc) <= TOL and abs(ev.summary()["ap"] - ap) <= TOL
    raw_auc, _ = reference_roc_auc_ap([s for s, _ in cases], [g > 127 for _, g in cases])
    assert abs(ev.summary()["auc"] - raw_auc) < 1e-3


def test_roc_and_pr_shapes():
    ev = _ours([(_to_uint8(s), g) for s, g in _random_dataset(10, 8)], sweep=None)
    roc, pr = ev.roc(), ev.pr()
    assert roc.fpr[0] == 0 and roc.tpr[0] == 0 and roc.fpr[-1] == 1 and roc.tpr[-1] == 1
    assert np.all(np.diff(roc.fpr) >= 0) and np.all(np.diff(roc.tpr) >= 0)
    assert pr.recall[-1] == 0 and pr.precision[-1] == 1 and pr.recall[-2] == 1
    assert 0 < roc.auc <= 1 and 0 < pr.ap <= 1


def test_curves_undefined_without_targets():
    ev = Evaluator()
    ev.update(np.full((5, 5), 0.3), np.zeros((5, 5), bool))
    s = ev.summary()
    assert np.isnan(s["auc"]) and np.isnan(s["ap"]) and np.isnan(s["pd"])
    assert s["fa"] == 0 and s["niou"] == 0 and s["targets"] == 0


# -- hand-computed cases ----------------------------------------------------------------------------


def _pixels(shape, *points):
    m = np.zeros(shape, bool)
    for r, c in points:
        m[r, c] = True
    return m


def test_greedy_first_found_is_not_nearest():
    gt = _pixels((20, 20), (10, 10), (10, 14))  # targets A (label 1), B (label 2)
    # P1 at (10, 12): 2 px from A and from B, label 1; P0 at (11, 9): 1.4 px from A, label 2.
    pred = _pixels((20, 20), (10, 12), (11, 9))
    m = match_targets(pred, gt)
    # A takes P1 (first found), B finds nothing within 3 px: 1 hit, P0 is a false alarm.
    # Nearest-neighbour or optimal assignment would give 2 hits and no false alarm.
    assert (m.targets, m.hits, m.false_alarm_pixels) == (2, 1, 1)
    assert list(m.matches) == [0, -1]
    ref = ReferencePdFa()
    ref.update(pred, gt, gt.shape)
    assert (ref.PD, ref.dismatch_pixel) == (1, 1)


def test_unmatched_area_counts_all_unmatched_components():
    gt = np.zeros((30, 30), bool)
    gt[2:4, 2:4] = True
    pred = np.zeros((30, 30), bool)
    pred[2:4, 2:4] = True  # area 4, matched
    pred[10:12, 20:22] = True  # area 4, false alarm
    pred[20:23, 5:8] = True  # area 9, false alarm
    m = match_targets(pred, gt)
    assert (m.hits, m.components, m.false_alarm_pixels) == (1, 3, 13)
    ev = Evaluator()
    ev.update(pred, gt)
    assert ev.summary()["fa"] == 13 / 900
    # DNANet's area-value filter drops the unmatched area-4 component too: 9 instead of 13.
    buggy = ReferencePdFa(area_filter=True)
    buggy.update(pred, gt, gt.shape)
    assert buggy.dismatch_pixel == 9


def test_blob_covering_two_targets_matches_neither():
    gt = np.zeros((21, 21), bool)
    gt[9:12, 4:7] = True  # centroid (10, 5)
    gt[9:12, 14:17] = True  # centroid (10, 15)
    pred = np.zeros((21, 21), bool)
    pred[8:13, 3:18] = True  # one blob, centroid (10, 10)
    m = match_targets(pred, gt)
    assert (m.targets, m.hits, m.components, m.false_alarm_pixels) == (2, 0, 1, 75)


def test_distance_exactly_three_is_not_a_hit():
    gt = _pixels((20, 20), (10, 10))
    assert match_targets(_pixels((20, 20), (10, 13)), gt).hits == 0  # 3.0
    assert match_targets(_pixels((20, 20), (13, 10)), gt).hits == 0
    assert match_targets(_pixels((20, 20), (10, 12), (10, 13)), gt).hits == 1  # 2.5
    assert match_targets(_pixels((20, 20), (12, 12)), gt).hits == 1  # 2.83


def test_each_predicted_component_is_used_once():
    gt = _pixels((20, 20), (10, 9), (10, 11))
    pred = _pixels((20, 20), (10, 10))
    m = match_targets(pred, gt)
    assert (m.targets, m.hits, m.false_alarm_pixels) == (2, 1, 0)


def test_dnanet_false_alarm_rule_drops_areas_of_matched_components():
    gt = np.zeros((40, 40), bool)
    gt[5:7, 5:7] = True
    pred = np.zeros((40, 40), bool)
    pred[5:7, 5:7] = True      # area 4, matched
    pred[20:22, 20:22] = True  # area 4, a false alarm of a matched component's size
    pred[30:33, 30:33] = True  # area 9
    assert match_targets(pred, gt).false_alarm_pixels == 13
    assert match_targets(pred, gt, fa_rule="dnanet").false_alarm_pixels == 9
    ev = Evaluator(fa_rule="dnanet")
    ev.update(pred.astype(float), gt)
    assert ev.summary()["false_alarm_pixels"] == 9 and ev.pd_fa_curve().false_alarm_pixels[50] == 9
    with pytest.raises(ValueError):
        Evaluator(fa_rule="dnanet").merge(Evaluator())
    with pytest.raises(InputError, match="fa_rule"):
        Evaluator(fa_rule="mshnet")


def test_empty_gt_image_scores_niou_zero():
    ev = Evaluator()
    ev.update(np.zeros((8, 8)), np.zeros((8, 8), bool), image_id="empty")
    gt = np.zeros((8, 8), bool)
    gt[2:4, 2:4] = True
    ev.update(gt.astype(float), gt, image_id="perfect")
    s = ev.summary()
    assert [r["iou"] for r in ev.per_image] == [0.0, 4 / (4 + EPS)]
    assert s["niou"] == pytest.approx(0.5)
    assert s["miou"] == 4 / (4 + EPS)


def test_eight_connectivity():
    pred = _pixels((10, 10), (2, 2), (3, 3))  # diagonal neighbours: one component
    assert components(pred).count == 1
    gt = _pixels((10, 10), (2, 2), (3, 3))
    assert match_targets(pred, gt).targets == 1


def test_threshold_is_strict():
    gt = _pixels((4, 4), (1, 1))
    ev = Evaluator(0.5)
    ev.update(np.where(gt, 0.5, 0.0), gt)
    assert ev.summary()["hits"] == 0 and ev.summary()["miou"] == 0
    ev = Evaluator(0.5)
    ev.update(np.where(gt, 128, 127).astype(np.uint8), gt)  # 128/255 > 0.5, 127/255 < 0.5
    assert ev.summary()["hits"] == 1 and ev.summary()["fa"] == 0


# -- pixel precision / recall / F1 ------------------------------------------------------------------


def test_precision_recall_f1():
    assert precision_recall_f1(6, 2, 4) == pytest.approx((0.75, 0.6, 2 * 0.75 * 0.6 / 1.35))
    assert precision_recall_f1(0, 0, 5) == (0.0, 0.0, 0.0)  # nothing predicted
    assert precision_recall_f1(0, 3, 0) == (0.0, 0.0, 0.0)  # no target pixels
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)


def test_precision_recall_f1_in_summary():
    gt = np.zeros((10, 10), bool)
    gt[2:5, 2:5] = True  # 9 pixels
    scores = np.zeros((10, 10))
    scores[2:5, 2:4] = 0.9  # 6 true positives
    scores[8, 8] = scores[8, 9] = 0.9  # 2 false positives
    ev = Evaluator()
    ev.update(scores, gt)
    s = ev.summary()
    assert (s["tp"], s["fp"], s["fn"]) == (6, 2, 3)
    assert s["precision"] == 0.75 and s["recall"] == 6 / 9
    assert s["f1"] == pytest.approx(2 * 6 / (8 + 9))


# -- building blocks ---------------------------------------------------------------------------------


def test_components_identical_to_skimage():
    rng = np.random.default_rng(11)
    for _ in range(30):
        mask = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < rng.uniform(0.05, 0.6)
        comp = components(mask)
        labels = measure.label(mask, connectivity=2)
        assert np.array_equal(comp.labels, labels)
        props = measure.regionprops(labels)
        assert comp.count == len(props)
        for k, region in enumerate(props):
            assert tuple(comp.centroids[k]) == tuple(region.centroid)  # bit-identical
            assert comp.areas[k] == region.area


def _loop_match(gt_c, pred_c, max_distance=3.0):
    remaining = list(range(len(pred_c)))
    out = []
    for g in gt_c:
        hit = -1
        for pos, j in enumerate(remaining):
            if np.linalg.norm(np.asarray(pred_c[j]) - np.asarray(g)) < max_distance:
                hit = j
                del remaining[pos]
                break
        out.append(hit)
    return out


def test_vectorised_match_reproduces_the_loop():
    rng = np.random.default_rng(12)
    for _ in range(300):
        gt_c = rng.uniform(0, 8, size=(int(rng.integers(0, 7)), 2))
        pred_c = rng.uniform(0, 8, size=(int(rng.integers(0, 9)), 2))
        if rng.random() < 0.3:  # exact distances of 3 and duplicated centroids
            pred_c = np.round(pred_c)
            gt_c = np.round(gt_c)
        assert list(match_centroids(gt_c, pred_c)) == _loop_match(gt_c, pred_c)


def test_as_mask_rules():
    assert as_mask(np.array([[0, 1]], np.uint8)).tolist() == [[False, True]]
    assert as_mask(np.array([[0, 127, 128, 255]], np.uint8)).tolist() == [[False, False, True, True]]
    assert as_mask(np.array([[0, 40000]], np.uint16)).tolist() == [[False, True]]
    assert as_mask(np.array([[0.2, 0.7]])).tolist() == [[False, True]]


# -- streaming, merging, validation ------------------------------------------------------------------


def test_merge_equals_sequential():
    cases = _random_dataset(13, 20)
    whole = _ours(cases)
    a, b = Evaluator(), Evaluator()
    for k, (scores, gt) in enumerate(cases):
        (a if k < 7 else b).update(scores, gt, image_id=f"img{k}")
    merged = a.merge(b)
    s, t = whole.summary(), merged.summary()
    for key in s:
        assert s[key] == pytest.approx(t[key], abs=1e-12, nan_ok=True), key
    assert np.array_equal(whole.pd_fa_curve().hits, merged.pd_fa_curve().hits)
    assert whole.best_threshold() == pytest.approx(merged.best_threshold(), abs=1e-12)
    assert [r["id"] for r in merged.per_image] == [r["id"] for r in whole.per_image]
    with pytest.raises(ValueError):
        Evaluator(0.5).merge(Evaluator(0.4))


def test_per_image_rows():
    cases = _random_dataset(14, 5)
    ev = _ours(cases)
    assert [r["id"] for r in ev.per_image] == [f"img{k}" for k in range(5)]
    assert sum(r["targets"] for r in ev.per_image) == ev.summary()["targets"]
    assert sum(r["false_alarm_pixels"] for r in ev.per_image) == ev.summary()["false_alarm_pixels"]
    assert (ev.per_image[0]["height"], ev.per_image[0]["width"]) == cases[0][1].shape
    assert not _ours(cases, keep_per_image=False).per_image


@pytest.mark.parametrize(
    "scores, gt, message",
    [
        (np.zeros((4, 5)), np.zeros((4, 4), bool), "img7: score map is 5x4 (WxH) but the ground-truth mask is 4x4"),
        (np.full((4, 4), np.nan), np.zeros((4, 4), bool), "img7: score map contains NaN"),
        (np.full((4, 4), 1.5), np.zeros((4, 4), bool), "img7: scores must lie in [0, 1]"),
        (np.full((4, 4), -0.1), np.zeros((4, 4), bool), "img7: scores must lie in [0, 1]"),
        (np.zeros((4, 4), np.int32), np.zeros((4, 4), bool), "img7: score map has dtype int32"),
        (np.zeros((1, 4, 4)), np.zeros((4, 4), bool), "img7: score map must be 2-D"),
    ],
)
def test_bad_input_names_the_image(scores, gt, message):
    ev = Evaluator()
    with pytest.raises(InputError) as info:
        ev.update(scores, gt, image_id="img7")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert ev.images == 0 and ev.pixels == 0 and not ev.per_image  # unchanged


def test_bad_settings():
    with pytest.raises(InputError):
        Evaluator(1.5)
    with pytest.raises(InputError):
        Evaluator(sweep=[0.5, 0.2])


# -- real data -----------------------------------------------------------------------------------------


def _data_root() -> Path:
    return Path(os.environ.get("IRSTD_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.mark.data
def test_sirst_50_50_synthetic_predictions_agree_with_reference():
    root = _data_root() / "SIRST"
    split = root / "splits" / "dnanet_50_50" / "test.txt"
    if not split.is_file():
        pytest.skip(f"SIRST not found under {root} (set IRSTD_DATA)")
    from PIL import Image

    ids = split.read_text().split()
    rng = np.random.default_rng(2024)
    variants = {
        "dilated": lambda m: ndimage.binary_dilation(m).astype(float),
        "shifted": lambda m: np.roll(m, (2, -1), axis=(0, 1)).astype(float),
        "noised": lambda m: np.clip(
            ndimage.gaussian_filter(m.astype(float), 1.0) * 1.6 + rng.normal(0, 0.12, m.shape), 0, 1
        ),
    }
    for name, make in variants.items():
        cases = []
        for image_id in ids:
            gt = np.array(Image.open(root / "masks" / f"{image_id}.png"))
            scores = _to_uint8(make(gt > 127))
            cases.append((scores, gt))
        ours = _ours(cases, sweep=None).summary()
        ref = reference_evaluate(
            [(s.astype(np.float32) / 255.0, g.astype(np.float32) / 255.0) for s, g in cases]
        )
        assert ours["images"] == 214 and ref["targets"] == ours["targets"]
        _assert_agrees(ours, ref)


# -- pred: a method's own decision rule -----------------------------------------------------------


def test_update_with_own_rule_mask():
    rng = np.random.default_rng(5)
    gt = np.zeros((32, 32), bool)
    gt[4:7, 4:7] = True
    gt[20:22, 25:27] = True
    scores = rng.random((32, 32)) * 0.3
    scores[gt] = 0.9
    pred = np.zeros_like(gt)
    pred[4:7, 4:6] = True   # hits the first target only, partially
    pred[30, 0] = True      # a false alarm
    own = Evaluator(sweep=DEFAULT_SWEEP)
    row = own.update(scores, gt, image_id="a", pred=pred)
    assert row["pred_pixels"] == 7 and row["hits"] == 1 and row["false_alarm_pixels"] == 1
    s = own.summary()
    assert s["miou"] == pytest.approx(6 / (9 + 4 + 1))
    assert s["pd"] == 0.5 and s["fa"] == 1 / 1024
    # Curves come from the scores: identical to an evaluator fed the scores alone.
    ref = Evaluator(sweep=DEFAULT_SWEEP)
    ref.update(scores, gt, image_id="a")
    assert s["auc"] == ref.summary()["auc"] and s["ap"] == ref.summary()["ap"]
    np.testing.assert_array_equal(own.pd_fa_curve().pd, ref.pd_fa_curve().pd)
    np.testing.assert_array_equal(own.pd_fa_curve().fa, ref.pd_fa_curve().fa)
    # pred equal to the threshold rule gives the same result as no pred.
    same = Evaluator(sweep=DEFAULT_SWEEP)
    same.update(scores, gt, image_id="a", pred=scores > 0.5)
    assert same.summary() == ref.summary()


def test_update_pred_checks():
    ev = Evaluator()
    gt = np.zeros((8, 8), bool)
    with pytest.raises(InputError, match="boolean"):
        ev.update(np.zeros((8, 8)), gt, pred=np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="predicted mask is 9x8"):
        ev.update(np.zeros((8, 8)), gt, pred=np.zeros((8, 9), bool))
    assert ev.images == 0
