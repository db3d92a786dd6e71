"""Numerical rank and orthonormal bases with a dtype-aware tolerance (docs/theory.md, eq. (3))."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64, input_eps, is_low_precision, storage_error

__all__ = ["rank_rtol", "orthonormal_basis", "numerical_rank", "default_sine_tol"]


def rank_rtol(shape: tuple[int, ...], dtype: str = "float64", fro_ratio: float | None = None) -> float:
    """Relative singular-value threshold of eq. (3): σᵢ counts towards the rank when
    σᵢ > rank_rtol · σ₁.

    * float64, float32 (and integer) input: ``max(shape) · ε(dtype)`` — the backward error of the
      float64 SVD (float64) or at most the float32 storage error (float32); NumPy's
      ``matrix_rank`` default for float64.
    * 16-bit, 8-bit floats and block-quantized GGUF types: the error of *storing* the matrix,
      δ · ρ · (1/√m + 1/√n) with δ = :func:`~flagalign._arrays.storage_error` (u = ε/2 for floats),
      ρ = ‖W‖_F / σ₁ and (m, n) = shape; never below float64's ``max(shape) · ε``. ρ ≤ √min(m, n),
      so without ``fro_ratio`` the threshold is the data-independent bound δ·(1 + √(min/max)) ≤ 2δ.

    Parameters
    ----------
    shape : (m, n)
    dtype : str
        The stored dtype name (``bfloat16``, ``q4_1``, ...).
    fro_ratio : float, optional
        ρ = ‖W‖_F / σ₁(W) (or an upper bound on it) of the matrix, for the data-aware threshold.
    """
    d = str(dtype).lower()
    if not is_low_precision(d):
        return max(shape) * input_eps(d)
    m, n = (int(shape[0]), int(shape[1])) if len(shape) >= 2 else (int(shape[0]), 1)
    if min(m, n) == 0:
        return 0.0
    rho = float(np.sqrt(min(m, n))) if fro_ratio is None else min(float(fro_ratio), np.sqrt(min(m, n)))
    floor = max(m, n) * input_eps("float64")
    return max(floor, storage_error(d) * rho * (m**-0.5 + n**-0.5))


def default_sine_tol(dtype: str = "float64") -> float:
    """Default tolerance on sin θ for intersections (eq. (5)): ``max(1e-6, 20·δ(dtype))`` with δ the
    storage error of eq. (3) (= ``10·ε`` for float types), at most 0.5 (30°)."""
    return min(0.5, max(1e-6, 20.0 * storage_error(dtype)))


def _rank_from_singular_values(s: np.ndarray, rtol: float) -> int:
    if s.size == 0 or s[0] == 0.0:
        return 0
    return int(np.count_nonzero(s > rtol * s[0]))


def orthonormal_basis(A, *, name: str = "A", rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis (n×r, float64) of the column span of ``A`` via the SVD.

    r is the numerical rank of eq. (3) unless ``rtol`` is given.
    """
    a, dtype = as_float64(A, name=name)
    if a.shape[1] == 0 or a.shape[0] == 0:
        return np.zeros((a.shape[0], 0))
    if not np.all(np.isfinite(a)):
        from ..errors import InputError

        raise InputError(f"{name}: contains NaN or Inf")
    u, s, _ = sla.svd(a, full_matrices=False, lapack_driver="gesdd")
    r = _rank_from_singular_values(s, _rtol_from_s(s, a.shape, dtype) if rtol is None else rtol)
    return u[:, :r]


def numerical_rank(A, *, rtol: float | None = None) -> int:
    """Numerical rank of ``A`` at the relative tolerance of eq. (3)."""
    a, dtype = as_float64(A, name="A")
    if a.size == 0:
        return 0
    s = sla.svdvals(a)
    return _rank_from_singular_values(s, _rtol_from_s(s, a.shape, dtype) if rtol is None else rtol)


def _rtol_from_s(s: np.ndarray, shape, dtype: str) -> float:
    """eq. (3)'s threshold with ρ = ‖W‖_F/σ₁ = ‖s‖/s₁ from the singular values themselves."""
    rho = float(np.linalg.norm(s) / s[0]) if s.size and s[0] > 0 else None
    return rank_rtol(shape, dtype, rho)
