"""The report's "Relative position of the flags" section (docs/theory.md, eq. (65)).

For the most and the least aligned pair (by overlap / baseline) it draws the soft Schubert matrix
of the writer's output flag against the reader's input flag, cut at their stable spectral gaps
(the ``flag_type_*`` columns of pairs.csv): cell (i, j) says how much of the writer's piece i lies
in the reader's piece j. The matrix is rebuilt from the pair's flag table (eq. (6), kept in
``Analysis.flag_tables``) and the two types, by
:func:`flagalign.geometry.pair_flags.piece_overlaps_from_table`; nothing is recomputed from the
weights. Registered with :func:`flagalign.report.register_section` on import (:mod:`.sections`
imports this module).
"""

from __future__ import annotations

import textwrap
from html import escape

import numpy as np

from ..geometry.pair_flags import parse_flag_type, piece_overlaps_from_table
from .html import figure, short_pair, table
from .registry import Section, register_section

__all__ = ["position_matrix", "position_figure", "extreme_pairs"]

_COLS = ["pair (short)", "overlap_ratio", "flag_type_left", "flag_type_right", "flag_distance",
         "flag_distance_baseline", "soft_relative_position", "soft_relative_position_baseline"]


def position_matrix(analysis, pair: str):
    """(M, sizes_left, sizes_right) of one pair: M[i, j] = ‖VᵢᵀWⱼ‖²_F over the pieces of the two
    gap-chosen flags, the last row / column being the rest of ℝⁿ (eq. (65)); None when the pair
    has no flag table or a trivial flag."""
    rows = analysis.pairs[analysis.pairs["pair"] == pair]
    tab = analysis.flag_tables.get(pair)
    if rows.empty or tab is None:
        return None
    row = rows.iloc[0]
    tl, tr = row.get("flag_type_left"), row.get("flag_type_right")
    if not isinstance(tl, str) or not isinstance(tr, str):
        return None
    d, e = parse_flag_type(tl), parse_flag_type(tr)
    if not d or not e:
        return None
    n = int(row["dim"])
    m = piece_overlaps_from_table(tab, d, e, n)
    return m, np.diff((0,) + d + (n,)), np.diff((0,) + e + (n,))


def extreme_pairs(analysis) -> list[str]:
    """The most and the least aligned ok pair (by ``overlap_ratio``) whose flags can be drawn."""
    df = analysis.pairs
    ok = df[(df["status"] == "ok") & df["pair"].isin(list(analysis.flag_tables))]
    ranked = ok.sort_values("overlap_ratio", ascending=False)["pair"].tolist()
    most = next((p for p in ranked if position_matrix(analysis, p) is not None), None)
    least = next((p for p in ranked[::-1] if position_matrix(analysis, p) is not None), None)
    return list(dict.fromkeys(p for p in (most, least) if p is not None))


def _fraction(m, sl, sr):
    """M[i, j] / min(nᵢ, mⱼ): the fraction of the smaller piece that lies in the other, ∈ [0, 1]."""
    return np.clip(m / np.minimum.outer(sl, sr).astype(np.float64), 0.0, 1.0)


def position_figure(analysis, pairs=None):
    """Heatmaps of :func:`position_matrix` (as fractions of the smaller piece) for ``pairs``
    (default :func:`extreme_pairs`); None when there is nothing to draw."""
    pairs = extreme_pairs(analysis) if pairs is None else list(pairs)
    mats = [(p, position_matrix(analysis, p)) for p in pairs]
    mats = [(p, x) for p, x in mats if x is not None]
    if not mats:
        return None
    from matplotlib.colors import PowerNorm  # deferred: matplotlib is heavy (report only)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8 * len(mats) + 0.9, 4.6))
    axes = fig.subplots(1, len(mats), squeeze=False)
    im = None
    for ax, (name, (m, sl, sr)) in zip(axes[0], mats):
        frac = _fraction(m, sl, sr)
        p, q = frac.shape
        im = ax.imshow(frac, cmap="magma_r", norm=PowerNorm(gamma=0.5, vmin=0, vmax=1),
                       interpolation="nearest")
        row = analysis.pairs[analysis.pairs["pair"] == name].iloc[0]
        label = "\n".join(textwrap.wrap(short_pair(row["left"], row["right"]), 50))
        ax.set_title(f"{label}\nsoft position {row['soft_relative_position']:.2f} "
                     f"(random {row['soft_relative_position_baseline']:.2f})", fontsize=8.5)
        ax.set_xlabel(f"reader's input-flag pieces j (last: rest, dim {sr[-1]})", fontsize=8.5)
        ax.set_ylabel(f"writer's output-flag pieces i (last: rest, dim {sl[-1]})", fontsize=8.5)
        for axis, size in ((ax.xaxis, q), (ax.yaxis, p)):
            ticks = list(range(0, size - 1, max(1, (size - 1) // 8))) + [size - 1]
            axis.set_ticks(sorted(set(ticks)))
            ticks = sorted(set(ticks))
            axis.set_ticklabels(["rest" if t == size - 1 else str(t + 1) for t in ticks],
                                fontsize=7.5)
        ax.plot([-0.5, min(p, q) - 0.5], [-0.5, min(p, q) - 0.5], color="#2563eb", lw=0.6, ls=":")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, pad=0.02,
                 label="share of the smaller piece lying in the other (square-root scale)")
    return fig


_CAPTION = (
    "How the writer's output flag sits against the reader's input flag (soft relative position, "
    "docs/theory.md eq. (65)) for the most and the least aligned pair (by overlap / baseline). "
    "Each flag is cut into pieces at the gaps of its singular values that the stored precision "
    "can resolve (flag_type_left / flag_type_right in pairs.csv; a piece of several directions "
    "is a cluster of near-equal singular values whose directions cannot be told apart). Rows: "
    "the writer's pieces by decreasing singular value; columns: the reader's; the last row and "
    "column (\u201crest\u201d) are everything beyond the flag. Cell (i, j) is the share of the "
    "smaller of the two pieces that lies in the other. <b>Identity</b> \u2014 the reader reads "
    "exactly the directions the writer writes, in the same order of importance \u2014 would put "
    "all the weight on the diagonal (dotted line): dark diagonal cells, pale everywhere else (for "
    "flags of different types, a staircase from the top-left corner). Weight just off the "
    "diagonal means the same directions in a slightly different order; weight spread evenly, "
    "with the \u201crest\u201d column dark, is what two unrelated random layers give (each cell "
    "\u2248 its size / n). The number above each panel summarises the picture: 0 = identity, 1 = "
    "the reversed order, next to its value for random flags."
)


def _render(analysis):
    if "flag_type_left" not in analysis.pairs.columns or not analysis.flag_tables:
        return None
    pairs = extreme_pairs(analysis)
    fig = position_figure(analysis, pairs)
    if fig is None:
        ok = analysis.pairs[analysis.pairs["status"] == "ok"]
        if ok.empty:
            return None
        return ("<p class=note>No measured pair has a stable flag on both sides: every "
                "flag_type is () or the flag tables were not kept. The gaps between the top "
                "singular values are below what the stored precision resolves (eq. (63); e.g. "
                "block-quantized weights), so there is no relative position to draw.</p>")
    df = analysis.pairs[analysis.pairs["pair"].isin(pairs)].copy()
    df["pair (short)"] = [short_pair(a, b) for a, b in zip(df["left"], df["right"])]
    df = df.set_index("pair").loc[pairs].reset_index()
    return figure(fig, _CAPTION, "relative position of the flags") + table(df, _COLS) + (
        "<p class=note>" + escape(
            "flag_distance: chordal distance of the two flags on the dims both types contain "
            "(eq. (66); 0 = the same flag), next to its random-flag value. See docs/schema.md, "
            "\u201cReading the flag columns\u201d.") + "</p>")


register_section(Section("position", "Relative position of the flags", _render, order=45))
