"""analyze explains a pair whose *folded* matrix is zero (zero-initialised residual BatchNorm, γ = 0)
and measures the stored weights with ``fold_norms=False`` (``flagalign analyze --raw``)."""

import pytest

torch = pytest.importorskip("torch")

import flagalign as fa  # noqa: E402


def test_zero_gamma_rows_say_folded_and_raw_measures_them():
    from timm_like import ResNet18Like  # tests/models/timm_like.py

    torch.manual_seed(0)
    m = ResNet18Like(zero_init_residual=True).eval()
    folded = fa.analyze(m, progress=False, heads=False)
    bad = folded.pairs[folded.pairs["status"] != "ok"]
    assert len(bad) > 0
    assert bad["status"].str.contains("folded map").all()
    assert bad["status"].str.contains("fold_norms=False").all()
    raw = fa.analyze(m, progress=False, heads=False, fold_norms=False)
    assert (raw.pairs["status"] == "ok").all()
    assert len(raw.pairs) == len(folded.pairs)
