"""Accumulates matrices, pairs and attention layers into a :class:`Network`.

Architecture rules call :meth:`GraphBuilder.add` for each matrix (with a loader that returns the
(out, in) float64 matrix) and :meth:`GraphBuilder.pair` for each adjacency; a pair whose shapes
do not share the hidden space is dropped with its reason (shown by ``Network.describe``).
Loaders are wrapped so that a matrix with NaN/Inf entries is flagged the first time it is read.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from .network import AttentionLayer, Loader, MatrixInfo, Network, Pair

__all__ = ["GraphBuilder"]

log = logging.getLogger(__name__)


def _all_finite(a: np.ndarray, block: int = 1 << 20) -> bool:
    """np.isfinite(a).all() in blocks, so the check adds no full-size temporary."""
    flat = a.reshape(-1)
    return all(np.isfinite(flat[i : i + block]).all() for i in range(0, flat.size, block))


class GraphBuilder:
    """Mutable collector; :meth:`build` returns the immutable-by-convention Network."""

    def __init__(self, name: str, architecture: str, source: str = "", fold_norms: bool = True,
                 *, memo_slices: bool = False):
        self.name, self.architecture, self.source, self.fold_norms = name, architecture, source, fold_norms
        self.infos: dict[str, MatrixInfo] = {}
        self.loaders: dict[str, Loader] = {}
        self.biases: dict[str, Loader] = {}
        self.pairs: list[Pair] = []
        self.attention: list[AttentionLayer] = []
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.flags: dict[str, str] = {}
        self.zero_reasons: dict[str, Callable[[], str | None]] = {}
        #: the last full matrix read for its head slices ({"last": (key, matrix)}), shared by
        #: the slices' loaders: the heads of one matrix are measured together, so it is read
        #: once, not once per head (one matrix held at a time). None (no memo) for a live
        #: module, whose weights change under training: a memoised slice would go stale
        self.slice_memo: dict | None = {} if memo_slices else None

    def add(
        self,
        name: str,
        shape: tuple[int, int],
        loader: Callable[[], np.ndarray],
        *,
        dtype: str = "float32",
        role: str = "linear",
        source_key: str = "",
        derived: bool = False,
        note: str = "",
        bias: Callable[[], np.ndarray] | None = None,
        zero_reason: Callable[[], str | None] | None = None,
    ) -> str:
        """Add matrix ``name``; ``zero_reason()`` says why it may be all zeros although its
        source tensor is not (a folded zero gain), else None (:meth:`Network.zero_reason`)."""
        shape = (int(shape[0]), int(shape[1]))
        self.infos[name] = MatrixInfo(name, shape, dtype, role, source_key or name, derived, note)
        if zero_reason is not None:
            self.zero_reasons[name] = zero_reason
        self.loaders[name] = self._checked(name, shape, loader)
        if bias is not None:
            self.biases[name] = bias
        return name

    def _checked(self, name: str, shape: tuple[int, int], loader: Callable[[], np.ndarray]) -> Loader:
        flags = self.flags
        why_zero = self.zero_reasons.get(name)

        def load() -> np.ndarray:
            a = np.asarray(loader(), dtype=np.float64)
            if a.shape != shape:  # pragma: no cover - guards rule bugs
                raise AssertionError(f"{name}: loader gave {a.shape}, metadata says {shape}")
            if not _all_finite(a):
                nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
                if name not in flags:
                    log.warning("%s: matrix has %d NaN and %d Inf entries", name, nan, inf)
                flags[name] = f"{nan} NaN, {inf} Inf entries"
            elif why_zero is not None and name not in flags and not np.any(a):
                why = why_zero()
                if why:
                    log.warning("%s: %s", name, why)
                    flags[name] = why
            return a

        return load

    def pair(
        self, left: str, right: str, kind: str, note: str = "", depth: int = -1, symmetry: str = "unknown"
    ) -> Pair | None:
        """Record ``left`` (writes ℝ^dim) → ``right`` (reads ℝ^dim), or drop it with a reason.

        ``depth`` < 0 (the default): computed from the layer graph when the Network is built.
        ``symmetry``: the pair's hidden-layer group (:mod:`.symmetry`), ``unknown`` by default."""
        if left not in self.infos or right not in self.infos:
            self.skipped.append((f"pair {left} -> {right}", "a matrix is missing"))
            return None
        out_dim, in_dim = self.infos[left].shape[0], self.infos[right].shape[1]
        if out_dim != in_dim:
            self.skipped.append(
                (
                    f"pair {left} -> {right}",
                    f"shape mismatch: left writes R^{out_dim}, right reads R^{in_dim}",
                )
            )
            return None
        p = Pair(left, right, kind, out_dim, note, depth, symmetry=symmetry)
        self.pairs.append(p)
        return p

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((what, why))

    def build(self) -> Network:
        net = Network(
            self.name,
            self.architecture,
            self.infos,
            self.loaders,
            self.pairs,
            self.attention,
            self.biases,
            self.skipped,
            self.warnings,
            self.fold_norms,
            self.source,
        )
        net.flags = self.flags
        net.zero_reasons = self.zero_reasons
        return net
