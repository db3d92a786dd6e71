"""Lost dimensions of a pair (docs/theory.md, eq. (12)), from a full SVD or from cached factors.

:func:`lost_dims` is the reference: r − rank(W_next Q) with Q an SVD basis of col W. The pair
assembler (:func:`flagalign.geometry.pair.assemble_pair`) calls :func:`lost_dims_from_factors`,
which gets the same number without a per-pair SVD when the factors already show it: from W's
full thin SVD (σ(W'Q) = σ(W') when W has full row rank) or, with one-sided factors
(:mod:`.gram`: top-k vectors of one side and a certified or counted rank, no SVD basis), from
rank W' (W of full row rank), W'Q = (W'W)R⁻¹ from a Householder QR (full column rank) or
W'Q_r = (W'W)V_rΣ_r⁻¹ (a tall W of lower rank), reusing M = W'W from the commutator; the rank of
W'Q is then certified by a Cholesky of its Gram or counted from LAPACK singular values.
``tests/geometry/test_pair_assembler.py`` checks every route against :func:`lost_dims`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64
from ..errors import ShapeMismatchError
from ._basis import orthonormal_basis, rank_from_singular_values, rank_rtol
from .gram import gram_rounding, min_singular_value_exceeds

__all__ = ["lost_dims", "lost_dims_at", "lost_dims_from_factors", "basis_error"]

_EPS = float(np.finfo(np.float64).eps)


def basis_error(shape, s1: float, s_r: float) -> float:
    """Relative error that a float64 SVD basis Q of col W (rank r) carries into W_next·Q:
    ‖ΔQ‖₂ ≲ max(shape)·ε₆₄·σ₁(W)/σ_r(W) (Wedin's sin θ theorem with the backward error
    max(shape)·ε₆₄·σ₁ of the SVD; docs/theory.md, eq. (12)). σ(W_next Q) moves by at most
    σ₁(W_next)·‖ΔQ‖₂, so eq. (12)'s threshold is (rtol_n + basis_error)·σ₁(W_next)."""
    if not s_r > 0.0:
        return 0.0
    return float(max(shape)) * _EPS * float(s1) / float(s_r)


def lost_dims(W, W_next, tol: float | None = None) -> int:
    """dim(col W ∩ ker W_next) = rank W − rank(W_next W) at tolerance (eq. (12)).

    The directions W writes that W_next cannot read. Computed as r − rank(W_next Q) with Q an
    orthonormal basis of col W (rank r at eq. (3)); a singular value of W_next Q counts when it
    exceeds ``tol`` · σ₁(W_next) (default: eq. (3)'s relative tolerance of W_next). Invariant under
    every invertible reparameterization (W, W_next) → (G W, W_next G⁻¹) of the hidden layer.
    """
    w, wdt = as_float64(W, name="W")
    wn, ndt = as_float64(W_next, name="W_next")
    if w.shape[0] != wn.shape[1]:
        raise ShapeMismatchError(f"W has {w.shape[0]} outputs but W_next reads {wn.shape[1]} inputs")
    rtol_n = rank_rtol(wn.shape, ndt) if tol is None else tol
    return lost_dims_at(w, wn, rank_rtol(w.shape, wdt), rtol_n)


def lost_dims_at(w: np.ndarray, wn: np.ndarray, rtol_w: float, rtol_n: float) -> int:
    """eq. (12) on float64 arrays at explicit relative rank tolerances: r − rank(W_next Q) with Q
    an orthonormal basis (SVD) of col W at ``rtol_w`` and σ(W_next Q) counted above
    ``rtol_n``·σ₁(W_next)."""
    if w.shape[1] == 0 or w.shape[0] == 0:
        return 0
    u, sw, _ = sla.svd(w, full_matrices=False, lapack_driver="gesdd")
    r = rank_from_singular_values(sw, rtol_w)
    if r == 0:
        return 0
    q = u[:, :r]
    s_next = sla.svdvals(wn)
    if s_next.size == 0 or s_next[0] == 0.0:
        return r
    s = sla.svdvals(wn @ q)
    tol = rtol_n + basis_error(w.shape, sw[0], sw[r - 1])
    return int(r - rank_from_singular_values(s, tol, scale=s_next[0]))


def _rank_of(f, shape, rtol: float) -> int | None:
    """Numerical rank (eq. (3)) of a factor when it is known: certified/counted (GramFactors) or
    visible in a full spectrum; None for a truncated (randomized) factor."""
    r = getattr(f, "rank", None)
    if r is not None:
        return int(r)
    if f.s.size == min(shape):
        return rank_from_singular_values(f.s, rtol)
    return None


def _lost_dims_one_sided(W, Wn, left, right, rtol_n: float, m, rank_next=None, mtm=None):
    """lost_dims (eq. (12)) when W's rank r = min(shape) is known without its SVD basis.

    r = n (full row rank): Q is square orthogonal, so rank(W'Q) = rank W'. r = i < n (full column
    rank): Q = W R⁻¹ with W = QR (Householder, backward stable), so W'Q = (W'W) R⁻¹ — one
    triangular solve with M = W'W, which the commutator's factored order already formed. Its
    rank at τ = rtol_n·σ₁(W') is certified from its Gram (:mod:`.gram`) or counted from
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
            rn = rank_from_singular_values(sv, rtol_n)
        return r - rn
    if getattr(left, "col_basis", None) is not None:
        # Q_r = the top-r eigenvectors of WWᵀ (gram.gram_eigen_factors); its error bound joins
        # the threshold as the SVD basis's does in eq. (12) (eq. (12d))
        tol = rtol_n + float(left.basis_err)
        if _certified_from_reader_gram(left.col_basis, right, Wn.shape[0], tol * s_next0, s_next0):
            return 0  # σ_min(W'Q_r) > τ proven from Q_rᵀ(W'ᵀW')Q_r, W' never multiplied (eq. (12d))
        x = Wn @ left.col_basis
        got = _certified_full_rank(x, tol * s_next0, s_next0)
        if got is not None:
            return r - got
        return r - rank_from_singular_values(sla.svdvals(x, check_finite=False), tol, s_next0)
    if getattr(left, "col_map", None) is not None and m_route_ok:
        # W'Q_r = (W'W)·V_r Σ_r⁻¹ (see gram.tall_svd_factors)
        x = (m if m is not None else Wn @ W) @ left.col_map
        tau = rtol_n * s_next0
        got = _certified_full_rank(x, tau, s_next0)
        if got is not None:
            return r - got
        return r - rank_from_singular_values(sla.svdvals(x, check_finite=False), rtol_n, s_next0)
    if r != i or not m_route_ok:
        return None
    if m is None:
        m = Wn @ W
    g = getattr(left, "gram", None) if getattr(left, "gram_side", None) == "in" else None
    tau = rtol_n * s_next0
    delta = _m_rounding(W, Wn, g, smin, tau) if g is not None else np.inf
    if delta <= _MAX_MARGIN:
        c = m.T @ m if mtm is None else mtm  # MᵀM, shared by eqs. (12b) and (12c)
        if m.shape[0] >= i and _certified_generalized(m, g, tau * (1.0 + delta), W.shape[0], c):
            return r - i  # σ_min(W'Q) > τ proven from WᵀW and M = W'W, no QR of W (eq. (12b))
        got = _count_by_inertia(m, g, tau, W.shape[0], delta, c)
        if got is not None:
            return r - got  # rank(W'Q) at τ from the inertia of MᵀM − t²·WᵀW (eq. (12c))
    rr = sla.qr(W, mode="r", check_finite=False)[0][:i]
    x = sla.solve_triangular(rr, m.T, trans="T", lower=False, check_finite=False).T  # M R⁻¹
    tau = rtol_n * s_next0
    got = _certified_full_rank(x, tau, s_next0)
    if got is not None:
        return r - got
    return r - rank_from_singular_values(sla.svdvals(x, check_finite=False), rtol_n, s_next0)


def lost_dims_from_factors(W, Wn, left, right, rtol_w: float, rtol_n: float, m=None,
                           rank_next=None, mtm=None) -> int:
    """rank W − rank(W'W) (eq. (12)) from cached factors (``left`` of W, ``right`` of W'); falls
    back to :func:`lost_dims_at` when only top-k factors of W exist. ``m`` = W'W if already formed
    (``mtm`` = its MᵀM); ``rank_next`` = rank W' at ``rtol_n`` when the caller knows it exactly."""
    if mtm is not None and m is None:
        mtm = None  # MᵀM belongs to a given M
    if getattr(left, "rank", None) is not None:
        got = _lost_dims_one_sided(W, Wn, left, right, rtol_n, m, rank_next, mtm)
        if got is not None:
            return int(got)
        return lost_dims_at(W, Wn, rtol_w, rtol_n)
    if left.s.size < min(W.shape):
        return lost_dims_at(W, Wn, rtol_w, rtol_n)
    s = left.s
    if s.size == 0 or s[0] == 0.0:
        return 0
    r = rank_from_singular_values(s, rtol_w)
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
        return int(r - rank_from_singular_values(sv, rtol_n, s_next0))
    # Q = U_r carries the SVD's basis error into W'Q (eq. (12))
    tol = rtol_n + basis_error(W.shape, s[0], s[r - 1])
    if full_right and right.s.size < Wn.shape[0]:
        # σ(W'Q) = σ(S Vᵀ Q) with W' = U S Vᵀ: a smaller matrix than W'Q
        sv = sla.svdvals((right.s[:, None] * right.V.T) @ left.U[:, :r])
    else:
        x = Wn @ left.U[:, :r]
        got = _certified_full_rank(x, tol * s_next0, s_next0)
        if got is not None:
            return int(r - got)
        sv = sla.svdvals(x)
    return int(r - rank_from_singular_values(sv, tol, s_next0))


#: Largest relative move of σ(W'Q) by M's rounding (:func:`_m_rounding`) for which eqs. (12b),
#: (12c) are used.
_MAX_MARGIN = 1e-3


def _m_rounding(W, Wn, g, smin: float, tau: float) -> float:
    """Bound, relative to ``tau``, on how far the rounding of M = fl(W'W) moves σ(M R⁻¹):
    ‖ΔM‖₂ ≤ γₙ‖W'‖_F‖W‖_F (Higham Thm 3.5) and ‖ΔM R⁻¹‖₂ ≤ ‖ΔM‖₂ / σ_min(W), doubled (eqs. (12b),
    (12c)). ``g`` = WᵀW (‖W‖_F² = tr g), ``smin`` a lower bound on σ_min(W)."""
    n = W.shape[0]
    if not (smin > 0.0 and tau > 0.0) or n * _EPS >= 1.0:
        return np.inf
    gamma = n * _EPS / 2.0 / (1.0 - n * _EPS / 2.0)
    fro_w = float(np.sqrt(max(float(np.trace(g)), 0.0)))
    fro_n = float(np.linalg.norm(Wn))
    return 2.0 * max(gamma * fro_n * fro_w / smin / tau, 1e-12)


def _certified_generalized(m: np.ndarray, g: np.ndarray, t: float, inner: int,
                           c: np.ndarray | None = None) -> bool:
    """Prove σ_min(M R⁻¹) > t for M = W'W (o×i, o ≥ i) and W = QR of full column rank, from the
    computed Gram g = fl(WᵀW) alone (docs/theory.md eq. (12b)).

    (MR⁻¹)ᵀ(MR⁻¹) − t²I = R⁻ᵀ(MᵀM − t²·WᵀW)R⁻¹, so σ_min(MR⁻¹) > t ⇔ MᵀM − t²·WᵀW ≻ 0 — no QR of
    W and no triangular solve. H = fl(MᵀM) − t²·g differs from the exact MᵀM − t²·WᵀW by at most
    η = γ_o·tr(MᵀM) + t²·γ_inner·tr(g) + 2u(‖fl(MᵀM)‖_F + t²‖g‖_F) (Higham Thm 3.5), and a
    Cholesky factorization of H − (η + η_chol)·I succeeds only if λ_min(H) > η (Higham Thm 10.3,
    as :func:`~flagalign.geometry.gram.min_singular_value_exceeds`). The caller passes
    t = τ(1 + δ), δ covering M's rounding (:func:`_m_rounding`). Returns False when not proven
    (the caller then takes the QR route). ``c``: MᵀM when already formed."""
    i = g.shape[0]
    c = m.T @ m if c is None else c
    t2 = float(t) ** 2
    u = _EPS / 2.0
    fc, fg = float(np.linalg.norm(c)), float(np.linalg.norm(g))
    eta = (gram_rounding(c, m.shape[0]) + t2 * gram_rounding(g, inner)
           + 2.0 * u * (fc + t2 * fg))
    eta_chol = 2.0 * (i + 1) * i * u * (fc + t2 * fg + eta) * 1.01
    h = c - t2 * g
    h[np.diag_indices_from(h)] -= eta + eta_chol
    return sla.lapack.dpotrf(h, lower=False, clean=False, overwrite_a=True)[1] == 0


def _count_by_inertia(m: np.ndarray, g: np.ndarray, tau: float, inner: int,
                      delta: float, c: np.ndarray | None = None) -> int | None:
    """#{σᵢ(M R⁻¹) > τ} for M = W'W and W = QR of full column rank, from the inertia of
    H = MᵀM − τ²·WᵀW = Rᵀ((MR⁻¹)ᵀ(MR⁻¹) − τ²I)R (Sylvester's law of inertia: H has as many
    positive eigenvalues as MR⁻¹ has singular values above τ; docs/theory.md eq. (12c)).

    By Ostrowski's theorem each eigenvalue of H is θⱼ·(σⱼ² − τ²) with θⱼ ∈ [λ_min(WᵀW),
    λ_max(WᵀW)], so an eigenvalue of magnitude > λ_max(WᵀW)·τ²·(2δ + δ²) puts its σⱼ outside
    [τ(1 − δ), τ(1 + δ)], beyond the reach of M's rounding (δ, :func:`_m_rounding`). The computed
    eigenvalues are within η of H's (η: the rounding of both Grams, of the difference and the
    symmetric eigensolver's backward error 4·i·u·‖H‖_F). Returns the count when every computed
    eigenvalue clears η plus that margin, else None (the caller's QR route decides).
    ``c``: MᵀM when already formed."""
    c = m.T @ m if c is None else c
    u = _EPS / 2.0
    i = g.shape[0]
    fc, fg = float(np.linalg.norm(c)), float(np.linalg.norm(g))
    eta_g = gram_rounding(g, inner)
    t2 = float(tau) ** 2
    lam = sla.eigh(c - t2 * g, eigvals_only=True, overwrite_a=True, check_finite=False,
                   driver="evr")
    eta = (gram_rounding(c, m.shape[0]) + t2 * eta_g + 2.0 * u * (fc + t2 * fg)
           + 4.0 * i * u * float(np.sqrt(np.sum(lam * lam))))
    margin = (fg + eta_g) * t2 * (2.0 * delta + delta * delta)  # λ_max(WᵀW) ≤ ‖g‖_F + η_g
    if np.any(np.abs(lam) <= eta + margin):
        return None
    return int(np.count_nonzero(lam > 0.0))


def _certified_from_reader_gram(q: np.ndarray, right, o: int, tau: float, norm_ub: float) -> bool:
    """Prove σ_min(W'Q) > τ for an orthonormal Q (n×r, r ≤ o) from the reader's Gram
    B = W'ᵀW' (its factor's n×n Gram) without forming W'Q: (W'Q)ᵀ(W'Q) = Qᵀ B Q, whose computed
    value differs from the exact one by at most γ_o·tr B (B's rounding; ‖Q‖₂ = 1) plus
    2γ_n·‖Q‖_F²·‖B‖_F (the two products, Higham Thm 3.5); a Cholesky certificate
    (:func:`~flagalign.geometry.gram.min_singular_value_exceeds`) then proves the bound. False when
    there is no such Gram or nothing is proven (the caller forms W'Q)."""
    b = getattr(right, "gram", None) if getattr(right, "gram_side", None) == "in" else None
    n, r = q.shape
    if b is None or b.shape[0] != n or r > o:
        return False
    g = q.T @ (b @ q)
    u = _EPS / 2.0
    gamma_n = n * u / (1.0 - n * u)
    eta = gram_rounding(b, o) + 2.0 * gamma_n * float(np.sum(q * q)) * float(np.linalg.norm(b))
    ok, _ = min_singular_value_exceeds(g, eta, (norm_ub * (1.0 + 1e-6)) ** 2, tau)
    return ok


def _certified_full_rank(x: np.ndarray, tau: float, norm_ub: float) -> int | None:
    """min(x.shape) when σ_min(x) > tau is proven from x's smaller Gram (a Cholesky
    certificate, :func:`~flagalign.geometry.gram.min_singular_value_exceeds`), else
    None (the caller then counts LAPACK singular values). ``norm_ub`` bounds ‖x‖₂."""
    o, i = x.shape
    g = x.T @ x if o >= i else x @ x.T
    ok, _ = min_singular_value_exceeds(g, gram_rounding(g, max(o, i)),
                                       (norm_ub * (1.0 + 1e-6)) ** 2, tau)
    return min(o, i) if ok else None
