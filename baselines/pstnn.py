"""Partial Sum of the Tensor Nuclear Norm (PSTNN), Zhang & Peng 2019."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from irstd.errors import InputError

from . import _patches
from ._common import as_float_image
from .parallel import matmul_threads

__all__ = ["pstnn", "pstnn_decompose", "prior_weight"]


def pstnn(image, patch_size: int = 40, step: int = 40, lambda_l: float = 0.7,
          tol: float = 1e-3, max_iter: int = 500, rho: float = 1.05, mu0: float = 2e-3,
          max_mu: float = 1e10, rank_ratio: float = 0.1, flat_weight: float | None = None
          ) -> np.ndarray:
    """Target image of the PSTNN model (the authors' ``Demo.m`` + ``trpca_pstnn.m``).

    The image is cut into ``patch_size``² patches (starts ``0, step, …`` plus a border-aligned
    last row/column, RIPT's ``gen_patch_ten``), stacked column-major (column-position-outer) into
    a ``p×p×n3`` tensor ``D``, and split as ``D = B + T`` by ADMM: the background ``B`` under the
    partial sum of the tensor nuclear norm (t-SVD: FFT along the patches; in every frontal
    slice the ``N`` largest singular values are kept and the others soft-thresholded by ``1/μ``),
    the target ``T ≥ 0`` under a weighted ℓ1 norm, weights
    ``W = N / (|T| + 0.01) / W_p`` re-computed after every T-step from the patch tensor ``W_p``
    of the prior map. The prior map is the min–max normalised
    ``λ1λ2/(λ1 + λ2) · max(λ1, λ2)`` of the structure tensor (:func:`prior_weight`). Each pixel of
    the output takes the value of the last patch written (``res_patch_ten_mean``, which
    despite its name does not average).

    Defaults reproduce the authors' MATLAB code (Lanneeee/Infrared-Small-Target-Detection-
    based-on-PSTNN), including its quirks, which depart from the paper as follows:

    * ``N``: ``rankN`` reshapes the tensor column-major to ``n3`` rows (a plain reshape, not
      the mode-3 unfolding of the paper) and counts the singular values of that matrix down to
      ``rank_ratio`` (0.1) of the largest (``N = 1`` if the first already falls below it; if
      none does, which makes the MATLAB code fail, all are kept). On the 214 SIRST
      ``dnanet_50_50`` test frames it gives ``N = 1`` on 191, 2–5 on the others.
    * stopping: after the relative residual ``‖B + T − D‖F / ‖D‖F < tol`` **or** as soon as the
      number of positive target entries is the same (and non-zero) in two successive
      iterations — the rule that ends 209 of those 214 frames (2–59 iterations, median 3; the
      other 5 stop on ``tol``). A count off by one moves the stop and changes the whole map, so
      the arithmetic follows the public code's order of operations.
    * flat pixels: the prior weight is ``0/0 = NaN`` where the structure tensor vanishes;
      MATLAB/Octave's ``max(0, NaN) = 0`` in ``prox_l1`` then forces the target to 0 there
      (from the second iteration on), reproduced here with ``np.fmax``. Octave's ``mat2gray``
      keeps the NaN; MATLAB's ``mat2gray`` ends with ``max(0, min(I, 1))``, which turns NaN into
      1 — pass ``flat_weight=1.0`` for that behaviour.
    * the inverse FFT is real by construction (conjugate-symmetric slices); the real part is taken
      (here the half spectrum is processed and ``irfft`` used). MATLAB returns it real; Octave
      returns a complex array, on which the NaN weights above turn the target into NaN and the
      next SVD fails — so the public code runs in Octave only with ``real(ifft(...))``, and that
      is what this function matches (checked against it on 20 SIRST test frames: same ``N``, same
      iteration counts, maps within 2.5e-13 relative).

    The many small SVDs run with NumPy's BLAS on one thread (a second thread only slows them).

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with raw intensities (0–255 for 8-bit data): the model is **not** scale
        invariant (the constants 0.01, ``mu0`` and the thresholds are absolute). ``H`` and ``W``
        must be at least ``patch_size``.
    patch_size, step : int, optional
        Patch side (40) and sliding step (40).
    lambda_l : float, optional
        ``λ = lambda_l / sqrt(max(p, p) · n3)`` (0.7).
    tol, max_iter, rho, mu0, max_mu : float, optional
        ADMM constants of ``trpca_pstnn.m``: 1e-3, 500, 1.05, 2e-3, 1e10.
    rank_ratio : float, optional
        Ratio of ``rankN`` (0.1).
    flat_weight : float or None, optional
        Prior weight of the pixels where it is 0/0. ``None`` (default) keeps NaN (target forced
        to 0 there, as observed running the public code); ``1.0`` reproduces MATLAB's
        ``mat2gray``.

    Returns
    -------
    target : (H, W) ndarray of float64
        The raw target image (≥ 0), before the demo's rescale to 8 bits. A constant image gives
        a zero map.

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array, is smaller than one patch, or a parameter
        is out of range.

    See Also
    --------
    pstnn_decompose : the same, also returning the background and the iteration count.

    References
    ----------
    .. [1] L. Zhang, Z. Peng, "Infrared Small Target Detection Based on Partial Sum of the
       Tensor Nuclear Norm", Remote Sensing 11(4):382, 2019. doi:10.3390/rs11040382
    .. [2] Lanneeee/Infrared-Small-Target-Detection-based-on-PSTNN (``Demo.m``,
       ``trpca_pstnn.m``, ``prox_pstnn.m``, ``prox_l1.m``, ``structure_tensor_lambda.m``),
       https://github.com/Lanneeee/Infrared-Small-Target-Detection-based-on-PSTNN
    .. [3] Y. Dai, Y. Wu, "Reweighted Infrared Patch-Tensor Model With Both Nonlocal and Local
       Priors for Single-Frame Small Target Detection", IEEE JSTARS 10(8):3752–3767, 2017
       (``gen_patch_ten`` / ``res_patch_ten_mean``).
    """
    return pstnn_decompose(image, patch_size, step, lambda_l, tol, max_iter, rho, mu0, max_mu,
                           rank_ratio, flat_weight, background=False)[0]


def pstnn_decompose(image, patch_size: int = 40, step: int = 40, lambda_l: float = 0.7,
                    tol: float = 1e-3, max_iter: int = 500, rho: float = 1.05, mu0: float = 2e-3,
                    max_mu: float = 1e10, rank_ratio: float = 0.1,
                    flat_weight: float | None = None, *, background: bool = True):
    """PSTNN decomposition returning ``(target, background, info)``.

    Same parameters as :func:`pstnn`. ``info`` is a dict with ``iterations`` (ADMM iterations
    run), ``stop`` (``"count"``: the number of positive target entries repeated; ``"tol"``;
    ``"max_iter"``; ``"constant"``: an all-zero image, nothing run), ``N``, ``lam``,
    ``patches`` (``n3``) and ``target_count`` (positive target entries at the end).
    ``background=False`` skips rebuilding the background (returned as ``None``).
    """
    img = as_float_image(image)
    _patches.check_patch_args(img.shape, patch_size, step)
    _check_params(lambda_l=lambda_l, tol=tol, rho=rho, mu0=mu0, max_mu=max_mu,
                  rank_ratio=rank_ratio)
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
        raise InputError(f"max_iter: must be a positive integer, got {max_iter!r}")
    if flat_weight is not None and not np.isfinite(flat_weight):
        raise InputError(f"flat_weight: must be a finite number or None, got {flat_weight!r}")
    p = int(patch_size)
    d, _, _ = _patches.extract(img, p, step, "nram")
    X = np.ascontiguousarray(d.T)  # (n3, p*p): row k = patch k, column-major inside the patch
    n3 = X.shape[0]
    lam = lambda_l / math.sqrt(max(p, p) * n3)
    info = {"patches": n3, "lam": lam}
    if not X.any():  # all-zero image: nothing to separate (MATLAB's rankN would fail)
        info.update(iterations=0, stop="constant", N=0, target_count=0)
        return np.zeros(img.shape), np.zeros(img.shape) if background else None, info
    weight_map = prior_weight(img, flat_weight)
    tenW = np.ascontiguousarray(_patches.extract(weight_map, p, step, "nram")[0].T)
    # many small (p×p) SVDs: a second BLAS thread only slows them down (10× on a loaded 2-core
    # machine, measured), so NumPy's BLAS runs on one thread here whatever the caller set
    with matmul_threads(1):
        N = rank_n(X, rank_ratio)
        L, S, iterations, stop = _admm(X, tenW, lam, N, p, tol, int(max_iter), rho, mu0, max_mu)
    info.update(iterations=iterations, stop=stop, N=N, target_count=int(np.count_nonzero(S > 0)))
    target = _patches.reconstruct(S.T, img.shape, p, step, "nram", "last")
    if not background:
        return target, None, info
    return target, _patches.reconstruct(L.T, img.shape, p, step, "nram", "last"), info


def _check_params(**values) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                or not np.isfinite(v) or v <= 0:
            raise InputError(f"{name}: must be a positive number, got {v!r}")


def _admm(X, tenW, lam, N, p, tol, max_iter, rho, mu, max_mu):
    """The loop of ``trpca_pstnn.m`` on the ``(n3, p*p)`` array ``X``; returns L, S, its, stop."""
    S = np.zeros_like(X)
    Y = np.zeros_like(X)
    weight = np.ones_like(X)
    norm_x = float(np.linalg.norm(X))
    stop = "max_iter"
    it = 0
    pre_t = 0
    for it in range(1, max_iter + 1):
        y_mu = Y / mu
        L = _prox_pstnn(X - S - y_mu, N, mu, p)
        T = X - L
        T -= y_mu
        # prox_l1 with MATLAB's NaN-ignoring max/min: T - thr, then max(., 0); a NaN or +inf
        # threshold gives 0
        thr = weight * lam
        thr /= mu
        S = np.fmax(T - thr, 0.0)
        # weights for the next T-step: N / (|S| + 0.01) / W (NaN where W is NaN, inf where 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(N, np.abs(S) + 0.01, out=weight)
            weight /= tenW
        dY = L + S - X
        err = float(np.linalg.norm(dY)) / norm_x
        cur_t = int(np.count_nonzero(S > 0))
        if err < tol:
            stop = "tol"
            break
        if pre_t > 0 and cur_t > 0 and pre_t == cur_t:
            stop = "count"
            break
        pre_t = cur_t
        Y += dY * mu
        mu = min(rho * mu, max_mu)
    return L, S, it, stop


def _prox_pstnn(R: np.ndarray, N: int, mu: float, p: int) -> np.ndarray:
    """Partial singular-value thresholding of every frontal slice in the Fourier domain.

    ``R`` is ``(n3, p*p)``; slice ``f`` of its FFT along the patches is reshaped to ``(p, p)``
    (the transpose of the MATLAB slice: the SVT commutes with transposition). Only the
    ``n3 // 2 + 1`` non-redundant slices are processed; ``irfft`` rebuilds the conjugate-
    symmetric rest and returns the real part, as MATLAB's symmetric ``ifft``.
    """
    n3 = R.shape[0]
    F = np.fft.rfft(R, axis=0).reshape(-1, p, p)
    U, s, Vh = np.linalg.svd(F, full_matrices=False)
    tail = s[:, N:]
    tail -= 1.0 / mu
    np.maximum(tail, 0.0, out=tail)
    Lf = np.matmul(U * s[:, None, :], Vh)
    return np.fft.irfft(Lf.reshape(Lf.shape[0], -1), n=n3, axis=0)


def rank_n(X: np.ndarray, ratio: float = 0.1) -> int:
    """``rankN`` of ``trpca_pstnn.m`` for the ``(n3, p*p)`` patch array ``X``.

    MATLAB's ``Unfold(X, n3, 1)`` is ``reshape(X, n3, [])`` of the column-major ``p×p×n3``
    tensor, whose memory order is ``X.ravel()`` here; its singular values are those of
    ``X.ravel().reshape(-1, n3)``. ``N`` is the number of leading singular values before the
    first one below ``ratio · σ_max`` (at least 1; all of them if none falls below).
    """
    n3 = X.shape[0]
    s = np.linalg.svd(X.reshape(-1, n3), compute_uv=False)
    if not s[0] > 0:
        return 1
    below = np.flatnonzero(s / s[0] < ratio)
    if below.size == 0:
        return int(s.size)
    return max(1, int(below[0]))


def _gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', [size size], sigma)``."""
    r = (size - 1) / 2
    x = np.arange(-r, r + 1)
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum()


def prior_weight(image, flat_weight: float | None = None) -> np.ndarray:
    """PSTNN's prior weight map: min–max normalised ``λ1λ2/(λ1 + λ2) · max(λ1, λ2)``.

    ``λ1 ≥ λ2`` are the eigenvalues of the structure tensor of the authors'
    ``structure_tensor_lambda(img, 3)``: the image smoothed by a 3×3 Gaussian (σ = 2), its
    gradient by central differences (one-sided at the borders, MATLAB ``gradient``), the products
    of the derivatives smoothed by a 3×3 Gaussian (σ = 9), both filters with symmetric
    (mirror) borders. Normalised as ``mat2gray`` does (min and max over the finite values);
    where ``λ1 + λ2 = 0`` (flat neighbourhoods) the weight is 0/0: NaN, or ``flat_weight``.
    """
    img = as_float_image(image)
    u = ndimage.correlate(img, _gaussian(3, 2.0), mode="reflect")
    gy, gx = np.gradient(u)
    k = _gaussian(3, 9.0)
    j11 = ndimage.correlate(gx * gx, k, mode="reflect")
    j12 = ndimage.correlate(gx * gy, k, mode="reflect")
    j22 = ndimage.correlate(gy * gy, k, mode="reflect")
    sqrt_delta = np.sqrt((j11 - j22) ** 2 + 4 * j12 ** 2)
    l1 = 0.5 * (j11 + j22 + sqrt_delta)
    l2 = 0.5 * (j11 + j22 - sqrt_delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        corner = (l1 * l2) / (l1 + l2)
        strength = corner * np.maximum(l1, l2)
    finite = np.isfinite(strength)
    out = np.full(img.shape, np.nan)
    if finite.any():
        lo = strength[finite].min()
        hi = strength[finite].max()
        vals = strength[finite]
        if hi > lo:  # Octave's mat2gray: (1 / (max - min)) * (v - min)
            vals = (1.0 / (hi - lo)) * (vals - lo)
        out[finite] = np.clip(vals, 0.0, 1.0)
    if flat_weight is not None:
        out[~finite] = flat_weight
    return out
