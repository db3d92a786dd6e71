"""Grassmann and flag-manifold distances (docs/theory.md §5, eqs. (61), (66)).

Every distance here is computed from principal-angle *sines and angles* of eq. (1) (Knyazev &
Argentati's sine branch), so planted angles down to ~1e-15 rad keep full absolute accuracy.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .angles import _angles_from, _bases, _cos_sin_orthonormal
from .partial_flag import Flag, as_flag

__all__ = ["subspace_distance", "flag_distance", "flag_distance_baseline", "common_type"]

_METRICS = ("geodesic", "chordal")


def _check_metric(metric: str) -> None:
    if metric not in _METRICS:
        raise InputError(f"metric must be 'geodesic' or 'chordal', got {metric!r}")


def _sq_terms(cos: np.ndarray, sin: np.ndarray, metric: str) -> np.ndarray:
    """Per-angle squared contributions: θ² (geodesic) or sin²θ (chordal)."""
    if metric == "geodesic":
        return _angles_from(cos, sin) ** 2
    return sin**2


def subspace_distance(A, B, metric: str = "geodesic", unequal: str = "metric") -> float:
    """Distance between span(A) and span(B) (docs/theory.md, eq. (61)).

    Parameters
    ----------
    A, B : array_like or torch.Tensor, shapes (n, a), (n, b)
        Spanning columns (need not be orthonormal); dimensions k = rank A, l = rank B by eq. (3).
    metric : {"geodesic", "chordal"}
        Geodesic (Σθᵢ²)^½ or chordal (Σ sin²θᵢ)^½ (Edelman, Arias & Smith 1998), θ of eq. (1).
    unequal : {"metric", "containment"}
        For k ≠ l. ``"metric"`` (default): each of the |k − l| missing angles counts as π/2,
        (|k−l|·π²/4 + Σθ²)^½ resp. (|k−l| + Σ sin²θ)^½ — Ye & Lim's (SIMAX 37(3), 2016) δ∞,
        a metric on the union of all Grassmannians of ℝⁿ. ``"containment"``: Ye & Lim's δ, the
        distance from the smaller subspace to the set of subspaces of its dimension inside the
        larger one (0 when one contains the other; not a metric across dimensions).

    Returns
    -------
    float
        Invariant under any common orthogonal map of both subspaces and under the choice of
        spanning columns (O(n) row of eq. (15)); not GL(n)-invariant.
    """
    _check_metric(metric)
    if unequal not in ("metric", "containment"):
        raise InputError(f"unequal must be 'metric' or 'containment', got {unequal!r}")
    qa, qb = _bases(A, B)
    cos, sin = _cos_sin_orthonormal(qa, qb)
    total = float(np.sum(_sq_terms(cos, sin, metric)))
    if unequal == "metric":
        missing = abs(qa.shape[1] - qb.shape[1])
        total += missing * ((math.pi / 2) ** 2 if metric == "geodesic" else 1.0)
    return math.sqrt(total)


def common_type(F: Flag, G: Flag) -> tuple[int, ...]:
    """The finest type both flags coarsen to: the dims they share."""
    return tuple(sorted(set(F.dims) & set(G.dims)))


def _resolve_types(F: Flag, G: Flag, dims) -> tuple[Flag, Flag] | None:
    if dims is None:
        if F.dims != G.dims:
            raise InputError(
                f"flags of different types {F.dims} and {G.dims}: pass dims='common' to compare "
                "them on the dims they share, or an explicit common type"
            )
        return F, G
    if isinstance(dims, str):
        if dims != "common":
            raise InputError(f"dims must be None, 'common' or a type, got {dims!r}")
        dims = common_type(F, G)
        if not dims:
            return None
    dims = tuple(int(d) for d in dims)
    if not dims:
        raise InputError("dims=() is the trivial flag (a point); give at least one dimension")
    return F.coarsen(dims), G.coarsen(dims)


def flag_distance(F, G, metric: str = "chordal", dims=None) -> float:
    """Distance between two flags of the same type (docs/theory.md, eq. (66)).

    With pieces V₁, …, V_{p+1} of F and W₁, …, W_{p+1} of G (the last ones the complements of the
    largest members), and θ⁽ⁱ⁾ the principal angles between Vᵢ and Wᵢ:

    * ``chordal``: (½ Σᵢ Σₖ sin²θₖ⁽ⁱ⁾)^½ = (¼ Σᵢ ‖Pᵢ − Qᵢ‖²_F)^½, the Euclidean distance of the
      piece projectors (the embedding of the flag manifold in a product of Grassmannians).
    * ``geodesic``: (½ Σᵢ Σₖ (θₖ⁽ⁱ⁾)²)^½, the distance in that product of Grassmannians, scaled by
      1/√2. It is a *lower bound* on the geodesic distance of the flag manifold
      O(n)/(O(n₁)×…×O(n_{p+1})) with metric ½‖Ω‖²_F, exact to first order for nearby flags and
      exact for p = 1 (where both reduce to the Grassmann distances of eq. (61)); the true
      geodesic distance has no closed form.

    Parameters
    ----------
    F, G : Flag or orthonormal array (complete flag of its columns)
    metric : {"chordal", "geodesic"}
    dims : None, "common" or tuple of int
        None: the types must be equal. "common": compare on the dims both types contain (NaN when
        they share none). A tuple: coarsen both flags to it.

    Returns
    -------
    float
        Invariant under rotations inside any piece (cluster), and under a common orthogonal map
        of both flags.
    """
    _check_metric(metric)
    F, G = as_flag(F, "F"), as_flag(G, "G")
    if F.n != G.n:
        raise InputError(f"flags live in different spaces: ℝ^{F.n} and ℝ^{G.n}")
    pair = _resolve_types(F, G, dims)
    if pair is None:
        return float("nan")
    F, G = pair
    if metric == "chordal":
        return math.sqrt(0.5 * _chordal_sq(F, G))
    total = 0.0
    for i in range(len(F.dims)):
        cos, sin = _cos_sin_orthonormal(F.piece(i), G.piece(i))
        total += float(np.sum(_sq_terms(cos, sin, metric)))
    if F.dims and F.dims[-1] < F.n:
        # the complement pieces have the same principal angles as the largest members
        cos, sin = _cos_sin_orthonormal(F.member(-1), G.member(-1))
        total += float(np.sum(_sq_terms(cos, sin, metric)))
    return math.sqrt(0.5 * total)


def _chordal_sq(F: Flag, G: Flag) -> float:
    """Σᵢ Σₖ sin²θₖ⁽ⁱ⁾ over the pieces and the complement (eqs. (66), (69)) without an SVD: for
    orthonormal bases of equal dimension Σ sin²θ = ‖Q_B − Q_A Q_AᵀQ_B‖²_F, the squared singular
    values of the residual whose singular values are the sines of eq. (1) (the sine branch, so
    small angles keep their accuracy). Two products for all pieces at once."""
    if not F.dims:
        return 0.0
    f, g = F.basis, G.basis  # n × d_p, pieces are column blocks of the same sizes
    c = f.T @ g
    piece = np.repeat(np.arange(len(F.dims)), np.diff((0,) + F.dims))
    total = float(np.sum((g - f @ np.where(piece[:, None] == piece[None, :], c, 0.0)) ** 2))
    if F.dims[-1] < F.n:  # the complements have the angles of the largest members
        total += float(np.sum((g - f @ c) ** 2))
    return total


def flag_distance_baseline(dims, n: int) -> float:
    """Root-mean-square chordal :func:`flag_distance` of two independent Haar-random flags of
    type ``dims`` in ℝⁿ (docs/theory.md, eq. (66)): (½ Σᵢ nᵢ(1 − nᵢ/n))^½ over the pieces,
    complement included, since E‖VᵢᵀWᵢ‖²_F = nᵢ²/n (eq. (4)). Exact for E d², not for E d."""
    dims = tuple(int(d) for d in dims)
    if any(d <= 0 or d >= n for d in dims) or any(b <= a for a, b in zip(dims, dims[1:])):
        raise InputError(f"dims must be increasing within 1..n-1, got {dims} with n={n}")
    full = (0,) + dims + (n,)
    sizes = np.diff(full).astype(float)
    return math.sqrt(0.5 * float(np.sum(sizes * (1.0 - sizes / n))))
