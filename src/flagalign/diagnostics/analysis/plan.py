"""What ``analyze`` will measure: the pairs, their depths, and what each matrix must provide.

:class:`AnalysisPlan` is built from metadata only (shapes and dtypes, no weights, no SVD), so
``flagalign describe`` shows exactly the plan ``flagalign analyze`` runs. Its entries are plain,
picklable records: a worker needs an entry and the factors of its two matrices, nothing else.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ...models import load
from ...models.network import Network
from ...geometry import choose_method, default_k, default_sine_tol, rank_rtol

__all__ = ["AnalysisPlan", "PairTask", "MatrixTask", "make_plan", "load_network", "parse_layers",
           "layer_ranges", "pair_depth"]



def load_network(source, fold_norms: bool = True):
    """A :class:`~flagalign.models.Network` as is, else ``flagalign.load(source, fold_norms=...)``
    (metadata only: fails fast on a missing or corrupt file)."""
    return source if isinstance(source, Network) else load(source, fold_norms=fold_norms)


def pair_depth(pair, position: int) -> int:
    """Depth of a pair: its position in the network's data flow (``Pair.depth``, set by the layer
    graph: block index in transformers, longest-path level elsewhere), else its position in the
    network's pair list."""
    depth = getattr(pair, "depth", -1)
    return int(depth) if depth is not None and depth >= 0 else position


def layer_ranges(text: str, depths: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """``"0,3,10-12"`` → ``[(0, 0), (3, 3), (10, 12)]`` (the ``--layers`` option), never expanded,
    so a huge range costs nothing. With ``depths = (lo, hi)``, the model's smallest and largest
    pair depth, a bound outside [lo, hi] is an InputError naming the valid range."""
    out: list[tuple[int, int]] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise InputError(f"--layers: expected e.g. 0,3,10-12, got {text!r}")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if depths is not None and (lo < depths[0] or hi > depths[1]):
            raise InputError(f"--layers {text}: this model's pair depths are "
                             f"{depths[0]}-{depths[1]}")
        out.append((lo, hi))
    return out


def parse_layers(text: str, depths: tuple[int, int] | None = None) -> list[int]:
    """``"0,3,10-12"`` → ``[0, 3, 10, 11, 12]``; pass ``depths`` to bound the ranges by the
    model's depth first (see :func:`layer_ranges`)."""
    return [d for lo, hi in layer_ranges(text, depths) for d in range(lo, hi + 1)]


def _layer_ranges(layers, depths):
    if isinstance(layers, str):
        return layer_ranges(layers, depths)
    try:
        vals = [int(d) for d in layers]
    except (TypeError, ValueError):
        raise InputError(f"layers: expected depths like [0, 3] or '0,3,10-12', got {layers!r}") from None
    return [(d, d) for d in vals]


@dataclass(frozen=True)
class PairTask:
    """One pair to measure: the pair, its depth, its k bound and tolerances (picklable)."""

    pair: object  # flagalign.models.Pair
    depth: int
    k_bound: int
    method: str  # "exact" unless either side is randomized
    tol: float
    rtols: tuple[float, float]
    dtypes: tuple[str, str] = ("float64", "float64")  # stored dtypes: δ of the flags (eq. (62))


@dataclass(frozen=True)
class MatrixTask:
    """What one matrix must provide: the largest k asked, the SVD method, the singular vectors
    used (``U`` writer, ``V`` reader) and its rank tolerance (eq. (3))."""

    name: str
    k: int
    method: str
    sides: str
    rtol: float
    uses: int


@dataclass
class AnalysisPlan:
    """The pairs ``analyze`` measures and the matrix tasks they need (shared with ``describe``).

    Attributes
    ----------
    pairs : list[PairTask]        in network order
    matrices : dict[str, MatrixTask]
    k, method, tol, seed :        the options as given (``k``/``tol`` None = defaults)
    """

    pairs: list
    matrices: dict
    k: int | None = None
    method: str = "auto"
    tol: float | None = None
    seed: int = 0
    options: dict = field(default_factory=dict)

    @property
    def uses(self) -> Counter:
        """How many pairs use each matrix (the store's reference counts)."""
        return Counter({n: t.uses for n, t in self.matrices.items()})

    def rows(self) -> list[dict]:
        """One dict per pair for ``describe``: kind, names, shapes, dim, k bound, SVD method."""
        return [{"kind": t.pair.kind, "pair": t.pair.name, "dim": t.pair.dim, "k": t.k_bound,
                 "method": t.method} for t in self.pairs]


def _check_options(k, tol, seed, method):
    if k is not None and (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1):
        raise InputError(f"k must be a positive integer, got {k!r}")
    if tol is not None and (isinstance(tol, bool) or not isinstance(
            tol, (int, float, np.integer, np.floating)) or not 0 <= tol < 1):
        raise InputError(f"tol must be a number in [0, 1), got {tol!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    choose_method((1, 1), method)  # validates the name


def _select(network, pairs, kinds, layers):
    chosen = [(p, pair_depth(p, i)) for i, p in enumerate(network.pairs)]
    if kinds:
        if isinstance(kinds, str):
            kinds = [kinds]
        elif not isinstance(kinds, (list, tuple, set, frozenset)):
            raise InputError(f"kinds: expected a list of pair kinds, got {kinds!r}")
        known = sorted({p.kind for p in network.pairs})
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise InputError(
                f"--kinds {unknown[0]!r}: this model has pair kinds {', '.join(known) or 'none'}")
        chosen = [(p, d) for p, d in chosen if p.kind in kinds]
    if layers is not None:
        all_d = [d for _, d in chosen] or [0]
        ranges = _layer_ranges(layers, (min(all_d), max(all_d)))
        chosen = [(p, d) for p, d in chosen if any(lo <= d <= hi for lo, hi in ranges)]
        if not chosen:
            raise InputError(f"--layers {layers}: no pair of {network.name} is at these depths")
    if pairs is not None:
        want = {p if isinstance(p, str) else p.name for p in pairs}
        chosen = [(p, d) for p, d in chosen if p.name in want]
        missing = want - {p.name for p, _ in chosen}
        if missing:
            raise InputError(f"pairs: {sorted(missing)[0]!r} is not a pair of {network.name}")
    return chosen


def make_plan(network, k=None, method: str = "auto", tol=None, pairs=None, *, kinds=None,
              layers=None, seed: int = 0) -> AnalysisPlan:
    """The :class:`AnalysisPlan` of ``analyze(network, ...)`` from metadata only (no SVD).

    The k of a pair is bounded here by ``default_k`` (eq. (14)) of its smaller dimension, or the
    user's k; the value used is capped at the numerical rank once the factors are known.
    """
    _check_options(k, tol, seed, method)
    chosen = _select(network, pairs, kinds, layers)
    info = network.matrices
    uses: Counter = Counter()
    ks: dict = {}
    sides: dict = {}
    need = []
    for p, _ in chosen:
        lo = min(min(info[p.left].shape), min(info[p.right].shape))
        kk = default_k(p.dim, lo) if k is None else min(int(k), lo)
        need.append(kk)
        for name, side in ((p.left, "U"), (p.right, "V")):
            uses[name] += 1
            ks[name] = max(ks.get(name, 1), kk)
            sides[name] = "".join(sorted(set(sides.get(name, "")) | {side}))
    matrices = {}
    for name in uses:
        shape = tuple(info[name].shape)
        # analyze's `auto` is exact at every size: the one-sided Gram factors (eqs. (12b)–(13))
        # beat the randomized sketch and are exact (docs/theory.md eq. (13))
        chosen_method = "exact" if method == "auto" else choose_method(shape, method, ks[name])
        matrices[name] = MatrixTask(name, ks[name], chosen_method,
                                    sides[name], rank_rtol(shape, info[name].dtype), uses[name])
    tasks = []
    for (p, depth), kk in zip(chosen, need):
        ml, mr = matrices[p.left], matrices[p.right]
        m = "exact" if ml.method == mr.method == "exact" else "randomized"
        t = tol if tol is not None else max(default_sine_tol(info[n].dtype)
                                            for n in (p.left, p.right))
        tasks.append(PairTask(p, depth, kk, m, float(t), (ml.rtol, mr.rtol),
                              (str(info[p.left].dtype), str(info[p.right].dtype))))
    return AnalysisPlan(tasks, matrices, k=k, method=method, tol=tol, seed=seed,
                        options={"kinds": sorted({p.kind for p, _ in chosen}),
                                 "layers": None if layers is None
                                 else sorted({d for _, d in chosen})})
