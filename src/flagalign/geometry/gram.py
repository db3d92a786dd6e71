"""One-sided top-k factors from the smaller Gram matrix, with a *certified* full numerical rank.

``flagalign.analyze`` needs, per matrix, far less than a full thin SVD with both sets of vectors
(docs/theory.md, eqs. (3), (12)–(14)):

* the numerical rank of eq. (3), r = #{σᵢ > rtol·σ₁};
* the top-k singular vectors of ONE side (a writer's left vectors, a reader's right vectors);
* σ₁ (the threshold of eq. (12)).

:func:`gram_factors` gets them from G = AᵀA or AAᵀ (the smaller one, s×s): the top-k eigenpairs by
LAPACK ``syevr`` (subset), and the rank by a *certificate*: a Cholesky factorization of
G − t·I succeeds only if λ_min(G) > t, and t is chosen so that success proves
σ_min(A) > rtol·σ₁(A) for the stored matrix A, after bounding the rounding of forming G, of the
Cholesky factorization and of λ₁ (Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed., Thms 3.5, 10.3). The Gram squares the condition number, so this can only certify a
rank far above the float64 noise floor: with float32 / quantized weights rtol ≥ ~7e-5, so
rtol² ≥ ~5e-9, against Gram rounding of ~max(shape)·min(shape)·1.1e-16 ≈ 1e-10 (relative to
σ₁²). When the certificate fails (rank-deficient, ill-conditioned, or float64 weights whose rtol
is ~1e-13) :func:`gram_factors` returns None and the caller computes the exact full SVD as before —
the rank is never *estimated* from Gram eigenvalues.

Because the certificate proves σ_min > rtol·σ₁ with a margin far above the SVD's own rounding
(~s·1e-16·σ₁), the rank equals what the exact SVD reports. The top-k vectors from the Gram have
angle errors ~1e-16·σ₁²/(σᵢ² − σⱼ²) against the exact ones, i.e. within a factor σ₁/(2σᵢ) of the
SVD's own sensitivity ~1e-16·σ₁/(σᵢ − σⱼ); the other side (A·V/σ or Aᵀ·U/σ) is re-orthonormalised
by a QR, which keeps every prefix span (the flag) unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from ._basis import rank_from_singular_values

__all__ = ["GramFactors", "gram_factors", "tall_svd_factors", "min_singular_value_exceeds",
           "gram_rounding", "gram_side", "smaller_gram", "gram_eigen_factors"]

#: Gram eigenvectors are used only when σ_k ≥ σ₁ / (2·MAX_AMPLIFICATION): their angle error is
#: then at most MAX_AMPLIFICATION times the exact SVD's own sensitivity (σ₁/(2σ_k), see above).
MAX_AMPLIFICATION = 50.0

#: Unit roundoff of float64.
_U = float(np.finfo(np.float64).eps) / 2.0


class GramFactors(NamedTuple):
    """Top-k singular triplets of one or both sides of A, with A's certified numerical rank.

    U : (m, k) left singular vectors, or None when not requested
    s : (k,) top singular values, descending
    V : (n, k) right singular vectors, or None when not requested
    method : ``"exact"`` (a direct eigensolver, not a randomized sketch)
    rank : the numerical rank of eq. (3): certified equal to min(m, n), or (``rank_fallback``)
        counted from LAPACK singular values
    smin : a proven lower bound on σ_min(A) (or σ_min itself from LAPACK, ``rank_fallback``)
    gram : the s×s Gram matrix that was factorised (AᵀA if ``gram_side == "in"``, else AAᵀ)
    gram_side : ``"in"`` (AᵀA, on A's input space) or ``"out"`` (AAᵀ, on its output space)
    col_map : (n, r) matrix B = V_r Σ_r⁻¹ with A·B an orthonormal basis of A's numerical column
        space (eq. (12)), set by :func:`tall_svd_factors` when r < n; else None
    moments : (Σσᵢ², Σσᵢ⁴) over the full spectrum (= tr G, ‖G‖²_F of either Gram) when known
        without ``gram`` (:func:`tall_svd_factors`); else None
    col_basis : (m, r) orthonormal basis of A's numerical column space (r < m) from AAᵀ's
        eigenvectors (:func:`gram_eigen_factors`), with ``basis_err`` the bound on its error
        (eq. (12d)); else None
    basis_err : relative error bound of ``col_basis`` (0 when None)
    """

    U: np.ndarray | None
    s: np.ndarray
    V: np.ndarray | None
    method: str
    rank: int
    smin: float
    gram: np.ndarray | None
    gram_side: str | None
    col_map: np.ndarray | None = None
    moments: tuple | None = None
    col_basis: np.ndarray | None = None
    basis_err: float = 0.0


def gram_rounding(g: np.ndarray, inner: int) -> float:
    """Bound on ‖fl(AᵀA) − AᵀA‖₂ for a Gram g formed with inner dimension ``inner``:
    γ_inner·‖A‖_F² ≤ 2·inner·u·trace(g) (Higham Thm 3.5, entrywise |ΔG| ≤ γ|A|ᵀ|A|)."""
    return 2.0 * inner * _U * float(np.trace(g))


def min_singular_value_exceeds(g: np.ndarray, eta_g: float, norm_ub: float, thresh: float,
                               delta: float = 0.0) -> tuple[bool, float]:
    """Prove σ_min(A) > ``thresh`` from the computed Gram ``g`` of A, or fail.

    Parameters
    ----------
    g : (s, s) computed Gram (AᵀA or AAᵀ, the one whose size is min(shape)).
    eta_g : bound on the rounding of g (:func:`gram_rounding`).
    norm_ub : an upper bound on ‖g‖₂.
    thresh : the absolute threshold on σ_min(A).
    delta : a bound on the error of A itself (σ_min(A_true) ≥ σ_min(A) − delta).

    Returns
    -------
    (proved, lower_bound) : bool and a proven lower bound on σ_min(A_true) (0 when not proved).

    Cholesky of H = g − t·I runs to completion only if H + ΔH is positive definite with
    ‖ΔH‖₂ ≤ 2(s+1)·s·u·‖H‖₂ (Higham Thm 10.3 with ‖|Rᵀ||R|‖₂ ≤ s‖RᵀR‖₂), so success gives
    λ_min(g) > t − η_c and λ_min(AᵀA) > t − η_c − η_g = (thresh + delta)².
    """
    s = g.shape[0]
    if s == 0:
        return False, 0.0
    base = (float(thresh) + float(delta)) ** 2
    eta_c = 2.0 * (s + 1) * s * _U * (float(norm_ub) + base + eta_g) * 1.01
    t = base + eta_c + eta_g
    h = g.copy()
    h[np.diag_indices_from(h)] -= t
    _, info = sla.lapack.dpotrf(h, lower=False, clean=False, overwrite_a=True)
    if info != 0:
        return False, 0.0
    return True, max(0.0, float(np.sqrt(max(t - eta_c - eta_g, 0.0))) - float(delta))


def _orth_keep_flag(x: np.ndarray) -> np.ndarray:
    """Orthonormalise the columns of x by QR, keeping every prefix span (x = QR, R upper
    triangular) and the direction of each column (diag R > 0)."""
    q, r = np.linalg.qr(x)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    return q * d


#: Largest |entry| whose Gram (a sum of max(m, n) squares) stays finite with a wide margin.
_GRAM_SAFE = 1e150


def gram_side(shape, sides: str) -> str:
    """Which Gram :func:`gram_factors` factorises: ``"in"`` (AᵀA) for a tall matrix or a square
    one whose left vectors are not wanted, else ``"out"`` (AAᵀ)."""
    m, n = shape
    return "in" if (m > n or (m == n and "U" not in sides)) else "out"


def smaller_gram(a: np.ndarray, sides: str) -> np.ndarray:
    """The Gram of :func:`gram_side`: AᵀA or AAᵀ."""
    return a.T @ a if gram_side(a.shape, sides) == "in" else a @ a.T


def gram_factors(a: np.ndarray, k: int, sides: str, rtol: float,
                 rank_fallback: bool = False, gram=None) -> GramFactors | None:
    """Top-k factors of the finite float64 matrix ``a`` from its smaller Gram, or None when its
    full numerical rank (eq. (3) at relative tolerance ``rtol``) cannot be certified.

    With ``rank_fallback=True`` an uncertified matrix still gets its Gram top-k vectors, and its
    rank (and singular values) from LAPACK ``svdvals`` of ``a`` itself — exactly eq. (3) — at
    half the cost of an SVD with vectors (``rank`` may then be < min(m, n); only the caller's
    top-k vectors with k ≤ rank are meaningful).

    Parameters
    ----------
    a : (m, n) float64
    k : number of triplets (capped at min(m, n))
    sides : ``"U"``, ``"V"`` or ``"UV"`` — which singular vectors to return
    rtol : relative rank tolerance of eq. (3) (``rank_rtol(shape, stored dtype)``)
    gram : the Gram of :func:`smaller_gram` (a, sides) when already formed
    """
    m, n = a.shape
    s = min(m, n)
    if s == 0:
        return None
    if not float(np.max(np.abs(a))) < _GRAM_SAFE:
        return None  # Gram entries would overflow (|a| near 1e300): the caller's exact SVD
    want_u, want_v = "U" in sides, "V" in sides
    side = gram_side(a.shape, sides)
    g = smaller_gram(a, sides) if gram is None else gram
    k = max(1, min(int(k), s))
    if not rank_fallback:
        # cheap screen: λ₁ ≥ max diag(G), so a failed Cholesky of G − 0.999·rtol²·max diag(G)·I
        # means the certificate below would fail too; returning None (the caller's exact SVD)
        # is always safe and skips the eigensolver
        h = g.copy()
        h[np.diag_indices_from(h)] -= 0.999 * rtol**2 * float(np.max(np.diag(g)))
        if sla.lapack.dpotrf(h, lower=False, clean=False, overwrite_a=True)[1] != 0:
            return None
    lam, vec = sla.eigh(g, subset_by_index=[s - k, s - 1], driver="evr", check_finite=False)
    lam, vec = lam[::-1], vec[:, ::-1]
    lam1 = float(lam[0])
    if not lam1 > 0.0 or lam[-1] < lam1 / (2.0 * MAX_AMPLIFICATION) ** 2:
        return None  # top-k reaches too far down the spectrum for Gram vectors: use the SVD
    eta_g = gram_rounding(g, max(m, n))
    lam1_ub = lam1 * (1.0 + 4.0 * s * _U) + eta_g  # λ₁ of the exact AᵀA, from syevr's λ₁
    ok, smin = min_singular_value_exceeds(g, eta_g, lam1_ub, rtol * np.sqrt(lam1_ub))
    rank = s
    sig = np.sqrt(np.maximum(lam, 0.0))
    if not ok:
        if not rank_fallback:
            return None
        sv = sla.svdvals(a, check_finite=False)
        rank = rank_from_singular_values(sv, rtol)
        smin = float(sv[-1])
        if rank == 0:
            return None
        if k > rank:  # eigenvectors below the numerical rank are noise: keep the top `rank`
            k, lam, vec = rank, lam[:rank], vec[:, :rank]
        sig = sv[:k].copy()
    sig_div = np.sqrt(np.maximum(lam, np.finfo(np.float64).tiny))
    other = None
    if (side == "in" and want_u) or (side == "out" and want_v):
        other = _orth_keep_flag(((a @ vec) if side == "in" else (a.T @ vec)) / sig_div)
    if side == "in":
        u, v = other, vec
    else:
        u, v = vec, other
    return GramFactors(u if want_u else None, sig, v if want_v else None, "exact", rank, smin,
                       g, side)


def tall_svd_factors(a: np.ndarray, k: int, sides: str, rtol: float,
                     gram=None) -> GramFactors | None:
    """Exact-SVD factors of a tall matrix (m > n) without forming its m×n left singular basis.

    A = QR (Householder), R = U_R Σ Vᵀ (LAPACK gesdd on n×n), so σ(A) = σ(R) and A's right
    vectors are V — what gesdd does inside for m ≫ n, minus the product Q·U_R. The rank is
    counted from Σ (eq. (3), no certificate needed); the top-k left vectors are A·V_k/σ_k
    re-orthonormalised (only when σ_k ≥ σ₁/(2·MAX_AMPLIFICATION), else None); and lost_dims
    (eq. (12)) gets ``col_map`` = V_r Σ_r⁻¹, since A·V_r Σ_r⁻¹ = Q·U_R[:, :r] is the SVD basis
    of the numerical column space, so W'Q_r = (W'A)·col_map divides only by σᵢ > rtol·σ₁.
    ``gram``: AᵀA when already formed, kept in the result for the pair products to reuse.
    """
    m, n = a.shape
    if m <= n:
        return None
    rr = sla.qr(a, mode="r", check_finite=False)[0][:n]
    _, sv, vt = sla.svd(rr, full_matrices=False, lapack_driver="gesdd", check_finite=False)
    if not sv[0] > 0.0:
        return None
    rank = rank_from_singular_values(sv, rtol)
    k = max(1, min(int(k), rank))
    if sv[k - 1] < sv[0] / (2.0 * MAX_AMPLIFICATION):
        return None
    v = vt[:k].T
    u = _orth_keep_flag((a @ v) / sv[:k]) if "U" in sides else None
    col_map = (vt[:rank].T / sv[:rank]) if rank < n else None
    with np.errstate(over="ignore"):  # moments beyond float64 are inf: callers rescale instead
        s2 = sv * sv
        mom = (float(s2.sum()), float(s2 @ s2))
    return GramFactors(u, sv[:k].copy(), v if "V" in sides else None, "exact", rank,
                       float(sv[-1]), gram, None if gram is None else "in", col_map, mom)


def gram_eigen_factors(a: np.ndarray, k: int, sides: str, rtol: float,
                       gram=None) -> GramFactors | None:
    """Exact factors of a square or wide matrix whose rank :func:`gram_factors` could not certify
    (rank-deficient at eq. (3)'s tolerance — a low-precision square weight, typically), from ONE
    full eigendecomposition of G = AAᵀ instead of an SVD with both vector sets
    (docs/theory.md eq. (12d)).

    The computed eigenpairs are exact for G + E with ‖E‖₂ ≤ η = :func:`gram_rounding` +
    4·m·u·λ₁ (symmetric eigensolver backward error), so by Weyl |λᵢ − σᵢ²| ≤ η: the rank
    r = #{σᵢ > rtol·σ₁} is *certified* when no λᵢ lies within η of the threshold band
    [rtol²(λ₁ − η) − η, rtol²(λ₁ + η) + η], else None. The top-r eigenvectors are an
    orthonormal basis of the numerical column space with sin Θ ≤ η / (λ_r − λ_{r+1}) (Davis–Kahan)
    against the exact one; that error, plus η/λ_r, is ``basis_err`` and must stay below
    1 % of ``rtol`` (else None: the caller's SVD). Returns None for a tall matrix
    (:func:`tall_svd_factors`) or when the top-k vectors reach below σ₁/(2·MAX_AMPLIFICATION).
    """
    m, n = a.shape
    if m > n or m == 0 or not float(np.max(np.abs(a))) < _GRAM_SAFE:
        return None
    if gram_side(a.shape, sides) != "out":
        return None
    g = a @ a.T if gram is None else gram
    lam, vec = sla.eigh(g, driver="evd", check_finite=False)
    lam, vec = lam[::-1], vec[:, ::-1]
    lam1 = float(lam[0])
    if not lam1 > 0.0:
        return None
    eta = (gram_rounding(g, n) + 4.0 * m * _U * lam1) * 1.01
    lo, hi = rtol**2 * (lam1 - eta) - eta, rtol**2 * (lam1 + eta) + eta
    if np.any((lam >= lo) & (lam <= hi)):
        return None  # an eigenvalue within the rounding of the threshold: the SVD decides
    r = int(np.count_nonzero(lam > hi))
    if r == 0:
        return None
    gap = lam[r - 1] - (lam[r] if r < m else 0.0)
    err = eta / lam[r - 1] + (eta / gap if r < m else 0.0)
    if not err <= 0.01 * rtol:
        return None
    k = max(1, min(int(k), r))
    if lam[k - 1] < lam1 / (2.0 * MAX_AMPLIFICATION) ** 2:
        return None
    sig = np.sqrt(lam[:k])
    u = vec[:, :k]
    v = _orth_keep_flag((a.T @ u) / sig) if "V" in sides else None
    s_min = float(np.sqrt(max(float(lam[-1]) - eta, 0.0)))
    return GramFactors(u if "U" in sides else None, sig, v, "exact", r, s_min, g, "out",
                       col_basis=vec[:, :r].copy() if r < m else None,
                       basis_err=float(err) if r < m else 0.0)
