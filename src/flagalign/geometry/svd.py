"""Top-k singular subspaces, exact or randomized (docs/theory.md, eq. (13))."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64
from .._validate import is_int
from ..errors import InputError

__all__ = ["TopSubspaces", "top_subspaces", "choose_method", "EXACT_MAX_ENTRIES", "METHODS"]

#: ``method="auto"`` uses the exact SVD for matrices with at most this many entries (a 2048×2048
#: matrix: ~1 s with one BLAS thread) or when k ≥ min(shape)/4, and the randomized method above.
EXACT_MAX_ENTRIES = 2048 * 2048

#: Randomized range finder settings (Halko, Martinsson & Tropp 2011, Alg. 4.4): sketch width
#: k + max(OVERSAMPLE, k) and POWER_ITERATIONS subspace iterations, re-orthonormalised by QR.
OVERSAMPLE = 10
POWER_ITERATIONS = 4


class _Triplets(NamedTuple):
    U: np.ndarray
    s: np.ndarray
    V: np.ndarray


class TopSubspaces(_Triplets):
    """Top-k singular triplets of W = U diag(s) Vᵀ + (rest), unpackable as ``U, s, V = ...``
    like :func:`numpy.linalg.svd`.

    U : (out, k) left singular vectors (the output flag, by decreasing s)
    s : (k,) singular values, descending
    V : (in, k) right singular vectors (the input flag)
    method : attribute, the method actually used, ``"exact"`` or ``"randomized"``
    """

    def __new__(cls, U, s, V, method: str = "exact"):
        self = super().__new__(cls, U, s, V)
        self.method = method
        return self

    def _replace(self, **kw):
        method = kw.pop("method", self.method)
        return TopSubspaces(*_Triplets._replace(self, **kw), method=method)

    def __reduce__(self):  # picklable with its method (worker processes)
        return (TopSubspaces, (self.U, self.s, self.V, self.method))

    def __repr__(self) -> str:
        return (f"TopSubspaces(U{tuple(self.U.shape)}, s{tuple(self.s.shape)}, "
                f"V{tuple(self.V.shape)}, method={self.method!r})")


METHODS = ("auto", "exact", "randomized")


def choose_method(shape: tuple[int, int], method: str = "auto", k: int = 64) -> str:
    """The SVD method used for a matrix of ``shape`` when up to ``k`` triplets are needed (eq. (13)).

    ``auto``: exact LAPACK SVD when the matrix has at most :data:`EXACT_MAX_ENTRIES` = 2048²
    entries (≈ 1 s on one core) or k ≥ min(shape)/4, randomized top-k above (every 384×1536 /
    576×1536 transformer matrix and every head slice is exact; vocabulary embeddings are
    randomized). ``exact`` and ``randomized`` are returned as is.

    Raises
    ------
    InputError
        If ``method`` is not one of :data:`METHODS`.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    m, n = int(shape[0]), int(shape[1])
    if m * n <= EXACT_MAX_ENTRIES or 4 * max(1, int(k)) >= min(m, n):
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
        ``U, s, V`` with U (out, k), s (k,) descending, V (in, k); ``.method`` says which
        method was used.
    """
    a, _ = as_float64(W, name="W")
    r = min(a.shape)
    if not is_int(k) or not 1 <= k <= r:
        raise InputError(f"k must be in [1, {r}] for a {a.shape[0]}x{a.shape[1]} matrix, got {k}")
    if not np.all(np.isfinite(a)):
        raise InputError("W contains NaN or Inf")
    k = int(k)
    if method == "auto":
        method = choose_method(a.shape, "auto", k)
    if method == "exact":
        u, s, vt = sla.svd(a, full_matrices=False, lapack_driver="gesdd")
        return TopSubspaces(u[:, :k], s[:k], vt[:k].T, "exact")
    if method == "randomized":
        u, s, v = _randomized(a, k, seed)
        return TopSubspaces(u, s, v, "randomized")
    raise InputError(f"method must be 'exact', 'randomized' or 'auto', got {method!r}")
