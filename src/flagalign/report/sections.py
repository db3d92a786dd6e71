"""The built-in sections of the report (registered on import; see :mod:`flagalign.report`)."""

from __future__ import annotations

from html import escape

import pandas as pd

from .registry import SECTIONS, Section
from . import figures as F
from .html import figure, table
from . import heads_section as _heads  # noqa: F401 - registers the attention-heads section
from . import position_section as _position  # noqa: F401 - registers the flag-position section
from . import symmetry_section as _symmetry  # noqa: F401 - registers the symmetry/gauge section

_ROW_COLS = [
    "pair", "kind", "depth", "head", "dim", "k", "overlap_ratio", "commutator_ratio", "overlap",
    "baseline", "angle_median_deg", "intersection_dim", "lost_dims", "commutator", "imbalance",
    "symmetry", "gauge_dependent", "overlap_verdict",
]


def _ok(a):
    return a.pairs[a.pairs["status"] == "ok"]


def _overlap(a):
    return figure(
        F.overlap_vs_depth(a),
        "overlap_ratio against depth: the subspace overlap (mean cos² of the principal angles "
        "between the top-k output flag of the writer and the top-k input flag of the reader; "
        "docs/theory.md eq. (2)) divided by its chance value k/n (eq. (4)), the number the "
        "table and pairs.csv headline. Dashed: chance (1); the ceiling is n/k (identical "
        "subspaces). One y-scale for all panels.",
        "overlap vs depth",
    )


def _angles(a):
    return figure(
        F.angle_heatmaps(a),
        "Principal angles θ₁ ≤ … ≤ θ_k (eq. (1)) of every pair: one row per pair (by depth), one "
        "column per angle index. Dark = aligned directions, yellow = orthogonal.",
        "principal angles",
    )


def _flags(a):
    return figure(
        F.flag_heatmaps(a),
        "Flag tables (eq. (6)) of the most and the least aligned pair (by overlap_ratio): "
        "cell (i, j) is the fraction of the smaller of the top-i writer / top-j reader subspaces "
        "that lies in the other. 1 along the diagonal = nested flags; a random pair gives "
        "≈ max(i, j)/n.",
        "flag tables",
    )


def _comm(a):
    return figure(
        F.commutator_imbalance_vs_depth(a),
        "Left: commutator_ratio, the Gram commutator (eq. (10)) over its value c⁰ for a "
        "random relative eigenbasis (eq. (50)): 1 = chance, 0 when WWᵀ and W'ᵀW' share an "
        "eigenbasis. Right: "
        "relative norm of the imbalance D = W'ᵀW' − W̃W̃ᵀ (eq. (11)), 0 for a balanced pair. "
        "Lines: per-depth medians per kind.",
        "commutator and imbalance",
    )


def _by_kind(a):
    bk = a.summary.get("by_kind") or {}
    if not bk:
        return None
    df = pd.DataFrame([{"kind": k, **v} for k, v in bk.items()])
    ok = _ok(a)
    if "commutator_ratio" in ok:  # the second headline ratio, next to overlap_ratio
        med = ok.groupby("kind")["commutator_ratio"].median()
        df.insert(df.columns.get_loc("median_overlap_ratio") + 1, "median_commutator_ratio",
                  df["kind"].map(med))
    df.columns = [c.replace("median_", "med. ").replace("mean_", "mean ").replace("total_", "Σ ")
                  .replace("_", " ") for c in df.columns]
    return table(df) + (
        "<p class=note>Medians over the ok pairs of each kind; overlap ratio = overlap / random "
        "baseline and commutator ratio = commutator / its random-eigenbasis null (1 = chance "
        "level for both). Click a column header to sort.</p>"
    )


def _extremes(a):
    ok = _ok(a)
    if ok.empty:
        return None
    r = ok.sort_values("overlap_ratio", ascending=False)
    n = min(10, len(r))
    cols = [c for c in _ROW_COLS if c in r.columns]  # tables saved before a column existed
    return (
        "<p class=note>Most aligned (highest overlap / baseline):</p>" + table(r.head(n), cols)
        + "<p class=note>Least aligned:</p>" + table(r.tail(n).iloc[::-1], cols)
    )


def _failed(a):
    bad = a.pairs[a.pairs["status"] != "ok"]
    if bad.empty:
        return None
    return (
        f"<p class=bad>{len(bad)} pair(s) could not be measured; their values are NaN in "
        "pairs.csv.</p>" + table(bad, ["pair", "kind", "status"], scroll=len(bad) > 20)
    )


def _all(a):
    n = len(a.pairs)
    return (
        f"<details><summary>all {n} pairs (the same rows as pairs.csv; see docs/schema.md)"
        f"</summary>{table(a.pairs, list(a.pairs.columns), scroll=True)}</details>"
        f"<p class=note>{escape(a.network.get('description', ''))}</p>".replace("\n", "<br>")
        if n
        else None
    )


for _s in (
    Section("overlap", "Overlap vs depth", _overlap, 20),
    Section("angles", "Principal angles", _angles, 30),
    Section("flags", "Flag tables", _flags, 40),
    Section("commutator", "Commutator and imbalance", _comm, 50),
    Section("kinds", "Summary by kind", _by_kind, 60),
    Section("extremes", "Most and least aligned pairs", _extremes, 70),
    Section("failed", "Pairs not measured", _failed, 80),
    Section("pairs", "All pairs", _all, 90),
):
    SECTIONS.setdefault(_s.key, _s)  # a section registered earlier under the same key wins
