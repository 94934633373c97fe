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


# Below this fraction of the spectrum a subset solver (MRRR, ``evr``) beats the full
# divide-and-conquer ``evd`` on IPI's Gram matrices (timings in docs/baselines.md).
SUBSET_FRACTION = 0.2


def eig_above(mtx: np.ndarray, lower: float, min_count: int = 0, expected: int | None = None):
    """Eigenpairs of the symmetric ``mtx`` with eigenvalue > ``lower`` (descending).

    At least ``min_count`` pairs are returned (the largest ones) even if they are below
    ``lower``; more pairs may be returned (callers select by value). ``expected`` is a guess of
    the count, used to choose between a subset solver and the full decomposition.
    ``mtx`` is not modified.
    """
    k = mtx.shape[0]
    w = v = None
    guess = max(expected or 0, min_count)
    if guess > SUBSET_FRACTION * k:
        w, v = linalg.eigh(mtx, check_finite=False, driver="evd")
        return w[::-1], v[:, ::-1]
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


def eig_above_warm(mtx: np.ndarray, lower: float, basis: np.ndarray, min_count: int = 0,
                   max_rounds: int = 4):
    """Like :func:`eig_above` for a positive semi-definite ``mtx``, by subspace iteration from
    ``basis``; ``None`` when the result cannot be certified (the caller then uses
    :func:`eig_above`).

    Made for a spectrum with a wide gap below the wanted pairs (NRAM's Gram matrices after the
    first iteration: the 19th of 560 eigenvalues is ~1e-6 of the 18th), where one product with
    the previous iteration's eigenvectors already gives them to ~1e-8 and a second to rounding
    level. Each round is a Rayleigh–Ritz step on ``mtx @ Q``. Accepted only when (a) every Ritz
    pair's residual ``‖mtx v − θ v‖`` is within ``64 ε θ_max`` (LAPACK's own eigenpairs reach
    ~2–5 ε θ_max) in two rounds running — the second takes the vectors from that bound to
    rounding level, so NRAM's maps stay within ~1e-11 of the LAPACK path's — and (b) no
    eigenvalue outside the ``m`` returned ones can exceed ``lower``: by Ky Fan's inequality the
    Ritz values satisfy ``Σθ ≤ Σ_{i≤m} λ_i``, so for a PSD matrix
    ``trace − Σθ ≥ Σ_{i>m} λ_i ≥ λ_{m+1}`` and that bound must lie below ``lower``.

    Returns
    -------
    (w, v) or None
        All ``m = basis.shape[1]`` Ritz pairs, descending, as :func:`eig_above` returns them
        (callers select by value); ``None`` if ``m < min_count`` or a check fails.
    """
    m = basis.shape[1]
    if m == 0 or m < min_count:
        return None
    eps = np.finfo(mtx.dtype).eps
    trace = float(np.trace(mtx))
    q = basis
    polished = False
    for _ in range(max_rounds):
        z = mtx @ q
        h = q.T @ z
        h += h.T
        h *= 0.5
        theta, u = np.linalg.eigh(h)
        theta, u = theta[::-1], u[:, ::-1]
        zu = z @ u
        v = q @ u
        if theta[-1] < 0:
            return None  # not PSD as expected
        residual = np.linalg.norm(zu - v * theta, axis=0)
        if float(residual.max()) <= 64 * eps * float(theta[0]):
            if trace - float(theta.sum()) + 1e3 * eps * trace >= lower:
                return None  # converged, but an eigenvalue above lower may lie outside
            if polished:
                return theta, v
            polished = True  # one more round takes the vectors to rounding level
        q = np.linalg.qr(zu)[0]
    return None


def low_rank(g: np.ndarray, left_is_v: bool, vecs: np.ndarray, sing: np.ndarray,
             new: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``U_r diag(new) V_rᵀ`` for the thin SVD of ``g`` given Gram eigenvectors ``vecs``.

    ``sing`` are the singular values of the kept components (all > 0), ``new`` their thresholded
    values. With ``vecs = V_r`` (right vectors, ``left_is_v`` True) ``U_r = g V_r / sing``.
    """
    if out is None:
        out = np.empty_like(g)
    if vecs.shape[1] == 0:
        out.fill(0.0)
        return out
    scale = new / sing
    if left_is_v:
        gv = g @ vecs
        gv *= scale
        return np.matmul(gv, vecs.T, out=out)
    ug = vecs.T @ g
    ug *= scale[:, None]
    return np.matmul(vecs, ug, out=out)
