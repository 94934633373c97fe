"""Thin SVD pieces through the Gram matrix (equivalent to LAPACK SVD above ~1e-8·σ_max)."""

from __future__ import annotations

import numpy as np
from scipy import linalg


def gram(g: np.ndarray) -> tuple[np.ndarray, bool]:
    """Gram matrix on the smaller side of ``g``; second value True when it is ``gᵀg``."""
    m, n = g.shape
    if n <= m:
        return g.T @ g, True
    return g @ g.T, False


def top_singular(g: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest singular values of ``g`` (descending, zero-padded)."""
    k = min(g.shape)
    mtx, _ = gram(g)
    count_eff = min(count, k)
    ev = linalg.eigh(mtx, eigvals_only=True, subset_by_index=(k - count_eff, k - 1),
                     overwrite_a=True, check_finite=False)
    s = np.sqrt(np.maximum(ev[::-1], 0.0))
    return np.concatenate([s, np.zeros(count - count_eff)])


def eig_above(mtx: np.ndarray, lower: float, min_count: int = 0):
    """Eigenpairs of the symmetric ``mtx`` with eigenvalue > ``lower`` (descending).

    At least ``min_count`` pairs are returned (the largest ones) even if they are below
    ``lower``. ``mtx`` is not modified.
    """
    k = mtx.shape[0]
    w = v = None
    if lower > 0:
        w, v = linalg.eigh(mtx, subset_by_value=(lower, np.inf), check_finite=False,
                           driver="evr")
        if len(w) < min(min_count, k):
            w = v = None
    if w is None:
        lo = k - max(min(min_count, k), 0)
        if lower > 0 and lo > 0:
            w, v = linalg.eigh(mtx, subset_by_index=(lo, k - 1), check_finite=False,
                               driver="evr")
        else:
            w, v = linalg.eigh(mtx, check_finite=False, driver="evd")
    return w[::-1], v[:, ::-1]


def low_rank(g: np.ndarray, left_is_v: bool, vecs: np.ndarray, sing: np.ndarray,
             new: np.ndarray) -> np.ndarray:
    """``U_r diag(new) V_rᵀ`` for the thin SVD of ``g`` given Gram eigenvectors ``vecs``.

    ``sing`` are the singular values of the kept components (all > 0), ``new`` their thresholded
    values. With ``vecs = V_r`` (right vectors, ``left_is_v`` True) ``U_r = g V_r / sing``.
    """
    if vecs.shape[1] == 0:
        return np.zeros_like(g)
    scale = new / sing
    if left_is_v:
        gv = g @ vecs
        gv *= scale
        return gv @ vecs.T
    ug = vecs.T @ g
    ug *= scale[:, None]
    return vecs @ ug
