"""Alignment of one adjacent pair on its shared hidden space (docs/theory.md §1.4)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64
from .._validate import check_k, check_seed, check_tol
from ..errors import InputError, ShapeMismatchError
from ._basis import default_sine_tol, orthonormal_basis, rank_rtol
from ._scaling import gram_observables
from .angles import _angles_from, _cos_sin_orthonormal, overlap_baseline
from .flags import flag_table
from .gauge import GL, angles_gauge_dependent, balance_pair, check_gauge, check_symmetry, product_spectrum
from .imbalance import Imbalance
from .svd import TopSubspaces, top_subspaces

__all__ = ["PairAlignment", "pair_alignment", "lost_dims", "default_k", "MAX_DEFAULT_K"]

#: Upper bound of the default k (eq. (14)).
MAX_DEFAULT_K = 64


def default_k(n: int, rank: int) -> int:
    """Default flag depth k = max(1, min(64, ⌊n/4⌋, rank)) (eq. (14)).

    k is kept at most a quarter of the hidden dimension n so that the random baseline k/n
    (eq. (4)) stays ≤ ¼ and an overlap carries information; at k = n every pair overlaps fully.
    """
    return max(1, min(MAX_DEFAULT_K, int(n) // 4, int(rank)))


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
    return _lost_dims(w, wn, wdt, ndt, tol)


def _lost_dims(w: np.ndarray, wn: np.ndarray, wdt: str, ndt: str, tol: float | None) -> int:
    """eq. (12) on float64 arrays, with the rank tolerances of their *stored* dtypes (eq. (3))."""
    rtol_n = rank_rtol(wn.shape, ndt) if tol is None else tol
    return lost_dims_at(w, wn, rank_rtol(w.shape, wdt), rtol_n)


def lost_dims_at(w: np.ndarray, wn: np.ndarray, rtol_w: float, rtol_n: float) -> int:
    """eq. (12) on float64 arrays at explicit relative rank tolerances: r − rank(W_next Q) with Q
    an orthonormal basis (SVD) of col W at ``rtol_w`` and σ(W_next Q) counted above
    ``rtol_n``·σ₁(W_next)."""
    q = orthonormal_basis(w, name="W", rtol=rtol_w)
    if q.shape[1] == 0:
        return 0
    s_next = sla.svdvals(wn)
    if s_next.size == 0 or s_next[0] == 0.0:
        return q.shape[1]
    s = sla.svdvals(wn @ q)
    return int(q.shape[1] - np.count_nonzero(s > rtol_n * s_next[0]))


@dataclass(frozen=True)
class PairAlignment:
    """Alignment of an adjacent pair (W, W_next) on ℝⁿ (eq. (14)).

    Attributes
    ----------
    n : int                 shared hidden dimension
    k : int                 flag depth used
    method : str            ``exact`` or ``randomized`` (top-k factors)
    angles : ndarray        principal angles (rad, ascending) between the output flag of W and
                            the input flag of W_next at k (eq. (1))
    overlap : float         mean cos² (eq. (2))
    baseline : float        k/n, the random-subspace expectation (eq. (4))
    overlap_ratio : float   overlap / baseline
    intersection_dim : int  # angles with sin θ ≤ tol (eq. (5))
    flag_table : ndarray    (k+1)×(k+1) soft intersection table (eq. (6))
    commutator : float      Gram commutator (eq. (10))
    imbalance : Imbalance   norms of D (eq. (11))
    lost_dims : int         dim(col W ∩ ker W_next) (eq. (12))
    tol : float             sine tolerance used for intersection_dim
    status : str            ``ok``, or why the flag observables are NaN (an all-zero side)
    symmetry : str          the hidden layer's group (eq. (70)); ``unknown`` when not given
    gauge : str             ``stored`` (the weights as given) or ``balanced`` (eqs. (73)–(74))
    gauge_dependent : bool  True when angles, overlap, intersection_dim, flag_table and
                            commutator change under the hidden layer's group in this gauge
                            (eq. (75)); the imbalance is gauge-dependent for every non-orthogonal
                            group; lost_dims and the product spectrum never are
    product_sv : ndarray    singular values of W_next W (descending), the GL(n) invariants of
                            the pair (eq. (76)); computed for GL pairs only, else empty
    product_rank : int      rank of W_next W at eq. (3)'s tolerance (GL pairs; -1 otherwise)
    """

    n: int
    k: int
    method: str
    angles: np.ndarray
    overlap: float
    baseline: float
    overlap_ratio: float
    intersection_dim: int
    flag_table: np.ndarray
    commutator: float
    imbalance: Imbalance
    lost_dims: int
    tol: float
    status: str = "ok"
    symmetry: str = "unknown"
    gauge: str = "stored"
    gauge_dependent: bool = True
    product_sv: np.ndarray = field(default_factory=lambda: np.zeros(0))
    product_rank: int = -1


def pair_alignment(
    W,
    W_next,
    k: int | None = None,
    tol: float | None = None,
    method: str = "auto",
    bias=None,
    left: TopSubspaces | None = None,
    right: TopSubspaces | None = None,
    seed: int = 0,
    symmetry: str | None = None,
    gauge: str | None = None,
) -> PairAlignment:
    """Every alignment observable of one adjacent pair y = W_next σ(W x) (eq. (14)).

    Parameters
    ----------
    W : array_like, shape (n, in)
        Writer, PyTorch orientation. Its output flag is its left singular vectors.
    W_next : array_like, shape (out, n)
        Reader. Its input flag is its right singular vectors.
    k : int, optional
        Flag depth; default :func:`default_k` (n, min(rank W, rank W_next)).
    tol : float, optional
        Sine tolerance for ``intersection_dim``; default ``default_sine_tol`` of the coarser input
        dtype (max(1e-6, 10·eps)).
    method : {"auto", "exact", "randomized"}
        How top-k factors are computed when not given (eq. (13)).
    bias : array_like, shape (n,), optional
        Output bias of W, used by the imbalance (eq. (11)).
    left, right : TopSubspaces, optional
        Precomputed factors of W and W_next with at least k triplets, to share work between
        pairs that share a matrix.
    seed : int
        Seed for the randomized method.
    symmetry : str, optional
        The hidden layer's group (eq. (70): ``GL``, ``O``, ``nonzero-diag×perm``,
        ``pos-diag×perm``, ``signed-perm``, ``perm``; None = ``unknown``). Decides
        ``gauge_dependent``, the balanced gauge, and (for ``GL``) the product spectrum.
    gauge : {None, "balanced"}
        None measures the weights as given. ``"balanced"`` first moves the pair to the minimum-norm
        point of its hidden layer's orbit (eq. (74) per neuron for the diagonal groups, eq. (73)
        for GL; nothing to do for orthogonal groups; needs a known ``symmetry``). Only the pair's
        own hidden layer is balanced: in a network, balance all hidden layers at once with
        :func:`flagalign.models.gauge.balanced_network`.
    """
    w, wdt = as_float64(W, name="W")
    wn, ndt = as_float64(W_next, name="W_next")
    n = w.shape[0]
    if wn.shape[1] != n:
        raise ShapeMismatchError(f"W has {n} outputs but W_next reads {wn.shape[1]} inputs")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(wn))):
        raise InputError("pair contains NaN or Inf weights")
    k = None if k is None else check_k(k)
    tol = None if tol is None else check_tol(tol)
    seed = check_seed(seed)
    if not np.any(w) or not np.any(wn):
        return _with_symmetry(_zero_pair(w, wn, wdt, ndt, tol, bias), check_symmetry(symmetry),
                              check_gauge(gauge))
    symmetry = check_symmetry(symmetry)
    gauge = check_gauge(gauge)
    if gauge == "balanced":
        if symmetry == "unknown":
            raise InputError("gauge='balanced' needs the pair's symmetry (symmetry=...); it is unknown")
        b0 = None
        if bias is not None:
            b0, _ = as_float64(bias, name="bias", ndim=1)
            if b0.shape[0] != n:
                raise ShapeMismatchError(f"bias has {b0.shape[0]} entries, W has {n} outputs")
        w2, wn2, b2 = balance_pair(w, wn, b0, symmetry)
        if w2 is not w or wn2 is not wn:
            w, wn, bias, left, right = w2, wn2, b2, None, None
    if tol is None:
        tol = max(default_sine_tol(wdt), default_sine_tol(ndt))
    if k is None:
        rank = min(_rank_hint(w, wdt, left), _rank_hint(wn, ndt, right))
        k = default_k(n, rank)
    k = int(k)
    if left is None or left.U.shape[1] < k:
        left = top_subspaces(w, k, method=method, seed=seed)
    if right is None or right.V.shape[1] < k:
        right = top_subspaces(wn, k, method=method, seed=seed)
    u, v = left.U[:, :k], right.V[:, :k]
    cos, sin = _cos_sin_orthonormal(u, v)
    overlap = float(np.sum(cos**2) / k)
    baseline = overlap_baseline(k, k, n)
    methods = {left.method, right.method}
    commutator, imb = gram_observables(w, wn, bias)
    return PairAlignment(
        n=n,
        k=k,
        method="randomized" if "randomized" in methods else "exact",
        angles=_angles_from(cos, sin),
        overlap=overlap,
        baseline=baseline,
        overlap_ratio=overlap / baseline,
        intersection_dim=int(np.count_nonzero(sin <= tol)),
        flag_table=flag_table(u, v),
        commutator=commutator,
        imbalance=imb,
        lost_dims=_lost_dims(w, wn, wdt, ndt, None),
        tol=float(tol),
        symmetry=symmetry,
        gauge=gauge or "stored",
        gauge_dependent=angles_gauge_dependent(symmetry, gauge),
        **(_product_spectrum(w, wn, wdt, ndt) if symmetry == GL else {}),
    )


def _with_symmetry(pa: PairAlignment, symmetry: str, gauge: str | None) -> PairAlignment:
    """``pa`` with the symmetry fields of eq. (75) set (for the early all-zero return)."""
    return replace(pa, symmetry=symmetry, gauge=gauge or "stored",
                   gauge_dependent=angles_gauge_dependent(symmetry, gauge))


def _product_spectrum(w: np.ndarray, wn: np.ndarray, wdt: str, ndt: str) -> dict:
    """``product_sv`` / ``product_rank`` fields (eq. (76)) at the stored dtypes' tolerances."""
    sv, rank = product_spectrum(w, wn, rank_rtol(w.shape, wdt), rank_rtol(wn.shape, ndt))
    return {"product_sv": sv, "product_rank": rank}


def _rank_hint(a: np.ndarray, dtype: str, factors: TopSubspaces | None) -> int:
    """Numerical rank (eq. (3)): from the given factors when they reveal it (a truncated spectrum
    that already drops below the tolerance), else from the singular values of ``a``."""
    rtol = rank_rtol(a.shape, dtype)
    if factors is not None and factors.s.size and factors.s[0] > 0:
        r = int(np.count_nonzero(factors.s > rtol * factors.s[0]))
        if r < factors.s.size or factors.s.size == min(a.shape):
            return r
    s = sla.svdvals(a)
    return int(np.count_nonzero(s > rtol * s[0])) if s.size and s[0] > 0 else 0


def _zero_pair(w, wn, wdt, ndt, tol, bias) -> PairAlignment:
    """An all-zero W or W_next has no flag: every flag observable is NaN, with the reason."""
    n = w.shape[0]
    side = "W" if not np.any(w) else "W_next"
    commutator, imb = gram_observables(w, wn, bias)
    if tol is None:
        tol = max(default_sine_tol(wdt), default_sine_tol(ndt))
    nan = float("nan")
    return PairAlignment(
        n=n,
        k=0,
        method="exact",
        angles=np.zeros(0),
        overlap=nan,
        baseline=nan,
        overlap_ratio=nan,
        intersection_dim=0,
        flag_table=np.zeros((1, 1)),
        commutator=commutator,
        imbalance=imb,
        lost_dims=_lost_dims(w, wn, wdt, ndt, None),
        tol=float(tol),
        status=f"{side} is all zeros: no flag to compare",
    )
