"""Tests of RLCM, WSLCM, MSLCM, MSPCM and RIPT (irstd.baselines), against per-pixel loops."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from irstd.baselines import METHODS, lcm, mpcm, mslcm, mspcm, ript, ript_decompose, rlcm, wslcm
from irstd.baselines._orderstat import largest_sums, value_codes, window_largest
from irstd.baselines.ript import structure_weight
from irstd.errors import InputError

NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
EPS = np.finfo(np.float64).eps


def _images(h, w, seed):
    """The three value kinds of the order-statistics codes: 8-bit, 16-bit, arbitrary floats."""
    rng = np.random.default_rng(seed)
    return {
        "uint8-valued": rng.integers(0, 256, (h, w)).astype(np.float64),
        "uint16-valued": rng.integers(0, 3000, (h, w)).astype(np.float64),
        "float": rng.random((h, w)) * 200.0,
    }


def _cell(padded, y, x, dy, dx, s, pad):
    """Values of the s×s cell (dy, dx) of pixel (y, x) of an image padded by ``pad``."""
    cy, cx = y + pad + dy * s, x + pad + dx * s
    return padded[cy - s // 2:cy + s // 2 + 1, cx - s // 2:cx + s // 2 + 1].ravel()


def _top_mean(values, k):
    return np.sort(values)[::-1][:k].mean()


def _ratio_minus(centre, surround, peak):
    """``c² / b − c`` with the documented 0/0 -> 0 and x/0 -> x/(eps·peak) rules."""
    eps = EPS * peak if peak > 0 else 1.0
    num = centre * centre
    return 0.0 if num <= 0 else num / max(surround, eps) - centre


# ---------------------------------------------------------------- per-pixel loop references

def rlcm_loop(img, scales=((2, 4), (5, 9), (9, 16)), cell=9):
    """run_RLCM.m pixel by pixel: ordfilt2 (zero padding) means of the K largest values."""
    h, w = img.shape
    pad = cell + cell // 2
    z = np.pad(img, pad)
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            best = 0.0  # the code clips the maximum over scales at 0
            for k1, k2 in scales:
                centre = _top_mean(_cell(z, y, x, 0, 0, cell, pad), k1)
                surround = max(_top_mean(_cell(z, y, x, dy, dx, cell, pad), k2)
                               for dy, dx in NEIGHBOURS)
                best = max(best, _ratio_minus(centre, surround, img.max()))
            out[y, x] = best
    return out


def wslcm_loop(img, sizes=(5, 7, 9, 11), top=9, xi=5.0):
    """run_WSLCM.m pixel by pixel."""
    h, w = img.shape
    z1 = np.pad(img, 1)
    f = np.array([[np.median(z1[y:y + 3, x:x + 3]) for x in range(w)] for y in range(h)])
    kernel = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    e1 = np.pad(f, 1, mode="edge")
    g = np.array([[(e1[y:y + 3, x:x + 3] * kernel).sum() for x in range(w)] for y in range(h)])
    pad = max(sizes) + max(sizes) // 2
    fz = np.pad(f, pad)
    fe = np.pad(f, pad, mode="edge")
    out = np.full((h, w), -np.inf)
    for y in range(h):
        for x in range(w):
            for s in sizes:
                cells = [(0, 0)] + list(NEIGHBOURS)
                tops = np.array([_top_mean(_cell(fz, y, x, dy, dx, s, pad), top)
                                 for dy, dx in cells])
                means = np.array([_cell(fe, y, x, dy, dx, s, pad).mean() for dy, dx in cells])
                iril = tops - means
                slcm = max(_ratio_minus(g[y, x], tops[1:].max(), img.max()), 0.0)
                wd = max(iril[0] - iril[1:].max(), 0.0)
                wb = np.std(iril[1:], ddof=1)
                wb = wb if wb > xi else xi
                out[y, x] = max(out[y, x], iril[0] * wd / wb * slcm)
    return out


def mslcm_loop(img, sizes=(3, 5, 7, 9)):
    """MLCM_fun.m pixel by pixel: imdilate maximum, imfilter (replicate) neighbour means."""
    h, w = img.shape
    pad = max(sizes) + max(sizes) // 2
    e = np.pad(img, pad, mode="edge")
    out = np.full((h, w), -np.inf)
    for y in range(h):
        for x in range(w):
            for l in sizes:
                centre = _cell(e, y, x, 0, 0, l, pad).max()
                surround = max(_cell(e, y, x, dy, dx, l, pad).mean() for dy, dx in NEIGHBOURS)
                out[y, x] = max(out[y, x], _ratio_minus(centre, surround, img.max()) + centre)
    return out


def mspcm_loop(img, sizes=(3, 5, 7, 9)):
    """MPCM_fun.m pixel by pixel: min over opposite pairs of d_k·d_{k+4}, max over scales."""
    h, w = img.shape
    pad = max(sizes) + max(sizes) // 2
    e = np.pad(img, pad, mode="edge")
    out = np.full((h, w), -np.inf)
    for y in range(h):
        for x in range(w):
            for l in sizes:
                m0 = _cell(e, y, x, 0, 0, l, pad).mean()
                d = [m0 - _cell(e, y, x, dy, dx, l, pad).mean() for dy, dx in NEIGHBOURS]
                out[y, x] = max(out[y, x], min(d[k] * d[k + 4] for k in range(4)))
    return out


LOOPS = {"rlcm": (rlcm, rlcm_loop), "wslcm": (wslcm, wslcm_loop), "mslcm": (mslcm, mslcm_loop),
         "mspcm": (mspcm, mspcm_loop)}


@pytest.mark.parametrize("name", sorted(LOOPS))
@pytest.mark.parametrize("kind", ["uint8-valued", "uint16-valued", "float"])
def test_equals_per_pixel_loop(name, kind):
    fast, loop = LOOPS[name]
    img = _images(17, 22, seed=len(name))[kind]
    got, want = fast(img), loop(img)
    assert got.dtype == np.float64 and got.shape == img.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_loops_with_zero_regions():
    """Black regions: 0/0 and x/0 as documented (the references give NaN / +Inf)."""
    img = np.zeros((16, 20))
    img[3:6, 4:7] = 50.0
    img[12, 15] = 80.0
    for name, (fast, loop) in LOOPS.items():
        got = fast(img)
        assert np.isfinite(got).all(), name
        np.testing.assert_allclose(got, loop(img), rtol=1e-9, atol=1e-9 * np.abs(got).max())


# ---------------------------------------------------------------- hand-computed values

def test_rlcm_hand_values():
    img = np.full((60, 60), 100.0)
    img[29:32, 29:32] = 200.0
    c = rlcm(img)
    # wherever the 9×9 centre cell holds the whole target and no neighbour cell any of it
    # (|dy|, |dx| <= 3): centre means 200, neighbour means 100 -> 200² / 100 − 200, the maximum
    assert (c[27:34, 27:34] == 200.0).all() and c.max() == 200.0
    assert c[10, 10] == 0.0 and c[0, 0] == 0.0 and c[59, 59] == 0.0
    # zero padding (ordfilt2): on a 1-row image the horizontal neighbour cell has 9 pixels, so
    # its 16 largest values are 9 × 100 and 7 zeros; the scale (9, 16) gives 100² / 56.25 − 100
    row = rlcm(np.full((1, 40), 100.0))
    np.testing.assert_allclose(row[0, 12:28], 100.0 ** 2 / (900.0 / 16) - 100.0, rtol=1e-15)


def test_wslcm_hand_values():
    img = np.full((60, 60), 100.0)
    img[29:32, 29:32] = 200.0
    c = wslcm(img)
    assert np.unravel_index(np.argmax(c), c.shape) == (30, 30)
    assert c[10, 10] == 0.0
    # at the centre, cell 5: the 3×3 median (zero padding irrelevant here) keeps a plus of five
    # 200s in 100s, so the centre cell's 9 largest are 5 × 200 + 4 × 100 -> M0 = 1400/9, its
    # mean m0 = (5·200 + 20·100)/25 = 120; every neighbour cell has M = m = 100 -> IRIL = 0, so
    # WB = xi = 5 and WD = IRIL0; g = binomial filter of the plus = (4·200 + 2·4·200 + 4·100)/16
    iril0 = 1400.0 / 9 - 120.0
    g = (4 * 200.0 + 2 * 4 * 200.0 + 4 * 100.0) / 16
    slcm = g * g / 100.0 - g
    per_scale_5 = iril0 * iril0 / 5.0 * slcm
    assert c[30, 30] >= per_scale_5 * (1 - 1e-12)
    np.testing.assert_allclose(wslcm(img, cell_sizes=(5,))[30, 30], per_scale_5, rtol=1e-12)


def test_mslcm_is_the_lcm_map_and_hand_values():
    img = np.full((40, 40), 100.0)
    img[19:22, 19:22] = 200.0
    c = mslcm(img)
    assert c[20, 20] == 400.0 and c[0, 0] == 100.0  # 200² / 100; flat background: I
    rng = np.random.default_rng(3)
    other = rng.integers(0, 256, (33, 41)).astype(np.uint8)
    assert np.array_equal(mslcm(other), lcm(other))


def test_mspcm_is_the_mpcm_map_and_hand_values():
    img = np.full((40, 40), 10.0)
    img[19:22, 19:22] = 100.0
    c = mspcm(img)
    assert c[20, 20] == 8100.0 and c[0, 0] == 0.0  # (100 − 10)², flat: 0
    dark = 100.0 - img  # a dark spot scores positive too (product of two negative differences)
    assert mspcm(dark)[20, 20] == 8100.0
    rng = np.random.default_rng(4)
    other = rng.random((29, 31)) * 255
    assert np.array_equal(mspcm(other), mpcm(other))


@pytest.mark.parametrize("fn", [rlcm, wslcm, mslcm, mspcm])
def test_bright_point_on_flat_background(fn):
    img = np.full((50, 57), 80.0)
    img[21, 33] = 255.0
    img[20:23, 32:35] += 30.0  # a small blob survives WSLCM's 3×3 median
    c = fn(img)
    assert c[21, 33] == c.max()
    # RLCM and MSLCM have a plateau (the largest values of a cell around the point): every
    # maximiser lies within the half-width of the largest cell
    where = np.argwhere(c == c.max())
    assert np.abs(where - [21, 33]).max() <= 4


def test_scale_equivariance():
    rng = np.random.default_rng(5)
    img = rng.integers(1, 200, (30, 34)).astype(np.float64)
    np.testing.assert_allclose(rlcm(4.0 * img), 4.0 * rlcm(img), rtol=1e-12)
    np.testing.assert_allclose(mslcm(4.0 * img), 4.0 * mslcm(img), rtol=1e-12)
    np.testing.assert_allclose(mspcm(4.0 * img), 16.0 * mspcm(img), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("fn", [rlcm, wslcm, mslcm, mspcm])
def test_constant_and_uint8_input(fn):
    flat = fn(np.full((20, 24), 7.0))
    assert flat.dtype == np.float64 and np.isfinite(flat).all()
    if fn is mslcm:
        assert (flat == 7.0).all()
    else:
        assert (flat == 0.0).all()
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (21, 25)).astype(np.uint8)
    assert np.array_equal(fn(img), fn(img.astype(np.float64)))


@pytest.mark.parametrize("fn", [rlcm, wslcm, mslcm, mspcm, ript])
def test_bad_images_rejected(fn):
    img = np.full((40, 40), 10.0)
    img[3, 4] = np.nan
    with pytest.raises(InputError, match="^image"):
        fn(img)
    with pytest.raises(InputError, match="^image"):
        fn(np.zeros((4, 5, 3)))


def test_bad_parameters_rejected():
    img = np.ones((40, 40))
    with pytest.raises(InputError, match="^cell"):
        rlcm(img, cell=8)
    with pytest.raises(InputError, match="^scales"):
        rlcm(img, scales=((2, 82),))
    with pytest.raises(InputError, match="^cell_sizes"):
        wslcm(img, cell_sizes=(1,))
    with pytest.raises(InputError, match="^xi"):
        wslcm(img, xi=0.0)
    with pytest.raises(InputError, match="^image"):
        ript(np.ones((29, 40)))
    with pytest.raises(InputError, match="^reconstruction"):
        ript(img, reconstruction="median")


# ---------------------------------------------------------------- order statistics helper

@pytest.mark.parametrize("kind", ["uint8-valued", "uint16-valued", "float"])
def test_window_largest_equals_sorting_every_window(kind):
    img = _images(19, 23, seed=7)[kind]
    codes, values = value_codes(img)
    assert np.array_equal(values[codes], img)
    for size, k in ((1, 1), (2, 3), (3, 9), (5, 7), (9, 16), (11, 9)):
        top = window_largest(codes, size, k)
        windows = sliding_window_view(img, (size, size)).reshape(20 - size, 24 - size, -1)
        ref = np.sort(windows, axis=-1)[..., ::-1]
        assert np.array_equal(np.stack([values[t] for t in top], -1), ref[..., :k])
        sums = largest_sums(top, values, {1, k})
        np.testing.assert_allclose(sums[k], ref[..., :k].sum(-1), rtol=1e-13)


# ---------------------------------------------------------------- RIPT

def _scene(h=64, w=72, seed=0, spike=(30, 40)):
    """Smooth rank-1 background plus noise and one bright 2×2 spike."""
    rng = np.random.default_rng(seed)
    u = 60 + 40 * np.sin(np.linspace(0, 2.5, h))
    v = 1 + 0.3 * np.cos(np.linspace(0, 2.0, w))
    img = np.outer(u, v) + rng.normal(0, 2, (h, w))
    img[spike[0]:spike[0] + 2, spike[1]:spike[1] + 2] += 120
    return img


def _unfold_matlab(ten, mode):
    """MATLAB ten2mat: mode first, the other modes in order, column-major reshape."""
    order = [mode] + [m for m in range(3) if m != mode]
    return np.transpose(ten, order).reshape(ten.shape[mode], -1, order="F")


def _fold_matlab(mat, mode, shape):
    order = [mode] + [m for m in range(3) if m != mode]
    return np.transpose(mat.reshape([shape[m] for m in order], order="F"), np.argsort(order))


def test_ript_first_iteration_equals_the_definition():
    """One step of ript.m written out: patch tensor, three mode SVTs, T, mean reconstruction."""
    img = _scene(52, 47, seed=1)
    p, s = 30, 10
    # gen_patch_ten's starts: ceil((H − p)/s) + 1 of them, the last one aligned with the border
    rows = list(range(0, (int(np.ceil((52 - p) / s))) * s, s)) + [52 - p]
    cols = list(range(0, (int(np.ceil((47 - p) / s))) * s, s)) + [47 - p]
    grid = [(r, c) for c in cols for r in rows]  # gen_patch_ten: column-major over the grid
    F = np.stack([img[r:r + p, c:c + p] for r, c in grid], axis=2)  # p × p × n
    n = F.shape[2]
    lam = 0.7 / np.sqrt(min(p, p, n))
    mu = 5 * F.std(ddof=1)
    W = np.stack([structure_weight(img)[r:r + p, c:c + p] for r, c in grid], axis=2)
    backs = []
    for mode in range(3):
        u, sv, vt = np.linalg.svd(_unfold_matlab(F, mode), full_matrices=False)
        backs.append(_fold_matlab(u @ np.diag(np.maximum(sv - mu, 0)) @ vt, mode, F.shape))
    T = np.maximum(np.mean([F - b for b in backs], axis=0) - W * mu * lam / 3, 0)
    acc, cnt = np.zeros(img.shape), np.zeros(img.shape)
    for k, (r, c) in enumerate(grid):
        acc[r:r + p, c:c + p] += T[:, :, k]
        cnt[r:r + p, c:c + p] += 1
    want = acc / cnt
    got, _, info = ript_decompose(img, max_iter=1, background=False)
    assert info["iterations"] == 1 and info["stop"] == "max_iter" and info["patches"] == n
    assert info["lam"] == pytest.approx(lam, rel=1e-15)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * want.max())


def test_ript_finds_the_spike_and_stops_on_the_count_rule():
    img = _scene()
    target, background, info = ript_decompose(img)
    assert np.unravel_index(np.argmax(target), target.shape) in {(30, 40), (30, 41), (31, 40),
                                                                   (31, 41)}
    assert (target >= 0).all() and background.shape == img.shape
    assert info["stop"] == "count" and 2 <= info["iterations"] < 50
    assert np.array_equal(ript(img), target)


def test_ript_iterations_stable_under_transpose_and_small_scale():
    """The count stop rule is fragile; the count must not depend on rounding-level changes."""
    for seed in (0, 2):
        img = _scene(seed=seed)
        t0, _, i0 = ript_decompose(img, background=False)
        tt, _, it = ript_decompose(img.T, background=False)
        assert it["iterations"] == i0["iterations"]
        np.testing.assert_allclose(tt.T, t0, rtol=0, atol=1e-9 * t0.max())
        for scale in (1 + 1e-9, 1 - 1e-6):
            ts, _, i_s = ript_decompose(img * scale, background=False)
            assert i_s["iterations"] == i0["iterations"]
            np.testing.assert_allclose(ts / scale, t0, rtol=0, atol=1e-5 * t0.max())


def test_ript_edge_cases():
    flat, _, info = ript_decompose(np.full((40, 45), 9.0))
    assert info["stop"] == "constant" and (flat == 0).all()
    single = _scene(30, 30, seed=3, spike=(14, 14))  # one patch: a matrix, two modes
    t1, _, info1 = ript_decompose(single, background=False)
    assert info1["patches"] == 1 and info1["lam"] == pytest.approx(0.7 / np.sqrt(30))
    assert np.isfinite(t1).all()
    img = _scene(seed=4)
    mean = ript(img)
    last = ript(img, reconstruction="last")
    # the top-left 10×10 block is covered by one patch only: both merges agree there
    np.testing.assert_array_equal(mean[:10, :10], last[:10, :10])
    np.testing.assert_allclose(ript(img, blas_threads=1), mean, rtol=0, atol=1e-9 * mean.max())
    w = structure_weight(img)
    assert w.min() == pytest.approx(1.0) and w.max() == pytest.approx(np.e)
    assert (structure_weight(np.full((8, 9), 3.0)) == 1.0).all()


# ---------------------------------------------------------------- registry

def test_registered():
    for name, display in (("rlcm", "RLCM"), ("wslcm", "WSLCM"), ("mslcm", "MSLCM"),
                          ("mspcm", "MSPCM"), ("ript", "RIPT")):
        entry = METHODS[name]
        assert entry.name == name and entry.display == display and entry.k > 0
        assert entry.fn is {"rlcm": rlcm, "wslcm": wslcm, "mslcm": mslcm, "mspcm": mspcm,
                            "ript": ript}[name]
