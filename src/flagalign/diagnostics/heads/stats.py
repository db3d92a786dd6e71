"""Null statistics for head subspace overlap (docs/theory.md, eqs. (41)–(43), (46)).

All formulas are for independent, uniformly (Haar) distributed subspaces of ℝ^n, the law of the
row space of a Gaussian matrix and the null the random-init control approximates. The mean,
max(a, b)/n (eq. (4)), is :func:`flagalign.geometry.overlap_baseline`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "pair_overlap_std",
    "mean_overlap_se",
    "overlap_sums",
    "effective_heads",
    "effective_heads_baseline",
]


def pair_overlap_std(a: int, b: int, n: int) -> float:
    """Standard deviation of one pair's overlap under the Haar null (docs/theory.md, eq. (41)).

    With X = ‖UᵀV‖²_F = tr(P_U P_V), Var X = 2ab(n−a)(n−b) / (n²(n−1)(n+2)); the overlap is
    X / min(a, b).
    """
    if n < 2 or min(a, b) == 0:
        return float("nan")
    var = 2.0 * a * b * (n - a) * (n - b) / (n * n * (n - 1) * (n + 2))
    return math.sqrt(max(var, 0.0)) / min(a, b)


def mean_overlap_se(a: int, b: int, n: int, pairs: int) -> float:
    """Standard error of the mean off-diagonal overlap over ``pairs`` head pairs
    (docs/theory.md, eq. (42)): pair_overlap_std / √pairs.

    Overlaps of distinct pairs of independent Haar subspaces are uncorrelated (conditioned on
    the shared head, the other pair's mean is the constant ab/n), so the usual √pairs applies.
    """
    if pairs <= 0:
        return float("nan")
    return pair_overlap_std(a, b, n) / math.sqrt(pairs)


def overlap_sums(bases: list[np.ndarray]) -> np.ndarray:
    """S[h, g] = ‖U_hᵀ U_g‖²_F = tr(P_h P_g) for orthonormal bases U_h (one Gram product)."""
    ranks = [B.shape[1] for B in bases]
    if not bases:
        return np.zeros((0, 0))
    G = np.concatenate(bases, axis=1)
    G = G.T @ G
    edges = np.concatenate([[0], np.cumsum(ranks)])
    H = len(bases)
    S = np.empty((H, H))
    for i in range(H):
        for j in range(i, H):
            blk = G[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
            S[i, j] = S[j, i] = float(np.sum(blk * blk))
    return S


def effective_heads(S: np.ndarray, ranks) -> float:
    """Effective number of distinct head subspaces (docs/theory.md, eq. (43)).

    With P = Σ_h P_h, the participation ratio (tr P)²/tr(P²) of P's eigenvalues, divided by the
    mean head rank r̄ = tr P / H:  N_eff = H·Σ_h r_h / Σ_{h,g} tr(P_h P_g).
    H identical heads give 1, H mutually orthogonal heads give H; it is invariant to duplicating
    every head the same number of times (so GQA-shared k/v spaces count once).
    """
    ranks = np.asarray(ranks, dtype=float)
    tot = float(np.sum(S))
    if tot <= 0 or ranks.sum() == 0:
        return float("nan")
    return len(ranks) * float(ranks.sum()) / tot


def effective_heads_baseline(ranks, n: int) -> float:
    """N_eff of eq. (43) with E tr(P_h P_g) = r_h r_g / n for h ≠ g (docs/theory.md, eq. (46)):
    H Σr / (Σr + Σ_{h≠g} r_h r_g / n); for equal ranks r, H / (1 + (H−1) r / n)."""
    r = np.asarray(ranks, dtype=float)
    if r.sum() == 0:
        return float("nan")
    cross = (r.sum() ** 2 - np.sum(r * r)) / n
    return len(r) * float(r.sum()) / (float(r.sum()) + cross)
