"""Flag mean and flag median of a set of subspaces or flags (docs/theory.md, eqs. (67)–(68)).

Flag mean: Draper, Kirby, Marks, Marrinan & Peterson, *A flag representation for finite
collections of subspaces of mixed dimensions*, Linear Algebra Appl. 451 (2014) — the left
singular vectors of the stacked orthonormal bases. Flag median: Mankovich, King, Peterson &
Kirby, *The Flag Median and FlagIRLS*, CVPR 2022 — iteratively reweighted flag means.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64, input_eps
from ..errors import InputError
from ._basis import orthonormal_basis
from .partial_flag import Flag
from .spectral_flag import DEFAULT_MIN_MARGIN, _delta, flag_from_spectrum

__all__ = ["flag_mean", "flag_median"]


Item = tuple  # (orthonormal basis n×k, member dimensions d₁ < … < d_p ≤ k)


def _items(subspaces) -> tuple[list[Item], str]:
    """Each input as (basis, member dims) — a plain subspace is one member — and the least
    precise input dtype."""
    items = list(subspaces)
    if not items:
        raise InputError("need at least one subspace")
    out, worst = [], "float64"
    for idx, x in enumerate(items):
        if isinstance(x, Flag):
            out.append((x.basis, list(x.dims)))
            continue
        _, dtype = as_float64(x, name=f"subspaces[{idx}]")
        if input_eps(dtype) > input_eps(worst):
            worst = dtype
        q = orthonormal_basis(x, name=f"subspaces[{idx}]")
        out.append((q, [q.shape[1]] if q.shape[1] else []))
    n = {b.shape[0] for b, _ in out}
    if len(n) != 1:
        raise InputError(f"subspaces live in spaces of different dimensions: {sorted(n)}")
    return out, worst


def _stack(items: list[Item], weights: np.ndarray) -> np.ndarray:
    """Columns whose Gram matrix is Σⱼ wⱼ Σₘ P(member m of item j) (eq. (67))."""
    cols = []
    for (basis, mem), w in zip(items, weights):
        if w == 0 or not mem:
            continue
        starts = [0] + mem[:-1]
        for i, (a, b) in enumerate(zip(starts, mem)):
            mult = len(mem) - i  # piece i lies in members i, …, p
            cols.append(math.sqrt(w * mult) * basis[:, a:b])
    n = items[0][0].shape[0]
    return np.hstack(cols) if cols else np.zeros((n, 0))


def _weights(weights, k: int) -> np.ndarray:
    if weights is None:
        return np.ones(k)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,) or np.any(w < 0) or not np.all(np.isfinite(w)) or not np.any(w > 0):
        raise InputError(f"weights must be {k} non-negative finite numbers, not all 0")
    return w


def _mean(items, w, dims, dtype, min_margin, perturbation) -> Flag:
    x = _stack(items, w)
    n = items[0][0].shape[0]
    if x.shape[1] == 0:
        return Flag(np.zeros((n, 0)), ())
    u, s, _ = sla.svd(x, full_matrices=False, lapack_driver="gesdd")
    delta = _delta(x, dtype, float(s[0])) if perturbation is None else float(perturbation)
    top = max(max(mem, default=0) for _, mem in items)
    if dims is None:
        return flag_from_spectrum(u, s, delta, tail=0.0, min_margin=min_margin, max_dim=top)
    dims = tuple(int(d) for d in dims)
    if not dims or any(d < 1 or d > min(n, u.shape[1]) for d in dims):
        raise InputError(
            f"dims {dims} must be non-empty and within 1..{min(n, u.shape[1])} "
            "(the dimension of the span of the inputs)"
        )
    ext = np.append(s, 0.0)
    gaps = np.array([ext[d - 1] - ext[d] for d in dims if d < n])
    margins = gaps / delta if delta > 0 else np.full(gaps.size, np.inf)
    return Flag(u, dims, margins, delta, s)


def flag_mean(
    subspaces,
    dims=None,
    weights=None,
    *,
    min_margin: float = DEFAULT_MIN_MARGIN,
    perturbation: float | None = None,
) -> Flag:
    """Flag mean (Draper et al. 2014) of subspaces and/or flags of ℝⁿ (eq. (67)).

    Parameters
    ----------
    subspaces : sequence of array_like (n × kⱼ spanning columns) or :class:`Flag`
        A flag contributes each of its members Fⱼ,₁ ⊂ … ⊂ Fⱼ,ₚ as one subspace.
    dims : tuple of int, optional
        Type of the result. Default: the gap-chosen type (eq. (63)) of the stacked spectrum, up
        to the largest input dimension, with δ of eq. (62) for the stack at the least precise
        input dtype (float64 inputs give the finest type the spectrum supports; pass ``dims`` or
        ``perturbation`` for noisy inputs).
    weights : sequence of float, optional
        Non-negative weight of each input.
    min_margin, perturbation : as in :func:`~flagalign.geometry.spectral_flag.spectral_flag`.

    Returns
    -------
    Flag
        u₁, u₂, … the left singular vectors of X = [√w₁ X₁, √w₂ X₂, …] by decreasing σ: the flag
        maximising Σⱼ wⱼ Σₘ Σᵢ ‖YᵢᵀXⱼ,ₘ‖²_F for every member Yᵢ at once (Ky Fan). The flag mean of
        k copies of one flag (or subspace) is that flag, with its type. Equivariant under a
        common orthogonal map; invariant under rotations inside each input's pieces.
    """
    items, dtype = _items(subspaces)
    w = _weights(weights, len(items))
    return _mean(items, w, dims, dtype, min_margin, perturbation)


def _soft_gaps(y: Flag, item: Item) -> float:
    """dⱼ(Y)² = Σᵢ Σₘ (min(dᵢ, eₘ) − ‖YᵢᵀXⱼ,ₘ‖²_F) ≥ 0 (eq. (68))."""
    basis, mem = item
    if not y.dims or not mem:
        return 0.0
    c = np.cumsum(np.cumsum((y.basis.T @ basis[:, : mem[-1]]) ** 2, axis=0), axis=1)
    d, e = np.array(y.dims), np.array(mem)
    t = c[np.ix_(d - 1, e - 1)]
    return float(max(0.0, np.sum(np.minimum.outer(d, e) - t)))


def flag_median(
    subspaces,
    dims=None,
    weights=None,
    *,
    max_iter: int = 200,
    rtol: float = 1e-12,
    eps: float = 1e-12,
    min_margin: float = DEFAULT_MIN_MARGIN,
    perturbation: float | None = None,
) -> Flag:
    """Robust flag median by FlagIRLS (Mankovich et al., CVPR 2022) (eq. (68)).

    Minimises Σⱼ wⱼ dⱼ(Y) with dⱼ(Y) = (Σᵢ Σₘ (min(dᵢ, eₘ) − ‖YᵢᵀXⱼ,ₘ‖²_F))^½ over flags Y of a
    fixed type (for a Grassmann target Y of dim k and k-dim inputs dⱼ is the chordal distance
    (Σ sin²θ)^½, Mankovich et al.'s objective). Each step is the weighted flag mean with weights
    wⱼ / max(dⱼ(Y), eps): a majorize–minimize step, so the objective never increases.

    Parameters
    ----------
    subspaces, dims, weights, min_margin, perturbation : as in :func:`flag_mean`
        The type is that of the starting flag mean.
    max_iter : int
        Most IRLS steps.
    rtol : float
        Stop when the objective decreases by less than rtol · objective.
    eps : float
        Floor on dⱼ in the weights (an input equal to the estimate would get infinite weight).

    Returns
    -------
    Flag
        Unlike the mean, one outlier among several agreeing inputs moves it by about the inliers'
        spread, not by a fixed fraction of the outlier's distance: its weight falls as 1/dⱼ.
    """
    items, dtype = _items(subspaces)
    w0 = _weights(weights, len(items))
    y = _mean(items, w0, dims, dtype, min_margin, perturbation)
    if not y.dims:
        return y
    dims = y.dims
    obj = math.inf
    for _ in range(int(max_iter)):
        dist = np.sqrt([_soft_gaps(y, f) for f in items])
        new_obj = float(np.sum(w0 * dist))
        if obj - new_obj <= rtol * max(new_obj, 1e-300):
            break
        obj = new_obj
        y = _mean(items, w0 / np.maximum(dist, eps), dims, dtype, min_margin, perturbation)
    return y
