"""The report's figures, each a function ``Analysis -> matplotlib.figure.Figure | None``.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state, no backend
switch); None means "nothing to draw" (e.g. no ok pair). :func:`flagalign.report.html.to_data_uri`
turns one into an embeddable PNG so the report needs no other file and no network.
"""

from __future__ import annotations

import textwrap

import numpy as np

from .html import short_pair, to_data_uri

__all__ = [
    "overlap_vs_depth",
    "angle_heatmaps",
    "flag_heatmaps",
    "commutator_imbalance_vs_depth",
    "to_data_uri",
    "kind_colors",
    "KIND_COLORS",
    "analysis_figure",
]

#: One fixed colour per pair kind, the same in every report and notebook figure.
KIND_COLORS = {
    "mlp": "#1f77b4",
    "ov": "#d62728",
    "residual": "#2ca02c",
    "sequential": "#9467bd",
    "conv": "#ff7f0e",
    "qk": "#8c564b",
}
_SPARE = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def _figure(figsize):
    """A pyplot-free Figure (its own Agg canvas when saved)."""
    from matplotlib.figure import Figure  # deferred: matplotlib is heavy, only the report needs it

    return Figure(figsize=figsize)


def kind_colors(kinds) -> dict:
    """The colour of each pair kind: :data:`KIND_COLORS` (fixed across reports); a kind not
    listed there gets a spare colour from a hash of its name (also stable)."""
    import zlib

    return {k: KIND_COLORS.get(k, _SPARE[zlib.crc32(str(k).encode()) % len(_SPARE)])
            for k in kinds}


def analysis_figure(analysis, which: str = "overlap"):
    """The figure ``which`` (``overlap``, ``angles``, ``flags``, ``commutator``) of an
    Analysis: what ``Analysis.plot`` returns."""
    return {"overlap": overlap_vs_depth, "angles": angle_heatmaps, "flags": flag_heatmaps,
            "commutator": commutator_imbalance_vs_depth}[which](analysis)


def _ok(analysis):
    df = analysis.pairs
    return df[df["status"] == "ok"]


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib (heavy)

    axis.set_major_locator(MaxNLocator(integer=True))


def overlap_vs_depth(analysis):
    """Overlap ratio to its null (``overlap_ratio`` = overlap / (k/n), eqs. (2), (4)) of every
    pair against depth, one panel per kind on one shared y-scale, with chance (1) dashed and the
    per-depth median as a line — the number the CLI table and ``pairs.csv`` headline."""
    ok = _ok(analysis)
    if ok.empty:
        return None
    kinds = list(dict.fromkeys(ok["kind"]))
    colors = kind_colors(analysis.pairs["kind"].unique())
    fig = _figure((4.2 * len(kinds) + 0.6, 3.4))
    axes = fig.subplots(1, len(kinds), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds):
        g = ok[ok["kind"] == kind].sort_values("depth")
        c = colors[kind]
        ax.scatter(g["depth"], g["overlap_ratio"], s=12, alpha=0.45, color=c, label="pairs")
        med = g.groupby("depth")["overlap_ratio"].median()
        ax.plot(med.index, med.values, color=c, lw=1.8, label="median")
        ax.axhline(1.0, color="k", ls="--", lw=1.2, label="chance (random k-subspaces)")
        ax.set_title(f"{kind} ({len(g)} pairs)")
        ax.set_xlabel("depth (layer)")
        _integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
    top = float(np.nanmax(ok["overlap_ratio"])) if len(ok) else 1.0
    axes[0][0].set_ylim(0, max(2.0, 1.1 * top))
    axes[0][0].set_ylabel("overlap_ratio = overlap / (k/n)")
    axes[0][0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def angle_heatmaps(analysis, max_rows: int = 400):
    """Principal angles (eq. (1)) as heatmaps, one per kind: rows are pairs ordered by depth,
    columns the angle index 1..k, colour the angle in degrees (0° aligned, 90° orthogonal)."""
    ok = _ok(analysis)
    if ok.empty or not analysis.angles:
        return None
    kinds = list(dict.fromkeys(ok["kind"]))
    fig = _figure((4.2 * len(kinds) + 1.2, 4.2))
    axes = fig.subplots(1, len(kinds), squeeze=False)
    im = None
    for ax, kind in zip(axes[0], kinds):
        g = ok[ok["kind"] == kind].sort_values(["depth", "pair"])
        names = [n for n in g["pair"] if n in analysis.angles][:max_rows]
        width = max(len(analysis.angles[n]) for n in names)
        grid = np.full((len(names), width), np.nan)
        for i, n in enumerate(names):
            a = analysis.angles[n]
            grid[i, : len(a)] = a
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=90,
                       interpolation="nearest", extent=(0.5, width + 0.5, len(names) - 0.5, -0.5))
        depths = g["depth"].to_numpy()[: len(names)]
        starts = np.flatnonzero(np.r_[True, depths[1:] != depths[:-1]])
        step = max(1, int(np.ceil(len(starts) / 12)))
        ax.set_yticks(starts[::step])
        ax.set_yticklabels([str(depths[t]) for t in starts[::step]])
        ax.set_title(f"{kind}: angles per pair")
        _integer_ticks(ax.xaxis)
        ax.set_xlabel("angle index i (θ₁ ≤ … ≤ θ_k)")
        ax.set_ylabel("pairs, by depth (layer)")
    fig.colorbar(im, ax=axes[0].tolist(), label="θ (degrees)", fraction=0.03, pad=0.02)
    return fig


def flag_heatmaps(analysis, pairs=None):
    """Flag tables (eq. (6)) of selected pairs (default: the most and the least aligned ok
    pair), normalised as T[i, j] / min(i, j) — the fraction of the smaller flag subspace that
    lies in the other (1 = nested, ≈ max(i, j)/n for random subspaces)."""
    ok = _ok(analysis)
    if ok.empty or not analysis.flag_tables:
        return None
    if pairs is None:
        ranked = ok[ok["pair"].isin(list(analysis.flag_tables))].sort_values(
            "overlap_ratio", ascending=False
        )
        pairs = list(dict.fromkeys([ranked["pair"].iloc[0], ranked["pair"].iloc[-1]]))
    fig = _figure((4.6 * len(pairs) + 0.8, 4.2))
    axes = fig.subplots(1, len(pairs), squeeze=False)
    im = None
    for ax, name in zip(axes[0], pairs):
        t = np.asarray(analysis.flag_tables[name], dtype=np.float64)
        i = np.arange(t.shape[0])[:, None]
        j = np.arange(t.shape[1])[None, :]
        norm = np.minimum(i, j).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(norm > 0, t / np.where(norm > 0, norm, 1), np.nan)
        from matplotlib.colors import PowerNorm  # deferred: matplotlib (heavy)

        im = ax.imshow(frac[1:, 1:], origin="lower", cmap="magma",
                       norm=PowerNorm(gamma=0.5, vmin=0, vmax=1),
                       extent=(0.5, t.shape[1] - 0.5, 0.5, t.shape[0] - 0.5))
        row = ok[ok["pair"] == name].iloc[0]
        label = "\n".join(textwrap.wrap(short_pair(row["left"], row["right"]), 48))
        ax.set_title(f"{label}\noverlap_ratio = {row['overlap_ratio']:.2f}", fontsize=8.5)
        ax.set_xlabel("j  (top-j input flag of the reader)")
        ax.set_ylabel("i  (top-i output flag of the writer)")
    fig.colorbar(im, ax=axes[0].tolist(), label="T[i,j] / min(i,j)  (square-root scale)",
                 fraction=0.03, pad=0.02)
    return fig


def commutator_imbalance_vs_depth(analysis):
    """Commutator ratio to its null (``commutator_ratio``, eqs. (10), (50); 1 = chance) and
    relative imbalance ‖D‖ (eq. (11)) against depth: the per-depth median of each kind as a
    line, individual pairs as faint points."""
    ok = _ok(analysis)
    if ok.empty:
        return None
    colors = kind_colors(analysis.pairs["kind"].unique())
    fig = _figure((11, 3.6))
    axes = fig.subplots(1, 2)
    col0 = "commutator_ratio" if "commutator_ratio" in ok else "commutator"
    for ax, col, label in (
        (axes[0], col0, "commutator_ratio = c / c⁰  (1 = chance, 0 = shared eigenbasis)"),
        (axes[1], "imbalance", "relative imbalance  ‖D‖_F / (‖W̃W̃ᵀ‖+‖W'ᵀW'‖)"),
    ):
        for kind, g in ok.groupby("kind", sort=False):
            c = colors[kind]
            ax.scatter(g["depth"], g[col], s=8, alpha=0.3, color=c)
            med = g.groupby("depth")[col].median()
            ax.plot(med.index, med.values, color=c, lw=1.8, marker="o", ms=3, label=kind)
        ax.set_xlabel("depth (layer)")
        _integer_ticks(ax.xaxis)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    if col0 == "commutator_ratio":
        axes[0].axhline(1.0, color="k", ls="--", lw=1.2, label="chance")
        axes[0].set_ylim(0, max(1.5, 1.1 * float(np.nanmax(ok[col0]))))
    axes[1].set_ylim(0, 1.0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
