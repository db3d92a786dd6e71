"""Report section "Symmetry, gauge and verdicts" (docs/theory.md §7, eqs. (70)–(79)).

Per kind and symmetry group: how many pairs, how many have gauge-dependent angle-type numbers
in the gauge the run measured, and the verdict counts of the three scores against their nulls.
Left out when the pairs table has no ``symmetry`` column (an analysis saved before it existed).
"""

from __future__ import annotations

from html import escape

import pandas as pd

from .html import table

from .registry import Section, register_section

__all__ = ["symmetry_table"]

_VERDICTS = ("overlap_verdict", "commutator_verdict", "imbalance_verdict")


def symmetry_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (kind, symmetry): pairs, gauge-dependent pairs, and verdict counts
    (aligned / chance / anti-aligned / n/a, as ``a/c/x/na``) per score."""
    rows = []
    for (kind, sym), g in pairs.groupby(["kind", "symmetry"], sort=False):
        row = {"kind": kind, "symmetry": sym, "pairs": int(len(g)),
               "gauge-dependent": int(g["gauge_dependent"].fillna(True).astype(bool).sum())}  # fmt: skip
        for c in _VERDICTS:
            if c in g:
                v = g[c].fillna("n/a").value_counts()
                row[c.replace("_verdict", "")] = "/".join(
                    str(int(v.get(x, 0))) for x in ("aligned", "chance", "anti-aligned", "n/a")
                )
        rows.append(row)
    return pd.DataFrame(rows)


def _render(a):
    df = a.pairs
    if "symmetry" not in df.columns or df.empty:
        return None
    gauge = str(df["gauge"].iloc[0]) if "gauge" in df.columns else "stored"
    n_dep = int(df["gauge_dependent"].fillna(True).astype(bool).sum()) if "gauge_dependent" in df else len(df)
    note = (
        f"<p class=note>Gauge: <b>{escape(gauge)}</b>. {n_dep} of {len(df)} pairs have "
        "<b>gauge-dependent</b> angles, overlap, intersection_dim and commutator (column "
        "<code>gauge_dependent</code>): a hidden-layer symmetry of the network (column "
        "<code>symmetry</code>: GL, O, nonzero-/pos-diag×perm, signed-perm, perm; eq. (70)) "
        "changes them without changing the function, so they describe the stored "
        "parameterization, not the network (eq. (75)). lost_dims and, for GL pairs, "
        "product_rank / product_sv_max are invariant. "
        + ("Run with <code>--gauge balanced</code> to measure the canonical representative "
           "(eqs. (73)–(74)). " if gauge != "balanced" else "")
        + "Verdicts (aligned / chance / anti-aligned / n/a) compare each score with its null "
        "at |z| &gt; 3 (eqs. (77)–(79)).</p>"
    )
    return note + table(symmetry_table(df))


register_section(Section("symmetry", "Symmetry, gauge and verdicts", _render, order=65))
