"""Per-matrix top-k factors, computed once and shared by every pair that uses the matrix.

The analysis of a network is split into two kinds of independent, picklable tasks:

* a **factor task** (:func:`one_sided_factors`, else :func:`compute_factors`) — what the pairs
  need of one matrix: its numerical rank (eq. (3)) and the top-k singular vectors of the side(s)
  they use, from the smaller Gram with a certified rank
  (:mod:`flagalign.diagnostics.gramfactors`), else one SVD (docs/theory.md, eq. (13) for the
  randomized variant);
* a **pair task** (:func:`flagalign.diagnostics.pairs.pair_row`) — the alignment of two matrices
  given their factors (eq. (14)).

:class:`FactorStore` runs them in pair order on one process, holding each loaded matrix and each
factor only while a later pair still needs it (reference counts from the plan), so peak memory
is a few matrices, not the whole model. A distributed runner can instead map
:func:`compute_factors` over :attr:`AnalysisPlan.factor_tasks` and the pair tasks over the pairs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["choose_method", "compute_factors", "one_sided_factors", "truncate", "FactorStore",
           "METHODS"]

METHODS = ("auto", "exact", "randomized")


def choose_method(shape: tuple[int, int], method: str = "auto", k: int = 64) -> str:
    """The SVD method used for a matrix of ``shape`` when up to ``k`` triplets are needed.

    ``auto`` follows :func:`flagalign.geometry.choose_method` (docs/theory.md, eq. (13)): exact
    LAPACK SVD when the matrix has at most ``EXACT_MAX_ENTRIES`` = 2048² entries (≈ 1 s on one
    core) or k ≥ min(shape)/4, randomized top-k above. Every 384×1536 / 576×1536 transformer
    matrix and every per-head slice is exact; vocabulary embeddings (30522×384, 49152×576) are
    randomized. ``exact`` and ``randomized`` are returned as is.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    from ..geometry import choose_method as _geometry_choice

    return _geometry_choice((int(shape[0]), int(shape[1])), max(1, int(k)))


def compute_factors(matrix: np.ndarray, k: int, method: str, seed: int = 0):
    """Singular triplets of ``matrix`` (a picklable task; docs/theory.md, eq. (13)).

    ``exact`` keeps the full thin SVD (every prefix is the exact top-k, and the numerical rank
    of eq. (3) is visible), so ``k`` only matters for ``randomized``, which returns the top
    ``k``.

    Returns
    -------
    flagalign.geometry.TopSubspaces
    """
    from ..geometry import top_subspaces

    kk = min(matrix.shape) if method == "exact" else max(1, min(int(k), min(matrix.shape)))
    return top_subspaces(matrix, kk, method=method, seed=seed)


def one_sided_factors(matrix: np.ndarray, k: int, sides: str, rtol: float):
    """What ``analyze`` needs of an ``exact`` matrix, cheaper than its full thin SVD (a picklable
    task; docs/theory.md, eqs. (3), (12)–(14)).

    ``sides`` says which singular vectors the pairs use: ``"U"`` (the matrix writes a pair's
    hidden space), ``"V"`` (it reads one) or ``"UV"``. Returns a
    :class:`~flagalign.diagnostics.gramfactors.GramFactors` (top-k vectors of those sides from
    the smaller Gram, numerical rank certified or — for a matrix that only reads — counted from
    LAPACK singular values; a tall uncertified matrix gets
    :func:`~flagalign.diagnostics.gramfactors.tall_svd_factors`), or None when the exact full
    SVD is needed (a square or wide writer whose full rank is not certified: lost_dims needs the
    SVD basis of its column space, eq. (12)).
    """
    from .gramfactors import gram_factors, tall_svd_factors

    # an uncertified writer is (on real weights) rank-deficient with r < n, so its SVD basis is
    # needed anyway: go straight to the SVD instead of counting its rank first
    f = gram_factors(matrix, k, sides, rtol, rank_fallback="U" not in sides)
    if f is None and matrix.shape[0] > matrix.shape[1]:
        f = tall_svd_factors(matrix, k, sides, rtol)
    return f


def truncate(f, k: int):
    """The first ``k`` triplets of a :class:`~flagalign.geometry.TopSubspaces` (or of a
    :class:`~flagalign.diagnostics.gram.GramFactors`, whose missing side stays None)."""
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
    uses : Counter
        How many pairs will ask for each matrix name (from the plan).
    ks : dict[str, int]
        The largest k any pair will ask of each matrix (used by randomized factors).
    methods : dict[str, str]
        ``exact`` or ``randomized`` per matrix name.
    seed : int
        Seed of the randomized SVD.
    sides : dict[str, str], optional
        Which singular vectors the pairs use of each matrix (``"U"`` writer, ``"V"`` reader,
        ``"UV"`` both). With ``rtols``, an ``exact`` matrix gets :func:`one_sided_factors`
        (cheaper than its full SVD, same results); without, the full thin SVD as before.
    rtols : dict[str, float], optional
        Relative rank tolerance of eq. (3) of each matrix (its stored dtype's).
    """

    def __init__(self, network, uses: Counter, ks: dict, methods: dict, seed: int = 0, *,
                 sides: dict | None = None, rtols: dict | None = None):
        self.network = network
        self.sides = dict(sides or {})
        self.rtols = dict(rtols or {})
        self.uses = Counter(uses)
        self.ks = dict(ks)
        self.methods = dict(methods)
        self.seed = seed
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
            self._bad[name] = f"{name} is all zeros"
            return None
        self._mats[name] = _Entry(w, self.uses[name])
        return w

    def factors(self, name: str):
        """The matrix's TopSubspaces (computed on first request)."""
        import time

        e = self._facts.get(name)
        if e is not None:
            return e.value
        w = self.matrix(name)
        if w is None:
            return None
        t = time.perf_counter()
        f = None
        if self.methods[name] == "exact" and name in self.sides and name in self.rtols:
            f = one_sided_factors(w, self.ks.get(name, min(w.shape)), self.sides[name],
                                  self.rtols[name])
        if f is None:
            f = compute_factors(w, self.ks.get(name, min(w.shape)), self.methods[name], self.seed)
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
