"""Pair products without n×n work: commutator, imbalance and lost_dims from one Householder QR
(docs/theory.md §1.6, eqs. (16)–(19)).

For a pair y = W_next σ(W x) with W (n×i), W_next (o×n) and a hidden space much wider than the
two matrices' other sides (i + o < n), every pair product of eqs. (10)–(12) lives in the column
space of X = [W, b, W_nextᵀ] (n×k, k = i + [bias] + o). With X = QR (Householder, Q n×m with
orthonormal columns, R m×k upper trapezoidal, m = min(n, k)) and R = [R₁ r_b R₂] split like X:

* A = WWᵀ = Q R₁R₁ᵀ Qᵀ, B = W_nextᵀW_next = Q R₂R₂ᵀ Qᵀ, so ‖A‖_F = ‖R₁ᵀR₁‖_F (= ‖WᵀW‖_F),
  ‖B‖_F = ‖R₂ᵀR₂‖_F;
* AB − BA = X K Xᵀ with K = [[0, P], [−Pᵀ, 0]] skew and P = WᵀW_nextᵀ = R₁ᵀR₂, so
  ‖[A, B]‖_F = ‖R K Rᵀ‖_F = ‖C − Cᵀ‖_F with C = R₁ (P R₂ᵀ) (m×m; eq. (16));
* D = B − W̃W̃ᵀ = Q (R S Rᵀ) Qᵀ with S = diag(−I, +I), ‖D‖_F = ‖R S Rᵀ‖_F; diag D needs no QR:
  D_jj = ‖W_next[:, j]‖² − ‖W̃_j,:‖² (eq. (17)); ‖D − diag D‖_F is never formed as
  √(‖D‖² − ‖diag D‖²) when that subtraction would cancel (eq. (18)): it is then summed directly
  over row blocks of D = X S Xᵀ (O(n·b) memory);
* lost_dims (eq. (12)) = r − #{σ(R₂ᵀ U₁ᵣ) > rtol_n·σ₁(R₂)} with R₁ = U₁Σ₁V₁ᵀ, r its numerical
  rank: W = Q R₁ and W_next = R₂ᵀQᵀ have the singular values of R₁ and R₂, and W_next·(Q U₁ᵣ) =
  R₂ᵀU₁ᵣ (eq. (19)). R₁ is i×i upper triangular (the QR of X starts with W's), and when W has
  full column rank W_next·Q[:, :i] = R₂[:i]ᵀ needs no SVD vectors at all.

Routes (``PairProducts.route``): ``qr`` for k ≤ QR_RATIO·n — peak memory O(n·k + k²), nothing
n×n; ``gram`` (eq. (16b)) for larger k with i, o < n — the same numbers from the small Grams
W̃ᵀW̃, W_nextW_nextᵀ and W_nextW̃ with every subtraction guarded (GRAM_RTOL), nothing n×n;
``dense`` otherwise (a side ≥ n, given n×n Grams, or a guard fired) — the n×n Grams.
Householder QR runs at a fraction of GEMM speed, hence QR_RATIO (measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .._arrays import as_bias, as_float64
from ..errors import InputError, ShapeMismatchError
from ._basis import rank_from_singular_values, rank_rtol
from .imbalance import Imbalance
from .lost import basis_error, lost_dims_at

__all__ = ["PairProducts", "pair_products", "qr_factor"]

#: Relative accuracy demanded of ‖offdiag D‖ before the subtraction route is trusted (eq. (18)).
OFFDIAG_RTOL = 1e-9
#: The QR route is taken when X = [W, b, W_nextᵀ] has k ≤ QR_RATIO·n columns: Householder QR
#: (≈ 2nk² flops at a fraction of GEMM speed) beats the n×n Grams (≈ 2n²k at GEMM speed) only for
#: k well below n (measured, one thread: SmolLM2 MLP pair k/n = 0.75 — QR 1.05 s, Grams 0.3 s).
QR_RATIO = 0.25
#: Rows of D per block in the direct off-diagonal sum (eq. (18)).
_BLOCK = 1024
_U = float(np.finfo(np.float64).eps) / 2.0


@dataclass(frozen=True)
class PairProducts:
    """The Gram-level products of one adjacent pair (docs/theory.md eqs. (10)–(12), (16)–(19)).

    Attributes
    ----------
    n : int                 shared hidden dimension
    m : int                 size of the small problem, min(n, k) with k = columns of X
    route : str             ``"qr"`` (m < n, nothing n×n) or ``"dense"`` (n×n Grams)
    commutator : float      c(WWᵀ, W_nextᵀW_next) of eq. (10) (no bias)
    imbalance : Imbalance   ‖D‖_F, ‖diag D‖₂, ‖D − diag D‖_F, relative (eq. (11), with bias)
    imbalance_diag_rel : float     ‖diag D‖₂ / (‖W̃W̃ᵀ‖_F + ‖W_nextᵀW_next‖_F) (0 when D = 0)
    imbalance_offdiag_rel : float  ‖D − diag D‖_F / (same denominator) (0 when D = 0)
    lost_dims : int or None dim(col W ∩ ker W_next) (eq. (12)); None when not requested
    rank_w : int or None    numerical rank of W at ``rtol_w`` (eq. (3)), from the same SVD
    norm_a, norm_b : float  ‖WWᵀ‖_F, ‖W_nextᵀW_next‖_F
    offdiag_direct : bool   ‖D − diag D‖_F was summed directly (the guard of eq. (18) fired)
    R : ndarray or None     the triangular factor of X = [W, b, W_nextᵀ] (``qr`` route), for reuse
    M : ndarray or None     W_next W (o×i) when the route formed it (``gram``), for lost_dims
                            (eq. (12)) to reuse
    MtM : ndarray or None   MᵀM (i×i), formed by the ``gram`` route, reused by eqs. (12b)–(12c)
    """

    n: int
    m: int
    route: str
    commutator: float
    imbalance: Imbalance
    imbalance_diag_rel: float
    imbalance_offdiag_rel: float
    lost_dims: int | None
    rank_w: int | None
    norm_a: float
    norm_b: float
    offdiag_direct: bool
    R: np.ndarray | None
    M: np.ndarray | None = None
    MtM: np.ndarray | None = None

    @property
    def imbalance_abs(self) -> float:
        """‖D‖_F (the ``imbalance_abs`` column of pairs.csv)."""
        return self.imbalance.full


def _stack(w: np.ndarray, wn: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """X = [W, b, W_nextᵀ] in Fortran order (LAPACK's layout: the QR overwrites it in place)."""
    n, i = w.shape
    o = wn.shape[0]
    nb = 0 if b is None else 1
    x = np.empty((n, i + nb + o), order="F")
    x[:, :i] = w
    if b is not None:
        x[:, i] = b
    x[:, i + nb :] = wn.T
    return x


def qr_factor(x: np.ndarray) -> np.ndarray:
    """Triangular factor R (min(n, k)×k) of the Householder QR of the n×k matrix ``x``
    (LAPACK dgeqrf; ``x`` is overwritten when it is a Fortran-ordered float64 array)."""
    n, k = x.shape
    qr, _tau, _work, info = sla.lapack.dgeqrf(x, overwrite_a=True)
    if info != 0:  # pragma: no cover - LAPACK argument error
        raise InputError(f"dgeqrf failed (info={info})")
    return np.triu(qr[: min(n, k)])


def _fro(a: np.ndarray) -> float:
    return float(np.linalg.norm(a))


def _offdiag_direct(x: np.ndarray, nneg: int) -> float:
    """‖D − diag D‖_F with D = X S Xᵀ, S = diag(−1 (first ``nneg`` columns), +1 (rest)), summed
    over row blocks of D: O(n²k) time, O(n·_BLOCK) memory, no cancellation (eq. (18))."""
    n = x.shape[0]
    xs = x.copy()
    xs[:, :nneg] *= -1.0
    total = 0.0
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        blk = xs[s:e] @ x.T  # rows s..e of D
        idx = np.arange(e - s)
        blk[idx, s + idx] = 0.0
        total += float(np.einsum("ij,ij->", blk, blk))
    return float(np.sqrt(total))


def _skew_norm(c: np.ndarray) -> float:
    """‖C − Cᵀ‖_F summed over row blocks (no second n×n temporary)."""
    n = c.shape[0]
    total = 0.0
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        blk = c[s:e] - c[:, s:e].T
        total += float(np.einsum("ij,ij->", blk, blk))
    return float(np.sqrt(total))


def _lost_from_r(r1: np.ndarray, r2top: np.ndarray, r2: np.ndarray, rtol_w: float,
                 rtol_n: float, n_rows: int = 0) -> tuple[int, int]:
    """(lost_dims, rank W) of eq. (19). ``r1`` = R₁[:i, :i] (upper triangular: W = Q[:, :i] r1),
    ``r2top`` = R₂[:i] (so W_next·Q[:, :i] = r2topᵀ), ``r2`` = R₂ (σ(W_next) = σ(R₂))."""
    if r1.size == 0:
        return 0, 0
    s1 = sla.svdvals(r1, check_finite=False)
    if s1[0] == 0.0:
        return 0, 0
    r = rank_from_singular_values(s1, rtol_w)
    if r == 0:
        return 0, 0
    s_next = sla.svdvals(r2, check_finite=False) if r2.size else np.zeros(0)
    if s_next.size == 0 or s_next[0] == 0.0:
        return r, r
    if r == r1.shape[0]:  # full column rank: Q[:, :i] is a basis of col W, W_next·Q[:, :i] = r2topᵀ
        s = sla.svdvals(r2top, check_finite=False)
        tol = rtol_n
    else:
        u1 = sla.svd(r1, full_matrices=False, lapack_driver="gesdd", check_finite=False)[0]
        s = sla.svdvals(r2top.T @ u1[:, :r], check_finite=False)
        # U₁ᵣ carries the SVD's basis error into W_next·Q U₁ᵣ (eq. (12))
        tol = rtol_n + basis_error((n_rows, r1.shape[1]), s1[0], s1[r - 1])
    return r - rank_from_singular_values(s, tol, scale=s_next[0]), r


def pair_products(W, W_next, *, bias=None, qr=None, g_w=None, g_next=None,
                  rtol_w: float | None = None, rtol_n: float | None = None,
                  lost: bool = True, small_only: bool = False, gram_in=None,
                  gram_next_out=None) -> PairProducts | None:
    """Commutator (eq. (10)), imbalance (eq. (11)) and lost_dims (eq. (12)) of one pair, from one
    Householder QR of X = [W, b, W_nextᵀ] when it is narrower than the hidden space
    (docs/theory.md §1.6, eqs. (16)–(19)); nothing n×n is formed then.

    Parameters
    ----------
    W : array_like, shape (n, i)
        Writer (PyTorch orientation).
    W_next : array_like, shape (o, n)
        Reader.
    bias : array_like, shape (n,), optional
        W's output bias: W̃ = [W, b] in D (eq. (11)); not in the commutator (eq. (10)).
    qr : ndarray, optional
        The triangular factor R of X = [W, b, W_nextᵀ] from an earlier call (``PairProducts.R``)
        or any Householder/Cholesky-QR of that X (R m×k with XᵀX = RᵀR); skips the QR.
    g_w, g_next : ndarray, optional
        WWᵀ and W_nextᵀW_next when already formed (e.g. a factor's n×n Gram): reused by the
        ``dense`` route (bit-identical to forming them again).
    rtol_w, rtol_n : float, optional
        Relative rank tolerances of eq. (3) for W and W_next; default ``rank_rtol`` of their shapes
        and stored dtypes (as :func:`flagalign.geometry.lost_dims`).
    lost : bool
        Compute lost_dims (one SVD of an m×i matrix and two small ``svdvals``).
    small_only : bool
        Return None instead of taking the ``dense`` route (the caller has its own n×n path).
    gram_in, gram_next_out : ndarray, optional
        WᵀW (i×i) and W_nextW_nextᵀ (o×o) when already formed (a factor's small Gram,
        :class:`~flagalign.geometry.gram.GramFactors`): reused by the ``gram`` route instead of
        forming them again (bit-identical: the same product).

    Returns
    -------
    PairProducts
    """
    w, wdt = as_float64(W, name="W")
    wn, ndt = as_float64(W_next, name="W_next")
    n, i = w.shape
    o = wn.shape[0]
    if wn.shape[1] != n:
        raise ShapeMismatchError(f"W has {n} outputs but W_next reads {wn.shape[1]} inputs")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(wn))):
        raise InputError("pair contains NaN or Inf weights")
    b = as_bias(bias, n)
    rtol_w = rank_rtol(w.shape, wdt) if rtol_w is None else float(rtol_w)
    rtol_n = rank_rtol(wn.shape, ndt) if rtol_n is None else float(rtol_n)
    nb = 0 if b is None else 1
    k = i + nb + o
    # eq. (17): diag D in the original coordinates, exactly, O(n(i+o))
    diag_d = np.einsum("ij,ij->j", wn, wn) - np.einsum("ij,ij->i", w, w)
    if b is not None:
        diag_d -= b * b
    diag = float(np.linalg.norm(diag_d))
    if qr is not None or k <= QR_RATIO * n:
        return _qr_route(w, wn, b, qr, diag, rtol_w, rtol_n, lost, n, i, nb, o)
    if i + nb < n and o < n and g_w is None and g_next is None:
        got = _gram_route(w, wn, b, diag, rtol_w, rtol_n, lost, n, gram_in, gram_next_out)
        if got is not None:
            return got
    if small_only:
        return None
    return _dense_route(w, wn, b, g_w, g_next, diag, diag_d, rtol_w, rtol_n, lost, n)


def _rel(x: float, denom: float, full: float) -> float:
    if full == 0.0:
        return 0.0
    return x / denom if denom > 0 else float("nan")


def _qr_route(w, wn, b, qr, diag, rtol_w, rtol_n, lost, n, i, nb, o) -> PairProducts:
    it = i + nb
    if qr is None:
        r = qr_factor(_stack(w, wn, b))
    else:
        r = np.asarray(qr, dtype=np.float64)
        if r.shape[1] != it + o:
            raise ShapeMismatchError(f"qr has {r.shape[1]} columns, X = [W, b, W_nextᵀ] has {it + o}")
    m = r.shape[0]
    # R is upper trapezoidal: R̃₁ = [R₁ r_b] lives in the top `it` rows (W = Q[:, :i] R₁[:i, :i])
    r1 = r[:i, :i]
    rt = r[:it, :it]
    r2 = r[:, it:]
    r2a, r2b = r2[:it], r2[it:]
    # eq. (16): ‖A‖_F = ‖R₁ᵀR₁‖_F, ‖B‖_F = ‖R₂ᵀR₂‖_F (the i×i and o×o Grams)
    norm_a = _fro(r1.T @ r1)
    gb = r2.T @ r2
    norm_b = _fro(gb)
    if norm_a == 0.0 or norm_b == 0.0:
        comm = 0.0
    else:
        p = r1.T @ r2[:i]  # P = WᵀW_nextᵀ (i×o)
        c = r1 @ (p @ r2.T)  # the nonzero rows of C = R₁PR₂ᵀ = (R₁R₁ᵀ)(R₂R₂ᵀ): i×m
        c11 = c[:, :i]
        comm = np.sqrt(_fro(c11 - c11.T) ** 2 + 2.0 * _fro(c[:, i:]) ** 2) / (norm_a * norm_b)
        del c
    # eq. (18): D = Q (R₂R₂ᵀ − [[R̃₁R̃₁ᵀ, 0], [0, 0]]) Qᵀ, by blocks of R₂R₂ᵀ
    d11 = r2a @ r2a.T - rt @ rt.T
    full = float(np.sqrt(_fro(d11) ** 2 + 2.0 * _fro(r2a @ r2b.T) ** 2 + _fro(r2b.T @ r2b) ** 2))
    del d11
    norm_at = _fro(rt.T @ rt) if nb else norm_a  # ‖W̃W̃ᵀ‖_F
    denom = norm_at + norm_b
    # eq. (18): off² = full² − diag² only when that subtraction keeps OFFDIAG_RTOL accuracy
    err_d = 4.0 * (n + r.shape[1]) * _U * float(np.sum(r * r))  # ≳ ‖fl(d) − d‖_F: γ·‖X‖_F²
    off2 = full * full - diag * diag
    direct = False
    if off2 > 0.0 and full * err_d <= OFFDIAG_RTOL * off2:
        off = float(np.sqrt(off2))
    else:
        direct = True
        off = _offdiag_direct(_stack(w, wn, b), it)
    imb = Imbalance(full=full, diag=diag, offdiag=off,
                    relative=full / denom if denom > 0 else float("nan"))
    lost_d, rank_w = (None, None)
    if lost:
        lost_d, rank_w = _lost_from_r(r1, r2[:i], r2, rtol_w, rtol_n, n)
    return PairProducts(n=n, m=m, route="qr", commutator=float(comm), imbalance=imb,
                        imbalance_diag_rel=_rel(diag, denom, full),
                        imbalance_offdiag_rel=_rel(off, denom, full), lost_dims=lost_d,
                        rank_w=rank_w, norm_a=norm_a, norm_b=norm_b, offdiag_direct=direct, R=r)


#: The small-Gram route (eq. (16b)) is used only when its subtractions lose at most this much
#: relative accuracy (else the n×n route).
GRAM_RTOL = 1e-8


def _gram_route(w, wn, b, diag, rtol_w, rtol_n, lost, n, gram_in=None,
                gram_next_out=None) -> PairProducts | None:
    """eq. (16b): the pair products from the small Grams G_w = W̃ᵀW̃, G_n = W_nextW_nextᵀ and
    M = W_next W̃ (nothing n×n), or None when a subtraction would cancel (the caller then forms
    the n×n Grams). ``gram_in`` = WᵀW and ``gram_next_out`` = W_nextW_nextᵀ are reused when given."""

    i = w.shape[1]
    gw = w.T @ w if gram_in is None else gram_in  # WᵀW
    if b is None:
        gwt = gw
        mm = wn @ w  # W_next W (o×i)
        mt = mm
    else:  # W̃ᵀW̃ = [[WᵀW, Wᵀb], [bᵀW, bᵀb]], W_next W̃ = [W_next W, W_next b]
        wb = w.T @ b
        gwt = np.empty((i + 1, i + 1))
        gwt[:i, :i] = gw
        gwt[:i, i] = wb
        gwt[i, :i] = wb
        gwt[i, i] = float(b @ b)
        mm = wn @ w
        mt = np.column_stack([mm, wn @ b])
    gn = wn @ wn.T if gram_next_out is None else gram_next_out  # o×o
    norm_a, norm_b, norm_at = _fro(gw), _fro(gn), _fro(gwt)
    # γ: relative rounding of the products formed with inner dimension n, scaled by the effective
    # rank factors tr(G)/‖G‖_F ≥ 1 (|ΔG| ≤ γₙ|W|ᵀ|W| gives ‖ΔG‖_F ≤ γₙ tr G)
    tw, tn = float(np.trace(gwt)), float(np.trace(gn))
    gamma = 4.0 * n * _U * ((tw / norm_at if norm_at > 0 else 1.0) + (tn / norm_b if norm_b > 0 else 1.0))
    pm = None
    if norm_a == 0.0 or norm_b == 0.0:
        comm = 0.0
    else:
        # ‖[A,B]‖² = 2‖AB‖² − 2 tr((AB)²), AB = W P W_next with P = Mᵀ:
        # ‖AB‖² = tr(Pᵀ G_w P G_n), tr((AB)²) = tr((P M)²)
        gp = gw @ mm.T  # i×o
        ab2 = float(np.einsum("ij,ji->", mm @ gp, gn))  # tr(M G_w Mᵀ G_n) = ‖AB‖²
        pm = mm.T @ mm  # P M (i×i), symmetric? no: MᵀM is, and tr((PM)²) = ‖MᵀM‖²
        t2 = _fro(pm) ** 2
        c2 = 2.0 * (ab2 - t2)
        if not c2 > 0.0 or gamma * 2.0 * ab2 > GRAM_RTOL * c2:
            return None
        comm = np.sqrt(c2) / (norm_a * norm_b)
    # ‖D‖² = ‖W̃W̃ᵀ‖² + ‖B‖² − 2 tr(W̃W̃ᵀB) = ‖G̃_w‖² + ‖G_n‖² − 2‖W_next W̃‖_F²
    s2 = norm_at**2 + norm_b**2
    full2 = s2 - 2.0 * _fro(mt) ** 2
    if not full2 > 0.0 or gamma * s2 > GRAM_RTOL * full2:
        return None
    full = float(np.sqrt(full2))
    denom = norm_at + norm_b
    off2 = full2 - diag * diag
    if not off2 > 0.0 or gamma * s2 > GRAM_RTOL * off2:
        return None
    imb = Imbalance(full=full, diag=diag, offdiag=float(np.sqrt(off2)),
                    relative=full / denom if denom > 0 else float("nan"))
    lost_d = lost_dims_at(w, wn, rtol_w, rtol_n) if lost else None
    return PairProducts(n=n, m=n, route="gram", commutator=float(comm), imbalance=imb,
                        imbalance_diag_rel=_rel(diag, denom, full),
                        imbalance_offdiag_rel=_rel(imb.offdiag, denom, full), lost_dims=lost_d,
                        rank_w=None, norm_a=norm_a, norm_b=norm_b, offdiag_direct=False, R=None,
                        M=mm, MtM=pm)


def _dense_route(w, wn, b, g_w, g_next, diag, diag_d, rtol_w, rtol_n, lost, n) -> PairProducts:

    a = w @ w.T if g_w is None else g_w
    bb = wn.T @ wn if g_next is None else g_next
    norm_a, norm_b = _fro(a), _fro(bb)
    if norm_a == 0.0 or norm_b == 0.0:
        comm = 0.0
    else:
        i, o = w.shape[1], wn.shape[0]
        # C = AB, in factored order W·((W_next W)ᵀ W_next) when that is cheaper than n³
        c = w @ ((wn @ w).T @ wn) if n * n * i + 2 * o * n * i < n**3 else a @ bb
        comm = _skew_norm(c) / (norm_a * norm_b)
        del c
    g_in = a if b is None else a + np.outer(b, b)
    d = bb - g_in
    full = _fro(d)
    d[np.diag_indices_from(d)] = 0.0
    off = _fro(d)
    del d
    denom = _fro(g_in) + norm_b
    imb = Imbalance(full=full, diag=diag, offdiag=off,
                    relative=full / denom if denom > 0 else float("nan"))
    lost_d = lost_dims_at(w, wn, rtol_w, rtol_n) if lost else None
    return PairProducts(n=n, m=n, route="dense", commutator=float(comm), imbalance=imb,
                        imbalance_diag_rel=_rel(diag, denom, full),
                        imbalance_offdiag_rel=_rel(off, denom, full), lost_dims=lost_d,
                        rank_w=None, norm_a=norm_a, norm_b=norm_b, offdiag_direct=False, R=None)
