"""Top-k singular subspaces, exact or randomized (docs/theory.md, eq. (13))."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64
from .._validate import is_int
from ..errors import InputError

__all__ = ["TopSubspaces", "top_subspaces", "choose_method", "EXACT_MAX_ENTRIES"]

#: ``method="auto"`` uses the exact SVD for matrices with at most this many entries (a 2048×2048
#: matrix: ~1 s with one BLAS thread) or when k ≥ min(shape)/4, and the randomized method above.
EXACT_MAX_ENTRIES = 2048 * 2048

#: Randomized range finder settings (Halko, Martinsson & Tropp 2011, Alg. 4.4): sketch width
#: k + max(OVERSAMPLE, k) and POWER_ITERATIONS subspace iterations, re-orthonormalised by QR.
OVERSAMPLE = 10
POWER_ITERATIONS = 4


class TopSubspaces(NamedTuple):
    """Top-k singular triplets of W = U diag(s) Vᵀ + (rest).

    U : (out, k) left singular vectors (the output flag, by decreasing s)
    s : (k,) singular values, descending
    V : (in, k) right singular vectors (the input flag)
    method : the method actually used, ``"exact"`` or ``"randomized"``
    """

    U: np.ndarray
    s: np.ndarray
    V: np.ndarray
    method: str


def choose_method(shape: tuple[int, int], k: int) -> str:
    """The rule behind ``method="auto"`` (eq. (13))."""
    m, n = shape
    if m * n <= EXACT_MAX_ENTRIES or 4 * k >= min(m, n):
        return "exact"
    return "randomized"


def _randomized(a: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, n = a.shape
    width = min(min(m, n), k + max(OVERSAMPLE, k))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(a @ rng.standard_normal((n, width)))
    for _ in range(POWER_ITERATIONS):
        z, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ z)
    ub, s, vt = sla.svd(q.T @ a, full_matrices=False, lapack_driver="gesdd")
    return q @ ub[:, :k], s[:k], vt[:k].T


def top_subspaces(W, k: int, method: str = "exact", seed: int = 0) -> TopSubspaces:
    """Top-k left and right singular vectors and values of W (eq. (13)).

    Parameters
    ----------
    W : array_like or torch.Tensor, shape (out, in)
    k : int
        Number of triplets, 1 ≤ k ≤ min(out, in).
    method : {"exact", "randomized", "auto"}
        ``exact``: LAPACK gesdd. ``randomized``: Halko–Martinsson–Tropp range finder with
        oversampling ``max(10, k)`` and 4 power iterations (QR re-orthonormalised), then an exact
        SVD of the small projected matrix; deterministic for a given ``seed``. ``auto``: see
        :func:`choose_method`.
    seed : int
        Seed of the Gaussian test matrix (randomized only).

    Returns
    -------
    TopSubspaces
        (U, s, V, method) with U (out, k), s (k,) descending, V (in, k).
    """
    a, _ = as_float64(W, name="W")
    r = min(a.shape)
    if not is_int(k) or not 1 <= k <= r:
        raise InputError(f"k must be in [1, {r}] for a {a.shape[0]}x{a.shape[1]} matrix, got {k}")
    if not np.all(np.isfinite(a)):
        raise InputError("W contains NaN or Inf")
    k = int(k)
    if method == "auto":
        method = choose_method(a.shape, k)
    if method == "exact":
        u, s, vt = sla.svd(a, full_matrices=False, lapack_driver="gesdd")
        return TopSubspaces(u[:, :k], s[:k], vt[:k].T, "exact")
    if method == "randomized":
        u, s, v = _randomized(a, k, seed)
        return TopSubspaces(u, s, v, "randomized")
    raise InputError(f"method must be 'exact', 'randomized' or 'auto', got {method!r}")
