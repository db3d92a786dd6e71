"""``flagalign reproduce lm-heads``: head redundancy in pretrained LMs, against two controls.

The abstract names head subspace overlap as a weight-space window into redundancy in language
models. For each model (packaged aliases ``minilm`` and ``smollm2`` by default; any source
:func:`flagalign.load` reads via ``models=``) and each attention layer we measure

* head-vs-head subspace overlap (docs/theory.md eqs. (40)–(42); :func:`flagalign.head_overlap`)
  of the q, k, v and o head subspaces, against (a) the random-subspace baseline k/n with its
  standard error and (b) the same architecture at random initialisation (``control=
  "random-init"``, one draw per seed, eq. (47));
* adjacent-layer composition scores (eq. (48); :func:`flagalign.composition` with the Haar
  rotation null, eq. (49));
* the OV commutator of every head, c(W_V^h W_V^hᵀ, W_O^hᵀ W_O^h) on ℝ^{d_head} (eq. (10)),
  divided by its Haar null (eq. (50), :func:`flagalign.geometry.nulls.commutator_null`), for the
  trained weights and for the random-init control. This pair's symmetry is GL(d_head) (value →
  output inside a head), under which the commutator is **not** invariant (issue 12): the number
  describes the stored gauge, not the function.

The hypotheses (docs/results.md, "lm-heads") were stated before the first full run; each is a
criterion in ``verdict.json`` and a FAIL is a result.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .._output import OutputFolder
from .framework import ExperimentResult, register

__all__ = ["run", "CONFIG", "overlap_table", "ov_commutators", "residual_commutators", "verdict"]

CONFIG = {
    "models": ("minilm", "smollm2"),
    "subspaces": ("q", "k", "v", "o"),
    "kinds": ("q", "k", "v"),
    "seeds": 5,  # random-init control draws
    "null_samples": 64,
}
QUICK = {"models": ("minilm",), "subspaces": ("v",), "kinds": ("q",), "seeds": 2,
         "null_samples": 16}  # fmt: skip

Z_MIN = 3.0  # "by more than 3 SE"
MOST = 0.5  # "in most layers": fraction of layers > 0.5
RHO_MIN = 0.5  # "grows with depth": Spearman ρ(layer, excess overlap) ≥ 0.5


def overlap_table(network, subspace: str, seeds: int):
    """Per layer: trained mean overlap, random-subspace baseline and SE (eqs. (4), (42)),
    random-init control mean and sd over ``seeds`` draws, and z = (trained − control) / SE with
    SE = max(sd over draws, the baseline SE) — the larger of the empirical and analytic spread
    of one draw's mean overlap."""
    import flagalign

    ctrl = []
    trained = None
    for s in range(seeds):
        res = flagalign.head_overlap(network, subspace, control="random-init", seed=s, quiet=True)
        trained = res.layers if trained is None else trained
        ctrl.append(res.control.layers.set_index("layer").mean_overlap)
    C = np.column_stack([c.reindex(trained.layer).to_numpy() for c in ctrl])
    t = trained[["layer", "heads", "head_dim", "d_model", "mean_overlap", "baseline", "se",
                 "ratio", "effective_heads"]].copy()  # fmt: skip
    t["ctrl_mean"] = C.mean(axis=1)
    t["ctrl_sd"] = C.std(axis=1, ddof=1) if seeds > 1 else np.nan
    t["SE"] = np.fmax(t.ctrl_sd.fillna(0).to_numpy(), t.se.to_numpy())
    t["z_ctrl"] = (t.mean_overlap - t.ctrl_mean) / t.SE
    t["excess"] = t.mean_overlap - t.ctrl_mean
    t.insert(1, "subspace", subspace)
    return t


def ov_commutators(network, *, samples: int, seed: int = 0):
    """Per layer: mean over heads of c(W_V^h W_V^hᵀ, W_O^hᵀ W_O^h) / Haar null, its SE over
    heads, and the mean raw commutator."""
    import pandas as pd

    from ..diagnostics.heads.bases import head_slices
    from ..geometry import commutator_norm
    from ..geometry.nulls import commutator_null

    rows = []
    for attn in network.attention:
        V = head_slices(network, attn, "v")  # (head_dim, d_model), by GQA group
        O = head_slices(network, attn, "o")  # (d_model, head_dim)
        ratios, raws = [], []
        for h in range(attn.heads):
            v = np.asarray(V[h], dtype=np.float64)
            o = np.asarray(O[h], dtype=np.float64)
            A, B = v @ v.T, o.T @ o
            c = float(commutator_norm(A, B))
            nl = commutator_null(np.clip(np.linalg.eigvalsh(A), 0, None),
                                 np.clip(np.linalg.eigvalsh(B), 0, None), attn.head_dim,
                                 samples=samples, seed=seed)  # fmt: skip
            raws.append(c)
            ratios.append(c / nl.mean if nl.mean > 0 else np.nan)
        r = np.asarray(ratios)
        rows.append({"layer": attn.layer, "ov_comm": float(np.mean(raws)),
                     "ov_ratio": float(np.nanmean(r)),
                     "ov_ratio_se": float(np.nanstd(r, ddof=1) / np.sqrt(np.isfinite(r).sum()))})
    return pd.DataFrame(rows)


def _residual_ratios(pairs, mat) -> list[dict]:
    from ..geometry import commutator_norm
    from ..geometry.nulls import commutator_null_rms

    rows = []
    for p in pairs:
        L = np.asarray(mat(p.left), dtype=np.float64)
        R = np.asarray(mat(p.right), dtype=np.float64)
        A, B = L @ L.T, R.T @ R  # on the residual stream ℝ^{d_model} (eq. (10))
        c = float(commutator_norm(A, B))
        nl = commutator_null_rms(A, B)
        rows.append({"layer": int(p.depth), "pair": p.note or f"{p.left} -> {p.right}",
                     "comm": c, "null_rms": nl, "ratio": c / nl if nl > 0 else np.nan})
    return rows


def residual_commutators(network, *, seeds: int):
    """Residual-stream pairs (``kind == "residual"``: a writer into the residual stream → the
    next reader, norm gains folded as the layer graph folds them): per pair the Gram commutator
    c(W Wᵀ, W_nextᵀW_next) on ℝ^{d_model} (eq. (10)) over (a) its Haar null — the exact
    √(E c²) of eq. (50) (:func:`~flagalign.geometry.nulls.commutator_null_rms`, O(n²); above the
    Monte Carlo mean E c by the Jensen gap, < 0.15 % for n ≥ 384) — and (b) the same ratio for
    ``seeds`` random-init draws of both matrices (i.i.d. PyTorch default init,
    :data:`~flagalign.diagnostics.heads.controls.INIT_DESCRIPTION`). The pair's symmetry is
    O(d_model) (issue 12), under which c is invariant.

    Returns
    -------
    (pairs, layers) : DataFrame, DataFrame
        ``pairs``: one row per residual pair (trained ratio; control mean and sd over draws).
        ``layers``: per layer (``Pair.depth``), the mean over its residual pairs of the trained
        ratio (``res_ratio``) and of each draw's ratio (``ctrl_ratio`` = mean over draws,
        ``ctrl_sd`` = SE = sd over draws of one draw's layer mean: the spread of a single
        network against which the single trained one is judged), z_ctrl = (ctrl_ratio −
        res_ratio)/SE and z_null = (1 − res_ratio)/SE.
    """
    import pandas as pd

    from ..diagnostics.heads.controls import _draw

    pairs = [p for p in network.pairs if p.kind == "residual"]
    if not pairs:
        return pd.DataFrame(), pd.DataFrame()
    t = pd.DataFrame(_residual_ratios(pairs, network.matrix))
    shape = {n: tuple(network.matrix(n).shape) for p in pairs for n in (p.left, p.right)}
    draws = []
    for s in range(seeds):
        cache = {}

        def mat(name, s=s, cache=cache):
            if name not in cache:
                cache[name] = _draw(name, shape[name], s)
            return cache[name]

        draws.append(pd.DataFrame(_residual_ratios(pairs, mat)))
    R = np.column_stack([d.ratio.to_numpy() for d in draws])
    t["ctrl_ratio"] = R.mean(axis=1)
    t["ctrl_sd"] = R.std(axis=1, ddof=1) if seeds > 1 else np.nan
    lay = t.groupby("layer").agg(pairs=("ratio", "size"), res_comm=("comm", "mean"),
                                 res_ratio=("ratio", "mean"))  # fmt: skip
    per_draw = np.column_stack([d.groupby("layer").ratio.mean().reindex(lay.index).to_numpy()
                                for d in draws])  # fmt: skip
    lay["ctrl_ratio"] = per_draw.mean(axis=1)
    lay["SE"] = per_draw.std(axis=1, ddof=1) if seeds > 1 else np.nan
    lay["z_ctrl"] = (lay.ctrl_ratio - lay.res_ratio) / lay.SE
    lay["z_null"] = (1.0 - lay.res_ratio) / lay.SE
    return t, lay.reset_index()


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def analyse_model(source: str, cfg: dict) -> dict:
    """All tables for one model."""
    import pandas as pd

    import flagalign

    from ..diagnostics.heads.controls import random_init

    net = flagalign.load(source)
    t0 = time.perf_counter()
    ov = pd.concat([overlap_table(net, s, cfg["seeds"]) for s in cfg["subspaces"]],
                   ignore_index=True)  # fmt: skip
    comp = []
    layers = [a.layer for a in net.attention]
    for kind in cfg["kinds"]:
        for l1, l2 in zip(layers[:-1], layers[1:]):
            c = flagalign.composition(net, kind, layers=[l1, l2], null="rotation", quiet=True)
            row = c.layers.iloc[0]
            n_pairs = int(np.sum((c.scores.src_layer == l1) & (c.scores.dst_layer == l2)))
            se = float(row.null_std) / np.sqrt(n_pairs)
            comp.append({"kind": kind, "src_layer": l1, "dst_layer": l2, "mean": row["mean"],
                         "null_mean": row.null_mean, "null_std": row.null_std,
                         "pairs": n_pairs, "z_null": (row["mean"] - row.null_mean) / se,
                         "gaussian_baseline": row.baseline_mean})  # fmt: skip
    comp = pd.DataFrame(comp)
    ovc = ov_commutators(net, samples=cfg["null_samples"])
    ctrl = [ov_commutators(random_init(net, seed=s), samples=cfg["null_samples"])
            for s in range(cfg["seeds"])]  # fmt: skip
    ovc["ctrl_ratio"] = np.mean([c.ov_ratio.to_numpy() for c in ctrl], axis=0)
    ovc["ctrl_ratio_se"] = np.sqrt(np.mean([c.ov_ratio_se.to_numpy() ** 2 for c in ctrl],
                                           axis=0) / len(ctrl))  # fmt: skip
    ovc["z_ctrl"] = (ovc.ctrl_ratio - ovc.ov_ratio) / np.sqrt(ovc.ov_ratio_se ** 2
                                                             + ovc.ctrl_ratio_se ** 2)
    res_pairs, res = residual_commutators(net, seeds=cfg["seeds"])
    return {"model": net.name, "overlap": ov.assign(model=net.name),
            "composition": comp.assign(model=net.name), "ov": ovc.assign(model=net.name),
            "residual": res.assign(model=net.name),
            "residual_pairs": res_pairs.assign(model=net.name),
            "seconds": time.perf_counter() - t0}


def verdict(results: list[dict], cfg: dict) -> list:
    """The hypotheses of docs/results.md ("lm-heads") as criteria."""
    from .verdict import check

    out = []
    for r in results:
        m = r["model"]
        for s in cfg["subspaces"]:
            t = r["overlap"][r["overlap"].subspace == s]
            frac = float(np.mean(t.z_ctrl > Z_MIN))
            out.append(check(f"{m} H1[{s}]: fraction of layers whose trained head overlap exceeds "
                             f"the random-init control by > {Z_MIN:g} SE", frac, ">", MOST,
                             f"{int(np.sum(t.z_ctrl > Z_MIN))}/{len(t)} layers; z from "
                             f"{t.z_ctrl.min():.3g} to {t.z_ctrl.max():.3g}"))
            rho = _spearman(t.layer, t.excess)
            out.append(check(f"{m} H2[{s}]: redundancy grows with depth, Spearman ρ(layer, "
                             "trained − control overlap)", rho, ">=", RHO_MIN))
        for k in cfg["kinds"]:
            c = r["composition"][r["composition"].kind == k]
            frac = float(np.mean(c.z_null > Z_MIN))
            out.append(check(f"{m} H3[{k}]: fraction of adjacent layer pairs whose mean "
                             f"{k}-composition exceeds the Haar-rotation null by > {Z_MIN:g} SE",
                             frac, ">", MOST,
                             f"{int(np.sum(c.z_null > Z_MIN))}/{len(c)} pairs; mean/null "
                             f"{(c['mean'] / c.null_mean).min():.3g}–"
                             f"{(c['mean'] / c.null_mean).max():.3g}"))
        o = r["ov"]
        frac = float(np.mean(o.z_ctrl > Z_MIN))
        out.append(check(f"{m} H4: fraction of layers whose OV commutator / null is below the "
                         f"random-init control's by > {Z_MIN:g} SE (gauge-dependent, GL(d_head))",
                         frac, ">", MOST,
                         f"trained ratio {o.ov_ratio.min():.3g}–{o.ov_ratio.max():.3g}, control "
                         f"{o.ctrl_ratio.min():.3g}–{o.ctrl_ratio.max():.3g}"))
        rs = r.get("residual")
        if rs is not None and len(rs):
            frac = float(np.mean(rs.z_ctrl > Z_MIN))
            out.append(check(f"{m} H5: fraction of layers whose residual-stream commutator / "
                             f"null is below the random-init control's by > {Z_MIN:g} SE "
                             "(O(d_model)-invariant)", frac, ">", MOST,
                             f"{int(np.sum(rs.z_ctrl > Z_MIN))}/{len(rs)} layers; trained ratio "
                             f"{rs.res_ratio.min():.3g}–{rs.res_ratio.max():.3g}, control "
                             f"{rs.ctrl_ratio.min():.3g}–{rs.ctrl_ratio.max():.3g}; below the "
                             f"null by > {Z_MIN:g} SE in {int(np.sum(rs.z_null > Z_MIN))}/"
                             f"{len(rs)}"))
    return out


def _figure(results, tx, name: str) -> Path:
    """Top row: head overlap / baseline per layer, trained vs random init. Bottom row: OV and
    residual-stream commutator / Haar null per layer, trained vs random init (± SE)."""
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy); no pyplot state

    fig = Figure(figsize=(5.5 * len(results), 7.4))
    axes = fig.subplots(2, len(results), squeeze=False)
    for ax, r in zip(axes[0], results):
        t = r["overlap"]
        for s, g in t.groupby("subspace", sort=False):
            line = ax.plot(g.layer, g.mean_overlap / g.baseline, marker="o", label=f"{s} trained")
            ax.errorbar(g.layer, g.ctrl_mean / g.baseline, yerr=g.SE / g.baseline, ls="--",
                        color=line[0].get_color(), label=f"{s} random init", capsize=2)
        ax.axhline(1.0, color="gray", ls=":")
        ax.set_title(f"{r['model']}: head overlap / baseline k/n", fontsize=9)
        ax.set_xlabel("layer")
        ax.legend(fontsize=6, ncol=2)
    for ax, r in zip(axes[1], results):
        o = r["ov"]
        ax.errorbar(o.layer, o.ov_ratio, yerr=o.ov_ratio_se, marker="o", color="C0", capsize=2,
                    label="OV trained (SE over heads)")
        ax.errorbar(o.layer, o.ctrl_ratio, yerr=o.ctrl_ratio_se, ls="--", color="C0", capsize=2,
                    label="OV random init")
        rs = r.get("residual")
        if rs is not None and len(rs):
            ax.plot(rs.layer, rs.res_ratio, marker="s", color="C3", label="residual trained")
            ax.errorbar(rs.layer, rs.ctrl_ratio, yerr=rs.SE, ls="--", color="C3", capsize=2,
                        label="residual random init (SE)")
        ax.axhline(1.0, color="gray", ls=":", label="Haar null")
        ax.set_title(f"{r['model']}: Gram commutator / Haar null", fontsize=9)
        ax.set_xlabel("layer")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return tx.write_figure(name, fig, dpi=100)


@register("lm-heads")
def run(out_dir, quick: bool = False, progress: bool = True, seeds: int | None = None,
        models=None) -> ExperimentResult:  # fmt: skip
    """Analyse every model; write CSVs, verdict.json, a figure and a table (one atomic run,
    set ``lm-heads``, docs/security.md)."""
    with OutputFolder(out_dir, set_name="lm-heads").open() as tx:  # exit 2 before loading
        return _run(tx, quick, progress, seeds, models)


def _run(tx, quick: bool, progress: bool, seeds, models) -> ExperimentResult:
    """Analyse, tabulate, and stage the outputs in ``tx`` (committed by :func:`run`)."""
    import pandas as pd

    from .hierarchy import torch_threads_one
    from .verdict import criteria_table, frame_markdown, write_verdict

    cfg = {**CONFIG, **(QUICK if quick else {})}
    if seeds is not None:
        cfg["seeds"] = int(seeds)
    if models is not None:
        cfg["models"] = tuple(models)
    torch_threads_one()
    t0 = time.perf_counter()
    results = []
    for m in cfg["models"]:
        results.append(analyse_model(m, cfg))
        if progress and sys.stderr.isatty():
            print(f"lm-heads: {m}: {results[-1]['seconds']:.0f} s", file=sys.stderr)
    crit = verdict(results, cfg)
    seconds = time.perf_counter() - t0
    files = []
    for key in ("overlap", "composition", "ov", "residual", "residual_pairs"):
        files.append(tx.write_csv(f"lm_heads_{key}.csv",
                                  pd.concat([r[key] for r in results], ignore_index=True)))
    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    meta["model_seconds"] = {r["model"]: round(r["seconds"], 1) for r in results}
    files.append(write_verdict(tx, "lm-heads", crit, quick=quick, seconds=seconds, meta=meta))
    files.append(_figure(results, tx, "lm_heads.png"))
    parts = [f"Models {', '.join(r['model'] for r in results)}; head subspaces "
             f"{', '.join(cfg['subspaces'])}; random-init control draws: {cfg['seeds']}; "
             f"composition kinds {', '.join(cfg['kinds'])} (adjacent layers, Haar-rotation null); "
             f"{seconds:.0f} s wall{' (--quick)' if quick else ''}.", "", criteria_table(crit)]
    for r in results:
        t = r["overlap"][["subspace", "layer", "mean_overlap", "baseline", "ctrl_mean", "SE",
                          "z_ctrl", "effective_heads"]]  # fmt: skip
        o = r["ov"][["layer", "ov_comm", "ov_ratio", "ov_ratio_se", "ctrl_ratio", "z_ctrl"]]
        parts += ["", f"**{r['model']}** — head overlap per layer:", "", frame_markdown(t), "",
                  f"**{r['model']}** — OV commutator / Haar null per layer (mean over heads):",
                  "", frame_markdown(o)]
        rs = r.get("residual")
        if rs is not None and len(rs):
            parts += ["", f"**{r['model']}** — residual-stream commutator / Haar null per layer "
                      "(mean over the layer's residual pairs; control: random-init draws):", "",
                      frame_markdown(rs[["layer", "pairs", "res_comm", "res_ratio",
                                         "ctrl_ratio", "SE", "z_ctrl",
                                         "z_null"]])]  # fmt: skip
    md = "\n".join(parts)
    files.append(tx.write_text("lm_heads.md", md + "\n"))
    return ExperimentResult(name="lm-heads", table_markdown=md,
                            passed=all(c.passed for c in crit), files=files)  # fmt: skip
