"""Report conventions: fixed kind colours, sortable tables with inline script only, ratio-to-null
figures, head indices on head heatmaps."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from flagalign.report.figures import KIND_COLORS, kind_colors  # noqa: E402
from flagalign.report.html import SORT_JS, table  # noqa: E402


def test_kind_colours_do_not_depend_on_which_kinds_are_present():
    alone = kind_colors(["ov"])
    together = kind_colors(["mlp", "ov", "residual", "conv"])
    assert alone["ov"] == together["ov"] == KIND_COLORS["ov"]
    assert len(set(together.values())) == 4
    assert kind_colors(["custom"])["custom"] == kind_colors(["mlp", "custom"])["custom"]


def test_tables_sort_numerically_with_an_inline_script():
    import pandas as pd

    html = table(pd.DataFrame({"pair": ["a", "b"], "overlap_ratio": [2.5, 10.0]}))
    assert 'data-v="10.0"' in html and "<thead>" in html
    assert "addEventListener('click'" in SORT_JS and "http" not in SORT_JS


def test_head_heatmaps_have_head_indices():
    import pandas as pd

    from flagalign.report.heads_figures import heatmaps_figure

    class _Res:  # the attributes heatmaps_figure reads
        network, subspace = "toy", "v"
        matrices = {0: None, 1: None}
        layers = pd.DataFrame({"baseline": [0.25, 0.25]})

        def matrix(self, layer):
            return np.eye(12) * 0.5 + 0.25

    fig = heatmaps_figure(_Res())
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0] == "0" and labels[-1] in {"10", "11"}


def test_overlap_figure_is_the_ratio_with_a_shared_scale(tmp_path):
    import flagalign

    r = np.random.default_rng(0)
    p = tmp_path / "m.npz"
    np.savez(p, **{"a.0.weight": r.standard_normal((32, 16)), "a.1.weight": r.standard_normal((32, 32)),
                   "a.2.weight": r.standard_normal((8, 32))})
    an = flagalign.analyze(str(p), progress=False)
    fig = an.plot("overlap")
    ax = fig.axes[0]
    assert "overlap_ratio" in ax.get_ylabel()
    ys = [l.get_ydata() for l in ax.get_lines()]
    assert any(np.allclose(y, 1.0) for y in ys)  # the chance line
    assert re.search("commutator_ratio", an.plot("commutator").axes[0].get_ylabel())
