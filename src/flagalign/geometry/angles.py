"""Principal angles between subspaces and the scalars derived from them (docs/theory.md §1.1)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64
from .._validate import check_tol
from ..errors import InputError
from ._basis import orthonormal_basis

__all__ = [
    "principal_angles",
    "principal_cosines_sines",
    "subspace_overlap",
    "overlap_baseline",
    "intersection_dim",
]


def _bases(A, B) -> tuple[np.ndarray, np.ndarray]:
    a, _ = as_float64(A, name="A")
    b, _ = as_float64(B, name="B")
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"subspaces live in different spaces: A has {a.shape[0]} rows, B has {b.shape[0]}"
        )
    return orthonormal_basis(A, name="A"), orthonormal_basis(B, name="B")


def _cos_sin_orthonormal(qa: np.ndarray, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosines and sines of the principal angles between orthonormal bases, ascending angle.

    Knyazev & Argentati (2002), Algorithm 3.1: cosines are the singular values of QaᵀQb, sines
    those of the residual Qb − Qa(QaᵀQb) (of the smaller basis); both are computed so that each
    angle can be taken from whichever function is well conditioned at it.
    """
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    m = qb.shape[1]
    if m == 0:
        return np.zeros(0), np.zeros(0)
    c = qa.T @ qb
    cos = np.clip(sla.svdvals(c), 0.0, 1.0)[:m]  # descending cosines = ascending angles
    sin = np.clip(sla.svdvals(qb - qa @ c), 0.0, 1.0)[:m][::-1]  # ascending sines
    return cos, sin


def principal_cosines_sines(A, B) -> tuple[np.ndarray, np.ndarray]:
    """Cosines and sines of the principal angles of eq. (1), in ascending angle order."""
    qa, qb = _bases(A, B)
    return _cos_sin_orthonormal(qa, qb)


def _angles_from(cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    # arcsin is accurate for small angles, arccos for large ones (switch at 45°).
    return np.where(cos**2 >= 0.5, np.arcsin(sin), np.arccos(cos))


def principal_angles(A, B) -> np.ndarray:
    """Principal angles between span(A) and span(B), ascending, in radians (eq. (1)).

    Parameters
    ----------
    A, B : array_like or torch.Tensor, shape (n, a) and (n, b)
        Columns spanning each subspace (need not be orthonormal). Numerical ranks follow the
        dtype-aware tolerance of eq. (3).

    Returns
    -------
    ndarray, shape (m,)
        θ₁ ≤ … ≤ θ_m with m = min(rank A, rank B).

    Notes
    -----
    Knyazev & Argentati's sine/cosine combination (SIAM J. Sci. Comput. 23(6), 2002): an angle
    with cos²θ ≥ ½ is taken as arcsin of the residual's singular value, otherwise as arccos of
    the cosine, so angles near 0 keep full relative accuracy (a planted 1e-9 rad is recovered to
    ~1e-16) where ``arccos`` alone would lose everything below ~1e-8.
    """
    cos, sin = principal_cosines_sines(A, B)
    return _angles_from(cos, sin)


def subspace_overlap(A, B) -> float:
    """Mean squared cosine of the principal angles, in [0, 1] (eq. (2)).

    Equals ‖QaᵀQb‖²_F / m for orthonormal bases. 1 when one subspace contains the other, 0 when
    they are orthogonal. NaN when either subspace is {0}.
    """
    qa, qb = _bases(A, B)
    m = min(qa.shape[1], qb.shape[1])
    if m == 0:
        return float("nan")
    return float(min(1.0, np.sum((qa.T @ qb) ** 2) / m))


def overlap_baseline(a: int, b: int, n: int) -> float:
    """Expected ``subspace_overlap`` of independent uniformly random a- and b-dimensional
    subspaces of ℝⁿ: max(a, b)/n (eq. (4)).

    Derivation: E‖QaᵀQb‖²_F = ab/n (each of the a·b squared inner products of a fixed unit vector
    with a uniformly random unit vector has mean 1/n); divide by m = min(a, b).
    """
    a, b, n = int(a), int(b), int(n)
    if n <= 0 or not (0 < a <= n and 0 < b <= n):
        raise InputError(f"overlap_baseline needs 0 < a, b <= n, got a={a}, b={b}, n={n}")
    return max(a, b) / n


def intersection_dim(A, B, tol: float = 1e-6) -> int:
    """dim(span A ∩ span B) at tolerance: the number of principal angles with sin θ ≤ tol
    (eq. (5)).

    ``tol`` bounds the sine, not the angle. For float32 or half-precision weights a tolerance
    below their roundoff is meaningless; see ``default_sine_tol``.
    """
    tol = check_tol(tol)
    cos, sin = principal_cosines_sines(A, B)
    return int(np.count_nonzero(sin <= tol))
