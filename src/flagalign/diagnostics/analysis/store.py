"""Per-matrix factors, computed once and freed after the last pair that uses them.

A **matrix task** (:func:`matrix_factors`: :func:`one_sided_factors`, else
:func:`compute_factors`) gives what the pairs need of one matrix: its numerical rank (eq. (3)) and
the top-k singular vectors of the side(s) they use — from the smaller Gram with a certified rank
(:mod:`flagalign.geometry.gram`), else one SVD (docs/theory.md, eq. (13)). Each is a pure,
picklable function of (:class:`~.plan.MatrixTask`, matrix), so a parallel runner can map it over
:attr:`AnalysisPlan.matrices <flagalign.diagnostics.analysis.plan.AnalysisPlan>`.

:class:`FactorStore` runs them on demand in one process, holding each loaded matrix and each
factor only while a later pair still needs it (reference counts from the plan), so peak memory
is a few matrices, not the whole model.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ...geometry import top_subspaces
from ...geometry.gram import (_GRAM_SAFE, gram_eigen_factors, gram_factors, smaller_gram,
                               tall_svd_factors)

__all__ = ["compute_factors", "one_sided_factors", "matrix_factors", "truncate", "c_layout",
           "c_aligned", "FactorStore"]


def compute_factors(matrix: np.ndarray, k: int, method: str, seed: int = 0):
    """Singular triplets of ``matrix`` (a picklable task; docs/theory.md, eq. (13)).

    ``exact`` keeps the full thin SVD (every prefix is the exact top-k, and the numerical rank
    of eq. (3) is visible), so ``k`` only matters for ``randomized``, which returns the top
    ``k``.

    Returns
    -------
    flagalign.geometry.TopSubspaces
    """
    kk = min(matrix.shape) if method == "exact" else max(1, min(int(k), min(matrix.shape)))
    return top_subspaces(matrix, kk, method=method, seed=seed)


def one_sided_factors(matrix: np.ndarray, k: int, sides: str, rtol: float):
    """What ``analyze`` needs of an ``exact`` matrix, cheaper than its full thin SVD (a picklable
    task; docs/theory.md, eqs. (3), (12)–(14)).

    ``sides`` says which singular vectors the pairs use: ``"U"`` (the matrix writes a pair's
    hidden space), ``"V"`` (it reads one) or ``"UV"``. Returns a
    :class:`~flagalign.geometry.gram.GramFactors` (top-k vectors of those sides from
    the smaller Gram, numerical rank certified or — for a matrix that only reads — counted from
    LAPACK singular values; a tall uncertified matrix gets
    :func:`~flagalign.geometry.gram.tall_svd_factors`), or None when the exact full
    SVD is needed (a square or wide writer whose full rank is not certified: lost_dims needs the
    SVD basis of its column space, eq. (12)).
    """
    # an uncertified writer is (on real weights) rank-deficient with r < n, so its SVD basis is
    # needed anyway: go straight to the SVD instead of counting its rank first
    m, n = matrix.shape
    g = smaller_gram(matrix, sides) if min(m, n) and float(np.max(np.abs(matrix))) < _GRAM_SAFE else None
    f = gram_factors(matrix, k, sides, rtol, rank_fallback="U" not in sides, gram=g)
    if f is None and m > n:
        f = tall_svd_factors(matrix, k, sides, rtol, gram=g)  # keeps AᵀA for the pairs
    elif f is None and g is not None:
        f = gram_eigen_factors(matrix, k, sides, rtol, gram=g)  # eq. (12d), else the SVD
    return f


def matrix_factors(task, matrix: np.ndarray, seed: int = 0):
    """The factors of one matrix for its :class:`~.plan.MatrixTask` (a picklable task): one-sided
    Gram factors when exact and certifiable, else :func:`compute_factors`."""
    matrix = c_aligned(matrix)
    f = None
    if task.method == "exact":
        f = one_sided_factors(matrix, task.k, task.sides, task.rtol)
    if f is None:
        f = compute_factors(matrix, task.k, task.method, seed)
    return c_layout(f)


def c_layout(f):
    """``f`` with every array field C-contiguous and aligned (a copy only where it is not).

    LAPACK hands back F-ordered, reversed or sliced views; a pickled copy of a view is
    C-contiguous, and an array deserialised by Dask can sit at an unaligned address, where numpy's
    matmul skips BLAS for its own loop. Either changes the order of summation (the last bits of
    an angle). With one layout on both sides, factors computed in a worker and in process give
    bit-identical pair results (``analyze(jobs=N)`` and ``scheduler=`` equal ``jobs=1``)."""
    return f._replace(**{k: c_aligned(v) for k, v in f._asdict().items()
                         if isinstance(v, np.ndarray)})


def c_aligned(a):
    """``a`` as a C-contiguous, aligned array (itself when it already is; None stays None)."""
    return None if a is None else np.require(a, requirements=("C", "A"))


def truncate(f, k: int):
    """The first ``k`` triplets of a :class:`~flagalign.geometry.TopSubspaces` (or of a
    :class:`~flagalign.geometry.gram.GramFactors`, whose missing side stays None)."""
    if f.s.shape[0] == k:
        return f
    return f._replace(U=None if f.U is None else f.U[:, :k], s=f.s[:k],
                      V=None if f.V is None else f.V[:, :k])


@dataclass
class _Entry:
    value: object
    uses: int


class FactorStore:
    """Loads matrices and their factors on demand and frees them after their last use.

    Parameters
    ----------
    network : flagalign.models.Network
    matrices : dict[str, MatrixTask]
        What each matrix must provide and how many pairs use it
        (:attr:`AnalysisPlan.matrices <.plan.AnalysisPlan>`).
    seed : int
        Seed of the randomized SVD.
    factor_fn : callable, optional
        ``factor_fn(task, matrix)`` instead of :func:`matrix_factors` (the GPU path).
    """

    def __init__(self, network, matrices: dict, seed: int = 0, factor_fn=None):
        self.network = network
        self.tasks = dict(matrices)
        self.uses = Counter({n: t.uses for n, t in self.tasks.items()})
        self.seed = seed
        self.factor_fn = factor_fn  # (task, matrix) -> factors, e.g. on a GPU (.device.factors)
        self._mats: dict[str, _Entry] = {}
        self._facts: dict[str, _Entry] = {}
        self._bad: dict[str, str] = {}
        self.svd_count = 0
        self.svd_seconds = 0.0

    def problem(self, name: str) -> str | None:
        """Why matrix ``name`` cannot be analysed (non-finite, zero, unreadable), or None."""
        if name not in self._bad and name not in self._mats:
            self.matrix(name)
        return self._bad.get(name) or None

    def matrix(self, name: str) -> np.ndarray | None:
        """The float64 matrix (loaded once while still needed); None if it is unusable."""
        e = self._mats.get(name)
        if e is not None:
            return e.value
        if name in self._bad:
            return None
        try:
            w = self.network.matrix(name)
        except Exception as exc:  # noqa: BLE001 - becomes the pair's status
            self._bad[name] = f"cannot load {name}: {type(exc).__name__}: {exc}"[:200]
            return None
        if not np.all(np.isfinite(w)):
            self._bad[name] = f"non-finite values in {name}"
            return None
        if not np.any(w):
            self._bad[name] = self.network.zero_reason(name) or f"{name} is all zeros"
            return None
        self._mats[name] = _Entry(w, self.uses[name])
        return w

    def factors(self, name: str):
        """The matrix's TopSubspaces (computed on first request)."""
        e = self._facts.get(name)
        if e is not None:
            return e.value
        w = self.matrix(name)
        if w is None:
            return None
        t = time.perf_counter()
        if self.factor_fn is not None:
            f = self.factor_fn(self.tasks[name], w)
        else:
            f = matrix_factors(self.tasks[name], w, self.seed)
        self.svd_seconds += time.perf_counter() - t
        self.svd_count += 1
        self._facts[name] = _Entry(f, self.uses[name])
        return f

    def release(self, name: str) -> None:
        """One pair is done with ``name``; free matrix and factors after the last one."""
        for store in (self._mats, self._facts):
            e = store.get(name)
            if e is not None:
                e.uses -= 1
                if e.uses <= 0:
                    del store[name]
        self.uses[name] -= 1

    @property
    def live(self) -> int:
        """How many matrices are currently held (for tests of the eviction)."""
        return len(self._mats)
