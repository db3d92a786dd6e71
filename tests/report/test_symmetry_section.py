"""The report's symmetry / gauge / verdict section (docs/theory.md §7)."""

import numpy as np

import flagalign
from flagalign.models.network import Network, Pair
from flagalign.report import render_html
from flagalign.report.symmetry_section import symmetry_table


def _net():
    rng = np.random.default_rng(0)
    a = {"w1": rng.normal(size=(16, 10)), "w2": rng.normal(size=(12, 16)), "w3": rng.normal(size=(6, 12))}
    pairs = [Pair("w1", "w2", "sequential", 16, symmetry="pos-diag×perm"),
             Pair("w2", "w3", "sequential", 12, symmetry="GL")]  # fmt: skip
    return Network.from_arrays(a, pairs)


def test_section_flags_gauge_dependent_pairs():
    an = flagalign.analyze(_net(), progress=False, heads=False)
    t = symmetry_table(an.pairs)
    assert t["pairs"].sum() == 2 and t["gauge-dependent"].sum() == 2
    html = render_html(an)
    assert "Symmetry, gauge and verdicts" in html and "gauge-dependent" in html
    assert "--gauge balanced" in html
    bal = flagalign.analyze(_net(), gauge="balanced", progress=False, heads=False)
    # balanced: the pos-diag layer is fixed, but its reader w2 also writes the GL layer
    assert symmetry_table(bal.pairs)["gauge-dependent"].sum() == 2
    assert "Gauge: <b>balanced</b>" in render_html(bal)
