"""Figures of the attention-heads analyses (:mod:`flagalign.diagnostics.heads`).

Every figure is a :class:`matplotlib.figure.Figure` built directly (no pyplot state, no backend
switch), so drawing works in any backend and leaves no global figure behind.
:func:`save_figures` is what ``HeadOverlap.save(figures=True)`` and
``Composition.save(figures=True)`` call (registered by ``flagalign/__init__.py``, see
:mod:`flagalign.diagnostics._figures`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..diagnostics.heads import Composition
from ..errors import InputError

__all__ = [
    "heatmaps_figure",
    "redundancy_figure",
    "composition_figure",
    "save_overlap_figures",
    "save_composition_figure",
    "save_figures",
    "figure",
]


def _figure(figsize):
    from matplotlib.figure import Figure  # deferred: matplotlib is heavy and only for figures

    return Figure(figsize=figsize)


def _save(fig, out_dir, name: str) -> Path:
    """Write ``fig`` as ``name``: staged in an open :class:`flagalign._output.OutputFolder`
    (atomic, run id in the PNG), else saved to ``out_dir / name``."""
    if hasattr(out_dir, "write_figure"):
        return out_dir.write_figure(name, fig, dpi=90)
    out = Path(out_dir) / name
    fig.savefig(out, dpi=90)
    return out


def heatmaps_figure(res, max_layers: int = 36):
    """Grid of per-layer H×H overlap heatmaps of a ``HeadOverlap`` (GQA-shared pairs grey); the
    colour scale is centred on the Haar baseline (white), docs/theory.md, eqs. (2), (4)."""
    from matplotlib import colormaps  # deferred with the Figure (see _figure)
    from matplotlib.colors import TwoSlopeNorm

    layers = list(res.matrices)[:max_layers]
    n = len(layers)
    cols = min(6, n)
    rows = math.ceil(n / cols)
    fig = _figure((2.2 * cols, 2.2 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    base = float(np.nanmean(res.layers["baseline"])) if len(res.layers) else 0.1
    norm = TwoSlopeNorm(vmin=0.0, vcenter=min(max(base, 1e-3), 0.999), vmax=1.0)
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.7")
    im = None
    for ax, layer in zip(axes.flat, layers):
        m = res.matrix(layer)
        im = ax.imshow(m, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(f"layer {layer}", fontsize=8)
        # head indices on both axes (every head up to 8, else every ⌈H/6⌉-th)
        h = m.shape[0]
        step = 1 if h <= 8 else math.ceil(h / 6)
        ticks = list(range(0, h, step))
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=5)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=5)
        ax.tick_params(length=1.5, pad=1)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{res.network}: head × head overlap ({res.subspace}); axes = head index; "
                 f"white = baseline {base:.3f}", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    return fig


def redundancy_figure(res):
    """Redundancy vs depth of a ``HeadOverlap``: overlap ratio (mean/baseline, ±3 SE band) and
    effective heads, trained vs the control when present (docs/theory.md, eqs. (42), (43))."""
    fig = _figure((9, 3.2))
    a1, a2 = fig.subplots(1, 2)
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


def composition_figure(comp):
    """Heatmap of a ``Composition``'s mean score / Gaussian baseline per (source, target) layer
    pair (docs/theory.md, eqs. (48), (49)); None when there is no layer pair."""
    if comp.layers.empty:
        return None
    piv = comp.layers.pivot(index="dst_layer", columns="src_layer", values="ratio")
    fig = _figure((4.5, 4))
    ax = fig.subplots()
    im = ax.imshow(piv.to_numpy(), origin="lower", cmap="viridis")
    ax.set_xticks(range(len(piv.columns)), [str(c) for c in piv.columns])
    ax.set_yticks(range(len(piv.index)), [str(i) for i in piv.index])
    ax.set_xlabel("source layer")
    ax.set_ylabel("target layer")
    ax.set_title(f"{comp.network}: {comp.kind}-composition / baseline", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def save_overlap_figures(res, out_dir, *, prefix: str = "heads",
                         max_layers: int = 36) -> list[Path]:
    """Write ``{prefix}_overlap_{subspace}.png`` (:func:`heatmaps_figure`) and
    ``{prefix}_redundancy_{subspace}.png`` (:func:`redundancy_figure`) into ``out_dir``."""
    return [
        _save(heatmaps_figure(res, max_layers), out_dir, f"{prefix}_overlap_{res.subspace}.png"),
        _save(redundancy_figure(res), out_dir, f"{prefix}_redundancy_{res.subspace}.png"),
    ]


def save_composition_figure(comp, out_dir) -> list[Path]:
    """Write ``composition_{kind}.png`` (:func:`composition_figure`) into ``out_dir`` (nothing
    when there is no layer pair)."""
    fig = composition_figure(comp)
    if fig is None:
        return []
    return [_save(fig, out_dir, f"composition_{comp.kind}.png")]


def save_figures(result, out_dir, **options) -> list[Path]:
    """Write the figures of a ``HeadOverlap`` (:func:`save_overlap_figures`) or a
    ``Composition`` (:func:`save_composition_figure`) into ``out_dir``."""
    if isinstance(result, Composition):
        return save_composition_figure(result, out_dir, **options)
    return save_overlap_figures(result, out_dir, **options)


def figure(result, kind: str | None = None, *, max_layers: int = 36):
    """The figure ``HeadOverlap.plot`` / ``Composition.plot`` return (and ``_repr_html_`` shows).

    ``kind`` for a ``HeadOverlap``: ``"redundancy"`` (default, :func:`redundancy_figure`) or
    ``"heatmaps"`` (:func:`heatmaps_figure`); a ``Composition`` has one figure
    (:func:`composition_figure`, None without a layer pair).
    """
    if isinstance(result, Composition):
        if kind not in (None, "composition"):
            raise InputError(f"a Composition has one figure, 'composition'; got kind={kind!r}")
        return composition_figure(result)
    if kind in (None, "redundancy"):
        return redundancy_figure(result)
    if kind == "heatmaps":
        return heatmaps_figure(result, max_layers)
    raise InputError(f"kind must be 'redundancy' or 'heatmaps'; got {kind!r}")
