"""Pair alignment from shared factors: the same quantities as
:func:`flagalign.geometry.pair_alignment` (docs/theory.md, eq. (14)), computed without the
per-pair SVDs that function does on its own.

Given the cached full thin SVD of the writer (its numerical rank and column basis, eq. (3)) and
the reader's top factors, a pair needs only: the k×k cosine/sine problem of eq. (1), the flag
table of eq. (6), the two Gram matrices for D (eq. (11)), one product for the commutator
(eq. (10), formed in factored order W·((W'W)ᵀW') when that is cheaper than the n×n product) and
one small SVD of W'Q for lost_dims (eq. (12)) — none when W has full row rank, since then
σ(W'Q) = σ(W'). ``tests/test_analyze_measure.py`` checks every
field against ``geometry.pair_alignment``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["measure_pair", "commutator_factored"]


def commutator_factored(W: np.ndarray, Wn: np.ndarray, g_w: np.ndarray, g_next: np.ndarray) -> float:
    """Gram commutator ‖AB − BA‖_F / (‖A‖_F‖B‖_F) with A = WWᵀ, B = W'ᵀW' (eq. (10)).

    For symmetric A, B, BA = (AB)ᵀ, so one product C = AB suffices; C is formed as
    W · ((W'W)ᵀ · W') when n²·i + 2·o·n·i < n³ (n hidden, i = W's inputs, o = W''s outputs) and as
    A @ B otherwise. Both are exact products (no cancellation), unlike trace identities.
    """
    na, nb = np.linalg.norm(g_w), np.linalg.norm(g_next)
    if na == 0.0 or nb == 0.0:
        return 0.0
    n, i = W.shape
    o = Wn.shape[0]
    if n * n * i + 2 * o * n * i < n**3:
        c = W @ ((Wn @ W).T @ Wn)
    else:
        c = g_w @ g_next
    return float(np.linalg.norm(c - c.T) / (na * nb))


def _lost_dims(W, Wn, left, right, rtol_w: float, rtol_n: float) -> int:
    """rank W − rank(W'W) (eq. (12)) from W's full thin SVD; falls back to
    :func:`flagalign.geometry.lost_dims` when only top-k factors of W exist."""
    if left.s.size < min(W.shape):
        from ..geometry import lost_dims

        return int(lost_dims(W, Wn))
    s = left.s
    if s.size == 0 or s[0] == 0.0:
        return 0
    r = int(np.count_nonzero(s > rtol_w * s[0]))
    if r == 0:
        return 0
    s_next0 = float(right.s[0]) if right.s.size else 0.0
    if s_next0 == 0.0:
        return r
    full_right = right.s.size == min(Wn.shape)
    if r == W.shape[0] and full_right:
        # col W = ℝⁿ: Q is square orthogonal, so σ(W'Q) = σ(W'), already known
        sv = right.s
    elif full_right and right.s.size < Wn.shape[0]:
        # σ(W'Q) = σ(S Vᵀ Q) with W' = U S Vᵀ: a smaller matrix than W'Q
        sv = sla.svdvals((right.s[:, None] * right.V.T) @ left.U[:, :r])
    else:
        sv = sla.svdvals(Wn @ left.U[:, :r])
    return int(r - np.count_nonzero(sv > rtol_n * s_next0))


def measure_pair(W, Wn, left, right, *, k: int, tol: float, bias=None, rtol_w: float,
                 rtol_n: float):
    """:class:`flagalign.geometry.PairAlignment` of (W, W') at flag depth ``k``.

    Parameters
    ----------
    W, Wn : ndarray
        float64 writer (n, i) and reader (o, n).
    left, right : TopSubspaces
        Factors of W (full thin SVD for an exact lost_dims) and of W' (at least k triplets).
    k : int
        Flag depth (≤ both ranks).
    tol : float
        Sine tolerance of intersection_dim (eq. (5)).
    bias : ndarray, optional
        W's output bias (W̃ = [W, b] in D, eq. (11)).
    rtol_w, rtol_n : float
        Relative rank tolerances of eq. (3) for W and W'.
    """
    from ..geometry import PairAlignment, flag_table, overlap_baseline
    from ..geometry.angles import _angles_from, _cos_sin_orthonormal
    from ..geometry.imbalance import imbalance_from_grams

    n = W.shape[0]
    u, v = left.U[:, :k], right.V[:, :k]
    cos, sin = _cos_sin_orthonormal(u, v)
    overlap = float(np.sum(cos**2) / k)
    baseline = overlap_baseline(k, k, n)
    g_w, g_next = W @ W.T, Wn.T @ Wn
    g_in = g_w if bias is None else g_w + np.outer(bias, bias)
    method = "randomized" if "randomized" in (left.method, right.method) else "exact"
    return PairAlignment(
        n=n,
        k=k,
        method=method,
        angles=_angles_from(cos, sin),
        overlap=overlap,
        baseline=baseline,
        overlap_ratio=overlap / baseline,
        intersection_dim=int(np.count_nonzero(sin <= tol)),
        flag_table=flag_table(u, v),
        commutator=commutator_factored(W, Wn, g_w, g_next),
        imbalance=imbalance_from_grams(g_in, g_next),
        lost_dims=_lost_dims(W, Wn, left, right, rtol_w, rtol_n),
        tol=float(tol),
    )
