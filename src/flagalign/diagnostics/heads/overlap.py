"""Attention-head subspace overlap with a null for every score.

For each attention layer, the H×H matrix of subspace overlaps (mean cos² of principal angles,
docs/theory.md, eqs. (2), (40)) between the heads' subspaces in ℝ^{d_model}, the Haar baseline
and its standard error (eqs. (4), (41), (42)), and the effective number of distinct head
subspaces (eq. (43)). ``control="random-init"`` recomputes everything on a freshly initialised
copy of the attention weights (:mod:`flagalign.diagnostics.heads.controls`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..._output import output_folder
from ..._progress import progress_iter
from ..._threads import blas_threads
from ...errors import InputError
from ..._validate import check_seed
from ...geometry.angles import overlap_baseline
from ...models.network import Network
from .._figures import draw, html_card, spread
from .bases import SUBSPACES, as_network, layer_head_bases, shared_mask
from .controls import mixed_heads, random_init
from .stats import effective_heads, effective_heads_baseline, mean_overlap_se, overlap_sums

__all__ = ["HeadOverlap", "head_overlap", "CONTROLS"]

CONTROLS = (None, "random-init", "mixed-heads")


@dataclass
class HeadOverlap:
    """Per-layer head overlap matrices and their summary table.

    Attributes
    ----------
    network : str
        Name of the analysed network (``"… [random-init seed=S]"`` for a control).
    subspace : str
        One of q, k, v, o, qk, ov.
    layers : pandas.DataFrame
        One row per attention layer: ``layer, heads, kv_heads, head_dim, d_model, subspace,
        units, mean_overlap, baseline, se, z, ratio, effective_heads, effective_baseline,
        min_rank, pairs, shared_pairs, most_redundant`` (docs/theory.md, eqs. (40)–(43),
        (46)). ``units`` is the number of distinct subspaces: ``heads``, or ``kv_heads`` for
        GQA-shared k/v, whose statistics are then over kv-head pairs (labelled ``kv<g>``).
    control : HeadOverlap or None
        The same analysis on the control network, when requested.
    control_kind : str or None
        ``"random-init"`` or ``"mixed-heads"``.
    """

    network: str
    subspace: str
    layers: pd.DataFrame
    matrices: dict[int, np.ndarray] = field(repr=False)
    shared: dict[int, np.ndarray] = field(repr=False)
    k: int | None = None
    control: "HeadOverlap | None" = None
    control_kind: str | None = None

    @property
    def _ctag(self) -> str:
        return (self.control_kind or "random-init").replace("-", "_")

    def matrix(self, layer: int, include_shared: bool = False) -> np.ndarray:
        """H×H overlaps of ``layer`` (diagonal 1). Pairs that share a kv-head by construction
        (GQA, ``k``/``v``) are NaN unless ``include_shared`` (then they read 1.0)."""
        if layer not in self.matrices:
            raise InputError(f"no attention layer {layer}; layers are {sorted(self.matrices)}")
        M = self.matrices[layer].copy()
        if not include_shared:
            M[self.shared[layer]] = np.nan
        return M

    def shared_mask(self, layer: int) -> np.ndarray:
        """H×H boolean mask of head pairs sharing a kv-head subspace (GQA)."""
        return self.shared[layer].copy()

    def pairs(self) -> pd.DataFrame:
        """Tidy table of every head pair h < g: ``layer, head_a, head_b, overlap, shared``."""
        rows = []
        for layer, M in self.matrices.items():
            sh = self.shared[layer]
            iu, ju = np.triu_indices(M.shape[0], 1)
            for i, j in zip(iu, ju):
                rows.append((layer, int(i), int(j), float(M[i, j]), bool(sh[i, j])))
        return pd.DataFrame(rows, columns=["layer", "head_a", "head_b", "overlap", "shared"])

    def __repr__(self) -> str:
        r = self.layers["ratio"] if len(self.layers) else pd.Series(dtype=float)
        ctrl = f", control={self.control_kind!r}" if self.control is not None else ""
        return (f"HeadOverlap({self.network!r}, subspace={self.subspace!r}, "
                f"layers={len(self.layers)}, overlap/baseline {spread(r)}{ctrl})")

    def plot(self, kind: str = "redundancy", *, max_layers: int = 36):
        """A :class:`matplotlib.figure.Figure` (no pyplot state: show it by displaying it, or
        ``fig.savefig``). ``kind``: ``"redundancy"`` — overlap/baseline and effective heads vs
        layer, trained vs control (eqs. (42), (43)); ``"heatmaps"`` — the H×H overlap matrices
        (eq. (40)). Drawn by :mod:`flagalign.report.heads_figures`."""
        return draw("heads", self, kind=kind, max_layers=max_layers)

    def _repr_html_(self) -> str:
        """Notebook view: summary, per-layer table, the redundancy figure (inline PNG)."""
        cols = ["layer", "heads", "mean_overlap", "baseline", "z", "ratio", "effective_heads",
                "effective_baseline"]
        t = self.layers[[c for c in cols if c in self.layers]]
        ctrl = f"; control: {self.control_kind}" if self.control is not None else ""
        return html_card(
            f"HeadOverlap — {self.network}",
            f"subspace {self.subspace}, {len(self.layers)} attention layers, mean overlap / "
            f"Haar baseline {spread(self.layers['ratio'] if len(self.layers) else [])}{ctrl}",
            t, self.plot() if len(self.layers) else None)

    def to_markdown(self) -> str:
        """The per-layer table as GitHub markdown (trained vs control side by side if present)."""
        return _markdown(self.summary_table())

    def summary_table(self):
        """The per-layer table, trained vs control side by side if present (a DataFrame)."""
        cols = ["layer", "heads", "head_dim", "mean_overlap", "baseline", "se", "z", "ratio",
                "effective_heads", "effective_baseline", "most_redundant"]
        t = self.layers[cols].copy()
        if self.control is not None:
            c = self.control.layers.set_index("layer")
            t.insert(8, f"ratio_{self._ctag}", t["layer"].map(c["ratio"]))
            t.insert(10, f"eff_{self._ctag}", t["layer"].map(c["effective_heads"]))
        return t

    def save(self, out_dir, *, figures: bool = True, prefix: str = "heads") -> list[Path]:
        """Write ``{prefix}_layers.csv``, ``{prefix}_pairs.csv`` (and the control's, suffixed
        ``_random_init`` / ``_mixed_heads``) plus PNG heatmaps and a redundancy-vs-depth
        figure (drawn by :mod:`flagalign.report.heads_figures`)."""
        files = []  # one atomic run (docs/security.md); out_dir may be an open OutputFolder
        with output_folder(out_dir, set_name=prefix) as out:
            for tag, res in (("", self), ("_" + self._ctag, self.control)):
                if res is None:
                    continue
                files += [out.write_csv(f"{prefix}_layers{tag}.csv", res.layers),
                          out.write_csv(f"{prefix}_pairs{tag}.csv", res.pairs())]
            if figures:
                files += draw("heads.files", self, out, prefix=prefix)
        return files


def _markdown(df: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return "nan"
            return f"{v:.2g}" if v != 0 and abs(v) < 0.01 else f"{v:.3f}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _units(attn, shared):
    """Indices and labels of the distinct subspaces: every head, or (GQA-shared k/v) the first
    head of each kv group, labelled ``kv<g>`` (docs/theory.md, eq. (45))."""
    if not shared.any():
        return list(range(attn.heads)), [str(h) for h in range(attn.heads)]
    reps, seen = [], set()
    for h in range(attn.heads):
        g = attn.kv_group(h)
        if g not in seen:
            seen.add(g)
            reps.append(h)
    return reps, [f"kv{attn.kv_group(h)}" for h in reps]


def _layer_row(attn, M, S, ranks, shared, subspace, top_pairs):
    """Per-layer statistics over the distinct subspaces (eqs. (40)–(43), (46))."""
    reps, labels = _units(attn, shared)
    Mu, Su = M[np.ix_(reps, reps)], S[np.ix_(reps, reps)]
    ru = [ranks[i] for i in reps]
    iu, ju = np.triu_indices(len(reps), 1)
    keep = np.isfinite(Mu[iu, ju])
    vals = Mu[iu, ju][keep]
    r = int(round(float(np.mean(ru)))) if ru else 0
    base = overlap_baseline(r, r, attn.d_model) if r else float("nan")
    se = mean_overlap_se(r, r, attn.d_model, int(keep.sum())) if r else float("nan")
    mean = float(np.mean(vals)) if vals.size else float("nan")
    order = np.argsort(-vals, kind="stable")[:top_pairs]
    pi, pj = iu[keep], ju[keep]
    red = ", ".join(f"{labels[pi[o]]}-{labels[pj[o]]}:{vals[o]:.2f}" for o in order)
    return {
        "layer": attn.layer,
        "heads": attn.heads,
        "kv_heads": attn.kv_heads,
        "head_dim": attn.head_dim,
        "d_model": attn.d_model,
        "subspace": subspace,
        "units": len(reps),
        "mean_overlap": mean,
        "baseline": base,
        "se": se,
        "z": (mean - base) / se if se and np.isfinite(se) and se > 0 else float("nan"),
        "ratio": mean / base if base else float("nan"),
        "effective_heads": effective_heads(Su, ru),
        "effective_baseline": effective_heads_baseline(ru, attn.d_model),
        "min_rank": int(min(ranks)) if ranks else 0,
        "pairs": int(keep.sum()),
        "shared_pairs": int(np.triu(shared, 1).sum()),
        "most_redundant": red,
    }


def head_overlap(
    network: Network,
    subspace: str = "v",
    layers=None,
    *,
    k: int | None = None,
    control: str | None = None,
    seed: int = 0,
    top_pairs: int = 3,
    quiet: bool = False,
    threads: int | None = 1,
) -> HeadOverlap:
    """Head-vs-head subspace overlap per attention layer (docs/theory.md, eqs. (40)–(43)).

    Parameters
    ----------
    network : Network or str or os.PathLike
        Any network with ``network.attention``, or a source :func:`flagalign.load` reads.
    subspace : {"q", "k", "v", "o", "qk", "ov"}
        Which head subspace of ℝ^{d_model} to compare (see
        :func:`flagalign.diagnostics.heads.bases.layer_head_bases`).
    layers : iterable of int, optional
        ``AttentionLayer.layer`` ids to analyse (default: all).
    k : int, optional
        Top-k for ``qk``/``ov`` (default head_dim, where they equal ``k``/``o``, eq. (45)).
    control : {None, "random-init", "mixed-heads"}
        Also analyse a seeded control (``result.control``): ``random-init`` re-draws the
        weights (eq. (47)); ``mixed-heads`` keeps each layer's weights but re-cuts its head
        blocks by a random rotation (:func:`~flagalign.diagnostics.heads.controls.mixed_heads`).
    seed : int
        Seed of the control's initialisation.
    top_pairs : int
        How many most-redundant pairs to list per layer.
    quiet : bool
        Silence the progress bar (it is also silent when stderr is not a TTY).
    threads : int or None
        BLAS threads while computing (default 1: many small factorizations; None: BLAS default).

    Returns
    -------
    HeadOverlap
    """
    if subspace not in SUBSPACES:
        raise InputError(f"--subspace must be one of {', '.join(SUBSPACES)}; got {subspace!r}")
    if control not in CONTROLS:
        raise InputError(f"control must be None, 'random-init' or 'mixed-heads'; got {control!r}")
    seed = check_seed(seed)
    network = as_network(network)
    if not network.attention:
        raise InputError(f"{network.name}: has no attention layers (nothing for heads to do)")
    atts = list(network.attention)
    if layers is not None:
        want = {int(x) for x in layers}
        known = {a.layer for a in atts}
        if want - known:
            ks = sorted(known)
            valid = (f"{ks[0]}-{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1))
                     else ", ".join(map(str, ks)))
            raise InputError(f"--layers {', '.join(map(str, sorted(want - known)))}: "
                             f"this model's attention layers are {valid}")
        atts = [a for a in atts if a.layer in want]
    mats, shared, rows = {}, {}, []
    for attn in progress_iter(atts, not quiet, f"heads[{subspace}]"):
        with blas_threads(threads):
            bases = layer_head_bases(network, attn, subspace, k)
            S = overlap_sums(bases)
        ranks = [B.shape[1] for B in bases]
        denom = np.minimum.outer(np.array(ranks, float), np.array(ranks, float))
        with np.errstate(invalid="ignore", divide="ignore"):
            M = np.where(denom > 0, S / np.where(denom > 0, denom, 1), np.nan)
        np.fill_diagonal(M, np.where(np.array(ranks) > 0, 1.0, np.nan))
        sh = shared_mask(attn, subspace, k)
        mats[attn.layer], shared[attn.layer] = M, sh
        rows.append(_layer_row(attn, M, S, ranks, sh, subspace, top_pairs))
    res = HeadOverlap(network.name, subspace, pd.DataFrame(rows), mats, shared, k)
    if control is not None:
        ctrl = (random_init if control == "random-init" else mixed_heads)(network, seed=seed)
        res.control_kind = control
        res.control = head_overlap(ctrl, subspace, layers, k=k, seed=seed,
                                   top_pairs=top_pairs, quiet=quiet, threads=threads)
    return res
