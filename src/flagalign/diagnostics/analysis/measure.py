"""One pair of the plan, measured from cached factors: the thin adapter from a
:class:`~.plan.PairTask` and its matrices' factors to the one pair assembler,
:func:`flagalign.geometry.pair.assemble_pair` (docs/theory.md, eq. (14)).

:func:`measure_task` is a pure, picklable function of (task, matrices, factors): a parallel
runner can call it in a worker process.
"""

from __future__ import annotations

import time

import numpy as np

from ...geometry import default_k, rank_from_singular_values
from ...geometry.pair import assemble_pair
from .store import c_aligned, c_layout, truncate
from ..gauge_columns import factor_moments, pair_columns
from .table import empty_row, pair_row

__all__ = ["measure_task", "align_task", "choose_k", "factor_rank"]


def factor_rank(f, shape, rtol: float, method: str) -> int:
    """Numerical rank (eq. (3)) from a factor; for a randomized factor the rank cannot be seen
    beyond its k columns, so min(shape) bounds it."""
    if getattr(f, "rank", None) is not None:  # GramFactors: certified or counted by LAPACK
        return int(f.rank)
    r = rank_from_singular_values(f.s, rtol)
    if method == "randomized" and r == np.asarray(f.s).size:
        return min(shape)
    return r


def choose_k(k_user, n: int, rank_w: int, rank_next: int) -> int:
    """The k analysed for a pair: the user's k (capped at both ranks) or ``default_k`` of
    docs/theory.md, eq. (14), on the smaller rank."""
    r = min(rank_w, rank_next)
    if r <= 0:
        return 0
    if k_user is None:
        return max(1, min(int(default_k(n, r)), r))
    return max(1, min(int(k_user), r))


def _one_layout(W, Wn, bias, left, right):
    """The pair's arrays and factors in one memory layout (C-contiguous, aligned; no copy where
    they already are): arrays from a worker or Dask may be views, F-ordered or unaligned, and
    the results must be bit-identical wherever the pair runs (:func:`.store.c_layout`)."""
    return c_aligned(W), c_aligned(Wn), c_aligned(bias), c_layout(left), c_layout(right)


def align_task(task, W, Wn, left, right, *, k_user=None, bias=None, device=None):
    """The :class:`~flagalign.geometry.pair.PairAlignment` of one planned pair from its factors,
    or ``(None, status)`` when it cannot be measured (shape mismatch, rank 0); the core of
    :func:`measure_task`, shared with ``trajectory``. ``device``: a
    :class:`~.device.Device` computes the pair products with torch (:func:`.device.pair`)."""
    W, Wn, bias, left, right = _one_layout(W, Wn, bias, left, right)
    if device is not None:  # a .device.Device (which imports this module, not the reverse)
        return device.align(task, W, Wn, left, right, k_user=k_user, bias=bias)
    p = task.pair
    if W.shape[0] != p.dim or Wn.shape[1] != p.dim:
        return None, f"shape mismatch {W.shape} -> {Wn.shape} (dim {p.dim})"
    rtol_w, rtol_n = task.rtols
    rw = factor_rank(left, W.shape, rtol_w, task.method)
    rn = factor_rank(right, Wn.shape, rtol_n, task.method)
    kk = choose_k(k_user, int(p.dim), rw, rn)
    if kk == 0:
        return None, "rank 0 (zero map)"
    # W'’s numerical rank is exact when its factor shows it (full spectrum or GramFactors); the
    # truncation below hides it from the assembler
    exact_rn = getattr(right, "rank", None) is not None or right.s.size == min(Wn.shape)
    pa = assemble_pair(W, Wn, left, truncate(right, kk), k=kk, tol=task.tol, rtol_w=rtol_w,
                       rtol_n=rtol_n, bias=bias,
                       rank_next=rn if exact_rn and task.method == "exact" else None,
                       dtypes=task.dtypes)
    return pa, None


def measure_task(task, W, Wn, left, right, *, k_user=None, bias=None, keep_flag: bool = True,
                 device=None):
    """Measure one planned pair; returns ``(row, flag_table, angles_deg)`` (tables None if the
    row is not ok).

    Parameters
    ----------
    task : PairTask
        The pair, its depth, method, sine tolerance and rank tolerances (from the plan).
    W, Wn : ndarray
        float64 writer (dim, ·) and reader (·, dim), finite and not all zero.
    left, right : TopSubspaces or GramFactors
        Factors of W and W' (:func:`~.store.matrix_factors`).
    k_user : int, optional
        The user's k (None: eq. (14)'s default); capped at both numerical ranks.
    bias : ndarray, optional
        W's output bias (eq. (11)).
    keep_flag : bool
        Return the flag table (else None).
    """
    t0 = time.perf_counter()
    p, depth = task.pair, task.depth
    W, Wn, bias, left, right = _one_layout(W, Wn, bias, left, right)
    pa, why = align_task(task, W, Wn, left, right, k_user=k_user, bias=bias, device=device)
    if pa is None:
        return empty_row(p, depth, task.method, why, time.perf_counter() - t0), None, None
    rtol_w, rtol_n = task.rtols
    row = pair_row(p, depth, pa, task.method)
    row.update(pair_columns(p, W=W, Wn=Wn, bias=bias, k=row["k"], overlap=row["overlap"],
                            commutator=row["commutator"], imbalance=row["imbalance"], rtol_w=rtol_w,
                            rtol_n=rtol_n, w_moments=factor_moments(left, W.shape),
                            next_moments=factor_moments(right, Wn.shape)))  # §7 columns
    row["seconds"] = time.perf_counter() - t0
    ang = np.degrees(np.asarray(pa.angles, dtype=np.float64)).astype(np.float32)
    table = np.asarray(pa.flag_table, dtype=np.float32) if keep_flag else None
    return row, table, ang
