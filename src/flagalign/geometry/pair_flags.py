"""The gap-chosen flags of an adjacent pair and what ``pairs.csv`` reports of them
(docs/theory.md, eq. (69): eqs. (62)–(66) applied to the pair of eq. (14)).

The writer W's output flag and the reader W′'s input flag are taken from the top-k factors the
pair already has (no further SVD): U_k with σ₁ ≥ … ≥ σ_k of W, V_k with those of W′. A split after
σ_d is kept by eq. (63) against the storage perturbation δ of eq. (62) at the matrix's stored
dtype; only splits d < k are considered (σ_{k+1} is not known from a top-k factor), so a pair's
flags are partial flags of type ⊆ (1, …, k−1) in ℝⁿ.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._scaling import pow2_scale
from .distances import common_type, flag_distance, flag_distance_baseline
from .flag_position import soft_relative_position, soft_relative_position_baseline
from .partial_flag import Flag
from .spectral_flag import _delta, flag_from_spectrum

__all__ = ["PairFlags", "pair_flags", "format_flag_type", "parse_flag_type",
           "piece_overlaps_from_table"]


@dataclass(frozen=True)
class PairFlags:
    """The two flags of a pair and their comparison (eqs. (63), (65), (66)).

    Attributes
    ----------
    left, right : Flag
        W's output flag and W′'s input flag, gap-chosen from their top-k factors.
    distance : float
        Chordal flag distance (eq. (66)) on the common type (the dims both types contain); NaN
        when they share none.
    distance_baseline : float
        Its random-flag RMS value ``flag_distance_baseline(common type, n)`` (eq. (66)).
    soft_position : float
        Soft relative position (eq. (65)) of the two flags at their own types, ∈ [0, 1];
        NaN when either flag is trivial (no stable split below k).
    soft_position_baseline : float
        Its exact expectation for independent Haar flags of the same types (eq. (65)).
    """

    left: Flag
    right: Flag
    distance: float
    distance_baseline: float
    soft_position: float
    soft_position_baseline: float

    @property
    def common_dims(self) -> tuple[int, ...]:
        """The common type the distance is taken on."""
        return common_type(self.left, self.right)


def _perturbation(W: np.ndarray, dtype: str, sigma1: float) -> float:
    """δ of eq. (62) for W stored as ``dtype``; computed on a power-of-two rescaled copy when
    ‖W‖_F would overflow (δ scales exactly with W)."""
    with np.errstate(over="ignore"):
        d = _delta(W, dtype, sigma1)
    if math.isfinite(d):
        return d
    c = pow2_scale(W)
    return c * _delta(W / c, dtype, sigma1 / c)


def pair_flags(U, s_w, W, dtype_w: str, V, s_n, Wn, dtype_n: str) -> PairFlags:
    """Gap-chosen flags of a pair from its top-k factors and their distance / soft position.

    Parameters
    ----------
    U : ndarray (n, k)
        Top-k left singular vectors of W (orthonormal, by decreasing σ).
    s_w : ndarray (k,)
        W's top-k singular values (descending).
    W : ndarray
        The writer (float64); only ‖W‖_F is read, for δ of eq. (62).
    dtype_w : str
        W's *stored* dtype (float32, bfloat16, …), which sets δ.
    V, s_n, Wn, dtype_n
        The same for the reader W′ (its top-k right singular vectors).

    Returns
    -------
    PairFlags

    Notes
    -----
    Cost: two products n×k by k×k, one k×k product and at most k small SVDs; no SVD of W or
    W′. Invariant under a common orthogonal map of the hidden space (so under permutations and
    sign flips of the hidden units), under rotations inside any cluster of singular values closer
    than 10δ, and under W → cW, W′ → c′W′ (c, c′ ≠ 0); not under a positive diagonal rescaling of
    the hidden units or GL(n) (docs/theory.md, eq. (15)).
    """
    s_w, s_n = np.asarray(s_w, dtype=np.float64), np.asarray(s_n, dtype=np.float64)
    k = min(U.shape[1], V.shape[1], s_w.size, s_n.size)
    if k == 0 or U.shape[0] != V.shape[0]:
        raise InputError(f"pair_flags: need k ≥ 1 factors in one space, got {U.shape}, {V.shape}")
    n = U.shape[0]
    left = flag_from_spectrum(U[:, :k], s_w[:k], _perturbation(W, dtype_w, float(s_w[0])))
    right = flag_from_spectrum(V[:, :k], s_n[:k], _perturbation(Wn, dtype_n, float(s_n[0])))
    common = common_type(left, right)
    if common:
        dist = flag_distance(left, right, metric="chordal", dims=common)
        base = flag_distance_baseline(common, n)
    else:
        dist = base = math.nan
    if left.dims and right.dims:
        soft = soft_relative_position(left, right)
        soft0 = soft_relative_position_baseline(left.dims, right.dims, n)
    else:
        soft = soft0 = math.nan
    return PairFlags(left, right, float(dist), float(base), float(soft), float(soft0))


def format_flag_type(dims) -> str:
    """A flag type as the compact string of ``pairs.csv``: runs of three or more consecutive
    dims as ``a..b``, comma-separated, in parentheses — ``(1..63)``, ``(1..5,7,9,10)``, ``(4)``;
    ``()`` for the trivial flag (no stable split). Inverse: :func:`parse_flag_type`."""
    dims = [int(d) for d in dims]
    parts, i = [], 0
    while i < len(dims):
        j = i
        while j + 1 < len(dims) and dims[j + 1] == dims[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{dims[i]}..{dims[j]}")
        else:
            parts.extend(str(x) for x in dims[i : j + 1])
        i = j + 1
    return "(" + ",".join(parts) + ")"


_RUN = re.compile(r"(\d+)(?:\.\.(\d+))?")


def parse_flag_type(text: str) -> tuple[int, ...]:
    """The dims of a ``flag_type_*`` string of ``pairs.csv`` (inverse of
    :func:`format_flag_type`): ``"(1..3,7)"`` → ``(1, 2, 3, 7)``, ``"()"`` → ``()``."""
    t = str(text).strip()
    if not (t.startswith("(") and t.endswith(")")):
        raise InputError(f"flag type: expected e.g. '(1..5,7)', got {text!r}")
    body = t[1:-1].strip()
    dims: list[int] = []
    for part in body.split(",") if body else []:
        m = _RUN.fullmatch(part.strip())
        if not m:
            raise InputError(f"flag type: cannot read {part!r} in {text!r}")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        dims.extend(range(a, b + 1))
    if any(b <= a for a, b in zip(dims, dims[1:])) or any(d < 1 for d in dims):
        raise InputError(f"flag type {text!r}: dims must be positive and increasing")
    return tuple(dims)


def piece_overlaps_from_table(table, dims_f, dims_g, n: int) -> np.ndarray:
    """The soft Schubert matrix of eq. (65) from a flag table of eq. (6).

    With T[i, j] = ‖U_iᵀV_j‖²_F (``geometry.flag_table(U, V)``, shape ≥ (d_p+1, e_q+1)) and the
    flags of types d ⊆ 1..k−1 of U, e of V, M[a, b] = ‖V_aᵀW_b‖²_F of the pieces (complements
    included) is the second difference of T on the grid (0, d₁, …, d_p, n) × (0, e₁, …, e_q, n),
    extended by T[n, j] = j, T[i, n] = i, T[n, n] = n. Equals
    ``piece_overlaps(Flag(U, d), Flag(V, e))`` (tested); used by the report, which keeps only
    the tables.

    Returns
    -------
    ndarray, shape (p+1, q+1)
    """
    t = np.asarray(table, dtype=np.float64)
    d, e = [int(x) for x in dims_f], [int(x) for x in dims_g]
    if (d and d[-1] >= t.shape[0]) or (e and e[-1] >= t.shape[1]) or n < max(d + e + [0]) + 1:
        raise InputError(f"types {tuple(d)}, {tuple(e)} do not fit a table of shape {t.shape} "
                         f"in ℝ^{n}")
    rows, cols = np.array([0] + d), np.array([0] + e)
    grid = np.empty((rows.size + 1, cols.size + 1))
    grid[:-1, :-1] = t[np.ix_(rows, cols)]
    grid[-1, :-1], grid[:-1, -1], grid[-1, -1] = cols, rows, n  # T[n, j] = j, T[i, n] = i
    m = np.diff(np.diff(grid, axis=0), axis=1)
    return np.maximum(m, 0.0)
