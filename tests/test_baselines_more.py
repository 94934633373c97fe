"""Tests of the classical baselines Top-Hat, Max-Median, MPCM, TLLCM and PSTNN (irstd.baselines).

Each method is checked against hand-computed values or a straightforward per-pixel / per-slice
implementation written here, on tiny arrays built in the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from irstd.baselines import METHODS, maxmedian, mpcm, pstnn, pstnn_decompose, segment, tllcm, tophat
from irstd.baselines.pstnn import _prox_pstnn, prior_weight, rank_n
from irstd.baselines.tllcm import top_k_mean
from irstd.errors import InputError

NEW = ("tophat", "maxmedian", "mpcm", "tllcm", "pstnn")
FUNCS = {"tophat": tophat, "maxmedian": maxmedian, "mpcm": mpcm, "tllcm": tllcm, "pstnn": pstnn}


def _clamped(img, y, x):
    """Pixel with edge replication (MATLAB 'replicate')."""
    h, w = img.shape
    return img[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]


def _smooth_scene(h=120, w=160, seed=0, targets=((50, 70),), amp=80.0):
    """Smooth background (no flat pixel) + mild noise + a few small bright blobs, 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 90 + 30 * np.sin(yy / 17.0) * np.cos(xx / 23.0) + 0.2 * xx + rng.normal(0, 1.0, (h, w))
    for y, x in targets:
        img[y - 1:y + 2, x - 1:x + 2] += amp / 2
        img[y, x] += amp / 2
    return img


# ---------------------------------------------------------------- registry and common contract

def test_registered_with_display_names():
    for name, display in zip(NEW, ("Top-Hat", "Max-Median", "MPCM", "TLLCM", "PSTNN")):
        b = METHODS[name]
        assert b.name == name and b.display == display and b.k > 0 and b.description
        assert b.fn is FUNCS[name]


@pytest.mark.parametrize("name", NEW)
def test_nan_and_shape_rejected(name):
    img = np.full((50, 50), 10.0)
    img[3, 4] = np.nan
    with pytest.raises(InputError, match="^image: "):
        FUNCS[name](img)
    with pytest.raises(InputError, match="^image: "):
        FUNCS[name](np.zeros((4, 5, 3)))


@pytest.mark.parametrize("name", NEW)
def test_constant_image_gives_zero_map(name):
    for value in (0.0, 37.0):
        out = FUNCS[name](np.full((80, 90), value))
        assert out.shape == (80, 90) and out.dtype == np.float64
        assert np.array_equal(out, np.zeros((80, 90))), name


@pytest.mark.parametrize("name", NEW)
def test_bright_point_is_the_maximum(name):
    img = _smooth_scene(targets=((60, 85),), amp=120.0) if name == "pstnn" else np.full((60, 70), 50.0)
    if name != "pstnn":
        img[30, 33] = 200.0
        y, x = 30, 33
    else:
        y, x = 60, 85
    out = FUNCS[name](img)
    # the maximum is reached at the point (MPCM: on the 3x3 plateau of the cells containing it)
    assert out[y, x] == out.max() > 0
    if name != "mpcm":
        assert np.unravel_index(np.argmax(out), out.shape) == (y, x)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", NEW)
def test_uint8_equals_float(name):
    img = np.clip(_smooth_scene(h=80, w=120, seed=3), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(FUNCS[name](img), FUNCS[name](img.astype(np.float64)))


# ---------------------------------------------------------------- Top-Hat

def _tophat_loop(img, size=5):
    """Opening with the outside ignored (MATLAB imopen / OpenCV), per pixel."""
    h, w = img.shape
    r = size // 2
    ero = np.empty_like(img)
    for y in range(h):
        for x in range(w):
            ero[y, x] = img[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].min()
    opened = np.empty_like(img)
    for y in range(h):
        for x in range(w):
            opened[y, x] = ero[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].max()
    return img - opened


def test_tophat_hand_values():
    img = np.zeros((7, 7))
    img[3, 3] = 5.0  # a point: removed by the opening
    np.testing.assert_array_equal(tophat(img), img)
    img = np.zeros((9, 9))
    img[2:7, 2:7] = 10.0  # exactly the 5x5 element: kept by the opening
    np.testing.assert_array_equal(tophat(img), np.zeros((9, 9)))
    img[2:7, 2] = 4.0  # one column narrower at 10: a 5x4 plateau of 10 on a column of 4
    out = tophat(img)
    np.testing.assert_array_equal(out[2:7, 3:7], np.full((5, 4), 6.0))
    np.testing.assert_array_equal(out[2:7, 2], np.zeros(5))


def test_tophat_matches_loop_and_is_nonnegative():
    img = np.random.default_rng(4).integers(0, 256, (13, 17)).astype(float)
    out = tophat(img)
    np.testing.assert_array_equal(out, _tophat_loop(img))
    assert (out >= 0).all()
    np.testing.assert_array_equal(tophat(img, size=3), _tophat_loop(img, 3))


def test_tophat_bad_size():
    for size in (0, 4, 2.5, True):
        with pytest.raises(InputError, match="^size: "):
            tophat(np.zeros((9, 9)), size=size)


# ---------------------------------------------------------------- Max-Median

def _maxmedian_loop(img, r=7):
    h, w = img.shape
    out = np.empty_like(img)
    for y in range(h):
        for x in range(w):
            meds = []
            for dy, dx in ((1, 0), (0, 1), (1, 1), (1, -1)):
                vals = [_clamped(img, y + t * dy, x + t * dx) for t in range(-r, r + 1)]
                meds.append(np.median(vals))
            out[y, x] = max(img[y, x] - max(meds), 0.0)
    return out


def test_maxmedian_matches_loop():
    rng = np.random.default_rng(5)
    img = rng.normal(100, 30, (19, 23))
    np.testing.assert_allclose(maxmedian(img), _maxmedian_loop(img), rtol=0, atol=1e-9)
    img = rng.integers(0, 5, (11, 9)).astype(float)  # many ties
    np.testing.assert_allclose(maxmedian(img, radius=2), _maxmedian_loop(img, 2), rtol=0, atol=1e-9)


def test_maxmedian_hand_values():
    img = np.full((30, 30), 10.0)
    img[15, 15] = 90.0
    out = maxmedian(img)
    assert out[15, 15] == 80.0 and out.sum() == 80.0


@pytest.mark.parametrize("anti", [False, True])
def test_maxmedian_uses_all_four_directions(anti):
    # a one-pixel line along the (anti-)diagonal: only that direction's median sees it, so the
    # background equals the line and the residual on the line is 0. A version that drops the
    # anti-diagonal (the widely copied bug) would report the anti-diagonal line as target.
    img = np.zeros((31, 31))
    idx = np.arange(31)
    img[idx, idx[::-1] if anti else idx] = 100.0
    out = maxmedian(img)
    assert out[15, 15] == 0.0 and out.max() == 0.0


def test_maxmedian_border_replication():
    # a bright pixel in a corner: the replicated border repeats it along the lines that leave
    # the image (7 copies each), so the column median is the pixel itself
    img = np.full((20, 20), 10.0)
    img[0, 0] = 90.0
    assert maxmedian(img)[0, 0] == 0.0
    img[0, 0] = 10.0
    img[0, 10] = 90.0  # on the top edge: column and diagonals replicate it, the row does not
    assert maxmedian(img)[0, 10] == 0.0
    assert np.array_equal(maxmedian(img), _maxmedian_loop(img))


# ---------------------------------------------------------------- MPCM

def _mpcm_loop(img, sizes=(3, 5, 7, 9)):
    h, w = img.shape
    out = np.full((h, w), -np.inf)
    nb = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    for l in sizes:
        half = l // 2

        def mean(cy, cx):
            return np.mean([_clamped(img, cy + i, cx + j) for i in range(-half, half + 1)
                            for j in range(-half, half + 1)])
        for y in range(h):
            for x in range(w):
                c = mean(y, x)
                d = [c - mean(y + dy * l, x + dx * l) for dy, dx in nb]
                out[y, x] = max(out[y, x], min(d[k] * d[k + 4] for k in range(4)))
    return out


def test_mpcm_matches_loop():
    img = np.random.default_rng(6).normal(100, 30, (16, 18))
    np.testing.assert_allclose(mpcm(img), _mpcm_loop(img), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(mpcm(img, cell_sizes=(3,)), _mpcm_loop(img, (3,)), rtol=1e-12,
                               atol=1e-9)


def test_mpcm_hand_values_and_quirks():
    img = np.full((40, 40), 10.0)
    img[19:22, 19:22] = 100.0
    c = mpcm(img)
    # scale 3: centre mean 100, every neighbour 10 -> 90 * 90; scale 5: 32.4^2 (smaller)
    assert c[20, 20] == pytest.approx(8100.0, rel=1e-12)
    assert c[0, 0] == 0.0
    # a dark spot scores positive too (the public code does not clip the pair products)
    np.testing.assert_allclose(mpcm(110.0 - img)[20, 20], 8100.0, rtol=1e-12)
    # an edge scores negative: left half 0, right half 100, on the edge column
    edge = np.zeros((40, 40))
    edge[:, 20:] = 100.0
    assert mpcm(edge)[20, 20] < 0
    # shift invariant, quadratic in scale
    rng = np.random.default_rng(7)
    img = rng.normal(100, 20, (30, 30))
    np.testing.assert_allclose(mpcm(img + 50.0), mpcm(img), atol=1e-8)
    np.testing.assert_allclose(mpcm(3.0 * img), 9.0 * mpcm(img), rtol=1e-10, atol=1e-8)


def test_mpcm_bad_cell_sizes():
    for sizes in ((), (4,), (3, 0), (2.5,)):
        with pytest.raises(InputError, match="^cell_sizes: "):
            mpcm(np.zeros((20, 20)), cell_sizes=sizes)


# ---------------------------------------------------------------- TLLCM

def _tllcm_loop(img):
    h, w = img.shape
    kern = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0
    peak = img.max()
    eps = np.finfo(float).eps * peak if peak > 0 else 1.0
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            core = sum(kern[i + 1, j + 1] * _clamped(img, y + i, x + j)
                       for i in (-1, 0, 1) for j in (-1, 0, 1))
            bmax = -np.inf
            for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)):
                vals = [img[yy, xx] if 0 <= yy < h and 0 <= xx < w else 0.0  # ordfilt2: zeros
                        for yy in range(y + 9 * dy - 4, y + 9 * dy + 5)
                        for xx in range(x + 9 * dx - 4, x + 9 * dx + 5)]
                bmax = max(bmax, np.mean(sorted(vals)[-9:]))
            out[y, x] = max(core * core / max(bmax, eps) - core, 0.0)
    return out


def test_tllcm_matches_loop():
    img = np.random.default_rng(8).integers(0, 256, (21, 24)).astype(float)
    np.testing.assert_allclose(tllcm(img), _tllcm_loop(img), rtol=1e-12, atol=1e-9)


def test_tllcm_hand_values():
    img = np.full((60, 60), 100.0)
    img[29:32, 29:32] = 200.0
    c = tllcm(img)
    # core 200 (the Gaussian sees only the blob), every outer cell 100: 200^2/100 - 200
    assert c[30, 30] == 200.0
    # on the blob's left column the core is 175 (kernel weights 12/16 on the blob): 175^2/100
    # - 175 = 131.25; the outer cells (centred 9 px away, 9x9) never reach the blob there
    assert c[30, 29] == pytest.approx(175.0 ** 2 / 100.0 - 175.0, rel=1e-14)
    # left of the blob: core 125 (weights 4/16): 125^2/100 - 125
    assert c[30, 28] == pytest.approx(125.0 ** 2 / 100.0 - 125.0, rel=1e-14)
    assert c[0, 0] == 0.0 and (c >= 0).all()


def test_tllcm_zero_division_documented():
    # black image: 0/0 -> 0; a bright pixel on black: x/0 -> x/(eps*max): finite, huge
    assert np.array_equal(tllcm(np.zeros((40, 40))), np.zeros((40, 40)))
    img = np.zeros((40, 40))
    img[20, 20] = 160.0
    c = tllcm(img)
    assert np.isfinite(c).all()
    core = 160.0 * 4 / 16
    assert c[20, 20] == pytest.approx(core ** 2 / (np.finfo(float).eps * 160.0) - core)


@pytest.mark.parametrize("block", [None, 200])
def test_top_k_mean_against_sort(block, monkeypatch):
    import sys

    from numpy.lib.stride_tricks import sliding_window_view

    if block:  # several blocks of output rows (a few rows each)
        monkeypatch.setattr(sys.modules["irstd.baselines.tllcm"], "_BLOCK_ELEMENTS", block)
    rng = np.random.default_rng(9)
    for size, k in ((9, 9), (5, 3), (8, 4), (7, 7), (3, 1), (6, 6), (1, 1)):
        a = rng.integers(0, 20, (17, 19)).astype(float)  # ties
        win = sliding_window_view(a, (size, size)).reshape(18 - size, 20 - size, -1)
        ref = np.sort(win, axis=-1)[..., -k:].mean(-1)
        np.testing.assert_allclose(top_k_mean(a, size, k), ref, rtol=1e-14, atol=1e-13)


# ---------------------------------------------------------------- PSTNN

def _pstnn_reference(img, p=40, lambda_l=0.7, flat_weight=None):
    """Straightforward transcription of Demo.m / trpca_pstnn.m (explicit loops, full FFT)."""
    h, w = img.shape

    def starts(length):  # gen_patch_ten: [1 : step : (n-1)*step, length - p + 1], 0-based
        n = int(np.ceil((length - p) / p)) + 1
        return list(range(0, (n - 1) * p, p))[:n - 1] + [length - p]

    pos = [(r, c) for c in starts(w) for r in starts(h)]  # column-outer, as meshgrid + arrayfun

    def tensor(a):
        return np.stack([a[r:r + p, c:c + p] for r, c in pos], axis=2)  # (p, p, n3)

    D = tensor(img)
    n3 = D.shape[2]
    Wt = tensor(prior_weight(img, flat_weight))
    lam = lambda_l / np.sqrt(p * n3)
    # rankN: MATLAB reshape(X, n3, []) of the column-major tensor
    s = np.linalg.svd(D.reshape(n3, -1, order="F"), compute_uv=False)
    ratio = s / s[0]
    below = np.flatnonzero(ratio < 0.1)
    N = max(1, int(below[0])) if below.size else len(s)
    L = np.zeros_like(D)
    S = np.zeros_like(D)
    Y = np.zeros_like(D)
    weight = np.ones_like(D)
    mu = 2e-3
    for it in range(1, 501):
        pre = np.count_nonzero(S > 0)
        R = -S + D - Y / mu
        F = np.fft.fft(R, axis=2)
        out = np.zeros_like(F)
        for i in range(n3 // 2 + 1):
            u, sv, vh = np.linalg.svd(F[:, :, i], full_matrices=False)
            sv = np.concatenate([sv[:N], np.maximum(sv[N:] - 1 / mu, 0)])
            out[:, :, i] = (u * sv) @ vh
            if 0 < i and n3 - i != i:
                out[:, :, n3 - i] = np.conj(out[:, :, i])
        L = np.real(np.fft.ifft(out, axis=2))
        T = -L + D - Y / mu
        thr = weight * lam / mu
        x = np.fmax(0, T - thr) + np.fmin(0, T + thr)  # MATLAB max/min ignore NaN
        S = np.fmax(x, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = N / (np.abs(S) + 0.01) / Wt
        dY = L + S - D
        err = np.linalg.norm(dY) / np.linalg.norm(D)
        cur = np.count_nonzero(S > 0)
        if err < 1e-3 or (pre > 0 and cur > 0 and pre == cur):
            break
        Y = Y + dY * mu
        mu = min(1.05 * mu, 1e10)
    rec = np.zeros((h, w))
    for k, (r, c) in enumerate(pos):  # last written wins
        rec[r:r + p, c:c + p] = S[:, :, k]
    return rec, it, N


@pytest.mark.parametrize("shape,seed", [((120, 160), 0), ((130, 175), 1), ((100, 90), 2)])
def test_pstnn_matches_straightforward(shape, seed):
    h, w = shape
    img = _smooth_scene(h, w, seed=seed, targets=((h // 3, w // 3), (2 * h // 3, w // 2)))
    img[5:25, 5:30] = 200.0  # a flat patch: NaN prior weight there
    ref, ref_it, ref_n = _pstnn_reference(img)
    target, _, info = pstnn_decompose(img)
    assert info["iterations"] == ref_it and info["N"] == ref_n
    assert np.isnan(prior_weight(img)).any()
    np.testing.assert_allclose(target, ref, rtol=0, atol=1e-9 * max(ref.max(), 1.0))
    assert (target >= 0).all()


def test_pstnn_flat_weight_matlab_variant():
    img = _smooth_scene(120, 160, seed=4)
    img[5:25, 5:30] = 200.0
    ref, ref_it, _ = _pstnn_reference(img, flat_weight=1.0)
    target, _, info = pstnn_decompose(img, flat_weight=1.0)
    assert info["iterations"] == ref_it
    np.testing.assert_allclose(target, ref, rtol=0, atol=1e-9 * max(ref.max(), 1.0))
    pw = prior_weight(img, flat_weight=1.0)
    assert np.isfinite(pw).all() and pw.min() == 0.0 and pw.max() == 1.0


def _cluttered_scene(h=160, w=200, seed=1):
    """Smooth clutter, a ramp, noise and five small blobs, clipped to 0..255."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = 80 + 480 * ndimage.gaussian_filter(rng.standard_normal((h, w)), 6)
    img += 0.3 * np.arange(w)[None, :] + rng.normal(0, 2, (h, w))
    for _ in range(5):
        y, x = rng.integers(5, h - 5), rng.integers(5, w - 5)
        img[y - 1:y + 2, x - 1:x + 2] += rng.uniform(20, 80)
    return np.clip(img, 0, 255)


def test_pstnn_iteration_count_is_stable():
    img = _cluttered_scene()
    t0, _, info0 = pstnn_decompose(img)
    assert info0["stop"] == "count" and info0["iterations"] == 4
    # (a) perturbed at the 1e-10 level: the same stopping iteration and map
    rng = np.random.default_rng(6)
    t1, _, info1 = pstnn_decompose(img * (1 + 1e-12 * rng.standard_normal(img.shape)))
    assert info1["iterations"] == info0["iterations"]
    np.testing.assert_allclose(t1, t0, rtol=0, atol=1e-6 * t0.max())
    # (b) rotated by 180 degrees: with sides multiple of the patch the patch grid maps onto
    # itself with the patch order reversed, which PSTNN is equivariant to (the t-SVD commutes
    # with reversing the third mode, the structure tensor with the rotation, rankN's reshape
    # reverses as a whole); only the rounding differs. (Transposition and scaling are not
    # symmetries of the public code: the patch order and the absolute constants 0.01, mu0 change
    # the problem.)
    t2, _, info2 = pstnn_decompose(img[::-1, ::-1].copy())
    assert info2["iterations"] == info0["iterations"]
    assert info2["target_count"] == info0["target_count"]
    np.testing.assert_allclose(t2[::-1, ::-1], t0, rtol=0, atol=1e-8 * t0.max())


def test_pstnn_rank_n_is_the_plain_reshape():
    rng = np.random.default_rng(10)
    p, n3 = 4, 6
    # a tensor whose column-major reshape to n3 rows has rank 2 but whose mode-3 unfolding is
    # full rank: the two readings give different N
    D = rng.standard_normal((n3, 2)) @ rng.standard_normal((2, p * p))
    tensor = D.reshape(-1, order="F").reshape((p, p, n3), order="F")
    X = np.stack([tensor[:, :, k].reshape(-1, order="F") for k in range(n3)])  # (n3, p*p)
    assert rank_n(X, 1e-6) == 2
    mode3 = np.stack([tensor[:, :, k].ravel() for k in range(n3)])
    assert np.linalg.matrix_rank(mode3) > 2
    assert rank_n(np.ones((5, 16)), 0.1) == 1


def test_pstnn_prior_weight_nan_on_flat_pixels():
    img = _smooth_scene(60, 70, seed=11, targets=((10, 55),))
    img[20:40, 20:40] = 50.0
    pw = prior_weight(img)
    assert np.isnan(pw[25:35, 25:35]).all()
    fin = pw[np.isfinite(pw)]
    assert fin.min() == 0.0 and fin.max() == 1.0


def test_pstnn_constant_and_errors():
    t, b, info = pstnn_decompose(np.zeros((80, 80)))
    assert info["stop"] == "constant" and info["iterations"] == 0 and not t.any()
    t, b, info = pstnn_decompose(np.full((80, 80), 42.0))
    assert info["iterations"] == 1 and not t.any()
    np.testing.assert_allclose(b, 42.0, rtol=1e-12)
    with pytest.raises(InputError, match="^image: "):
        pstnn(np.zeros((30, 80)))
    with pytest.raises(InputError, match="^max_iter: "):
        pstnn(np.zeros((80, 80)), max_iter=0)
    with pytest.raises(InputError, match="^tol: "):
        pstnn(np.zeros((80, 80)), tol=-1.0)
    with pytest.raises(InputError, match="^flat_weight: "):
        pstnn(np.zeros((80, 80)), flat_weight=np.nan)


def test_pstnn_prox_matches_per_slice_loop():
    rng = np.random.default_rng(12)
    p = 5
    for n3 in (1, 2, 5, 6):
        R = rng.standard_normal((n3, p * p))
        got = _prox_pstnn(R, 2, 0.5, p)
        T = np.stack([R[k].reshape(p, p).T for k in range(n3)], axis=2)  # MATLAB slices
        F = np.fft.fft(T, axis=2)
        out = np.zeros_like(F)
        for i in range(n3):
            u, s, vh = np.linalg.svd(F[:, :, i])
            s = np.concatenate([s[:2], np.maximum(s[2:] - 2.0, 0)])
            out[:, :, i] = (u * s) @ vh
        want = np.real(np.fft.ifft(out, axis=2))
        want = np.stack([want[:, :, k].T.ravel() for k in range(n3)])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_segment_defaults_detect_the_target():
    img = _smooth_scene(120, 160, seed=13, targets=((60, 80),), amp=120.0)
    for name in NEW:
        mask = segment(FUNCS[name](img), METHODS[name].k)
        assert mask[60, 80], name
