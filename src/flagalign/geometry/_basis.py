"""Numerical rank and orthonormal bases with a dtype-aware tolerance (docs/theory.md, eq. (3))."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64, input_eps, is_low_precision, is_quantized, storage_error
from ..errors import InputError

__all__ = ["rank_rtol", "orthonormal_basis", "numerical_rank", "default_sine_tol",
           "rank_from_singular_values", "storage_noise_ratio"]


#: Whether block-quantized GGUF types get the storage-error tolerance of eq. (3) by default.
#: False keeps their previous treatment (the dequantized float32 matrix taken as exact): the
#: storage tolerance (δ_q ≈ 0.15 for Q4_*) hides most of SmolLM2-Q4_1's spectrum (e.g. ffn_down
#: rank 576 → 525 data-aware, → 185 with the shape-only bound) and is a project decision
#: (docs/theory.md eq. (3)). ``rank_rtol(..., storage=True)`` applies it explicitly.
QUANT_STORAGE_DEFAULT = False


def _uses_storage(d: str, storage: bool | None) -> bool:
    if storage is not None:
        return bool(storage) and (is_low_precision(d))
    if is_quantized(d):
        return QUANT_STORAGE_DEFAULT
    return is_low_precision(d)


def rank_rtol(shape: tuple[int, ...], dtype: str = "float64", noise_ratio: float | None = None,
              *, storage: bool | None = None) -> float:
    """Relative singular-value threshold of eq. (3): σᵢ counts towards the rank when
    σᵢ > rank_rtol · σ₁.

    * float64, float32 (and integer) input: ``max(shape) · ε(dtype)`` — the backward error of the
      float64 SVD (float64) or a bound at least as large as the float32 storage error (float32);
      NumPy's ``matrix_rank`` default for float64.
    * 16-bit and 8-bit floats and block-quantized GGUF types: the error of *storing* the matrix,
      ``δ · ν`` with δ = :func:`~flagalign._arrays.storage_error` (u = ε/2 for floats) and
      ν = (maxᵢ‖W_i,:‖₂ + maxⱼ‖W_:,j‖₂) / σ₁ (``noise_ratio``, :func:`storage_noise_ratio`), never
      below float64's ``max(shape) · ε``. Every row and column norm is ≤ σ₁, so ν ≤ 2 and without
      ``noise_ratio`` the threshold is the data-independent bound 2δ (= ε for bf16/fp16/fp8).

    Parameters
    ----------
    shape : (m, n)
    dtype : str
        The stored dtype name (``bfloat16``, ``q4_1``, ...).
    noise_ratio : float, optional
        ν of the matrix (or an upper bound on it), for the data-aware threshold.
    storage : bool, optional
        Force (True) or skip (False) the storage-error threshold; default: on for 16/8-bit floats,
        ``QUANT_STORAGE_DEFAULT`` for block-quantized types.
    """
    d = str(dtype).lower()
    if not _uses_storage(d, storage):
        return max(shape) * input_eps(d)
    nu = 2.0 if noise_ratio is None else min(2.0, float(noise_ratio))
    return max(max(shape) * input_eps("float64"), storage_error(d) * nu)


def storage_noise_ratio(a: np.ndarray, sigma1: float) -> float:
    """ν = (maxᵢ‖a_i,:‖₂ + maxⱼ‖a_:,j‖₂) / σ₁ of eq. (3) (O(mn); 2.0 for a zero matrix)."""
    if a.size == 0 or not sigma1 > 0:
        return 2.0
    rows = float(np.sqrt(np.max(np.einsum("ij,ij->i", a, a))))
    cols = float(np.sqrt(np.max(np.einsum("ij,ij->j", a, a))))
    return min(2.0, (rows + cols) / float(sigma1))


def default_sine_tol(dtype: str = "float64", *, storage: bool | None = None) -> float:
    """Default tolerance on sin θ for intersections (eq. (5)): ``max(1e-6, 20·δ(dtype))`` with δ the
    storage error of eq. (3) (= ``10·ε`` for float types), at most 0.5 (30°); block-quantized types
    use float32's unless the storage tolerance applies (``storage``, ``QUANT_STORAGE_DEFAULT``)."""
    d = str(dtype).lower()
    delta = storage_error(d) if _uses_storage(d, storage) or not is_quantized(d) else input_eps(d) / 2
    return min(0.5, max(1e-6, 20.0 * delta))


def rank_from_singular_values(s, rtol: float, scale: float | None = None) -> int:
    """How many singular values exceed ``rtol · scale`` (eq. (3)); the one rank count of flagalign.

    Parameters
    ----------
    s : array_like
        Singular values, descending (only ``s[0]`` is assumed to be the largest).
    rtol : float
        Relative tolerance, e.g. :func:`rank_rtol`.
    scale : float, optional
        The reference σ₁; default ``s[0]``. Pass another matrix's σ₁ to count ranks of a
        product at that matrix's threshold (eq. (12)). Zero or no values give rank 0.
    """
    s = np.asarray(s)
    ref = (float(s[0]) if s.size else 0.0) if scale is None else float(scale)
    if s.size == 0 or ref == 0.0:
        return 0
    return int(np.count_nonzero(s > rtol * ref))




def orthonormal_basis(A, *, name: str = "A", rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis (n×r, float64) of the column span of ``A`` via the SVD.

    r is the numerical rank of eq. (3) unless ``rtol`` is given.
    """
    a, dtype = as_float64(A, name=name)
    if a.shape[1] == 0 or a.shape[0] == 0:
        return np.zeros((a.shape[0], 0))
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: contains NaN or Inf")
    u, s, _ = sla.svd(a, full_matrices=False, lapack_driver="gesdd")
    r = rank_from_singular_values(s, _rtol_from(a, s, dtype) if rtol is None else rtol)
    return u[:, :r]


def numerical_rank(A, *, rtol: float | None = None) -> int:
    """Numerical rank of ``A`` at the relative tolerance of eq. (3)."""
    a, dtype = as_float64(A, name="A")
    if a.size == 0:
        return 0
    s = sla.svdvals(a)
    return rank_from_singular_values(s, _rtol_from(a, s, dtype) if rtol is None else rtol)


def _rtol_from(a: np.ndarray, s: np.ndarray, dtype: str) -> float:
    """eq. (3)'s threshold for ``a`` with its singular values ``s`` (data-aware ν)."""
    if not _uses_storage(str(dtype).lower(), None) or not (s.size and s[0] > 0):
        return rank_rtol(a.shape, dtype)
    return rank_rtol(a.shape, dtype, storage_noise_ratio(a, float(s[0])))
