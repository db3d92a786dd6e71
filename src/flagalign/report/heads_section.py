"""The report's "Attention heads" section (docs/theory.md, eqs. (40)–(47)).

Registered with :func:`flagalign.report.register_section` on import (:mod:`.sections`, the
built-in sections, imports this module); it renders what the heads analysis hook
(:func:`flagalign.diagnostics.heads.analysis_hook`) stored in ``analysis.extras`` and is left
out when there is none. :func:`heads_section_html` can also be used on its own with any
:class:`~flagalign.diagnostics.heads.HeadOverlap`.
"""

from __future__ import annotations

from html import escape

from .html import figure, table
from .heads_figures import heatmaps_figure, redundancy_figure
from .registry import Section, register_section

__all__ = ["heads_section_html"]

_COLS = ["layer", "heads", "kv_heads", "head_dim", "mean_overlap", "baseline", "se", "z",
         "ratio", "effective_heads", "effective_baseline", "most_redundant"]


def heads_section_html(head_overlap, control=None, mixed=None) -> str:
    """HTML fragment: per-layer overlap heatmaps (colour centred on the baseline), redundancy vs
    depth (trained vs the control), and the per-layer tables of both.

    Parameters
    ----------
    head_overlap : HeadOverlap
    control : HeadOverlap, optional
        A control result (default ``head_overlap.control``).
    mixed : HeadOverlap, optional
        The same analysis on :func:`~flagalign.diagnostics.heads.mixed_heads` (layer
        anisotropy kept, head partition destroyed); adds a comparison table.
    """
    res = head_overlap
    ctrl = control if control is not None else res.control
    if ctrl is not None and res.control is None:
        res.control = ctrl
    sub = escape(res.subspace)
    parts = [
        "<p class=note>Overlap (mean cos² of the principal angles, eq. (2)) between the "
        f"<b>{sub}</b> subspaces of every two heads of a layer, in ℝ^d_model (eq. (40)). "
        "Baseline: the expectation for independent random subspaces, head_dim/d_model (eq. (4)); "
        "SE: its standard error over the layer's head pairs (eq. (42)); z = (mean − baseline)/SE. "
        "Effective heads: number of distinct head subspaces, participation ratio of Σ_h P_h "
        "(eq. (43)); the random-subspace value is effective_baseline (eq. (46)). Head pairs that "
        "share a kv-head (GQA) are grey and excluded from the mean.</p>",
        figure(redundancy_figure(res), "Left: mean overlap / baseline per layer with the ±3 SE "
               "band of the random-subspace null. Right: effective number of distinct head "
               "subspaces. Dashed: the same architecture with freshly initialised weights "
               "(PyTorch nn.Linear default init, eq. (47)).", "head redundancy vs depth"),
        figure(heatmaps_figure(res), "Per-layer head × head overlap; white = baseline, red = "
               "more overlap than random, blue = less.", "head overlap heatmaps"),
        "<p class=note>Trained weights:</p>",
        table(res.layers, [c for c in _COLS if c in res.layers.columns]),
    ]
    if ctrl is not None:
        mixed_ctrl = getattr(res, "control_kind", None) == "mixed-heads"
        kind = "Mixed-heads" if mixed_ctrl else "Random-init"
        parts += [f"<p class=note>{kind} control ({escape(ctrl.network)}):</p>",
                  table(ctrl.layers, [c for c in _COLS if c in ctrl.layers.columns])]
    if mixed is not None:
        import pandas as pd

        cmp = pd.DataFrame({"layer": res.layers["layer"], "ratio_trained": res.layers["ratio"],
                            "ratio_mixed_heads": res.layers["layer"].map(
                                mixed.layers.set_index("layer")["ratio"])})
        cmp["trained_over_mixed"] = cmp["ratio_trained"] / cmp["ratio_mixed_heads"]
        parts += ["<p class=note>Mixed-heads control: the same layer with its head blocks re-cut "
                  "by a random rotation (the layer's Gram, i.e. its anisotropy, is kept; "
                  "docs/theory.md eq. (47)). Overlap the trained heads share beyond this "
                  "control (trained_over_mixed &gt; 1) is head-specific; overlap above the "
                  "baseline that the control reproduces is layer-wide anisotropy "
                  "(docs/heads.md).</p>", table(cmp)]
    return "".join(parts)


def _render(analysis):
    res = getattr(analysis, "extras", {}).get("heads_overlap")
    if res is None:
        return None
    return heads_section_html(res, mixed=analysis.extras.get("heads_overlap_mixed"))


register_section(Section("heads", "Attention heads", _render, order=55))
