"""Shared transformer layer graph (docs/formats.md, "Transformers").

Family modules (bert, gpt2, llama) describe each block as a :class:`Block` of (out, in) matrix
loaders plus the norms in front of its two reader groups; :func:`build_transformer` then adds
the same pairs for every family:

* ``ov``       per query head h: V rows of kv-head g(h) → O columns of head h, on ℝ^{d_head};
* ``residual`` attention O → each MLP reader (up, gate) of the same block, and MLP down →
  the next block's stacked Q/K/V reader, on ℝ^{d_model};
* ``mlp``      up → down and gate → down, on ℝ^{d_ff}.

With ``fold_norms`` the LayerNorm/RMSNorm gain g in front of a reader group is folded into the
readers: W ← W·diag(g) and, for LayerNorm, b ← b + W·β (the map the network really applies to
the normalised stream). Embeddings and the LM head are listed, never paired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..graph import GraphBuilder
from ..network import AttentionLayer
from ..sources.base import TensorSource
from ..symmetry import GL, NONZERO_DIAG, UNKNOWN, activation_symmetry
from .convlayers import zero_gain_message

__all__ = ["Mat", "Norm", "Block", "mat", "linear", "norm", "build_transformer", "add_listed",
           "add_embeddings_and_head", "add_ov_pairs"]  # fmt: skip

Fn = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Mat:
    """One (out, in) matrix to add: ``load()`` returns it in PyTorch orientation."""

    name: str
    shape: tuple[int, int]
    load: Fn
    dtype: str = "float32"
    key: str = ""
    bias: Fn | None = None
    note: str = ""
    zero_reason: Callable[[], str | None] | None = None


@dataclass(frozen=True)
class Norm:
    """A LayerNorm/RMSNorm gain (and LayerNorm shift) in front of a group of readers."""

    name: str
    gain: Fn
    beta: Fn | None = None


@dataclass(frozen=True)
class Block:
    index: int
    prefix: str
    q: Mat
    k: Mat
    v: Mat
    o: Mat
    up: Mat
    down: Mat
    gate: Mat | None = None
    attn_norm: Norm | None = None
    mlp_norm: Norm | None = None


def mat(
    src: TensorSource,
    key: str,
    *,
    name: str | None = None,
    transpose: bool = False,
    rows: slice | None = None,
    cols: slice | None = None,
    bias_key: str | None = None,
    bias_slice: slice | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    shape: tuple[int, int] | None = None,
    note: str = "",
) -> Mat:
    """A :class:`Mat` read from ``src[key]`` (optionally transposed, then sliced, then transformed)."""
    ent = src.entries[key]
    full = tuple(reversed(ent.shape)) if transpose else tuple(ent.shape)

    def load() -> np.ndarray:
        a = src.load(key)
        if transpose:
            a = a.T
        if rows is not None:
            a = a[rows]
        if cols is not None:
            a = a[:, cols]
        if transform is not None:
            a = transform(a)
        return np.ascontiguousarray(a)

    if shape is None:
        r = range(full[0])[rows] if rows is not None else range(full[0])
        c = range(full[1])[cols] if cols is not None else range(full[1])
        shape = (len(r), len(c))
    bias = None
    if bias_key is not None and bias_key in src:

        def bias() -> np.ndarray:
            b = src.load(bias_key).reshape(-1)
            return b[bias_slice] if bias_slice is not None else b

    return Mat(name or key, shape, load, ent.dtype, key, bias, note)


def linear(src: TensorSource, base: str, **kw) -> Mat:
    """``mat(src, base + ".weight", bias_key=base + ".bias", **kw)``: a projection and its bias."""
    return mat(src, f"{base}.weight", bias_key=f"{base}.bias", **kw)


def norm(src: TensorSource, gain_key: str, beta_key: str | None = None) -> Norm | None:
    """A :class:`Norm` from its gain (and optional shift) tensors, or None if absent."""
    if gain_key not in src:
        return None
    beta = (lambda: src.load(beta_key).reshape(-1)) if beta_key and beta_key in src else None
    return Norm(gain_key, lambda: src.load(gain_key).reshape(-1), beta)


def _fold(m: Mat, nrm: Norm | None, fold: bool) -> Mat:
    if nrm is None or not fold:
        return m

    def load() -> np.ndarray:
        return m.load() * nrm.gain()[None, :]

    bias = m.bias
    if nrm.beta is not None:

        def bias() -> np.ndarray:
            shift = m.load() @ nrm.beta()
            return shift if m.bias is None else m.bias() + shift

    note = (m.note + "; " if m.note else "") + f"folded {nrm.name}"

    def why_zero() -> str | None:
        if np.any(nrm.gain()) or not np.any(m.load()):
            return None
        return zero_gain_message(m.key or m.name, nrm.name.removesuffix(".weight"), "LayerNorm/RMSNorm gain")

    return replace(m, load=load, bias=bias, note=note, zero_reason=why_zero)


def _add(b: GraphBuilder, m: Mat, role: str) -> str:
    return b.add(
        m.name, m.shape, m.load, dtype=m.dtype, role=role, source_key=m.key, note=m.note, bias=m.bias,
        zero_reason=m.zero_reason,
    )  # fmt: skip


def add_listed(b: GraphBuilder, m: Mat, role: str, why: str) -> None:
    """Add an embedding / LM head matrix that no rule pairs, and say so in ``skipped``."""
    _add(b, m, role)
    b.skip(m.name, why)


def add_embeddings_and_head(
    b: GraphBuilder, src: TensorSource, embeddings: list[str], lm_head: str | None, tied_to: str
) -> None:
    """List the embeddings (transposed: maps into ℝ^d_model) and the LM head, none paired.

    ``embeddings`` and ``lm_head`` are weight keys (absent ones are ignored); a missing LM head
    is reported as tied to ``tied_to``; ``lm_head=None``: the model has none (an encoder).
    """
    for key in embeddings:
        if key in src:
            add_listed(
                b,
                mat(src, key, transpose=True, note="embedding as a map into R^d_model"),
                "embedding",
                "embedding: listed, not paired (docs/formats.md)",
            )
    if lm_head is None:
        return
    if lm_head in src:
        add_listed(b, mat(src, lm_head), "lm_head", "LM head: listed, not paired (docs/formats.md)")
    else:
        b.skip(f"{lm_head} (LM head)", f"tied to the token embedding ({tied_to}); not stored separately")


def _stack(b: GraphBuilder, name: str, parts: list[str], note: str) -> str:
    loads = [b.loaders[p] for p in parts]
    rows = sum(b.infos[p].shape[0] for p in parts)
    cols = b.infos[parts[0]].shape[1]
    bias = None
    if all(p in b.biases for p in parts):
        bl = [b.biases[p] for p in parts]
        bias = lambda: np.concatenate([f() for f in bl])  # noqa: E731
    return b.add(
        name,
        (rows, cols),
        lambda: np.vstack([f() for f in loads]),
        dtype=b.infos[parts[0]].dtype,
        role="stacked",
        source_key=" + ".join(parts),
        derived=True,
        note=note,
        bias=bias,
    )


def _head_slice(b: GraphBuilder, base: str, name: str, sl: slice, axis: int, role: str) -> str:
    f = b.loaders[base]
    r, c = b.infos[base].shape
    n = sl.stop - sl.start
    shape = (n, c) if axis == 0 else (r, n)
    memo = b.slice_memo

    def full() -> np.ndarray:
        if memo is None:  # a live module: read the current weights every time
            return f()
        got = memo.get("last")  # (key, matrix), replaced as one object: safe under threads
        if got is not None and got[0] == base:
            return got[1]
        memo.pop("last", None)  # drop the previous matrix before reading the next
        value = f()
        memo["last"] = (base, value)
        return value

    # a copy: the slices of one memoised matrix never alias each other
    load = (lambda: full()[sl].copy()) if axis == 0 else (lambda: full()[:, sl].copy())
    bias = None
    if axis == 0 and base in b.biases:
        fb = b.biases[base]
        bias = lambda: fb()[sl]  # noqa: E731
    return b.add(
        name,
        shape,
        load,
        dtype=b.infos[base].dtype,
        role=role,
        source_key=base,
        derived=True,
        note=f"{'rows' if axis == 0 else 'columns'} {sl.start}:{sl.stop} of {base}",
        bias=bias,
    )


def add_ov_pairs(
    b: GraphBuilder, layer: int, v: str, o: str, *, heads: int, kv_heads: int, head_dim: int, depth: int = -1
) -> None:
    """Per query head h: the ``ov`` pair V rows of kv-head g(h) → O columns of head h."""
    v_heads = [
        _head_slice(b, v, f"{v}[kv{g}]", slice(g * head_dim, (g + 1) * head_dim), 0, "head_slice")
        for g in range(kv_heads)
    ]
    group = heads // kv_heads
    for h in range(heads):
        o_h = _head_slice(b, o, f"{o}[head{h}]", slice(h * head_dim, (h + 1) * head_dim), 1, "head_slice")
        b.pair(v_heads[h // group], o_h, "ov", note=f"layer {layer} head {h}", depth=depth, symmetry=GL)


def build_transformer(
    b: GraphBuilder,
    blocks: list[Block],
    *,
    heads: int,
    kv_heads: int,
    head_dim: int,
    d_model: int,
    mlp_act: str | None = None,
    residual_symmetry: tuple[str, str] = (UNKNOWN, UNKNOWN),
) -> None:
    """Add every block's matrices, head slices, stacked readers and pairs to ``b``.

    Symmetries (docs/theory.md eqs. (71)–(73)): ``ov`` pairs GL(d_head); ``mlp`` pairs
    nonzero-diag×perm for a gated MLP (the up branch enters linearly), else the group of
    ``mlp_act`` (``unknown`` when None); ``residual`` pairs ``residual_symmetry[0]`` when the
    reader's norm is folded, ``[1]`` when it is not, ``unknown`` when the reader has no norm."""
    fold = b.fold_norms
    mlp_sym = NONZERO_DIAG if any(blk.gate is not None for blk in blocks) else activation_symmetry(mlp_act)

    def res_sym(nrm: Norm | None) -> str:
        return UNKNOWN if nrm is None else residual_symmetry[0 if fold else 1]

    qkv_names: list[str] = []
    added: list[dict[str, str]] = []
    for blk in blocks:
        names = {
            "q": _add(b, _fold(blk.q, blk.attn_norm, fold), "q"),
            "k": _add(b, _fold(blk.k, blk.attn_norm, fold), "k"),
            "v": _add(b, _fold(blk.v, blk.attn_norm, fold), "v"),
            "o": _add(b, blk.o, "o"),
            "up": _add(b, _fold(blk.up, blk.mlp_norm, fold), "up"),
            "down": _add(b, blk.down, "down"),
        }
        if blk.gate is not None:
            names["gate"] = _add(b, _fold(blk.gate, blk.mlp_norm, fold), "gate")
        qkv_names.append(
            _stack(
                b,
                f"{blk.prefix}.qkv[stacked]",
                [names["q"], names["k"], names["v"]],
                "Q, K, V stacked: the attention sublayer's reader of the residual stream",
            )
        )
        b.attention.append(
            AttentionLayer(
                blk.index, heads, kv_heads, head_dim, d_model, names["q"], names["k"], names["v"], names["o"]
            )
        )
        added.append(names)
    for i, (blk, names) in enumerate(zip(blocks, added)):
        n = blk.index
        add_ov_pairs(b, n, names["v"], names["o"], heads=heads, kv_heads=kv_heads, head_dim=head_dim, depth=n)
        readers = ["up"] + (["gate"] if "gate" in names else [])
        for r in readers:
            b.pair(names["o"], names[r], "residual", note=f"layer {n}: attention out -> MLP {r}", depth=n,
                   symmetry=res_sym(blk.mlp_norm))  # fmt: skip
        for r in readers:
            b.pair(names[r], names["down"], "mlp", note=f"layer {n}: {r} -> down", depth=n, symmetry=mlp_sym)
        if i + 1 < len(blocks):
            b.pair(
                names["down"],
                qkv_names[i + 1],
                "residual",
                note=f"layer {n} MLP out -> layer {blocks[i + 1].index} attention in",
                depth=n,
                symmetry=res_sym(blocks[i + 1].attn_norm),
            )
