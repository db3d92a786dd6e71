"""Planted tests of flagalign.diagnostics.heads (issue 5; docs/theory.md, eqs. (40)–(47))."""

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from flagalign.diagnostics.heads import head_overlap, heads_table
from flagalign.diagnostics.heads.bases import head_slices, layer_head_bases
from flagalign.diagnostics.heads.controls import random_init
from flagalign.errors import InputError
from flagalign.models.network import AttentionLayer, Network


def _net(rng, d=64, H=6, G=None, dh=8, L=1, scale=1.0):
    G = G or H
    arrays, atts = {}, []
    for l in range(L):
        arrays[f"q{l}"] = scale * rng.standard_normal((H * dh, d))
        arrays[f"k{l}"] = scale * rng.standard_normal((G * dh, d))
        arrays[f"v{l}"] = scale * rng.standard_normal((G * dh, d))
        arrays[f"o{l}"] = scale * rng.standard_normal((d, H * dh))
        atts.append(AttentionLayer(l, H, G, dh, d, f"q{l}", f"k{l}", f"v{l}", f"o{l}"))
    return arrays, atts


def _build(arrays, atts):
    return Network.from_arrays(arrays, pairs=[], attention=atts)


def test_identical_heads_overlap_one_and_distinct_pairs_not():
    rng = np.random.default_rng(1)
    arrays, atts = _net(rng)
    dh = 8
    V = arrays["v0"]
    # head 3 reads the same row space as head 1 through an invertible mixing
    V[3 * dh : 4 * dh] = rng.standard_normal((dh, dh)) @ V[dh : 2 * dh]
    res = head_overlap(_build(arrays, atts), "v")
    M = res.matrix(0)
    assert M[1, 3] == pytest.approx(1.0, abs=1e-12) and M[3, 1] == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(np.diag(M), 1.0)
    off = M[np.triu_indices(6, 1)]
    assert np.sum(off > 0.99) == 1  # only the planted pair
    assert res.layers.loc[0, "most_redundant"].startswith("1-3:1.00")


def test_orthogonal_heads_overlap_zero_and_effective_heads_equal_H():
    rng = np.random.default_rng(2)
    d, H, dh = 48, 6, 8
    Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
    arrays, atts = _net(rng, d=d, H=H, dh=dh)
    # head h reads coordinates [h*dh, (h+1)*dh) of a random orthonormal frame
    arrays["q0"] = np.concatenate(
        [rng.standard_normal((dh, dh)) @ Qr[:, h * dh : (h + 1) * dh].T for h in range(H)]
    )
    res = head_overlap(_build(arrays, atts), "q")
    M = res.matrix(0)
    assert np.max(np.abs(M - np.eye(H))) < 1e-12
    row = res.layers.iloc[0]
    assert row["effective_heads"] == pytest.approx(H, rel=1e-12)
    assert row["mean_overlap"] < 1e-12


def test_overlap_matches_scipy_principal_angles_and_geometry():
    from flagalign.geometry import subspace_overlap

    rng = np.random.default_rng(3)
    arrays, atts = _net(rng, d=40, H=5, dh=6)
    net = _build(arrays, atts)
    for sub, which in (("k", "k"), ("o", "o")):
        M = head_overlap(net, sub).matrix(0)
        sl = [net.head_slice(atts[0], which, h) for h in range(5)]
        sp = [s.T if which != "o" else s for s in sl]  # column spans in R^d
        for i in range(5):
            for j in range(5):
                ref = np.mean(np.cos(subspace_angles(sp[i], sp[j])) ** 2)
                assert M[i, j] == pytest.approx(ref, abs=1e-10)
                assert M[i, j] == pytest.approx(subspace_overlap(sp[i], sp[j]), abs=1e-10)


def test_random_heads_within_three_standard_errors_and_se_calibrated():
    """Gaussian heads: every layer's z = (mean - max(a,b)/n)/SE is |z| < 3, and over 60 layers
    the z's have mean ~0 and std ~1 (so the SE of eq. (42) is neither too small nor too big)."""
    rng = np.random.default_rng(4)
    arrays, atts = _net(rng, d=64, H=8, dh=8, L=60)
    res = head_overlap(_build(arrays, atts), "q")
    z = res.layers["z"].to_numpy()
    assert np.all(np.abs(z) < 3), z
    assert abs(z.mean()) < 3 / np.sqrt(60)
    assert 0.7 < z.std(ddof=1) < 1.3
    assert np.allclose(res.layers["baseline"], 8 / 64)
    eff, effb = res.layers["effective_heads"], res.layers["effective_baseline"]
    assert np.all(np.abs(eff / effb - 1) < 0.1)


def test_gqa_sharing_is_recognised_not_counted_as_redundancy():
    rng = np.random.default_rng(5)
    H, G = 9, 3
    arrays, atts = _net(rng, d=96, H=H, G=G, dh=8)
    net = _build(arrays, atts)
    res = head_overlap(net, "v")
    sh = res.shared_mask(0)
    groups = np.arange(H) // (H // G)
    assert np.array_equal(sh, (groups[:, None] == groups[None, :]) & ~np.eye(H, dtype=bool))
    M, Mraw = res.matrix(0), res.matrix(0, include_shared=True)
    assert np.all(np.isnan(M[sh])) and np.allclose(Mraw[sh], 1.0)
    row = res.layers.iloc[0]
    # statistics run over the G distinct kv subspaces: G(G-1)/2 pairs, labelled kv<g>
    assert row["shared_pairs"] == G * 3 and row["pairs"] == G * (G - 1) // 2
    assert row["units"] == G
    off = Mraw[~sh & ~np.eye(H, dtype=bool)]
    assert row["mean_overlap"] == pytest.approx(off.mean(), rel=1e-12)  # no shared 1.0's
    assert row["effective_heads"] <= G + 1e-9  # duplicated subspaces count once
    assert row["effective_baseline"] == pytest.approx(G / (1 + (G - 1) * 8 / 96))
    assert "1.00" not in row["most_redundant"] and row["most_redundant"].startswith("kv")
    # q and o subspaces are per query head: nothing shared
    assert not head_overlap(net, "q").shared_mask(0).any()
    assert not head_overlap(net, "ov").shared_mask(0).any()


def test_head_slices_equal_network_head_slice():
    rng = np.random.default_rng(6)
    arrays, atts = _net(rng, H=6, G=2)
    net = _build(arrays, atts)
    for which in "qkvo":
        for h, s in enumerate(head_slices(net, atts[0], which)):
            assert np.array_equal(s, net.head_slice(atts[0], which, h))


def test_qk_ov_equal_k_o_at_full_rank_and_topk_matches_dense():
    rng = np.random.default_rng(7)
    d, dh = 30, 5
    arrays, atts = _net(rng, d=d, H=3, dh=dh)
    net = _build(arrays, atts)
    a = atts[0]
    assert np.allclose(head_overlap(net, "qk").matrix(0), head_overlap(net, "k").matrix(0))
    assert np.allclose(head_overlap(net, "ov").matrix(0), head_overlap(net, "o").matrix(0))
    for sub, k in (("ov", 2), ("qk", 3)):
        bases = layer_head_bases(net, a, sub, k=k)
        for h, B in enumerate(bases):
            if sub == "ov":
                M = net.head_slice(a, "o", h) @ net.head_slice(a, "v", h)
                U = np.linalg.svd(M)[0][:, :k]
            else:
                M = net.head_slice(a, "q", h).T @ net.head_slice(a, "k", h)
                U = np.linalg.svd(M)[2][:k].T
            assert B.shape == (d, k)
            assert np.allclose(B @ B.T, U @ U.T, atol=1e-10)


def test_rank_deficient_head_is_truncated():
    rng = np.random.default_rng(8)
    arrays, atts = _net(rng, d=32, H=3, dh=4)
    arrays["v0"][4:8] = np.outer(rng.standard_normal(4), rng.standard_normal(32))  # rank 1
    res = head_overlap(_build(arrays, atts), "v")
    ranks = [B.shape[1] for B in layer_head_bases(_build(arrays, atts), atts[0], "v")]
    assert ranks == [4, 1, 4] and res.layers.loc[0, "min_rank"] == 1
    assert np.all(res.matrix(0) <= 1 + 1e-12)


def test_random_init_control_is_seeded_lazy_and_kaiming_uniform():
    rng = np.random.default_rng(9)
    arrays, atts = _net(rng, d=64, H=4, dh=16, scale=5.0)
    net = _build(arrays, atts)
    c1, c2, c3 = random_init(net, 0), random_init(net, 0), random_init(net, 1)
    for n in ("q0", "k0", "v0", "o0"):
        W = c1.matrix(n)
        assert W.shape == arrays[n].shape
        assert np.array_equal(W, c2.matrix(n)) and not np.array_equal(W, c3.matrix(n))
        bound = 1 / np.sqrt(W.shape[1])
        assert np.abs(W).max() <= bound
        # U(-b, b): variance b²/3 (4096 draws: 10 % is > 5 standard errors)
        assert W.var() == pytest.approx(bound**2 / 3, rel=0.1)
    assert [c1.matrix("v0")[0, 0]] == [random_init(net, 0).matrix("v0")[0, 0]]  # order-free
    assert c1.attention == net.attention and c1.pairs == []
    res = head_overlap(net, "v", control="random-init", seed=0)
    assert res.control is not None and "random-init" in res.control.network
    assert abs(res.control.layers.loc[0, "z"]) < 3
    tab = heads_table(res)
    assert list(tab["model"]) == ["trained", "random-init"]
    assert "ratio_random_init" in res.to_markdown()


def test_layers_filter_save_and_errors(tmp_path):
    rng = np.random.default_rng(10)
    arrays, atts = _net(rng, L=3)
    net = _build(arrays, atts)
    res = head_overlap(net, "o", layers=[0, 2], control="random-init")
    assert list(res.layers["layer"]) == [0, 2]
    files = res.save(tmp_path)
    names = {f.name for f in files}
    assert {"heads_layers.csv", "heads_pairs.csv", "heads_layers_random_init.csv",
            "heads_overlap_o.png", "heads_redundancy_o.png"} <= names
    assert all(f.stat().st_size > 0 for f in files)
    assert len(res.pairs()) == 2 * 15
    with pytest.raises(InputError):
        head_overlap(net, "x")
    with pytest.raises(InputError):
        head_overlap(net, "v", layers=[7])
    with pytest.raises(InputError):
        head_overlap(net, "v", control="shuffle")
    with pytest.raises(InputError):
        head_overlap(Network.from_arrays({"a": np.eye(3)}), "v")
    with pytest.raises(InputError):
        res.matrix(1)


def test_mixed_heads_control_keeps_layer_gram_and_destroys_head_partition():
    from flagalign.diagnostics.heads.controls import mixed_heads

    rng = np.random.default_rng(12)
    d, H, dh = 48, 6, 4
    arrays, atts = _net(rng, d=d, H=H, dh=dh)
    # an anisotropic layer: every head reads mostly the same 8 directions, plus head-specific
    # planted duplication of heads 0 and 1
    scale = np.ones(d)
    scale[:8] = 10.0
    arrays["v0"] = arrays["v0"] * scale
    arrays["v0"][dh : 2 * dh] = arrays["v0"][:dh][::-1]
    net = _build(arrays, atts)
    mix = mixed_heads(net, seed=3)
    for n in ("q0", "k0", "v0"):
        W, Wm = net.matrix(n), mix.matrix(n)
        assert np.allclose(Wm.T @ Wm, W.T @ W)  # the layer's read Gram is kept exactly
    Wo, Wom = net.matrix("o0"), mix.matrix("o0")
    assert np.allclose(Wom @ Wom.T, Wo @ Wo.T)
    assert np.array_equal(mix.matrix("v0"), mixed_heads(net, seed=3).matrix("v0"))
    res = head_overlap(net, "v", control="mixed-heads")
    assert res.control_kind == "mixed-heads" and "ratio_mixed_heads" in res.to_markdown()
    assert res.matrix(0)[0, 1] == pytest.approx(1.0, abs=1e-12)
    assert res.control.matrix(0)[0, 1] < 0.9  # the planted duplicate does not survive mixing
    # the shared anisotropy does: both trained and mixed are far above the Haar baseline
    assert res.control.layers.loc[0, "ratio"] > 2
