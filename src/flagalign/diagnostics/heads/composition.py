"""Head-to-head composition scores across layers, in bounded memory, with a random baseline.

TransformerLens' definition (Elhage et al. 2021), in flagalign's (out, in) orientation: for a
source head (layer l₁, OV₁ = W_O¹ W_V¹) and a later target head (l₂ > l₁)

    q:  ‖W_K²ᵀ W_Q² OV₁‖_F / (‖W_Q²ᵀ W_K²‖_F ‖OV₁‖_F)
    k:  ‖W_Q²ᵀ W_K² OV₁‖_F / (‖W_Q²ᵀ W_K²‖_F ‖OV₁‖_F)
    v:  ‖OV₂ OV₁‖_F        / (‖OV₂‖_F ‖OV₁‖_F)                 (docs/theory.md, eq. (48))

No d_model × d_model matrix is formed. With thin QRs W_K²ᵀ = Q R_K, W_Q²ᵀ = Q R_Q, W_O² = Q R_O,
W_V¹ᵀ = Q R_V every numerator is ‖R · (X² W_O¹) · R_V¹ᵀ‖_F with X² the target's reading slice
(W_Q², W_K² or W_V²): one head_dim × head_dim block of a per-layer-pair cross product
X(l₂) W_O(l₁) (eq. (49)). Source layers are processed in blocks that fit ``max_bytes``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..._output import output_folder
from ..._progress import progress_bar
from ..._threads import blas_threads
from ...errors import InputError
from ...models.network import AttentionLayer, Network
from .._figures import draw, html_card, spread
from .bases import as_network, head_slices
from .controls import seeded_rotation

__all__ = ["Composition", "composition", "composition_baseline", "KINDS"]

KINDS = ("q", "k", "v")


def _r(M: np.ndarray) -> np.ndarray:
    """R of the thin QR of a tall (n × r) matrix (‖Q R X‖ = ‖R X‖)."""
    return np.linalg.qr(M, mode="r")


@dataclass
class _Source:
    Wo: np.ndarray  # d × (H·dh), columns of every head
    Rv: np.ndarray  # H × dh × dh, R of W_Vʰᵀ
    norm: np.ndarray  # H, ‖W_Oʰ W_Vʰ‖_F


@dataclass
class _Target:
    X: np.ndarray  # (rows·dh) × d, reading slices (kv rows once under GQA)
    group: np.ndarray  # H -> row block of X
    R: np.ndarray  # H × dh × dh, the other factor's R
    norm: np.ndarray  # H


def _source(net: Network, attn: AttentionLayer) -> _Source:
    O = head_slices(net, attn, "o")
    V = head_slices(net, attn, "v")
    Ro = np.stack([_r(o) for o in O])
    Rv = np.stack([_r(v.T) for v in V])
    norm = np.linalg.norm(Ro @ Rv.transpose(0, 2, 1), axis=(1, 2))
    return _Source(np.concatenate(O, axis=1), Rv, norm)


def _target(net: Network, attn: AttentionLayer, kind: str) -> _Target:
    d = attn.head_dim
    H = attn.heads
    if kind == "q":
        X = net.matrix(attn.q)[: H * d]
        group = np.arange(H)
    else:
        X = net.matrix(attn.k if kind == "k" else attn.v)[: attn.kv_heads * d]
        group = np.array([attn.kv_group(h) for h in range(H)])
    Rq = np.stack([_r(s.T) for s in head_slices(net, attn, "q")]) if kind != "v" else None
    if kind == "v":
        Ro = np.stack([_r(o) for o in head_slices(net, attn, "o")])
        Rv = np.stack([_r(v.T) for v in head_slices(net, attn, "v")])
        return _Target(X, group, Ro, np.linalg.norm(Ro @ Rv.transpose(0, 2, 1), axis=(1, 2)))
    Rk = np.stack([_r(s.T) for s in head_slices(net, attn, "k")])
    norm = np.linalg.norm(Rq @ Rk.transpose(0, 2, 1), axis=(1, 2))
    return _Target(X, group, Rk if kind == "q" else Rq, norm)


def _scores(tgt: _Target, src: _Source, dh_t: int, dh_s: int) -> np.ndarray:
    """H_t × H_s composition scores of one (target, source) layer pair (eq. (49))."""
    cross = tgt.X @ src.Wo  # (rows·dh_t) × (H_s·dh_s)
    cross = cross.reshape(-1, dh_t, src.Rv.shape[0], dh_s)[tgt.group]
    T = np.einsum("aij,ajbk->aibk", tgt.R, cross)
    T = np.einsum("aibk,blk->aibl", T, src.Rv)
    num = np.sqrt(np.einsum("aibl,aibl->ab", T, T))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / np.outer(tgt.norm, src.norm)


def composition_baseline(d_model: int, head_dim: int, kind: str = "q", heads: int = 16,
                         draws: int = 1, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the composition score between heads with i.i.d. Gaussian weights of the
    given shapes (Monte Carlo over ``draws × heads²`` head pairs). Gaussian factors make every
    product rotation-invariant, so E[score²] = 1/d_model exactly (docs/theory.md, eq. (49))."""
    rng = np.random.default_rng([seed, d_model, head_dim, KINDS.index(kind)])
    vals = []
    for _ in range(draws):
        arrays = {n: rng.standard_normal(s) for n, s in (
            ("q", (heads * head_dim, d_model)), ("k", (heads * head_dim, d_model)),
            ("v", (heads * head_dim, d_model)), ("o", (d_model, heads * head_dim)))}
        net = Network.from_arrays(arrays, pairs=[])
        attn = AttentionLayer(0, heads, heads, head_dim, d_model, "q", "k", "v", "o")
        vals.append(_scores(_target(net, attn, kind), _source(net, attn), head_dim, head_dim))
    v = np.concatenate([x.ravel() for x in vals])
    return float(v.mean()), float(v.std(ddof=1))


@dataclass
class Composition:
    """Composition scores of every (earlier source head, later target head) pair.

    Attributes
    ----------
    network, kind : str
    scores : pandas.DataFrame
        Tidy: ``src_layer, src_head, dst_layer, dst_head, score``.
    layers : pandas.DataFrame
        Per layer pair: ``src_layer, dst_layer, mean, max, baseline_mean, baseline_std, ratio,
        frac_above_3sd`` (ratio = mean / baseline_mean).
    baseline : dict
        ``{(d_model, head_dim_src, head_dim_dst): (mean, std)}`` of the Gaussian baseline.
    """

    network: str
    kind: str
    scores: pd.DataFrame
    layers: pd.DataFrame
    baseline: dict = field(default_factory=dict)

    def matrix(self, src_layer: int, dst_layer: int) -> np.ndarray:
        """H_dst × H_src scores for one layer pair."""
        s = self.scores[(self.scores.src_layer == src_layer) & (self.scores.dst_layer == dst_layer)]
        if s.empty:
            raise InputError(f"no composition scores for layers {src_layer} -> {dst_layer}")
        return s.pivot(index="dst_head", columns="src_head", values="score").to_numpy()

    def __repr__(self) -> str:
        return (f"Composition({self.network!r}, kind={self.kind!r}, "
                f"layer_pairs={len(self.layers)}, mean/baseline {spread(self.layers['ratio'])})")

    def plot(self):
        """A :class:`matplotlib.figure.Figure` (no pyplot state): mean score / Gaussian baseline
        per (source, target) layer pair (eqs. (48), (49)); drawn by
        :mod:`flagalign.report.heads_figures`."""
        if self.layers.empty:
            raise InputError(f"{self.network}: no layer pair to plot")
        return draw("heads", self)

    def _repr_html_(self) -> str:
        """Notebook view: summary, per-layer-pair table, the composition heatmap (inline PNG)."""
        t = self.layers[[c for c in ("src_layer", "dst_layer", "mean", "max", "baseline_mean",
                                     "ratio", "frac_above_3sd") if c in self.layers]]
        return html_card(
            f"Composition — {self.network}",
            f"{self.kind}-composition, {len(self.layers)} layer pairs, {len(self.scores)} head "
            f"pairs; mean score / baseline {spread(self.layers['ratio'])}",
            t, None if self.layers.empty else self.plot())

    def save(self, out_dir, *, figures: bool = True) -> list[Path]:
        """Write ``composition_{kind}.csv``, ``composition_{kind}_layers.csv`` and a heatmap of
        mean score / baseline per layer pair."""
        # one atomic run (docs/security.md); out_dir may be an open OutputFolder
        with output_folder(out_dir, set_name=f"composition_{self.kind}") as out:
            files = [out.write_csv(f"composition_{self.kind}.csv", self.scores),
                     out.write_csv(f"composition_{self.kind}_layers.csv", self.layers)]
            if figures and not self.layers.empty:
                files += draw("heads.files", self, out)
        return files


def composition(network: Network, kind: str = "q", layers=None, *, max_bytes: int = 256 << 20,
                baseline_heads: int = 16, seed: int = 0, null: str = "gaussian",
                quiet: bool = False, threads: int | None = 1) -> Composition:
    """Head-to-head composition scores (docs/theory.md, eqs. (48), (49)), chunked.

    Parameters
    ----------
    network : Network or str or os.PathLike
        A network, or a source :func:`flagalign.load` reads.
    kind : {"q", "k", "v"}
        Which input of the later head reads the earlier head's OV output.
    layers : iterable of int, optional
        Attention layer ids to include (default all).
    max_bytes : int
        Budget for cached source-layer factors; sources are processed in blocks within it, so
        peak memory is O(max_bytes + one layer's matrices), independent of depth.
    baseline_heads, seed : int
        Size and seed of the Gaussian baseline (``baseline_heads²`` head pairs per shape).
    null : {"gaussian", "rotation"}
        ``rotation`` also scores every pair against a Haar-random rotation of the source layer's
        output space (trained spectra kept, cross-layer orientation destroyed; eq. (49)):
        column ``null_score`` and per-layer-pair ``null_mean, null_std, null_ratio,
        frac_above_null_3sd``. Doubles the cost.
    quiet : bool
        Silence the progress bar.
    threads : int or None
        BLAS threads (default 1; None: the BLAS default).
    """
    network = as_network(network)
    with blas_threads(threads):
        return _composition(network, kind, layers, max_bytes, baseline_heads, seed, null, quiet)


def _rotation(attn: AttentionLayer, seed: int) -> np.ndarray:
    """The rotation null's seeded Haar rotation of one source layer's output space (eq. (49))."""
    return seeded_rotation(attn.d_model, seed, 7919, attn.layer)


def _composition(network, kind, layers, max_bytes, baseline_heads, seed, null, quiet):
    if kind not in KINDS:
        raise InputError(f"composition kind must be q, k or v; got {kind!r}")
    if null not in ("gaussian", "rotation"):
        raise InputError(f"null must be 'gaussian' or 'rotation'; got {null!r}")
    rot = null == "rotation"
    atts = [a for a in network.attention if layers is None or a.layer in set(layers)]
    if len(atts) < 2:
        raise InputError(f"{network.name}: composition needs at least two attention layers")
    per = [(1 + rot) * a.d_model * a.heads * a.head_dim * 8 + a.heads * a.head_dim**2 * 8
           for a in atts]
    blocks, cur, used = [], [], 0
    for i, b in enumerate(per[:-1]):
        if cur and used + b > max_bytes:
            blocks.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += b
    blocks.append(cur)
    rows, lrows, base = [], [], {}
    total = sum(len(atts) - 1 - blk[0] for blk in blocks)
    bar = progress_bar(total, not quiet, f"composition[{kind}]")
    for blk in blocks:
        srcs = {i: _source(network, atts[i]) for i in blk}
        nulls = {i: _Source(_rotation(atts[i], seed) @ srcs[i].Wo, srcs[i].Rv, srcs[i].norm)
                 for i in blk} if rot else {}
        for j in range(blk[0] + 1, len(atts)):
            tgt = _target(network, atts[j], kind)
            for i in blk:
                if i >= j:
                    continue
                a_s, a_t = atts[i], atts[j]
                S = _scores(tgt, srcs[i], a_t.head_dim, a_s.head_dim)
                key = (a_t.d_model, a_s.head_dim, a_t.head_dim)
                if key not in base:
                    base[key] = composition_baseline(a_t.d_model, a_t.head_dim, kind,
                                                     baseline_heads, seed=seed)
                bm, bs = base[key]
                N = _scores(tgt, nulls[i], a_t.head_dim, a_s.head_dim) if rot else S * np.nan
                for h2 in range(S.shape[0]):
                    for h1 in range(S.shape[1]):
                        rows.append((a_s.layer, h1, a_t.layer, h2, float(S[h2, h1]),
                                     float(N[h2, h1])))
                mean = float(np.nanmean(S))
                row = [a_s.layer, a_t.layer, mean, float(np.nanmax(S)), bm, bs, mean / bm,
                       float(np.mean(S > bm + 3 * bs))]
                if rot:
                    nm, ns = float(np.mean(N)), float(np.std(N, ddof=1))
                    row += [nm, ns, mean / nm, float(np.mean(S > nm + 3 * ns))]
                lrows.append(tuple(row))
            del tgt
            if bar is not None:
                bar.update(1)
        del srcs, nulls
    if bar is not None:
        bar.close()
    scores = pd.DataFrame(rows, columns=["src_layer", "src_head", "dst_layer", "dst_head", "score",
                                         "null_score"])
    if not rot:
        scores = scores.drop(columns="null_score")
    cols = ["src_layer", "dst_layer", "mean", "max", "baseline_mean", "baseline_std", "ratio",
            "frac_above_3sd"]
    if rot:
        cols += ["null_mean", "null_std", "null_ratio", "frac_above_null_3sd"]
    lay = pd.DataFrame(lrows, columns=cols)
    return Composition(network.name, kind, scores, lay, base)
