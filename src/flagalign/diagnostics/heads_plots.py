"""Figures for :class:`~flagalign.diagnostics.heads.HeadOverlap` (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["heatmaps_figure", "redundancy_figure", "plot_heatmaps", "plot_redundancy"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_heatmaps(res, path, max_layers: int = 36) -> Path:
    """Save :func:`heatmaps_figure` as PNG."""
    return _save(heatmaps_figure(res, max_layers), path)


def plot_redundancy(res, path) -> Path:
    """Save :func:`redundancy_figure` as PNG."""
    return _save(redundancy_figure(res), path)


def heatmaps_figure(res, max_layers: int = 36):
    """Grid of per-layer H×H overlap heatmaps (GQA-shared pairs grey); the colour scale
    is centred on the Haar baseline (white), docs/theory.md, eqs. (2), (4)."""
    plt = _plt()
    from matplotlib.colors import TwoSlopeNorm

    layers = list(res.matrices)[:max_layers]
    n = len(layers)
    cols = min(6, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.6), squeeze=False)
    base = float(np.nanmean(res.layers["baseline"])) if len(res.layers) else 0.1
    norm = TwoSlopeNorm(vmin=0.0, vcenter=min(max(base, 1e-3), 0.999), vmax=1.0)
    im = None
    for ax, layer in zip(axes.flat, layers):
        M = res.matrix(layer)
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.7")
        im = ax.imshow(M, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(f"layer {layer}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{res.network}: head overlap ({res.subspace}); white = baseline {base:.3f}",
                 fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    return fig


def redundancy_figure(res):
    """Redundancy vs depth: overlap ratio (mean/baseline, ±3 SE band) and effective heads,
    trained vs the control when present (docs/theory.md, eqs. (42), (43))."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ctag = getattr(res, "control_kind", None) or "control"
    for tag, r, style in (("trained", res, "o-"), (ctag, res.control, "s--")):
        if r is None:
            continue
        t = r.layers
        a1.plot(t["layer"], t["ratio"], style, label=tag, ms=3)
        a2.plot(t["layer"], t["effective_heads"], style, label=tag, ms=3)
    t = res.layers
    band = 3 * t["se"] / t["baseline"]
    a1.fill_between(t["layer"], 1 - band, 1 + band, color="0.85", label="null ±3 SE")
    a1.axhline(1.0, color="0.4", lw=0.8)
    a1.set_xlabel("layer")
    a1.set_ylabel("mean overlap / baseline")
    a2.plot(t["layer"], t["effective_baseline"], ":", color="0.4", label="Haar null")
    a2.plot(t["layer"], t["units"], "-", color="0.7", lw=0.8,
            label="max (heads, or kv-heads if shared)")
    a2.set_xlabel("layer")
    a2.set_ylabel("effective heads")
    for a in (a1, a2):
        a.legend(fontsize=7)
    fig.suptitle(f"{res.network}: head redundancy vs depth ({res.subspace})", fontsize=9)
    fig.tight_layout()
    return fig
