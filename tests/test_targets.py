"""irstd.targets: components of a detection mask with position, size and scores."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import measure

from irstd.errors import InputError
from irstd.targets import TARGET_FIELDS, find_targets, flatten_target


def test_hand_case():
    mask = np.zeros((10, 12), bool)
    mask[1:3, 8:11] = True          # 2x3 block
    mask[6, 2] = mask[7, 3] = True  # diagonal pair: one 8-connected target
    scores = np.zeros((10, 12))
    scores[1:3, 8:11] = [[0.2, 0.4, 0.6], [0.8, 1.0, 0.5]]
    scores[6, 2], scores[7, 3] = 0.9, 0.7
    targets = find_targets(mask, scores)
    assert [t["id"] for t in targets] == [1, 2]
    a, b = targets
    assert a["centroid"] == {"x": 9.0, "y": 1.5}
    assert a["bbox"] == {"x": 8, "y": 1, "width": 3, "height": 2}
    assert a["area"] == 6 and a["peak"] == 1.0 and a["mean"] == pytest.approx(3.5 / 6)
    assert b["centroid"] == {"x": 2.5, "y": 6.5}
    assert b["bbox"] == {"x": 2, "y": 6, "width": 2, "height": 2}
    assert b["area"] == 2 and b["peak"] == 0.9 and b["mean"] == pytest.approx(0.8)
    row = flatten_target(a)
    assert tuple(row) == TARGET_FIELDS and row["bbox_width"] == 3


def test_matches_regionprops_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(5):
        mask = rng.random((40, 50)) > 0.85
        scores = rng.random((40, 50))
        targets = find_targets(mask, scores)
        props = measure.regionprops(measure.label(mask, connectivity=2), intensity_image=scores)
        assert len(targets) == len(props)
        for t, p in zip(targets, props):
            assert (t["centroid"]["y"], t["centroid"]["x"]) == pytest.approx(p.centroid)
            r0, c0, r1, c1 = p.bbox
            assert t["bbox"] == {"x": c0, "y": r0, "width": c1 - c0, "height": r1 - r0}
            assert t["area"] == p.area
            assert t["peak"] == pytest.approx(p.intensity_max)
            assert t["mean"] == pytest.approx(p.intensity_mean)


def test_empty_and_bad():
    assert find_targets(np.zeros((5, 5), bool), np.zeros((5, 5))) == []
    with pytest.raises(InputError, match="one shape"):
        find_targets(np.zeros((5, 5), bool), np.zeros((5, 6)))
