"""Non-convex Rank Approximation Minimization (NRAM), Zhang et al. 2018."""

from __future__ import annotations

import math

import numpy as np

from irstd.errors import InputError

from . import _linalg, _patches
from ._common import as_float_image, block_rows
from .parallel import with_blas_threads

__all__ = ["nram", "nram_decompose"]


def _dc(s_sub: np.ndarray, sig: np.ndarray, mu: float, gamma: float,
        max_inner: int = 100, inner_tol: float = 1e-6) -> np.ndarray:
    """DC loop on the singular values (authors' ``DC.m``).

    ``s_sub`` holds the leading singular values; entries beyond it have ``s`` below the
    threshold of a zero previous value and a zero previous value, so they stay 0 and add 0 to
    the stopping sum.
    """
    k = len(s_sub)
    t0 = sig[:k].copy()
    t1 = t0
    for _ in range(max_inner):
        grad = (1.0 + gamma) * gamma / (gamma + t0) ** 2
        t1 = np.maximum(s_sub - grad / mu, 0.0)
        if float(np.sum((t1 - t0) ** 2)) < inner_tol:
            break
        t0 = t1
    out = np.zeros_like(sig)
    out[:k] = t1
    return out


def _check_args(shape, patch_size, step, threshold, reconstruction, max_iter) -> None:
    """:class:`InputError` for arguments of :func:`nram_decompose` out of their domain."""
    _patches.check_patch_args(shape, patch_size, step)
    if threshold not in ("asymmetric", "symmetric"):
        raise InputError(f"threshold: expected 'asymmetric' or 'symmetric', got {threshold!r}")
    if reconstruction not in _patches.RECONSTRUCTIONS:
        raise InputError(f"reconstruction: expected one of {_patches.RECONSTRUCTIONS}, "
                         f"got {reconstruction!r}")
    if max_iter < 1:
        raise InputError(f"max_iter: must be at least 1, got {max_iter!r}")


def _fused_update(X, B, T, E, ym, VE, G, wb, c_lam: float, weight_eps: float, inv_mu: float,
                  shrink: float, rho: float, asymmetric: bool) -> float:
    """The T-, E- and multiplier steps of one iteration, then the next G_B, fused over row blocks.

    All arrays are in patch-row layout and updated in place: ``T`` (weighted l1 threshold of
    the residual ``R = X - B - E - Y/mu`` with weights ``c_lam / (|R| + weight_eps)``), ``E``
    (per-patch l2,1 shrinkage by ``shrink``), the scaled multiplier ``ym``, ``VE = X - ym - E``
    and ``G = X - T - E - ym``. ``wb`` is scratch for one block; its row count sets the block
    size.

    Returns
    -------
    float
        ``||Z||²`` with ``Z = X - T - B - E``, for the stopping test.
    """
    p = X.shape[0]
    rows = wb.shape[0]
    zz = 0.0
    for a in range(0, p, rows):
        b = min(a + rows, p)
        ve, t, e, y, g = VE[a:b], T[a:b], E[a:b], ym[a:b], G[a:b]
        # T-step: weighted l1 with weights from the residual R = X - B - E - Y/mu
        R = np.subtract(ve, B[a:b], out=g)
        wt = np.abs(R, out=wb[:b - a])
        wt += weight_eps
        np.divide(c_lam, wt, out=wt)  # lam * weights
        if asymmetric:
            # max(R - lam W / mu, 0) + min(R + lam W, 0)  (authors' code: no 1/mu on the
            # negative side)
            np.multiply(wt, -inv_mu, out=t)
            t += R
            np.maximum(t, 0.0, out=t)
            wt += R
            np.minimum(wt, 0.0, out=wt)
            t += wt
        else:
            wt *= inv_mu
            np.abs(R, out=t)
            t -= wt
            np.maximum(t, 0.0, out=t)
            np.sign(R, out=wt)
            t *= wt
        # E-step: per-patch l2,1 shrinkage of Q = X - T - B - Y/mu = R - T + E
        Q = R
        Q -= t
        Q += e
        norms = np.sqrt(np.einsum("ij,ij->i", Q, Q))
        norms[norms == 0] = shrink
        scale = (norms > shrink) * ((norms - shrink) / norms)
        np.multiply(Q, scale[:, None], out=e)
        # multiplier; Z = X - T - B - E = Q - E + ym
        Zr = np.subtract(Q, e, out=g)
        Zr += y
        zz += float(np.vdot(Zr, Zr))
        y -= Zr
        y *= 1.0 / rho
        # the next iteration's X - ym - E and G_B
        np.subtract(X[a:b], y, out=ve)
        ve -= e
        np.subtract(ve, t, out=g)
    return zz


@with_blas_threads
def nram_decompose(image, patch_size: int = 50, step: int = 10, lam: float | None = None,
                   mu0: float | None = None, rho: float = 1.1, gamma: float = 2e-3,
                   beta: float | None = None, C: float | None = None, weight_eps: float = 0.04,
                   tol: float = 1e-7, max_iter: int = 1000, threshold: str = "asymmetric",
                   reconstruction: str = "last", *, background: bool = True):
    """NRAM decomposition returning ``(target, background, info)``.

    Same parameters as :func:`nram`; the background is ``B + E`` rebuilt the same way, ``info``
    holds ``iterations``, ``rank`` (of ``B``), ``stop`` and ``patches``. ``background=False``
    skips the background (returned as ``None``), as :func:`nram` does.
    """
    img = as_float_image(image)
    _check_args(img.shape, patch_size, step, threshold, reconstruction, max_iter)
    D0, _, _ = _patches.extract(img, patch_size, step, "nram")
    m, n = D0.shape
    info = {"patches": n}
    X = _patches.minmax_normalise(D0)
    del D0
    if X is None:
        info.update(iterations=0, rank=0, stop="constant")
        return np.zeros(img.shape), np.zeros(img.shape) if background else None, info
    lam = 1.0 / math.sqrt(min(m, n)) if lam is None else float(lam)
    mu = 3.0 * math.sqrt(max(m, n)) if mu0 is None else float(mu0)
    beta = 3.0 / math.sqrt(min(m, n)) if beta is None else float(beta)
    C = math.sqrt(min(m, n)) / 2.5 if C is None else float(C)
    k = min(m, n)
    # Work arrays in patch-row layout (one patch per row, C order): the E-step's per-patch
    # l2 norms become row norms, so all elementwise updates of an iteration run fused over
    # row blocks (no m×n allocation inside the loop). Instead of Y the scaled multiplier
    # ym = Y/mu is carried: Y' = Y + mu (B + E - X + T) and mu' = rho mu give
    # ym' = (ym - Z)/rho with Z = X - T - B - E.
    X = np.ascontiguousarray(X.T)
    p, q = X.shape
    T = np.zeros((p, q))
    E = np.zeros((p, q))
    B = np.empty((p, q))
    ym = np.zeros((p, q))
    VE = X.copy()           # X - ym - E
    G = X.copy()            # G_B = X - T - E - ym, then R, then Z
    sig = np.zeros(k)
    norm_x = math.sqrt(float(np.vdot(X, X)))
    rows = block_rows(q)
    wb = np.empty((min(rows, p), q))  # weights block
    asymmetric = threshold == "asymmetric"
    stop = "max_iter"
    it = 0
    expected = 1
    need = 0  # pairs the B-step must return: up to the last non-zero value of sig
    basis = None  # eigenvectors of the last B-step, to start the next one from
    for it in range(1, max_iter + 1):
        inv_mu = 1.0 / mu
        shrink = beta * inv_mu
        # --- B-step: DC on the singular values of G = X - T - E - Y/mu
        mtx, right = _linalg.gram(G)
        # values below (1+gamma)/(gamma*mu) with a zero previous value stay zero: compute only
        # the eigenpairs above it, plus every index where the previous value is non-zero
        lower = (1.0 + gamma) / (gamma * mu)
        found = None if basis is None else _linalg.eig_above_warm(mtx, lower * lower, basis, min_count=need)
        if found is None:
            found = _linalg.eig_above(mtx, lower * lower, min_count=need, expected=expected)
        w, v = found
        del mtx
        s_sub = np.sqrt(np.maximum(w, 0.0))
        sig = _dc(s_sub, sig, mu, gamma)
        keep = np.flatnonzero(sig[:len(s_sub)] > 0)
        expected = len(keep) + 1
        need = int(keep[-1]) + 1 if keep.size else 0
        # next time start from the pairs above this threshold or still carrying a value
        basis = v[:, :max(int(np.count_nonzero(w > lower * lower)), need)]
        _linalg.low_rank(G, right, v[:, keep], s_sub[keep], sig[keep], out=B)
        # --- T-, E- and multiplier steps, then the next G_B, fused over row blocks
        zz = _fused_update(X, B, T, E, ym, VE, G, wb, C * lam, weight_eps, inv_mu, shrink, rho, asymmetric)
        err = math.sqrt(zz) / norm_x
        mu *= rho
        if err < tol:
            stop = "tol"
            break
    info.update(iterations=it, rank=int(np.count_nonzero(sig)), stop=stop)
    target = _patches.reconstruct(T.T, img.shape, patch_size, step, "nram", reconstruction)
    if not background:
        return target, None, info
    return target, _patches.reconstruct((B + E).T, img.shape, patch_size, step, "nram", reconstruction), info


@with_blas_threads
def nram(image, patch_size: int = 50, step: int = 10, lam: float | None = None,
         mu0: float | None = None, rho: float = 1.1, gamma: float = 2e-3,
         beta: float | None = None, C: float | None = None, weight_eps: float = 0.04,
         tol: float = 1e-7, max_iter: int = 1000, threshold: str = "asymmetric",
         reconstruction: str = "last") -> np.ndarray:
    """Target image of the NRAM model.

    The patch matrix ``D`` (``patch_size``² rows; starts ``0, step, …`` plus a border-aligned
    last row/column of patches so that every pixel is covered; column-position-outer order;
    column-major inside a patch) is min–max normalised and split as ``D = B + T + E``:
    low-rank background ``B`` under the non-convex γ-norm ``Σ (1+γ)σᵢ/(γ+σᵢ)``, sparse target
    ``T`` under a re-weighted ℓ1 norm, structured edges ``E`` under the ℓ2,1 norm, solved by
    ADMM (penalty μ growing by ``rho``) with the B-step done by DC programming on the singular
    values (≤ 100 inner iterations, stop when Σ(Δσ)² < 1e-6, σ carried between outer
    iterations). Stops when ‖D − B − T − E‖F / ‖D‖F < ``tol``. Each pixel of the output takes the
    value of the **last** patch written (authors' ``reconstruct.m``, no averaging).

    Defaults reproduce the authors' MATLAB code (Lanneeee/NRAM ``nram.m``, ``DC.m``,
    ``prox_weighted_l1.m``, ``prox_l21.m``, ``construct.m``, ``reconstruct.m``), including its
    **asymmetric** T-step ``max(R − λW/μ, 0) + min(R + λW, 0)`` with weights
    ``W = C/(|R| + weight_eps)`` from the current residual ``R``. The output is invariant to
    ``image → a·image + b`` (a > 0) up to rounding.

    Parameters
    ----------
    image : (H, W) array_like
        Grey image, any scale. ``H`` and ``W`` must be at least ``patch_size`` (smaller images
        are rejected, no padding).
    patch_size, step : int, optional
        Patch side (50) and sliding step (10).
    lam : float, optional
        ℓ1 weight; default 1/√min(m, n) (``m×n`` = patch matrix size).
    mu0 : float, optional
        Initial penalty; default 3·√max(m, n).
    rho : float, optional
        Growth of the penalty per iteration (1.1).
    gamma : float, optional
        γ of the γ-norm (2e-3).
    beta : float, optional
        ℓ2,1 weight; default 3/√min(m, n).
    C : float, optional
        Numerator of the ℓ1 weights; default √min(m, n)/2.5.
    weight_eps : float, optional
        ε of the ℓ1 weights ``C/(|R| + ε)`` (0.04).
    tol : float, optional
        Relative residual stop (1e-7).
    max_iter : int, optional
        Maximum number of ADMM iterations (1000).
    threshold : {"asymmetric", "symmetric"}, optional
        ``"asymmetric"`` (default, authors' code) or ``"symmetric"``: the paper's soft threshold
        ``sign(R)·max(|R| − λW/μ, 0)``.
    reconstruction : {"last", "median", "mean"}, optional
        How overlapping patches are merged: ``"last"`` (default, authors' code), or the median /
        mean of all covering patches.
    blas_threads : int, optional
        Keyword only. Threads of NumPy's BLAS for the matrix products, every other BLAS on one
        (:func:`irstd.baselines.matmul_threads`); default ``$IRSTD_BLAS_THREADS``, else
        ``min(2, os.cpu_count())``, the command line's setting.

    Returns
    -------
    target : (H, W) ndarray of float64
        The raw target image ``T`` (≥ 0 in practice, exactly 0 on most pixels). A constant image
        gives all zeros.

    Raises
    ------
    irstd.errors.InputError
        Not a finite 2-D array, image smaller than one patch, or an invalid parameter.

    See Also
    --------
    nram_decompose : also returns the background and the iteration count.

    References
    ----------
    .. [1] L. Zhang, L. Peng, T. Zhang, S. Cao, Z. Peng, "Infrared Small Target Detection via
       Non-Convex Rank Approximation Minimization Joint l2,1 Norm", Remote Sensing 10(11):1821,
       2018. doi:10.3390/rs10111821
    .. [2] Y. Dai, Y. Wu, "Reweighted Infrared Patch-Tensor Model With Both Nonlocal and Local
       Priors for Single-Frame Small Target Detection", IEEE JSTARS 10(8):3752–3767, 2017
       (the patch construction/reconstruction utilities).
    """
    return nram_decompose(image, patch_size=patch_size, step=step, lam=lam, mu0=mu0, rho=rho,
                          gamma=gamma, beta=beta, C=C, weight_eps=weight_eps, tol=tol,
                          max_iter=max_iter, threshold=threshold,
                          reconstruction=reconstruction, background=False)[0]
