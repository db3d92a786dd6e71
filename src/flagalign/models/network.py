"""The layer graph every diagnostic reads: :class:`Network`, :class:`Pair`, :class:`AttentionLayer`.

A Network never holds all weights in memory: each matrix is described by a :class:`MatrixInfo`
(metadata only) and produced on demand by a loader callable. Derived matrices (per-head slices,
stacked Q/K/V readers, norm-folded readers) are ordinary entries whose loader builds them from
their parents, so every consumer only ever calls :meth:`Network.matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..errors import InputError
from .depth import assign_depths
from .labels import label_pairs, pair_id

__all__ = ["MatrixInfo", "Pair", "AttentionLayer", "Network"]

Loader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class MatrixInfo:
    """Metadata of one weight matrix, in PyTorch (out, in) orientation, without its data.

    Attributes
    ----------
    name : str
        Key used by :meth:`Network.matrix` and by :class:`Pair`.
    shape : tuple[int, int]
        (out, in) after unfolding (a conv kernel (C_out, C_in, kh, kw) is (C_out, C_in*kh*kw)).
    dtype : str
        Storage dtype of the source tensor (``"float32"``, ``"bfloat16"``, ``"q4_1"``, ...).
    role : str
        What it is: ``linear``, ``conv``, ``depthwise``, ``embedding``, ``lm_head``, ``q``,
        ``k``, ``v``, ``o``, ``up``, ``gate``, ``down``, ``head_slice``, ``stacked``, ...
    source_key : str
        Tensor name in the file (or a description for derived matrices).
    derived : bool
        True for views built from other matrices (head slices, stacks, folded norms).
    note : str
        Free text shown by :meth:`Network.describe` (e.g. "folded ln_2 gain").
    """

    name: str
    shape: tuple[int, int]
    dtype: str = "float32"
    role: str = "linear"
    source_key: str = ""
    derived: bool = False
    note: str = ""


@dataclass(frozen=True)
class Pair:
    """Two adjacent matrices: ``left`` writes into a hidden space ℝ^dim that ``right`` reads.

    ``network.matrix(left)`` has shape (dim, ·) and ``network.matrix(right)`` has shape (·, dim).
    ``kind`` is one of ``sequential``, ``conv``, ``residual``, ``mlp``, ``ov`` (docs/formats.md).

    ``block``, ``layer`` (attention layer) and ``head`` label where the pair sits
    (:mod:`.labels`), set by the :class:`Network`.

    ``depth`` is the pair's position along the network's data flow (docs/formats.md, "Depth"):
    for the transformer families the block index N of the left matrix; for every other graph the
    longest-path level of the left matrix's layer in the layer graph (:mod:`.depth`), which
    strictly increases along every data-flow path. -1 until the :class:`Network` sets it.

    ``symmetry`` is the group of hidden reparameterizations (W, W_next) → (G W, W_next G⁻¹) of
    ℝ^dim that leave the network function unchanged (:mod:`.symmetry`; docs/theory.md eq. (70)):
    ``GL``, ``O``, ``nonzero-diag×perm``, ``pos-diag×perm``, ``signed-perm``, ``perm`` or
    ``unknown`` (set by the architecture rules; ``unknown`` when the activation is not known).
    """

    left: str
    right: str
    kind: str
    dim: int
    note: str = ""
    depth: int = -1
    block: str = ""
    layer: int | None = None
    head: int | None = None
    symmetry: str = "unknown"

    @property
    def name(self) -> str:
        """The pair id shared by every output (:func:`flagalign.models.labels.pair_id`)."""
        return pair_id(self.left, self.right)


@dataclass(frozen=True)
class AttentionLayer:
    """Head structure of one attention layer (metadata only).

    q, k, v are names of (heads*head_dim, d_model) / (kv_heads*head_dim, d_model) matrices and o
    of the (d_model, heads*head_dim) output projection, all in (out, in) orientation. With
    grouped-query attention (kv_heads < heads) query head h uses kv-head ``kv_group(h)``.
    """

    layer: int
    heads: int
    kv_heads: int
    head_dim: int
    d_model: int
    q: str
    k: str
    v: str
    o: str

    def kv_group(self, h: int) -> int:
        """The kv-head shared by query head h (contiguous groups, as in Llama/GQA)."""
        return h // (self.heads // self.kv_heads)


@dataclass
class Network:
    """A network as a lazily loaded layer graph with true adjacency.

    Build one with :func:`flagalign.load`; tests and users with their own arrays can use
    :meth:`Network.from_arrays`.
    """

    name: str
    architecture: str
    matrices: dict[str, MatrixInfo]
    loaders: Mapping[str, Loader] = field(repr=False)
    pairs: list[Pair] = field(default_factory=list)
    attention: list[AttentionLayer] = field(default_factory=list)
    biases: Mapping[str, Loader] = field(default_factory=dict, repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fold_norms: bool = True
    source: str = ""
    flags: dict[str, str] = field(default_factory=dict)
    """Per-matrix problems found when a matrix was read (e.g. NaN/Inf counts)."""

    zero_reasons: Mapping[str, Callable[[], str | None]] = field(default_factory=dict, repr=False)
    """{matrix: explainer} for matrices that a folded zero gain can make all zeros."""

    def __post_init__(self) -> None:
        self.pairs = label_pairs(assign_depths(self.matrices, self.pairs), self.attention)

    # -- data access -------------------------------------------------------------------------
    def matrix(self, name: str) -> np.ndarray:
        """The float64 (out, in) matrix ``name``, loaded now (never cached here)."""
        try:
            loader = self.loaders[name]
        except KeyError:
            raise InputError(f"{self.name}: no matrix named {name!r}") from None
        return np.asarray(loader(), dtype=np.float64)

    def bias(self, name: str) -> np.ndarray | None:
        """The float64 output bias of matrix ``name``, or None."""
        loader = self.biases.get(name)
        return None if loader is None else np.asarray(loader(), dtype=np.float64)

    def zero_reason(self, name: str) -> str | None:
        """Why matrix ``name`` is all zeros when its stored weight is not — the folded map is zero
        because a folded norm gain is zero (e.g. γ = 0 in a zero-initialised residual BatchNorm) —
        as one line naming the norm and the fix (``fold_norms=False``); None otherwise (also when
        the stored weight itself is zero). Reads the gain and the weight."""
        f = self.zero_reasons.get(name)
        return f() if f is not None else None

    def head_slice(self, attn: AttentionLayer, which: str, h: int) -> np.ndarray:
        """Per-head slice: q/k/v rows of head h, shape (head_dim, d_model) (k/v use the GQA
        group of h); o columns of head h, shape (d_model, head_dim)."""
        d = attn.head_dim
        if which == "q":
            return self.matrix(attn.q)[h * d : (h + 1) * d]
        if which in ("k", "v"):
            g = attn.kv_group(h)
            return self.matrix(getattr(attn, which))[g * d : (g + 1) * d]
        if which == "o":
            return self.matrix(attn.o)[:, h * d : (h + 1) * d]
        raise InputError(f"head_slice: 'which' must be q, k, v or o, got {which!r}")

    def check_finite(self) -> dict[str, str]:
        """Read every (non-derived) matrix once, one at a time, and return :attr:`flags`
        (matrices with NaN/Inf entries). Loading stays lazy: nothing is kept in memory."""
        for name, info in self.matrices.items():
            if not info.derived:
                self.matrix(name)
        return dict(self.flags)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        pairs: list[Pair] | None = None,
        *,
        name: str = "arrays",
        architecture: str = "custom",
        biases: Mapping[str, np.ndarray] | None = None,
        attention: list[AttentionLayer] | None = None,
    ) -> "Network":
        """A Network over in-memory (out, in) matrices. Without ``pairs``, consecutive
        arrays (in the mapping's order) whose shapes chain are paired as ``sequential``."""
        mats = {k: np.asarray(v) for k, v in arrays.items()}
        infos = {
            k: MatrixInfo(k, tuple(v.shape), v.dtype.name, "linear", k) for k, v in mats.items()
        }
        if pairs is None:
            names = list(mats)
            pairs = [
                Pair(a, b, "sequential", mats[a].shape[0])
                for a, b in zip(names, names[1:])
                if mats[a].shape[0] == mats[b].shape[1]
            ]
        loaders = {k: (lambda v=v: v) for k, v in mats.items()}
        bl = {k: (lambda v=np.asarray(v): v) for k, v in (biases or {}).items()}
        return cls(name, architecture, infos, loaders, list(pairs), list(attention or []), bl)

    # -- summary -----------------------------------------------------------------------------
    def matrix_table(self):
        """A pandas DataFrame, one row per matrix: shape, dtype, role, derived, note, flag
        (metadata only; nothing is loaded)."""
        import pandas as pd

        rows = [
            {"name": m.name, "out": m.shape[0], "in": m.shape[1], "dtype": m.dtype, "role": m.role,
             "derived": m.derived, "source_key": m.source_key, "note": m.note, "flag": self.flags.get(m.name, "")}
            for m in self.matrices.values()
        ]
        return pd.DataFrame(rows, columns=["name", "out", "in", "dtype", "role", "derived", "source_key", "note",
                                           "flag"]).set_index("name")

    def describe(self) -> str:
        """A short text summary: matrices, pairs by kind, attention, skipped items, warnings."""
        from collections import Counter

        kinds = Counter(p.kind for p in self.pairs)
        lines = [
            f"{self.name}  [{self.architecture}]  source={self.source or '-'}",
            f"  matrices: {sum(not m.derived for m in self.matrices.values())}"
            f" (+{sum(m.derived for m in self.matrices.values())} derived)",
            "  pairs: " + (", ".join(f"{k}={n}" for k, n in kinds.items()) or "none"),
        ]
        syms = Counter(p.symmetry for p in self.pairs)
        if syms:
            lines.append("  hidden-layer symmetries: " + ", ".join(f"{k}={n}" for k, n in syms.items()))
        if self.attention:
            a = self.attention[0]
            lines.append(
                f"  attention: {len(self.attention)} layers x {a.heads} heads"
                f" (kv_heads={a.kv_heads}, head_dim={a.head_dim})"
            )
        lines.append(f"  norms folded into readers: {self.fold_norms}")
        for what, why in self.skipped:
            lines.append(f"  skipped {what}: {why}")
        for what, why in self.flags.items():
            lines.append(f"  flagged {what}: {why}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)
