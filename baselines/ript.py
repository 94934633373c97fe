"""Reweighted Infrared Patch-Tensor model (RIPT), Dai & Wu 2017."""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, ndimage

from irstd.errors import InputError

from . import _patches
from ._common import as_float_image
from .parallel import with_blas_threads

__all__ = ["ript", "ript_decompose", "structure_weight"]

RECONSTRUCTIONS = ("mean", "last")


@with_blas_threads
def ript(image, patch_size: int = 30, step: int = 10, lambda_l: float = 0.7,
         mu_coef: float = 5.0, h: float = 1.0, rho: float = 1.5, tol: float = 1e-7,
         max_iter: int = 1000, reconstruction: str = "mean") -> np.ndarray:
    """Target image of the reweighted infrared patch-tensor model (the authors' code).

    The image is cut into ``30×30`` patches with step 10, the last row and column of patches
    aligned with the border (the authors' ``gen_patch_ten``), stacked as a ``30×30×n`` tensor
    ``F`` (patches in column-major grid order). ``F`` is split into a low-rank background and a
    sparse non-negative target, ``F = B + T``, by the authors' ADMM-like loop (``ript.m``):

    * for each mode ``i`` = 1, 2, 3, ``B_i`` = singular value thresholding of the mode-``i``
      unfolding of ``F + μ Λ_i − T`` at ``μ``;
    * ``T = max(mean_i (F + μ Λ_i − B_i) − W · μ λ / 3, 0)``, then the weights for the next step
      ``W = W_s / (|T| + 0.01)`` (reweighted ℓ1, the non-local prior);
    * ``Λ_i ← Λ_i − (B_i + T − F) / μ``; ``μ ← μ / 1.5``;
    * stop when ``‖F − mean_i B_i − T‖_F / ‖F‖_F < 10⁻⁷`` **or** when the number of positive
      entries of ``T`` equals that of the previous iteration.

    ``λ = 0.7 / √min(30, 30, n)``, ``μ₀ = 5 · std(F)`` (sample std of all entries). The local
    prior ``W_s`` is the patch tensor of ``exp(h · mat2gray(λ1 − λ2))`` from the structure
    tensor (:func:`structure_weight`), ``h = 1``. The returned map is ``T`` put back in place:
    each pixel the mean of the patches covering it (``res_patch_ten_mean``).

    Settings and behaviour of the public code (Y. Dai's ``DENTIST`` repository, ``ript.m`` and
    ``demo_generate_RIPT_data.m``), followed here:

    * patch 30, step 10, ``L = 0.7``, ``μ`` coefficient 5, ``h = 1``, ``ρ = 1.5``, ``ε = 0.01``,
      tolerance 1e-7 — the demo's values;
    * the loop has no iteration cap; ``max_iter`` (default 1000) is a guard only (on 20 SIRST
      test frames the loop stopped on the count rule after 2–13 iterations);
    * reconstruction: the mean of the overlapping patches, as ``res_patch_ten_mean`` does since
      the authors' fix of 2021 (``+=``); the earlier version, copied into other repositories,
      kept the last patch written: ``reconstruction="last"`` gives that;
    * a single patch (image of exactly 30×30) gives MATLAB a 2-D tensor, hence two modes and
      ``λ = 0.7/√30``: reproduced;
    * a constant image gives ``std(F) = 0`` and ``μ = 0``, where the reference divides by zero;
      here the target is 0 (``info["stop"] == "constant"``).

    Against Octave runs of the authors' code on 6 SIRST frames: the same iteration counts and a
    largest relative difference of 2e-11. The SVDs are LAPACK's (``gesdd``), not the faster
    Gram-matrix route of :func:`~irstd.baselines.ipi`: the count stop rule is fragile, and one
    positive entry more or less changes the iteration it stops at, then the whole map.

    Parameters
    ----------
    image : (H, W) array_like
        Grey image with raw intensities (0–255 for 8-bit data). At least one patch must fit.
    patch_size, step : int, optional
        Patch side and sliding step (30 and 10).
    lambda_l : float, optional
        ``L`` in ``λ = L / √min(n1, n2, n3)`` (0.7).
    mu_coef : float, optional
        ``μ₀ = mu_coef · std(F)`` (5).
    h : float, optional
        Strength of the local structure prior (1).
    rho : float, optional
        ``μ`` is divided by ``rho`` every iteration (1.5).
    tol : float, optional
        Relative reconstruction error that stops the loop (1e-7).
    max_iter : int, optional
        Guard on the iterations (the reference has none).
    reconstruction : {"mean", "last"}, optional
        How overlapping target patches become one image (see above).
    blas_threads : int, optional
        Keyword only. Threads of NumPy's BLAS for the matrix products, every other BLAS (SciPy's
        LAPACK, which computes the SVDs) on one (:func:`irstd.baselines.matmul_threads`);
        default ``$IRSTD_BLAS_THREADS``, else ``min(2, os.cpu_count())``. On a loaded 2-core
        machine a two-thread ``gesdd`` ran several times slower than one thread.

    Returns
    -------
    target : (H, W) ndarray of float64
        The raw target image (≥ 0, same units as the input).

    Raises
    ------
    irstd.errors.InputError
        If ``image`` is not a 2-D finite real array, is smaller than one patch, or a parameter is
        invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from irstd.baselines import ript
    >>> y, x = np.mgrid[0:64, 0:72]
    >>> img = 100 + 20 * np.sin(y / 9.0) * np.cos(x / 11.0)
    >>> img[30:32, 40:42] += 80
    >>> t = ript(img)
    >>> [int(i) for i in np.unravel_index(np.argmax(t), t.shape)], float(t[:20, :20].max())
    ([31, 41], 0.0)

    References
    ----------
    .. [1] Y. Dai, Y. Wu, "Reweighted Infrared Patch-Tensor Model With Both Nonlocal and Local
       Priors for Single-Frame Small Target Detection", IEEE J. Sel. Topics Appl. Earth Observ.
       Remote Sens. 10(8):3752–3767, 2017. doi:10.1109/JSTARS.2017.2700023
    .. [2] Y. Dai, ``DENTIST``: ``algorithms/detection/RIPT/ript.m``,
       ``demo_generate_RIPT_data.m``, ``structure_tensor_lambda.m``, ``utils/gen_patch_ten.m``,
       ``utils/res_patch_ten_mean.m``, https://github.com/YimianDai/DENTIST
    """
    return _decompose(image, patch_size, step, lambda_l, mu_coef, h, rho, tol, max_iter,
                      reconstruction, background=False)[0]


@with_blas_threads
def ript_decompose(image, patch_size: int = 30, step: int = 10, lambda_l: float = 0.7,
                   mu_coef: float = 5.0, h: float = 1.0, rho: float = 1.5, tol: float = 1e-7,
                   max_iter: int = 1000, reconstruction: str = "mean", *,
                   background: bool = True):
    """RIPT decomposition returning ``(target, background, info)``.

    Same parameters as :func:`ript`. ``info`` is a dict with ``iterations``, ``stop``
    (``"count"``: the number of positive target entries repeated; ``"tol"``; ``"max_iter"``;
    ``"constant"``: a constant image, nothing run), ``lam``, ``mu0``, ``patches`` (``n``) and
    ``target_count`` (positive target entries at the end). The background is the mean of the
    per-mode backgrounds, rebuilt like the target; ``background=False`` skips it (``None``).
    """
    return _decompose(image, patch_size, step, lambda_l, mu_coef, h, rho, tol, max_iter,
                      reconstruction, background=background)


def _decompose(image, patch_size, step, lambda_l, mu_coef, h, rho, tol, max_iter,
               reconstruction, background):
    """:func:`ript_decompose` without the thread setting (its callers make it)."""
    img = as_float_image(image)
    _patches.check_patch_args(img.shape, patch_size, step)
    for name, v in (("lambda_l", lambda_l), ("mu_coef", mu_coef), ("rho", rho), ("tol", tol)):
        if isinstance(v, bool) or not np.isfinite(v) or v <= 0:
            raise InputError(f"{name}: must be a positive number, got {v!r}")
    if isinstance(h, bool) or not np.isfinite(h):
        raise InputError(f"h: must be a finite number, got {h!r}")
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
        raise InputError(f"max_iter: must be a positive integer, got {max_iter!r}")
    if reconstruction not in RECONSTRUCTIONS:
        raise InputError(f"reconstruction: unknown method {reconstruction!r} (expected one of "
                         f"{RECONSTRUCTIONS})")
    p = int(patch_size)
    d, _, _ = _patches.extract(img, p, step, "nram")
    F = d.T.reshape(-1, p, p)  # F[k, c, r]: pixel (r, c) of patch k
    n = F.shape[0]
    # MATLAB's size() of a p×p×1 tensor is [p p]: a single patch is a matrix with two modes
    modes = 3 if n > 1 else 2
    lam = lambda_l / math.sqrt(min(p, n) if n > 1 else p)
    mu0 = mu_coef * float(F.std(ddof=1))
    info = {"patches": n, "lam": lam, "mu0": mu0}
    if not mu0 > 0:  # constant image: nothing to separate
        info.update(iterations=0, stop="constant", target_count=0)
        return np.zeros(img.shape), img.copy() if background else None, info
    w_struct = _patches.extract(structure_weight(img, h), p, step, "nram")[0].T.reshape(-1, p, p)
    B, T, iterations, stop = _loop(F, w_struct, lam, mu0, rho, tol, int(max_iter), modes)
    info.update(iterations=iterations, stop=stop, target_count=int(np.count_nonzero(T > 0)))

    def rebuild(x):
        return _patches.reconstruct(x.reshape(n, p * p).T, img.shape, p, step, "nram",
                                    reconstruction)

    return rebuild(T), rebuild(B) if background else None, info


def structure_weight(image, h: float = 1.0) -> np.ndarray:
    """RIPT's local structure prior ``exp(h · mat2gray(λ1 − λ2))``.

    ``λ1 ≥ λ2`` are the eigenvalues of the structure tensor of the authors'
    ``structure_tensor_lambda(img, 'Gaussian', 3)``: the image smoothed by a 3×3 Gaussian
    (σ = 1.2), its gradient by central differences (one-sided at the borders, MATLAB
    ``gradient``), the products of the derivatives smoothed by a 3×3 Gaussian (σ = 2), both with
    symmetric (mirror) borders. ``mat2gray`` scales ``λ1 − λ2`` to [0, 1] by its min and max;
    a constant ``λ1 − λ2`` (e.g. a constant image) gives 0, so weights of 1.
    """
    img = as_float_image(image)
    u = ndimage.correlate(img, _gaussian(3, 1.2), mode="reflect")
    gy, gx = np.gradient(u)
    k = _gaussian(3, 2.0)
    j11 = ndimage.correlate(gx * gx, k, mode="reflect")
    j12 = ndimage.correlate(gx * gy, k, mode="reflect")
    j22 = ndimage.correlate(gy * gy, k, mode="reflect")
    sqrt_delta = np.sqrt((j11 - j22) ** 2 + 4 * j12 ** 2)
    diff = 0.5 * (j11 + j22 + sqrt_delta) - 0.5 * (j11 + j22 - sqrt_delta)  # λ1 − λ2 as MATLAB
    lo, hi = float(diff.min()), float(diff.max())
    scaled = (diff - lo) / (hi - lo) if hi > lo else np.zeros_like(diff)
    return np.exp(h * scaled)


def _gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', [size size], sigma)``."""
    r = (size - 1) / 2
    x = np.arange(-r, r + 1)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    g[g < np.finfo(np.float64).eps * g.max()] = 0
    return g / g.sum()


def _unfold(x: np.ndarray, mode: int) -> np.ndarray:
    """Mode unfolding of ``x[k, c, r]`` up to a column permutation (which SVT ignores).

    Mode 0 is the patch row ``r`` (MATLAB mode 1), mode 1 the patch column ``c``, mode 2 the
    patch index ``k``; the unfolding is returned transposed for modes 0 and 1 (rows = the other
    indices), which SVT also commutes with.
    """
    n, p, _ = x.shape
    if mode == 0:
        return x.reshape(n * p, p)
    if mode == 1:
        return x.transpose(0, 2, 1).reshape(n * p, p)
    return x.reshape(n, p * p)


def _fold(m: np.ndarray, mode: int, shape) -> np.ndarray:
    n, p, _ = shape
    if mode == 1:
        return m.reshape(n, p, p).transpose(0, 2, 1)
    return m.reshape(n, p, p)


def _svt(m: np.ndarray, tau: float) -> np.ndarray:
    """Singular value thresholding by LAPACK ``gesdd`` (SciPy's, kept on one thread).

    ``m`` is a C-ordered temporary: LAPACK gets its transpose, a Fortran-ordered view, so no
    copy is made (and it may be overwritten).
    """
    vt, s, u = linalg.svd(m.T, full_matrices=False, check_finite=False, overwrite_a=True)
    r = int(np.count_nonzero(s > tau))  # singular values come in decreasing order
    return (u.T[:, :r] * (s[:r] - tau)) @ vt.T[:r]


def _loop(F, w_struct, lam, mu, rho, tol, max_iter, modes):
    """The loop of ``ript.m``; returns the mean background, the target, iterations, stop.

    Same operations in the same order as the MATLAB code, written in place to spare the
    temporaries of its ~40 whole-tensor passes per iteration.
    """
    norm_f = float(np.linalg.norm(F))
    T = np.zeros_like(F)
    lambdas = [np.zeros_like(F) for _ in range(modes)]
    scaled = [np.zeros_like(F) for _ in range(modes)]
    backs = [None] * modes
    weight = w_struct.copy()
    acc = np.empty_like(F)
    tmp = np.empty_like(F)
    pre_count = T.size
    stop = "max_iter"
    it = 0
    for it in range(1, max_iter + 1):
        for i in range(modes):
            np.multiply(lambdas[i], mu, out=scaled[i])  # mu · Λ_i
            g = np.add(F, scaled[i])
            g -= T
            backs[i] = _fold(_svt(_unfold(g, i), mu), i, F.shape)
        acc.fill(0.0)
        for i in range(modes):  # Σ_i (B_i − F − mu·Λ_i)
            np.subtract(backs[i], F, out=tmp)
            tmp -= scaled[i]
            acc += tmp
        # T = max(−acc/N − W·mu·λ/N, 0)
        np.multiply(weight, mu, out=tmp)
        tmp *= lam
        tmp /= modes
        T = np.multiply(acc, -1 / modes)
        T -= tmp
        np.maximum(T, 0.0, out=T)
        # W = 1/(|T| + 0.01) · W_s
        np.abs(T, out=weight)
        weight += 0.01
        np.divide(1.0, weight, out=weight)
        weight *= w_struct
        for i in range(modes):  # Λ_i ← Λ_i − (1/mu)·(B_i + T − F)
            np.add(backs[i], T, out=tmp)
            tmp -= F
            tmp *= 1 / mu
            lambdas[i] -= tmp
        mu = mu / rho
        B = backs[0].copy()
        for b in backs[1:]:
            B += b
        B /= modes
        np.subtract(F, B, out=tmp)
        tmp -= T
        err = float(np.linalg.norm(tmp)) / norm_f
        count = int(np.count_nonzero(T > 0))
        if err < tol:
            stop = "tol"
            break
        if count == pre_count:
            stop = "count"
            break
        pre_count = count
    return B, T, it, stop
