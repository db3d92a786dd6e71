"""Relative position of two partial flags: hard Schubert cell and its soft version
(docs/theory.md, eqs. (64)–(65)).

Pairs of flags of types d (of F) and e (of G) in ℝⁿ fall, under GL(n) acting on both, into
finitely many orbits: the double cosets P_d \\ GL(n) / P_e of the parabolic subgroups. An orbit
is a (p+1)×(q+1) matrix of non-negative integers with row sums the piece sizes of F and column
sums those of G — the second difference of the intersection table dim(Fᵢ ∩ Gⱼ). For complete
flags it is the permutation matrix of eq. (8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from ..errors import InputError, ToleranceError
from .partial_flag import Flag, as_flag

__all__ = [
    "RelativePosition",
    "partial_relative_position",
    "piece_overlaps",
    "soft_relative_position",
    "soft_relative_position_baseline",
]


@dataclass(frozen=True)
class RelativePosition:
    """The Schubert cell of a pair of partial flags (eq. (64)).

    Attributes
    ----------
    matrix : ndarray of int, shape (p+1, q+1)
        r[i, j] = dim of the part of F's piece i that lies in G's piece j, in the sense of the
        second difference of ``table``; rows/columns include the complements. Row sums = F's
        piece sizes, column sums = G's. Identity cell: the "north-west corner" matrix (diagonal
        for equal types).
    table : ndarray of int, shape (p+2, q+2)
        dim(Fᵢ ∩ Gⱼ) at ``tol`` for i = 0..p+1, j = 0..q+1 (F₀ = 0, F_{p+1} = ℝⁿ).
    tol : float
        Tolerance on the sines of eq. (5).
    margin : float
        min over all rank decisions of |sin θ − tol|: perturbing F and G by subspace rotations
        with sin Θ summing to less than ``margin`` changes no entry of ``table``
        (inf when there is no decision to take).
    certified : bool
        ``margin`` exceeds F.uncertainty + G.uncertainty (the Wedin bounds of eq. (63)): the
        cell is the same for every matrix within the flags' trusted perturbation.
    is_identity, is_generic : bool
        table = min(dᵢ, eⱼ) (the flags refine a common complete flag) resp.
        table = max(0, dᵢ + eⱼ − n) (general position).
    permutation : list of int or None
        For two complete flags: the permutation of eq. (8).
    """

    matrix: np.ndarray
    table: np.ndarray
    tol: float
    margin: float
    certified: bool
    is_identity: bool
    is_generic: bool
    permutation: list | None


def _full(dims: tuple[int, ...], n: int) -> np.ndarray:
    return np.array((0,) + tuple(dims) + (n,))


def _sines(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sines of the principal angles (the min(dim) of them) between orthonormal u, v."""
    if u.shape[1] < v.shape[1]:
        u, v = v, u
    if v.shape[1] == 0:
        return np.zeros(0)
    return sla.svdvals(v - u @ (u.T @ v))


def partial_relative_position(F, G, tol: float = 1e-6) -> RelativePosition:
    """Schubert cell of two partial flags with its stability margin (eq. (64)).

    Parameters
    ----------
    F, G : Flag (or orthonormal arrays: complete flags of their columns), same ambient ℝⁿ
    tol : float
        Tolerance on sin θ for each intersection dimension (eq. (5)).

    Raises
    ------
    ToleranceError
        When the rank decisions at ``tol`` are inconsistent (some second difference negative):
        some angles sit near ``tol``; loosen it.

    Notes
    -----
    Cost: p·q SVDs of n × min(dᵢ, eⱼ) matrices. Invariant under GL(n) acting on both flags
    (exactly, for exact flags) and under rotations inside pieces.
    """
    F, G = as_flag(F, "F"), as_flag(G, "G")
    if F.n != G.n:
        raise InputError(f"flags live in different spaces: ℝ^{F.n} and ℝ^{G.n}")
    if tol < 0:
        raise InputError(f"tol must be >= 0, got {tol}")
    n, p, q = F.n, len(F.dims), len(G.dims)
    d, e = _full(F.dims, n), _full(G.dims, n)
    table = np.minimum.outer(d, e)  # boundary rows/cols are exact; interior overwritten below
    margin = np.inf
    for i in range(1, p + 1):
        for j in range(1, q + 1):
            s = _sines(F.member(i - 1), G.member(j - 1))
            table[i, j] = int(np.count_nonzero(s <= tol))
            if s.size:
                margin = min(margin, float(np.min(np.abs(s - tol))))
    r = np.diff(np.diff(table, axis=0), axis=1)
    if np.any(r < 0):
        raise ToleranceError(
            f"relative_position: the intersection table at tol={tol:g} is not that of a "
            f"Schubert cell (some principal angles sit near the tolerance); loosen tol "
            f"(e.g. tol={min(tol * 10, 0.5):g}) to count them as intersections"
        )
    ident = np.minimum.outer(d, e)
    generic = np.maximum(0, np.add.outer(d, e) - n)
    perm = None
    if F.is_complete and G.is_complete:
        perm = [int(j) for j in np.argmax(r, axis=1)]
    return RelativePosition(
        matrix=r,
        table=table,
        tol=float(tol),
        margin=margin,
        certified=bool(margin > F.uncertainty + G.uncertainty),
        is_identity=bool(np.array_equal(table, ident)),
        is_generic=bool(np.array_equal(table, generic)),
        permutation=perm,
    )


def piece_overlaps(F, G) -> np.ndarray:
    """Soft Schubert matrix M[i, j] = ‖VᵢᵀWⱼ‖²_F of the pieces, complements included (eq. (65)).

    Returns
    -------
    ndarray, shape (p+1, q+1)
        Non-negative, row sums = F's piece sizes, column sums = G's: a transport plan matching
        the pieces of F to those of G. Equals ``partial_relative_position(F, G).matrix`` when
        every principal angle is 0 or π/2. Invariant under rotations inside pieces and under a
        common orthogonal map.
    """
    F, G = as_flag(F, "F"), as_flag(G, "G")
    if F.n != G.n:
        raise InputError(f"flags live in different spaces: ℝ^{F.n} and ℝ^{G.n}")
    p, q = len(F.dims), len(G.dims)
    fs, gs = np.array(F.sizes, dtype=float), np.array(G.sizes, dtype=float)
    m = np.zeros((p + 1, q + 1))
    if p and q:
        c = (F.basis.T @ G.basis) ** 2
        fb, gb = _full(F.dims, F.n)[:p], _full(G.dims, G.n)[:q]
        m[:p, :q] = np.add.reduceat(np.add.reduceat(c, fb, axis=0), gb, axis=1)
    m[:p, q] = fs[:p] - m[:p, :q].sum(axis=1)
    m[p, :q] = gs[:q] - m[:p, :q].sum(axis=0)
    m[p, q] = fs[p] - m[p, :q].sum()
    return np.maximum(m, 0.0)


def _soft_parts(F: Flag, G: Flag) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d, e = np.array(F.dims, dtype=float), np.array(G.dims, dtype=float)
    m = piece_overlaps(F, G)
    t = np.cumsum(np.cumsum(m, axis=0), axis=1)[: len(d), : len(e)]  # ‖F_iᵀ G_j‖²_F
    ident = np.minimum.outer(d, e)
    generic = np.maximum(0.0, np.add.outer(d, e) - F.n)
    return t, ident, generic


def soft_relative_position(F, G) -> float:
    """How far the pair (F, G) is from the identity cell, in [0, 1] (eq. (65)).

    s = Σᵢⱼ (min(dᵢ, eⱼ) − ‖FᵢᵀGⱼ‖²_F) / Σᵢⱼ (min(dᵢ, eⱼ) − max(0, dᵢ + eⱼ − n)) over all
    members i ≤ p, j ≤ q. 0 exactly when every Fᵢ and Gⱼ are nested as far as their dimensions
    allow (identical flags, or one a coarsening of the other); 1 for the reversed flag (the
    longest cell, realised with angles 0 and π/2). For complete flags in a permutation cell it is
    Σₐ(a − w(a))² / Σₐ(a − w₀(a))² (normalised Spearman distance). Random flags:
    :func:`soft_relative_position_baseline`. Invariant under rotations inside pieces and a common
    orthogonal map; 0.0 when either flag is trivial.
    """
    F, G = as_flag(F, "F"), as_flag(G, "G")
    if not F.dims or not G.dims:
        if F.n != G.n:
            raise InputError(f"flags live in different spaces: ℝ^{F.n} and ℝ^{G.n}")
        return 0.0
    t, ident, generic = _soft_parts(F, G)
    num = float(np.sum(ident - t))
    den = float(np.sum(ident - generic))
    return float(min(1.0, max(0.0, num / den)))


def soft_relative_position_baseline(dims_f, dims_g, n: int) -> float:
    """Expected :func:`soft_relative_position` of independent Haar-random flags of the given
    types in ℝⁿ: E‖FᵢᵀGⱼ‖²_F = dᵢeⱼ/n (eq. (4)), so the expectation is exact (eq. (65))."""
    d, e = np.array(dims_f, dtype=float), np.array(dims_g, dtype=float)
    if d.size == 0 or e.size == 0:
        return 0.0
    if np.any(d <= 0) or np.any(e <= 0) or np.any(d >= n) or np.any(e >= n):
        raise InputError(f"dims must lie in 1..n-1, got {tuple(d)}, {tuple(e)} with n={n}")
    ident = np.minimum.outer(d, e)
    generic = np.maximum(0.0, np.add.outer(d, e) - n)
    return float(np.sum(ident - np.outer(d, e) / n) / np.sum(ident - generic))
