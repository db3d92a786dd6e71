"""Numerical rank and orthonormal bases with a dtype-aware tolerance (docs/theory.md, eq. (3))."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64, input_eps
from ..errors import InputError

__all__ = ["rank_rtol", "orthonormal_basis", "numerical_rank", "default_sine_tol",
           "rank_from_singular_values"]


def rank_rtol(shape: tuple[int, ...], dtype: str = "float64") -> float:
    """Relative singular-value threshold of eq. (3): ``max(shape) * eps(dtype)``.

    A singular value σᵢ counts towards the rank when σᵢ > rank_rtol · σ₁. ``eps`` is the unit
    roundoff of the *input* dtype (float16, bfloat16, float32 or float64), because rounding the
    stored weights perturbs every singular value by about ``eps · σ₁``; with float64 input this is
    NumPy's ``matrix_rank`` default.
    """
    return max(shape) * input_eps(dtype)


def default_sine_tol(dtype: str = "float64") -> float:
    """Default tolerance on sin θ for intersections (eq. (5)): ``max(1e-6, 10·eps(dtype))``."""
    return max(1e-6, 10.0 * input_eps(dtype))


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


_rank_from_singular_values = rank_from_singular_values  # older private name


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
    r = _rank_from_singular_values(s, rank_rtol(a.shape, dtype) if rtol is None else rtol)
    return u[:, :r]


def numerical_rank(A, *, rtol: float | None = None) -> int:
    """Numerical rank of ``A`` at the relative tolerance of eq. (3)."""
    a, dtype = as_float64(A, name="A")
    if a.size == 0:
        return 0
    s = sla.svdvals(a)
    return _rank_from_singular_values(s, rank_rtol(a.shape, dtype) if rtol is None else rtol)
