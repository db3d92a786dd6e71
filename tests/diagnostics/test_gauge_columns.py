"""diagnostics.gauge_columns: the symmetry / gauge / verdict columns of analyze."""

import numpy as np

from flagalign.diagnostics.gauge_columns import GAUGE_COLUMNS, empty_gauge_columns, gauge_columns, prepare_gauge
from flagalign.geometry import pair_alignment
from flagalign.geometry.nulls import commutator_null
from flagalign.models.network import Network, Pair


def _net(rng):
    a = {"w1": rng.normal(size=(16, 10)), "w2": rng.normal(size=(12, 16)), "w3": rng.normal(size=(12, 12)),
         "v": rng.normal(size=(12, 20)), "o": rng.normal(size=(9, 12))}
    pairs = [Pair("w1", "w2", "sequential", 16, symmetry="pos-diag×perm"),
             Pair("w2", "w3", "sequential", 12, symmetry="perm"),
             Pair("v", "o", "sequential", 12, symmetry="GL")]  # fmt: skip
    return Network.from_arrays(a, pairs)


def test_columns_stored_and_balanced():
    net = _net(np.random.default_rng(0))
    for gauge in (None, "balanced"):
        meas, plan, g = prepare_gauge(net, gauge)
        for p in net.pairs:
            W, Wn = meas.matrix(p.left), meas.matrix(p.right)
            pa = pair_alignment(W, Wn, k=3, symmetry=p.symmetry)
            null = commutator_null(np.linalg.svd(W, compute_uv=False) ** 2,
                                   np.linalg.svd(Wn, compute_uv=False) ** 2, p.dim, samples=64)  # fmt: skip
            row = gauge_columns(net, p, g, plan, W=W, Wn=Wn, bias=None, k=3, overlap=pa.overlap,
                                commutator=pa.commutator, commutator_null=null, imbalance=pa.imbalance.relative,
                                rtol_w=1e-15, rtol_n=1e-15)  # fmt: skip
            assert tuple(row) == GAUGE_COLUMNS
            assert row["symmetry"] == p.symmetry and row["gauge"] == (gauge or "stored")
            if p.symmetry == "GL":
                assert row["gauge_dependent"] and row["product_rank"] == 9
                assert np.isclose(row["product_sv_max"], np.linalg.norm(Wn @ W, 2))
            else:  # w2 -> w3 (perm) reads from w2, whose input layer is pos-diag: fixed when balanced
                assert row["gauge_dependent"] == (gauge is None)
                assert np.isnan(row["product_rank"])
            assert row["overlap_verdict"] in ("aligned", "chance", "anti-aligned")
    e = empty_gauge_columns(net, net.pairs[0], None)
    assert e["overlap_verdict"] == "n/a" and e["gauge_dependent"]


def test_pair_columns_scale_free_near_the_float64_range():
    from flagalign.diagnostics.gauge_columns import pair_columns

    rng = np.random.default_rng(1)
    W, Wn = rng.normal(size=(12, 9)), rng.normal(size=(7, 12))
    p = Pair("a", "b", "sequential", 12, symmetry="GL")
    pa = pair_alignment(W, Wn, k=3)
    kw = dict(k=3, overlap=pa.overlap, commutator=pa.commutator, imbalance=pa.imbalance.relative,
              rtol_w=1e-15, rtol_n=1e-15, bias=None)  # fmt: skip
    ref = pair_columns(p, W=W, Wn=Wn, **kw)
    big = pair_columns(p, W=W * 1e300, Wn=Wn * 1e300, **kw)
    for c, v in ref.items():
        if isinstance(v, float) and c != "product_sv_max":
            assert np.isclose(big[c], v, rtol=1e-9), c
        elif c != "product_sv_max":
            assert big[c] == v, c
    assert big["product_sv_max"] == np.inf  # σ₁ ≈ 1e600: honestly beyond float64


def test_moments_from_factors_equal_the_gram_moments():
    """The per-matrix moments reused from factors (Gram, tall SVD, full spectrum) give the same
    (tr Ã, ‖Ã‖²) as forming the Gram of the scaled [W, b] (eq. (78)), bias and extreme scales
    included."""
    from flagalign.diagnostics.gauge_columns import _exponent, _scaled_moments, factor_moments
    from flagalign.geometry import top_subspaces
    from flagalign.geometry.gram import gram_factors, tall_svd_factors
    from flagalign.geometry.nulls import gram_moments

    rng = np.random.default_rng(1)
    for scale in (1.0, 2.0**-300, 2.0**300, 3e-7):
        W = scale * rng.normal(size=(40, 12))
        b = scale * rng.normal(size=40)
        facts = [gram_factors(W, 3, "U", 1e-10), tall_svd_factors(W, 3, "U", 1e-10),
                 top_subspaces(W, 12, method="exact")]  # fmt: skip
        for f in facts:
            mom = factor_moments(f, W.shape)
            assert mom is not None
            for bias in (None, b):
                e = _exponent(W, bias) + 3  # a common exponent larger than W's own
                ref = gram_moments(np.ldexp(W, -e), None if bias is None else np.ldexp(bias, -e))
                got = _scaled_moments(W, bias, e, mom, _exponent(W, bias))
                np.testing.assert_allclose(got, ref, rtol=1e-12)
    # a randomized (truncated) factor has no full spectrum: the caller forms the Gram
    assert factor_moments(top_subspaces(W, 3, method="randomized"), W.shape) is None
