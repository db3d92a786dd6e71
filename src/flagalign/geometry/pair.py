"""Alignment of one adjacent pair on its shared hidden space (docs/theory.md §1.4).

:func:`assemble_pair` is the one place a pair's result is assembled: :func:`pair_alignment`
(one pair, its own factors), ``flagalign.analyze`` (factors cached per matrix), the training
tracker and ``flagalign trajectory`` all go through it. A new per-pair metric is one field of
:class:`PairAlignment`, one line of :func:`assemble_pair` and one entry of
:meth:`PairAlignment.scalars` (the flat values that become ``pairs.csv`` columns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg as sla

from .._arrays import as_bias, as_float64
from .._validate import check_k, check_seed, check_tol
from ..errors import InputError, ShapeMismatchError
from ._basis import default_sine_tol, rank_from_singular_values, rank_rtol
from .angles import _angles_from, _cos_sin_orthonormal, overlap_baseline
from .commutator import commutator_and_product
from .flags import flag_table
from .gauge import GL, angles_gauge_dependent, balance_pair, check_gauge, check_symmetry, product_spectrum
from .imbalance import Imbalance, imbalance_from_grams
from .lost import lost_dims, lost_dims_at, lost_dims_from_factors
from .nulls import commutator_null_rms, commutator_null_rms_from_moments
from .factored import QR_RATIO, pair_products
from .pair_flags import format_flag_type, pair_flags
from ._scaling import gram_observables, pow2_scale
from .gram import _GRAM_SAFE
from .svd import TopSubspaces, top_subspaces

__all__ = ["PairAlignment", "assemble_pair", "pair_alignment", "lost_dims", "lost_dims_at",
           "default_k", "MAX_DEFAULT_K"]

#: Upper bound of the default k (eq. (14)).
MAX_DEFAULT_K = 64

#: Use the small-Gram route (eq. (16b)) for wide pairs without a reusable n×n Gram.
GRAM_ROUTE = True


def default_k(n: int, rank: int) -> int:
    """Default flag depth k = max(1, min(64, ⌊n/4⌋, rank)) (eq. (14)).

    k is kept at most a quarter of the hidden dimension n so that the random baseline k/n
    (eq. (4)) stays ≤ ¼ and an overlap carries information; at k = n every pair overlaps fully.
    """
    return max(1, min(MAX_DEFAULT_K, int(n) // 4, int(rank)))


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
    commutator_null : float  Haar null c⁰ = √(E c²) of the commutator (eq. (50)); NaN when not
                            computed
    flag_dims_left, flag_dims_right : tuple of int or None
                            types of the gap-chosen output flag of W and input flag of W_next
                            (eq. (63), splits below k only); None when not computed
    flag_distance : float   chordal flag distance (eq. (66)) on their common type; NaN if none
    flag_distance_baseline : float  its random-flag RMS (eq. (66))
    soft_position : float   soft relative position (eq. (65)) ∈ [0, 1]; NaN for a trivial flag
    soft_position_baseline : float  its random-flag expectation (eq. (65))
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
    commutator_null: float = math.nan
    flag_dims_left: tuple | None = None
    flag_dims_right: tuple | None = None
    flag_distance: float = math.nan
    flag_distance_baseline: float = math.nan
    soft_position: float = math.nan
    soft_position_baseline: float = math.nan
    symmetry: str = "unknown"
    gauge: str = "stored"
    gauge_dependent: bool = True
    product_sv: np.ndarray = field(default_factory=lambda: np.zeros(0))
    product_rank: int = -1

    @property
    def commutator_ratio(self) -> float:
        """commutator / c⁰ (eq. (50)): ≈ 1 at chance, 0 for a shared eigenbasis; NaN if c⁰ = 0."""
        c0 = self.commutator_null
        return self.commutator / c0 if c0 and not math.isnan(c0) else math.nan

    def scalars(self) -> dict:
        """The flat per-pair numbers, keyed by their ``pairs.csv`` column (docs/schema.md)."""
        ang = np.degrees(np.asarray(self.angles, dtype=np.float64))
        imb = self.imbalance
        # relative parts share eq. (11)'s denominator ‖W̃W̃ᵀ‖ + ‖W'ᵀW'‖ = full / relative; a
        # balanced pair (D = 0) has diag = offdiag = 0 exactly
        if imb.full == 0.0:
            denom = math.inf
        else:
            denom = imb.full / imb.relative if imb.relative and np.isfinite(imb.relative) else math.nan
        ok = bool(denom) and not math.isnan(denom)
        return {
            "k": int(self.k),
            "overlap": float(self.overlap),
            "baseline": float(self.baseline),
            "overlap_ratio": float(self.overlap_ratio),
            "angle_min_deg": float(ang.min()) if ang.size else math.nan,
            "angle_median_deg": float(np.median(ang)) if ang.size else math.nan,
            "angle_max_deg": float(ang.max()) if ang.size else math.nan,
            "intersection_dim": int(self.intersection_dim),
            "lost_dims": int(self.lost_dims),
            "commutator": float(self.commutator),
            "commutator_null": float(self.commutator_null),
            "commutator_ratio": float(self.commutator_ratio),
            "imbalance": float(imb.relative),
            "imbalance_diag": float(imb.diag / denom) if ok else math.nan,
            "imbalance_offdiag": float(imb.offdiag / denom) if ok else math.nan,
            "imbalance_abs": float(imb.full),
            "method": str(self.method),
            **self._flag_scalars(),
        }

    def _flag_scalars(self) -> dict:
        """The gap-chosen flag columns (eqs. (63), (65), (66); docs/schema.md)."""
        known = self.flag_dims_left is not None and self.flag_dims_right is not None
        d = self.flag_distance_baseline
        return {
            "flag_type_left": format_flag_type(self.flag_dims_left) if known else math.nan,
            "flag_type_right": format_flag_type(self.flag_dims_right) if known else math.nan,
            "flag_splits_left": len(self.flag_dims_left) if known else math.nan,
            "flag_splits_right": len(self.flag_dims_right) if known else math.nan,
            "flag_distance": float(self.flag_distance),
            "flag_distance_baseline": float(d),
            "flag_distance_ratio": float(self.flag_distance / d) if d and d == d else math.nan,
            "soft_relative_position": float(self.soft_position),
            "soft_relative_position_baseline": float(self.soft_position_baseline),
        }


def assemble_pair(W, Wn, left, right, *, k: int, tol: float, rtol_w: float, rtol_n: float,
                  bias=None, rank_next: int | None = None,
                  dtypes: tuple[str, str] = ("float64", "float64")) -> PairAlignment:
    """The one pair assembler: :class:`PairAlignment` of (W, W') at flag depth ``k`` from factors.

    Parameters
    ----------
    W, Wn : ndarray
        float64 writer (n, i) and reader (o, n), finite.
    left, right : TopSubspaces or GramFactors
        Factors of W (its U; a full thin SVD or one-sided factors give an exact lost_dims
        without a further SVD) and of W' (its V, at least k triplets).
    k : int
        Flag depth (≤ both ranks).
    tol : float
        Sine tolerance of intersection_dim (eq. (5)).
    rtol_w, rtol_n : float
        Relative rank tolerances of eq. (3) for W and W' (their stored dtypes').
    bias : ndarray, optional
        W's output bias (W̃ = [W, b] in D, eq. (11)).
    rank_next : int, optional
        rank W' at ``rtol_n`` when the caller knows it exactly (``right`` may be truncated).
    dtypes : (str, str)
        Stored dtypes of W and W' (``W``, ``Wn`` are float64 copies): they set the perturbation
        δ (eq. (62)) against which the flags' splits are chosen (eq. (63)).
    """
    n = W.shape[0]
    u, v = left.U[:, :k], right.V[:, :k]
    cos, sin = _cos_sin_orthonormal(u, v)
    overlap = float(np.sum(cos**2) / k)
    baseline = overlap_baseline(k, k, n)
    method = "randomized" if "randomized" in (left.method, right.method) else "exact"
    fl = pair_flags(u, left.s, W, dtypes[0], v, right.s, Wn, dtypes[1])
    nb = 0 if bias is None else 1
    qr_route = W.shape[1] + nb + Wn.shape[0] <= QR_RATIO * n
    if qr_route and _grams_representable(W, Wn, bias):
        # a narrow pair (rank ≤ i + 1 + o ≪ n): eqs. (10)–(12) from one Householder QR of
        # [W, b, W'ᵀ], nothing n×n, peak memory O(n·(i + o)) (docs/theory.md §1.6)
        pp = pair_products(W, Wn, bias=bias, rtol_w=rtol_w, rtol_n=rtol_n, lost=True)
        null = commutator_null_rms_from_moments(
            np.einsum("ij,ij->", W, W), pp.norm_a**2, np.einsum("ij,ij->", Wn, Wn),
            pp.norm_b**2, n)
        return _assembled(n, k, method, cos, sin, overlap, baseline, tol, u, v, pp.commutator,
                          pp.imbalance, int(pp.lost_dims), null, fl)
    reuse = getattr(left, "gram_side", None) == "out" or getattr(right, "gram_side", None) == "in"
    if GRAM_ROUTE and not reuse and _grams_representable(W, Wn, bias):
        # no n×n Gram in hand: the small-Gram route (eq. (16b)) when its guards hold
        # the factors' small Grams WᵀW and W'W'ᵀ are the ones this route needs: reuse them
        g_in = left.gram if getattr(left, "gram_side", None) == "in" else None
        g_next = right.gram if getattr(right, "gram_side", None) == "out" else None
        pp = pair_products(W, Wn, bias=bias, rtol_w=rtol_w, rtol_n=rtol_n, lost=False,
                           small_only=True, gram_in=g_in, gram_next_out=g_next)
        if pp is not None:
            null = commutator_null_rms_from_moments(
                np.einsum("ij,ij->", W, W), pp.norm_a**2, np.einsum("ij,ij->", Wn, Wn),
                pp.norm_b**2, n)
            lost = lost_dims_from_factors(W, Wn, left, right, rtol_w, rtol_n, pp.M, rank_next,
                                          mtm=pp.MtM)
            return _assembled(n, k, method, cos, sin, overlap, baseline, tol, u, v,
                              pp.commutator, pp.imbalance, lost, null, fl)
    if _grams_representable(W, Wn, bias):
        # reuse a factor's Gram when it is the one needed (bit-identical: the same product)
        g_w = left.gram if getattr(left, "gram_side", None) == "out" else W @ W.T
        g_next = right.gram if getattr(right, "gram_side", None) == "in" else Wn.T @ Wn
        g_in = g_w if bias is None else g_w + np.outer(bias, bias)
        commutator, m = commutator_and_product(W, Wn, g_w, g_next)
        imb = imbalance_from_grams(g_in, g_next)
    else:  # entries near float64's range: eqs. (10), (11) from exactly (power-of-two) scaled weights
        commutator, imb = gram_observables(W, Wn, bias)
        m = None
        sw, sn = W / pow2_scale(W), Wn / pow2_scale(Wn)
        g_w, g_next = sw @ sw.T, sn.T @ sn
    return _assembled(n, k, method, cos, sin, overlap, baseline, tol, u, v, commutator, imb,
                      lost_dims_from_factors(W, Wn, left, right, rtol_w, rtol_n, m, rank_next),
                      commutator_null_rms(g_w, g_next), fl)


def _assembled(n, k, method, cos, sin, overlap, baseline, tol, u, v, commutator, imb, lost,
               null, fl) -> PairAlignment:
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
        imbalance=imb,
        lost_dims=int(lost),
        tol=float(tol),
        commutator_null=null,
        flag_dims_left=fl.left.dims,
        flag_dims_right=fl.right.dims,
        flag_distance=fl.distance,
        flag_distance_baseline=fl.distance_baseline,
        soft_position=fl.soft_position,
        soft_position_baseline=fl.soft_position_baseline,
    )


def _grams_representable(W, Wn, bias) -> bool:
    arrays = (W, Wn) if bias is None else (W, Wn, bias)
    m = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    return m < _GRAM_SAFE


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
    symmetry, gauge = check_symmetry(symmetry), check_gauge(gauge)
    if not np.any(w) or not np.any(wn):
        return _with_symmetry(_zero_pair(w, wn, wdt, ndt, tol, bias), symmetry, gauge, w, wn, wdt, ndt)
    if gauge == "balanced":
        if symmetry == "unknown":
            raise InputError("gauge='balanced' needs the pair's symmetry (symmetry=...); it is unknown")
        w2, wn2, b2 = balance_pair(w, wn, as_bias(bias, n), symmetry)
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
    b = as_bias(bias, n)
    pa = assemble_pair(w, wn, left, right, k=k, tol=tol, rtol_w=rank_rtol(w.shape, wdt),
                       rtol_n=rank_rtol(wn.shape, ndt), bias=b, dtypes=(wdt, ndt))
    return _with_symmetry(pa, symmetry, gauge, w, wn, wdt, ndt)


def _with_symmetry(pa: PairAlignment, symmetry: str, gauge, w, wn, wdt: str, ndt: str) -> PairAlignment:
    """``pa`` with the symmetry fields of eqs. (75)–(76) set (the product spectrum for GL pairs)."""
    extra = {}
    if symmetry == GL:
        sv, rank = product_spectrum(w, wn, rank_rtol(w.shape, wdt), rank_rtol(wn.shape, ndt))
        extra = {"product_sv": sv, "product_rank": rank}
    return replace(pa, symmetry=symmetry, gauge=gauge or "stored",
                   gauge_dependent=angles_gauge_dependent(symmetry, gauge), **extra)


def _rank_hint(a: np.ndarray, dtype: str, factors: TopSubspaces | None) -> int:
    """Numerical rank (eq. (3)): from the given factors when they reveal it (a truncated spectrum
    that already drops below the tolerance), else from the singular values of ``a``."""
    rtol = rank_rtol(a.shape, dtype)
    if factors is not None and factors.s.size and factors.s[0] > 0:
        r = rank_from_singular_values(factors.s, rtol)
        if r < factors.s.size or factors.s.size == min(a.shape):
            return r
    return rank_from_singular_values(sla.svdvals(a), rtol)


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
        lost_dims=lost_dims_at(w, wn, rank_rtol(w.shape, wdt), rank_rtol(wn.shape, ndt)),
        tol=float(tol),
        status=f"{side} is all zeros: no flag to compare",
    )
