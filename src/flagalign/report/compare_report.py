"""The report of ``flagalign compare A B``: how far training rotated each matrix's flags.

Figures (matplotlib Figures, embedded as PNG data URIs by :mod:`flagalign.report.html`): the
principal-angle spectra (eq. (1)) between A's and B's top-k output flags and input flags, one
row per matrix in the network's order; the overlap (eq. (2)) and relative change per matrix.
"""

from __future__ import annotations

from html import escape

import numpy as np

from .html import figure, shell, table

__all__ = ["render_compare_html", "angle_spectra", "overlap_change"]


def _figure(figsize):
    from matplotlib.figure import Figure  # deferred: matplotlib is heavy, only reports need it

    return Figure(figsize=figsize)


def angle_spectra(angles: dict, max_rows: int = 400):
    """Heatmaps of the principal angles (degrees) between A's and B's output flags (left) and
    input flags (right): one row per matrix, one column per angle index, one shared 0–90° scale."""
    names = [n for n, (o, i) in angles.items() if len(o) or len(i)][:max_rows]
    if not names:
        return None
    width = max(max(len(angles[n][0]), len(angles[n][1])) for n in names)
    fig = _figure((11, min(14.0, 2.0 + 0.12 * len(names))))
    axes = fig.subplots(1, 2, sharey=True)
    im = None
    for ax, side, title in ((axes[0], 0, "output flag (left singular vectors)"),
                            (axes[1], 1, "input flag (right singular vectors)")):
        grid = np.full((len(names), width), np.nan)
        for r, n in enumerate(names):
            a = np.asarray(angles[n][side], dtype=float)
            grid[r, : len(a)] = a
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=90,
                       interpolation="nearest", extent=(0.5, width + 0.5, len(names) - 0.5, -0.5))
        ax.set_title(f"A vs B: {title}", fontsize=10)
        ax.set_xlabel("angle index i (θ₁ ≤ … ≤ θ_k)")
    step = max(1, int(np.ceil(len(names) / 40)))
    ticks = list(range(0, len(names), step))
    axes[0].set_yticks(ticks)
    axes[0].set_yticklabels([names[t].replace(".weight", "")[-40:] for t in ticks], fontsize=6)
    fig.colorbar(im, ax=axes.tolist(), label="θ (degrees): 0 = same direction in A and B",
                 fraction=0.03, pad=0.02)
    return fig


def overlap_change(df):
    """Per matrix (network order): output/input flag overlap between A and B (shared 0–1 scale)
    and the relative change ‖B − A‖/‖A‖."""
    if df.empty:
        return None
    fig = _figure((11, 3.4))
    axes = fig.subplots(1, 2)
    x = np.arange(len(df))
    axes[0].plot(x, df["out_overlap"], ".", color="#1f77b4", label="output flag")
    axes[0].plot(x, df["in_overlap"], ".", color="#d62728", label="input flag")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("overlap mean cos²θ (1 = unrotated)")
    axes[0].legend(fontsize=8)
    axes[0].set_title("flag overlap between A and B", fontsize=10)
    axes[1].plot(x, df["rel_change"], ".", color="#2ca02c")
    axes[1].set_ylabel("‖B − A‖_F / ‖A‖_F")
    axes[1].set_title("relative weight change", fontsize=10)
    for ax in axes:
        ax.set_xlabel("matrix (network order)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def render_compare_html(df, angles: dict, name_a: str, name_b: str, skipped=(),
                        full: bool = True) -> str:
    """The compare report as one HTML string (``full`` False: an embeddable fragment)."""
    meta = (f"<p class=note>A = <b>{escape(name_a)}</b>, B = <b>{escape(name_b)}</b>: "
            f"{len(df)} matrices in both with the same shape"
            + (f"; {len(skipped)} skipped (missing in one or another shape)" if skipped else "")
            + ". Angles near 0° mean training kept that matrix's top-k singular directions; "
              "near 90° it replaced them. Random k-subspaces of ℝⁿ overlap k/n on average "
              "(eq. (4)).</p>")
    parts = [
        ("spectra", "Angle spectra per matrix",
         figure(angle_spectra(angles), "Principal angles (eq. (1)) between A's and B's top-k "
                "singular subspaces, per matrix (rows, network order).", "angle spectra")),
        ("overlap", "Overlap and change",
         figure(overlap_change(df), "Mean cos² (eq. (2)) of those angles and the relative "
                "weight change, per matrix.", "overlap and change")),
        ("table", "All matrices", table(df, scroll=len(df) > 20)),
    ]
    if skipped:
        parts.append(("skipped", "Skipped",
                      "<p class=note>" + escape(", ".join(skipped)) + "</p>"))
    return shell(f"flagalign compare · {name_a} vs {name_b}",
                 "How far training rotated each matrix's flags", parts,
                 f'<section id="run"><h2>Run</h2>{meta}</section>', full=full)
