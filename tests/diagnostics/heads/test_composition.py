"""Composition scores (docs/theory.md, eqs. (48), (49)) vs the dense TransformerLens formula."""

import numpy as np
import pytest

from flagalign.diagnostics.heads.composition import composition, composition_baseline
from flagalign.errors import InputError
from flagalign.models.network import AttentionLayer, Network


def _net(seed, d=32, H=4, G=None, dh=4, L=3):
    rng = np.random.default_rng(seed)
    G = G or H
    arrays, atts = {}, []
    for l in range(L):
        arrays[f"q{l}"] = rng.standard_normal((H * dh, d))
        arrays[f"k{l}"] = rng.standard_normal((G * dh, d))
        arrays[f"v{l}"] = rng.standard_normal((G * dh, d))
        arrays[f"o{l}"] = rng.standard_normal((d, H * dh))
        atts.append(AttentionLayer(l, H, G, dh, d, f"q{l}", f"k{l}", f"v{l}", f"o{l}"))
    return Network.from_arrays(arrays, pairs=[], attention=atts), atts


def _dense(net, atts, kind):
    """TransformerLens orientation: OV = W_V W_O, QK = W_Q W_Kᵀ (row-vector convention);
    q: ‖OV₁ QK₂‖, k: ‖OV₁ QK₂ᵀ‖, v: ‖OV₁ OV₂‖, each over the product of norms."""
    out = {}
    for i, a1 in enumerate(atts):
        for a2 in atts[i + 1 :]:
            for h1 in range(a1.heads):
                OV1 = (net.head_slice(a1, "o", h1) @ net.head_slice(a1, "v", h1)).T
                for h2 in range(a2.heads):
                    QK2 = (net.head_slice(a2, "q", h2).T @ net.head_slice(a2, "k", h2))
                    OV2 = (net.head_slice(a2, "o", h2) @ net.head_slice(a2, "v", h2)).T
                    R = {"q": QK2, "k": QK2.T, "v": OV2}[kind]
                    out[(a1.layer, h1, a2.layer, h2)] = np.linalg.norm(OV1 @ R) / (
                        np.linalg.norm(OV1) * np.linalg.norm(R))
    return out


@pytest.mark.parametrize("kind", ["q", "k", "v"])
@pytest.mark.parametrize("G", [None, 2])
def test_matches_dense_definition_incl_gqa(kind, G):
    net, atts = _net(1, G=G)
    c = composition(net, kind)
    ref = _dense(net, atts, kind)
    assert len(c.scores) == len(ref) == 3 * 16
    for r in c.scores.itertuples():
        assert r.score == pytest.approx(ref[(r.src_layer, r.src_head, r.dst_layer, r.dst_head)],
                                        rel=1e-10)
    assert ((c.scores.score > 0) & (c.scores.score <= 1)).all()


def test_chunked_equals_unchunked():
    net, _ = _net(2, L=5)
    a = composition(net, "v").scores
    b = composition(net, "v", max_bytes=1).scores  # one source layer per block
    assert len(a) == len(b) == 10 * 16
    m = a.merge(b, on=["src_layer", "src_head", "dst_layer", "dst_head"])
    assert np.allclose(m.score_x, m.score_y, rtol=1e-12)


def test_planted_orthogonal_write_and_read_compose_to_zero():
    net, atts = _net(3, d=24, L=2)
    arrays = {n: net.matrix(n).copy() for n in net.matrices}
    # layer 0 writes only into coordinates 0..11, layer 1 reads only 12..23
    arrays["o0"][12:] = 0.0
    for w in ("q1", "k1", "v1"):
        arrays[w][:, :12] = 0.0
    net2 = Network.from_arrays(arrays, pairs=[], attention=atts)
    for kind in "qkv":
        assert composition(net2, kind).scores.score.abs().max() < 1e-12


def test_baseline_rms_is_one_over_sqrt_d_and_ratio_near_one_for_random():
    d, dh = 64, 8
    mean, std = composition_baseline(d, dh, "q", heads=16, draws=3)
    # E[score²] = 1/d exactly (rotation invariance); score concentrates so mean ≈ rms
    assert mean == pytest.approx(1 / np.sqrt(d), rel=0.05)
    assert 0 < std < mean
    net, _ = _net(4, d=d, H=6, dh=dh, L=3)
    c = composition(net, "k")
    assert np.all(np.abs(c.layers["ratio"] - 1) < 0.15)
    assert set(c.baseline) == {(d, dh, dh)}


def test_save_and_errors(tmp_path):
    net, _ = _net(5)
    c = composition(net, "q", layers=[0, 2])
    assert set(zip(c.layers.src_layer, c.layers.dst_layer)) == {(0, 2)}
    assert c.matrix(0, 2).shape == (4, 4)
    files = c.save(tmp_path)
    assert {f.name for f in files} == {"composition_q.csv", "composition_q_layers.csv",
                                       "composition_q.png"}
    with pytest.raises(InputError):
        composition(net, "x")
    with pytest.raises(InputError):
        composition(net, "q", layers=[1])
    with pytest.raises(InputError):
        c.matrix(2, 0)


def test_rotation_null_keeps_norms_and_has_rms_one_over_sqrt_d():
    d = 48
    net, _ = _net(6, d=d, H=6, dh=6, L=4)
    c = composition(net, "q", null="rotation")
    plain = composition(net, "q")
    assert np.allclose(c.scores.score, plain.scores.score)  # the null does not touch scores
    assert {"null_mean", "null_std", "null_ratio", "frac_above_null_3sd"} <= set(c.layers)
    # E[null²] = 1/d exactly (eq. (49)); 6·36 = 216 correlated draws: allow 10 %
    assert np.sqrt(np.mean(c.scores.null_score**2)) == pytest.approx(1 / np.sqrt(d), rel=0.1)
    assert not np.allclose(c.scores.null_score, c.scores.score)
    with pytest.raises(InputError):
        composition(net, "q", null="shuffle")
