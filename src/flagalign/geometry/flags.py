"""Flags, their soft and hard intersection tables, and relative position (docs/theory.md §1.2).

A flag is given by an orthonormal matrix whose column order defines the nested subspaces
U₁ ⊂ U₂ ⊂ … (Uᵢ = span of the first i columns). For a weight matrix the natural flags are its
singular vectors ordered by decreasing singular value.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64
from ..errors import InputError, ToleranceError
from .flag_position import partial_relative_position
from .partial_flag import Flag, _check_orthonormal

__all__ = ["flag_table", "flag_intersection_dims", "relative_position"]


def _orthonormal(X, name: str) -> np.ndarray:
    x, dtype = as_float64(X, name=name)
    if x.shape[1] > x.shape[0]:
        raise InputError(f"{name}: a flag basis needs at most n columns, got shape {x.shape}")
    _check_orthonormal(x, dtype, name)
    return x


def _pair(U, V) -> tuple[np.ndarray, np.ndarray]:
    u, v = _orthonormal(U, "U"), _orthonormal(V, "V")
    if u.shape[0] != v.shape[0]:
        raise InputError(f"U and V live in different spaces: {u.shape[0]} vs {v.shape[0]} rows")
    return u, v


def flag_table(U, V) -> np.ndarray:
    """Soft intersection dimensions of two flags (eq. (6)).

    Parameters
    ----------
    U : array_like, shape (n, p), orthonormal columns
    V : array_like, shape (n, q), orthonormal columns

    Returns
    -------
    T : ndarray, shape (p + 1, q + 1)
        T[i, j] = ‖U[:, :i]ᵀ V[:, :j]‖²_F = Σ cos² of the principal angles between Uᵢ and Vⱼ.
        Computed from one product S = (UᵀV)∘(UᵀV) by a 2-D cumulative sum, O(pq) after it.
        0 ≤ T[i, j] ≤ min(i, j), non-decreasing in i and in j; T[i, j] equals the hard
        intersection dimension dim(Uᵢ ∩ Vⱼ) when all angles are 0 or π/2.
    """
    u, v = _pair(U, V)
    s = (u.T @ v) ** 2
    t = np.zeros((u.shape[1] + 1, v.shape[1] + 1))
    t[1:, 1:] = np.cumsum(np.cumsum(s, axis=0), axis=1)
    return t


def _hard_dim(u: np.ndarray, v: np.ndarray, tol: float) -> int:
    """dim(span u ∩ span v) for orthonormal u, v: # sines ≤ tol (eq. (5))."""
    if u.shape[1] < v.shape[1]:
        u, v = v, u
    if v.shape[1] == 0:
        return 0
    sines = sla.svdvals(v - u @ (u.T @ v))
    return int(np.count_nonzero(sines <= tol))


def flag_intersection_dims(U, V, tol: float = 1e-6, ks=None) -> np.ndarray:
    """Hard intersection dimensions dim(Uᵢ ∩ Vⱼ) at tolerance (eq. (7)).

    Parameters
    ----------
    U, V : array_like, shapes (n, p) and (n, q), orthonormal columns (flag bases)
    tol : float
        Tolerance on sin θ (eq. (5)).
    ks : sequence of int, optional
        Flag sizes to evaluate on both axes (clipped to p and q). Default: 0..p and 0..q, so the
        result aligns with :func:`flag_table`.

    Returns
    -------
    ndarray of int, shape (len(ks_U), len(ks_V))
    """
    u, v = _pair(U, V)
    p, q = u.shape[1], v.shape[1]
    if ks is None:
        ki, kj = list(range(p + 1)), list(range(q + 1))
    else:
        ks = [int(k) for k in ks]
        if any(k < 0 for k in ks):
            raise InputError(f"ks must be non-negative flag sizes, got {ks}")
        ki, kj = [k for k in ks if k <= p], [k for k in ks if k <= q]
    out = np.zeros((len(ki), len(kj)), dtype=int)
    for a, i in enumerate(ki):
        for b, j in enumerate(kj):
            out[a, b] = _hard_dim(u[:, :i], v[:, :j], tol)
    return out


def relative_position(U, V, tol: float = 1e-6):
    """Relative position of two complete flags of ℝⁿ: the permutation of their Schubert cell
    (eq. (8)); of two partial :class:`~flagalign.geometry.partial_flag.Flag` objects: their
    Schubert cell with its margin (eq. (64), a
    :class:`~flagalign.geometry.flag_position.RelativePosition`).

    Returns the unique 0-based permutation w with dim(Uᵢ ∩ Vⱼ) = #{a < i : w[a] < j} for all
    0 ≤ i, j ≤ n. The identity means the flags coincide; the reversal (n−1, …, 0) means generic
    position (dim(Uᵢ ∩ Vⱼ) = max(0, i + j − n)).

    Raises
    ------
    ToleranceError
        If the intersection table at ``tol`` is not that of a permutation (then ``tol`` is
        below the noise in U, V: loosen it).
    """
    if isinstance(U, Flag) or isinstance(V, Flag):
        return partial_relative_position(U, V, tol=tol)
    u, v = _pair(U, V)
    n = u.shape[0]
    if u.shape[1] != n or v.shape[1] != n:
        raise InputError(f"relative_position needs complete flags (n×n), got {u.shape}, {v.shape}")
    d = flag_intersection_dims(u, v, tol=tol)
    # second difference: r[a, j] = 1 exactly when w[a] = j
    r = np.diff(np.diff(d, axis=0), axis=1)
    ok = np.all((r == 0) | (r == 1)) and np.all(r.sum(axis=0) == 1) and np.all(r.sum(axis=1) == 1)
    if not ok:
        raise ToleranceError(
            f"relative_position: the intersection table at tol={tol:g} is not that of a "
            f"permutation (some principal angles sit near the tolerance); loosen tol "
            f"(e.g. tol={min(tol * 10, 0.5):g}) to count them as intersections"
        )
    return [int(j) for j in np.argmax(r, axis=1)]
