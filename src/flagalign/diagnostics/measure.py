"""Pair alignment from shared factors: the same quantities as
:func:`flagalign.geometry.pair_alignment` (docs/theory.md, eq. (14)), computed without the
per-pair SVDs that function does on its own.

Given the cached full thin SVD of the writer (its numerical rank and column basis, eq. (3)) and
the reader's top factors, a pair needs only: the k×k cosine/sine problem of eq. (1), the flag
table of eq. (6), the two Gram matrices for D (eq. (11)), one product for the commutator
(eq. (10), formed in factored order W·((W'W)ᵀW') when that is cheaper than the n×n product) and
one small SVD of W'Q for lost_dims (eq. (12)) — none when W has full row rank, since then
σ(W'Q) = σ(W'). With one-sided factors (:mod:`.gramfactors`: top-k vectors of one side and a
certified or counted rank, no SVD basis) lost_dims uses rank W' (W of full row rank), W'Q =
(W'W)R⁻¹ from a Householder QR (full column rank) or W'Q_r = (W'W)V_rΣ_r⁻¹ (a tall W of lower
rank), reusing M = W'W from the commutator; the rank of W'Q is certified by a Cholesky of its
Gram or counted from LAPACK singular values. A factor's Gram is reused for D when it is WWᵀ or
W'ᵀW'. ``tests/test_analyze_measure.py`` checks every field against
``geometry.pair_alignment`` / ``geometry.lost_dims``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..geometry.pair import lost_dims_at

__all__ = ["measure_pair", "commutator_factored"]


def commutator_factored(W: np.ndarray, Wn: np.ndarray, g_w: np.ndarray, g_next: np.ndarray) -> float:
    """Gram commutator ‖AB − BA‖_F / (‖A‖_F‖B‖_F) with A = WWᵀ, B = W'ᵀW' (eq. (10)).

    For symmetric A, B, BA = (AB)ᵀ, so one product C = AB suffices; C is formed as
    W · ((W'W)ᵀ · W') when n²·i + 2·o·n·i < n³ (n hidden, i = W's inputs, o = W''s outputs) and as
    A @ B otherwise. Both are exact products (no cancellation), unlike trace identities.
    """
    return _commutator(W, Wn, g_w, g_next)[0]


def _commutator(W, Wn, g_w, g_next, m=None):
    """(commutator, M) with M = W'W when the factored order formed it (else ``m`` as given)."""
    na, nb = np.linalg.norm(g_w), np.linalg.norm(g_next)
    if na == 0.0 or nb == 0.0:
        return 0.0, m
    n, i = W.shape
    o = Wn.shape[0]
    if n * n * i + 2 * o * n * i < n**3:
        if m is None:
            m = Wn @ W
        c = W @ (m.T @ Wn)
    else:
        c = g_w @ g_next
    return float(np.linalg.norm(c - c.T) / (na * nb)), m


def _rank_of(f, shape, rtol: float) -> int | None:
    """Numerical rank (eq. (3)) of a factor when it is known: certified/counted (GramFactors) or
    visible in a full spectrum; None for a truncated (randomized) factor."""
    r = getattr(f, "rank", None)
    if r is not None:
        return int(r)
    if f.s.size == min(shape):
        return int(np.count_nonzero(f.s > rtol * f.s[0])) if f.s.size and f.s[0] > 0 else 0
    return None


def _lost_dims_one_sided(W, Wn, left, right, rtol_n: float, m, rank_next=None):
    """lost_dims (eq. (12)) when W's rank r = min(shape) is known without its SVD basis.

    r = n (full row rank): Q is square orthogonal, so rank(W'Q) = rank W'. r = i < n (full column
    rank): Q = W R⁻¹ with W = QR (Householder, backward stable), so W'Q = (W'W) R⁻¹ — one
    triangular solve with M = W'W, which the commutator's factored order already formed. Its
    rank at τ = rtol_n·σ₁(W') is certified from its Gram (:mod:`.gramfactors`) or counted from
    LAPACK singular values. Returns None when neither case applies.
    """
    n, i = W.shape
    r = int(left.rank)
    s_next0 = float(right.s[0]) if right.s.size else 0.0
    if r == 0:
        return 0
    if s_next0 == 0.0:
        return r
    # W'Q formed from M = W'W carries M's rounding (≈ γ_n·σ₁(W')·σ₁(W)) amplified by
    # 1/σ_r(W): trust it only when that stays 100× below the threshold rtol_n·σ₁(W').
    smin = float(getattr(left, "smin", 0.0) or 0.0)
    cond = float(left.s[0]) / smin if smin > 0 else np.inf
    m_route_ok = 4.0 * max(n, i) * np.finfo(float).eps * cond <= 0.01 * rtol_n
    if r == n:
        rn = rank_next if rank_next is not None else _rank_of(right, Wn.shape, rtol_n)
        if rn is None:  # e.g. a randomized reader: σ(W'Q) = σ(W') for square orthogonal Q
            sv = sla.svdvals(Wn, check_finite=False)
            rn = int(np.count_nonzero(sv > rtol_n * sv[0]))
        return r - rn
    if getattr(left, "col_map", None) is not None and m_route_ok:
        # W'Q_r = (W'W)·V_r Σ_r⁻¹ (see gramfactors.tall_svd_factors)
        x = (m if m is not None else Wn @ W) @ left.col_map
        tau = rtol_n * s_next0
        got = _certified_full_rank(x, tau, s_next0)
        if got is not None:
            return r - got
        return int(r - np.count_nonzero(sla.svdvals(x, check_finite=False) > tau))
    if r != i or not m_route_ok:
        return None
    if m is None:
        m = Wn @ W
    rr = sla.qr(W, mode="r", check_finite=False)[0][:i]
    x = sla.solve_triangular(rr, m.T, trans="T", lower=False, check_finite=False).T  # M R⁻¹
    tau = rtol_n * s_next0
    got = _certified_full_rank(x, tau, s_next0)
    if got is not None:
        return r - got
    sv = sla.svdvals(x, check_finite=False)
    return int(r - np.count_nonzero(sv > tau))


def _lost_dims(W, Wn, left, right, rtol_w: float, rtol_n: float, m=None,
               rank_next=None) -> int:
    """rank W − rank(W'W) (eq. (12)) from W's full thin SVD; falls back to
    :func:`flagalign.geometry.lost_dims` when only top-k factors of W exist."""
    if getattr(left, "rank", None) is not None:
        got = _lost_dims_one_sided(W, Wn, left, right, rtol_n, m, rank_next)
        if got is not None:
            return int(got)
        return lost_dims_at(W, Wn, rtol_w, rtol_n)
    if left.s.size < min(W.shape):
        return lost_dims_at(W, Wn, rtol_w, rtol_n)
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
    if r == W.shape[0] and rank_next is not None:
        return int(r - rank_next)  # Q square orthogonal: rank(W'Q) = rank W'
    if r == W.shape[0] and full_right:
        # col W = ℝⁿ: Q is square orthogonal, so σ(W'Q) = σ(W'), already known
        sv = right.s
    elif full_right and right.s.size < Wn.shape[0]:
        # σ(W'Q) = σ(S Vᵀ Q) with W' = U S Vᵀ: a smaller matrix than W'Q
        sv = sla.svdvals((right.s[:, None] * right.V.T) @ left.U[:, :r])
    else:
        x = Wn @ left.U[:, :r]
        got = _certified_full_rank(x, rtol_n * s_next0, s_next0)
        if got is not None:
            return int(r - got)
        sv = sla.svdvals(x)
    return int(r - np.count_nonzero(sv > rtol_n * s_next0))


def _certified_full_rank(x: np.ndarray, tau: float, norm_ub: float) -> int | None:
    """min(x.shape) when σ_min(x) > tau is proven from x's smaller Gram (a Cholesky
    certificate, :func:`~flagalign.diagnostics.gramfactors.min_singular_value_exceeds`), else
    None (the caller then counts LAPACK singular values). ``norm_ub`` bounds ‖x‖₂."""
    from .gramfactors import gram_rounding, min_singular_value_exceeds

    o, i = x.shape
    g = x.T @ x if o >= i else x @ x.T
    ok, _ = min_singular_value_exceeds(g, gram_rounding(g, max(o, i)),
                                       (norm_ub * (1.0 + 1e-6)) ** 2, tau)
    return min(o, i) if ok else None


def measure_pair(W, Wn, left, right, *, k: int, tol: float, bias=None, rtol_w: float,
                 rtol_n: float, rank_next: int | None = None):
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
    rank_next : int, optional
        The numerical rank of W' at ``rtol_n`` when the caller knows it exactly (``right`` may
        be truncated to k triplets): lets lost_dims skip σ(W'Q) when W has full row rank.
    """
    from ..geometry import PairAlignment, flag_table, overlap_baseline
    from ..geometry.angles import _angles_from, _cos_sin_orthonormal
    from ..geometry.imbalance import imbalance_from_grams

    n = W.shape[0]
    u, v = left.U[:, :k], right.V[:, :k]
    cos, sin = _cos_sin_orthonormal(u, v)
    overlap = float(np.sum(cos**2) / k)
    baseline = overlap_baseline(k, k, n)
    # reuse a factor's Gram when it is the one needed (bit-identical: the same product)
    g_w = left.gram if getattr(left, "gram_side", None) == "out" else W @ W.T
    g_next = right.gram if getattr(right, "gram_side", None) == "in" else Wn.T @ Wn
    g_in = g_w if bias is None else g_w + np.outer(bias, bias)
    method = "randomized" if "randomized" in (left.method, right.method) else "exact"
    commutator, m = _commutator(W, Wn, g_w, g_next)
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
        commutator=commutator,
        imbalance=imbalance_from_grams(g_in, g_next),
        lost_dims=_lost_dims(W, Wn, left, right, rtol_w, rtol_n, m, rank_next),
        tol=float(tol),
    )
