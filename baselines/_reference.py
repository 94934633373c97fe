"""Straightforward implementations used to check the fast paths (tests and benchmarks).

These follow the reference codes step by step with plain NumPy: per-patch loops to build the
patch matrix, full LAPACK thin SVD (``np.linalg.svd(full_matrices=False)``) at every step,
``U·diag(s)·Vᵀ`` rebuilds, a per-patch loop into a stacked buffer for the median
reconstruction. Not for production use (several times slower).
"""

from __future__ import annotations

import math

import numpy as np

from . import _patches
from ._common import as_float_image


def patch_matrix(img, p, step, layout):
    rows, cols = _patches.grid(img.shape, p, step, layout)
    cols_out = []
    if layout == "ipi":
        order = [(i, j) for i in rows for j in cols]
    else:
        order = [(i, j) for j in cols for i in rows]
    for i, j in order:
        cols_out.append(img[i:i + p, j:j + p].flatten(order="F"))
    return np.array(cols_out).T, rows, cols


def rebuild(Dm, shape, p, step, layout, method):
    rows, cols = _patches.grid(shape, p, step, layout)
    if layout == "ipi":
        order = [(i, j) for i in rows for j in cols]
    else:
        order = [(i, j) for j in cols for i in rows]
    h, w = shape
    out = np.zeros(shape)
    if method == "last":
        for k, (i, j) in enumerate(order):
            out[i:i + p, j:j + p] = Dm[:, k].reshape(p, p).T
        return out
    depth = math.ceil(p / step + 1) ** 2
    buf = np.full((h, w, depth), np.nan)
    cnt = np.zeros(shape, dtype=int)
    yy, xx = np.mgrid[0:p, 0:p]
    for k, (i, j) in enumerate(order):
        patch = Dm[:, k].reshape(p, p).T
        c = cnt[i:i + p, j:j + p]
        buf[i + yy, j + xx, c] = patch
        cnt[i:i + p, j:j + p] += 1
    cov = cnt > 0
    if method == "median":
        with np.errstate(all="ignore"):
            vals = np.nanmedian(buf[cov], axis=1)
    else:
        vals = np.nanmean(buf[cov], axis=1)
    out[cov] = vals
    return out


def mat2gray(D):
    return (D - D.min()) / (D.max() - D.min())


def apg_ir(D, lam, tol=1e-6, max_iter=1000, rank_ratio=0.3):
    """Line-by-line APG_IR (authors' code); returns ``(A, E, iterations)``."""
    m, n = D.shape
    t_k = t_km1 = 1.0
    tau = 2.0
    A_km1 = np.zeros(D.shape)
    E_km1 = np.zeros(D.shape)
    A_k = np.zeros(D.shape)
    E_k = np.zeros(D.shape)
    s = np.linalg.svd(D, compute_uv=False)
    s = np.concatenate([s, np.zeros(4)])
    mu_k = s[1]
    mu_bar = 0.005 * s[3]
    it = 0
    counter = 0
    pre_rank = 0
    pre_card = 0
    while True:
        YA = A_k + ((t_km1 - 1) / t_k) * (A_k - A_km1)
        YE = E_k + ((t_km1 - 1) / t_k) * (E_k - E_km1)
        GA = YA - (1.0 / tau) * (YA + YE - D)
        GE = YE - (1.0 / tau) * (YA + YE - D)
        U, s, Vt = np.linalg.svd(GA, full_matrices=False)
        A_kp1 = U @ np.diag(np.maximum(s - mu_k / tau, 0)) @ Vt
        E_kp1 = np.sign(GE) * np.maximum(np.abs(GE) - lam * mu_k / tau, 0)
        rank = int(np.sum(s > mu_k / tau))
        card = int(np.sum(np.abs(E_kp1) > 0))
        t_kp1 = 0.5 * (1 + np.sqrt(1 + 4 * t_k * t_k))
        temp = A_kp1 + E_kp1 - YA - YE
        SA = tau * (YA - A_kp1) + temp
        SE = tau * (YE - E_kp1) + temp
        crit = (np.linalg.norm(np.concatenate((SA, SE), axis=1))
                / (tau * max(1.0, np.linalg.norm(np.concatenate((A_kp1, E_kp1), axis=1)))))
        converged = crit <= tol
        mu_k = max(0.9 * mu_k, mu_bar)
        t_km1, t_k = t_k, t_kp1
        A_km1, E_km1, A_k, E_k = A_k, E_k, A_kp1, E_kp1
        it += 1
        if pre_rank == rank:
            counter += 1
            if counter > 10 and abs(card - pre_card) < 20:
                converged = True
        else:
            counter = 0
            pre_card = card
        pre_rank = rank
        if rank_ratio is not None and rank > rank_ratio * min(m, n):
            converged = True
        if it >= max_iter:
            converged = True
        if converged:
            return A_k, E_k, it


def ipi(image, patch_size=50, step=10, tol=1e-6, max_iter=1000, rank_ratio=0.3,
        reconstruction="median"):
    """Straightforward IPI; returns ``(target, iterations)``."""
    img = as_float_image(image)
    D, _, _ = patch_matrix(img, patch_size, step, "ipi")
    if D.max() == D.min():
        return np.zeros(img.shape), 0
    lam = 1.0 / math.sqrt(max(img.shape))
    _, E, it = apg_ir(mat2gray(D), lam, tol, max_iter, rank_ratio)
    return rebuild(E, img.shape, patch_size, step, "ipi", reconstruction), it


def nram(image, patch_size=50, step=10, tol=1e-7, max_iter=1000, threshold="asymmetric",
         reconstruction="last"):
    """Straightforward NRAM (authors' ``nram.m``/``DC.m``/``prox_*.m``); ``(target, iters)``."""
    img = as_float_image(image)
    D, _, _ = patch_matrix(img, patch_size, step, "nram")
    if D.max() == D.min():
        return np.zeros(img.shape), 0
    X = mat2gray(D)
    m, n = X.shape
    lam = 1 / math.sqrt(min(m, n))
    mu = 3 * math.sqrt(max(m, n))
    rate, gamma = 1.1, 2e-3
    beta = 3 / math.sqrt(min(m, n))
    C = math.sqrt(min(m, n)) / 2.5
    S = np.zeros((m, n))
    Y = np.zeros((m, n))
    E = np.zeros((m, n))
    L = np.zeros((m, n))
    sig = np.zeros(min(m, n))
    normX = np.linalg.norm(X)
    it = 0
    for it in range(1, max_iter + 1):
        U, s, Vt = np.linalg.svd(X - S - E - Y / mu, full_matrices=False)
        T0 = sig
        for _ in range(100):
            grad = (1 + gamma) * gamma / (gamma + T0) ** 2
            T1 = np.maximum(s - grad / mu, 0)
            err = np.sum((T1 - T0) ** 2)
            if err < 1e-6:
                break
            T0 = T1
        sig = T1
        L = U @ np.diag(T1) @ Vt
        tempT = X - L - E - Y / mu
        Wt = C / (np.abs(tempT) + 0.04)
        if threshold == "asymmetric":
            S = np.maximum(tempT - lam * Wt / mu, 0) + np.minimum(tempT + lam * Wt, 0)
        else:
            S = np.sign(tempT) * np.maximum(np.abs(tempT) - lam * Wt / mu, 0)
        Q = X - S - L - Y / mu
        A = np.sqrt(np.sum(Q ** 2, axis=0))
        b = beta / mu
        A[A == 0] = b
        E = Q * ((A > b) * (A - b) / A)
        Y = Y + mu * (L + E - X + S)
        mu = mu * rate
        if np.linalg.norm(X - S - L - E) / normX < tol:
            break
    return rebuild(S, img.shape, patch_size, step, "nram", reconstruction), it


def lcm(image, cell_sizes=(3, 5, 7, 9)):
    """Straightforward LCM: one correlation per neighbour cell (as MS_LCM), edge replication."""
    from scipy import ndimage

    img = as_float_image(image)
    out = np.zeros(img.shape)
    for l in cell_sizes:
        cmax = ndimage.maximum_filter(img, size=l, mode="nearest")
        means = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy, dx) == (0, 0):
                    continue
                kernel = np.zeros((3 * l, 3 * l))
                r0, c0 = (dy + 1) * l, (dx + 1) * l
                kernel[r0:r0 + l, c0:c0 + l] = 1.0 / (l * l)
                means.append(ndimage.correlate(img, kernel, mode="nearest"))
        mmax = np.max(means, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = cmax ** 2 / mmax
        c[~np.isfinite(c)] = 0.0
        out = np.maximum(out, c)
    return out
