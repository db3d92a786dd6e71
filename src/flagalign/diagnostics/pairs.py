"""One row of ``pairs.csv``: the alignment of one adjacent pair (a picklable task).

The columns are fixed (docs/schema.md) and never depend on options: a value that does not apply
is NaN and ``status`` says why.
"""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["PAIR_COLUMNS", "empty_row", "pair_row", "choose_k"]

#: The columns of ``Analysis.pairs`` / ``pairs.csv``, in order (docs/schema.md).
PAIR_COLUMNS = (
    "pair",
    "kind",
    "left",
    "right",
    "dim",
    "depth",
    "k",
    "overlap",
    "baseline",
    "overlap_ratio",
    "angle_min_deg",
    "angle_median_deg",
    "angle_max_deg",
    "intersection_dim",
    "lost_dims",
    "commutator",
    "imbalance",
    "imbalance_diag",
    "imbalance_offdiag",
    "imbalance_abs",
    "method",
    "status",
    "seconds",
)

#: Columns that hold measured numbers (NaN when a pair cannot be measured).
_NUMERIC = PAIR_COLUMNS[PAIR_COLUMNS.index("k") : PAIR_COLUMNS.index("imbalance_abs") + 1]


def _identity(pair, depth: int) -> dict:
    """The columns that name a pair (the same whether or not it could be measured)."""
    return {
        "pair": pair.name,
        "kind": pair.kind,
        "left": pair.left,
        "right": pair.right,
        "dim": int(pair.dim),
        "depth": int(depth),
    }


def empty_row(pair, depth: int, method: str, status: str, seconds: float = 0.0) -> dict:
    """A row with every measurement NaN and ``status`` saying why."""
    row = {
        **_identity(pair, depth),
        "method": method,
        "status": status,
        "seconds": float(seconds),
    }
    row.update({c: math.nan for c in _NUMERIC})
    return {c: row[c] for c in PAIR_COLUMNS}


def _rank(f, shape, dtype: str, method: str) -> int:
    """Numerical rank (eq. (3)) from the singular values of a factor; for a randomized factor
    the rank cannot be seen beyond its k columns, so min(shape) bounds it."""
    from ..geometry._basis import rank_rtol

    if getattr(f, "rank", None) is not None:  # GramFactors: certified or counted by LAPACK
        return int(f.rank)
    s = np.asarray(f.s)
    if s.size == 0 or s[0] <= 0:
        return 0
    r = int(np.count_nonzero(s > rank_rtol(shape, dtype) * s[0]))
    if method == "randomized" and r == s.size:
        return min(shape)
    return r


def choose_k(k_user, n: int, rank_w: int, rank_next: int) -> int:
    """The k analysed for a pair: the user's k (capped at both ranks) or ``default_k`` of
    docs/theory.md, eq. (14), on the smaller rank."""
    from ..geometry import default_k

    r = min(rank_w, rank_next)
    if r <= 0:
        return 0
    if k_user is None:
        return max(1, min(int(default_k(n, r)), r))
    return max(1, min(int(k_user), r))


def pair_row(pair, depth, W, W_next, left, right, *, k, tol, method, bias=None,
             dtypes=("float64", "float64"), keep_flag=True):
    """Measure one pair and return ``(row, flag_table, angles_deg)`` (tables None if not ok).

    Parameters
    ----------
    pair : flagalign.models.Pair
    depth : int
        Position along the network (layer index), for the depth figures.
    W, W_next : ndarray
        float64 (dim, ·) writer and (·, dim) reader.
    left, right : TopSubspaces
        Factors of ``W`` and ``W_next`` (from :func:`~flagalign.diagnostics.factors.compute_factors`).
    k : int or None
        Requested k (None: default, eq. (14)).
    tol : float
        Sine tolerance of intersections (eq. (5)).
    method : str
        ``exact`` or ``randomized``: how the factors were computed (reported in the row).
    dtypes : (str, str)
        Stored dtypes of W and W_next: they set the rank tolerances of eq. (3).
    keep_flag : bool
        Return the flag table (else None).
    """
    from .factors import truncate
    from .measure import measure_pair

    t0 = time.perf_counter()
    rw = _rank(left, W.shape, dtypes[0], method)
    rn = _rank(right, W_next.shape, dtypes[1], method)
    kk = choose_k(k, int(pair.dim), rw, rn)
    if kk == 0:
        return empty_row(pair, depth, method, "rank 0 (zero map)", time.perf_counter() - t0), None, None
    status = "ok"  # a user k above the rank is capped; the k column shows the value used
    from ..geometry import rank_rtol

    # W_next's numerical rank is exact when its factor shows it (full spectrum or GramFactors);
    # the truncation below hides it from measure_pair
    exact_rn = getattr(right, "rank", None) is not None or right.s.size == min(W_next.shape)
    pa = measure_pair(
        W,
        W_next,
        left,
        truncate(right, kk),
        rank_next=rn if exact_rn and method == "exact" else None,
        k=kk,
        tol=tol,
        bias=bias,
        rtol_w=rank_rtol(W.shape, dtypes[0]),
        rtol_n=rank_rtol(W_next.shape, dtypes[1]),
    )
    ang = np.degrees(np.asarray(pa.angles, dtype=np.float64))
    imb = pa.imbalance
    # relative norms share eq. (11)'s denominator ‖W̃W̃ᵀ‖ + ‖W'ᵀW'‖ = full / relative; a perfectly
    # balanced pair (D = 0) has diag = offdiag = 0 exactly
    if imb.full == 0.0:
        denom = math.inf
    else:
        denom = imb.full / imb.relative if imb.relative and np.isfinite(imb.relative) else math.nan
    row = {
        **_identity(pair, depth),
        "k": int(pa.k),
        "overlap": float(pa.overlap),
        "baseline": float(pa.baseline),
        "overlap_ratio": float(pa.overlap_ratio),
        "angle_min_deg": float(ang.min()) if ang.size else math.nan,
        "angle_median_deg": float(np.median(ang)) if ang.size else math.nan,
        "angle_max_deg": float(ang.max()) if ang.size else math.nan,
        "intersection_dim": int(pa.intersection_dim),
        "lost_dims": int(pa.lost_dims),
        "commutator": float(pa.commutator),
        "imbalance": float(imb.relative),
        "imbalance_diag": float(imb.diag / denom) if denom and not math.isnan(denom) else math.nan,
        "imbalance_offdiag": float(imb.offdiag / denom) if denom and not math.isnan(denom) else math.nan,
        "imbalance_abs": float(imb.full),
        "method": str(pa.method) if getattr(pa, "method", None) else method,
        "status": status,
        "seconds": time.perf_counter() - t0,
    }
    table = np.asarray(pa.flag_table, dtype=np.float32) if keep_flag else None
    return {c: row[c] for c in PAIR_COLUMNS}, table, ang.astype(np.float32)
