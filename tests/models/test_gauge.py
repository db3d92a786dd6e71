"""gauge="balanced" on whole networks (docs/theory.md eqs. (73)–(75)): planted group elements
on every hidden layer at once leave every balanced invariant unchanged to 1e-10, and change the
stored-gauge numbers, whose pairs are flagged gauge-dependent."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from flagalign import load
from flagalign.errors import InputError
from flagalign.geometry import pair_alignment
from flagalign.models.gauge import balanced_network, gauge_plan, pair_gauge_dependent
from flagalign.models.network import Network, Pair
from flagalign.models.symmetry import GL, NONZERO_DIAG, POS_DIAG
from flagalign.models.synthetic import llama_tensors

torch = pytest.importorskip("torch")
nn = torch.nn


def _measure(net, p):
    return pair_alignment(net.matrix(p.left), net.matrix(p.right), bias=net.bias(p.left), k=3,
                          symmetry=p.symmetry)  # fmt: skip


def _invariants(a):
    """Every number reported for a pair (GL pairs: its GL invariants only)."""
    out = [a.imbalance.relative, float(a.lost_dims)]
    if a.symmetry == GL:
        return np.r_[out, a.product_sv / a.product_sv[0], a.product_rank]
    return np.r_[out, a.angles, a.overlap, a.intersection_dim, a.commutator, a.flag_table.ravel(),
                 a.imbalance.diag / a.imbalance.full, a.imbalance.offdiag / a.imbalance.full]  # fmt: skip


def _compare(n1, n2):
    b1, b2 = balanced_network(n1), balanced_network(n2)
    bal, raw = 0.0, 0.0
    for p in n1.pairs:
        x, y = _invariants(_measure(b1, p)), _invariants(_measure(b2, p))
        bal = max(bal, float(np.max(np.abs(x - y))))
        o, r = _measure(n1, p), _measure(n2, p)
        raw = max(raw, float(np.max(np.abs(o.angles - r.angles))))
    return bal, raw


def _scaled_copy(m, rng, signs=False):
    m2 = copy.deepcopy(m)
    params = [layer for layer in m2 if isinstance(layer, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for a, b in zip(params, params[1:]):
            s = np.exp(rng.uniform(-1.5, 1.5, b.weight.shape[1]))
            if signs:
                s = s * rng.choice([-1.0, 1.0], s.size)
            s = torch.tensor(s)
            shape = (-1,) + (1,) * (a.weight.dim() - 1)
            a.weight.mul_(s.reshape(shape)), a.bias.mul_(s)
            b.weight.div_(s.reshape((1, -1) + (1,) * (b.weight.dim() - 2)))
    return m2


def test_relu_mlp_every_hidden_layer_at_once():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 20), nn.ReLU(), nn.Linear(20, 16),
                      nn.LeakyReLU(0.1), nn.Linear(16, 6)).double()  # fmt: skip
    m2 = _scaled_copy(m, np.random.default_rng(1))
    x = torch.randn(9, 12, dtype=torch.double)
    assert torch.allclose(m(x), m2(x), atol=1e-12)  # the planted element is a symmetry
    n1, n2 = load(m), load(m2)
    assert [p.symmetry for p in n1.pairs] == [POS_DIAG] * 3
    assert len(gauge_plan(n1).spaces) == 3
    bal, raw = _compare(n1, n2)
    assert bal < 1e-10
    assert raw > 0.05  # without the gauge the angles move ...
    assert all(pair_gauge_dependent(n1, p, None) for p in n1.pairs)  # ... and are flagged
    assert not any(pair_gauge_dependent(n1, p, "balanced") for p in n1.pairs)
    # balanced: every hidden neuron has in-norm² = out-norm² (diag D = 0, eq. (74))
    b1 = balanced_network(n1)
    for p in n1.pairs:
        w, wn, bias = b1.matrix(p.left), b1.matrix(p.right), b1.bias(p.left)
        assert np.allclose(np.sum(w * w, 1) + bias**2, np.sum(wn * wn, 0), rtol=1e-11)
    assert torch.allclose(m(x), m2(x), atol=1e-12)


def test_relu_convnet_kernel_views():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 5, 3)).double()  # fmt: skip
    m2 = _scaled_copy(m, np.random.default_rng(2))
    x = torch.randn(2, 3, 12, 12, dtype=torch.double)
    assert torch.allclose(m(x), m2(x), atol=1e-10)
    n1, n2 = load(m), load(m2)
    assert [p.symmetry for p in n1.pairs] == [POS_DIAG, POS_DIAG]
    bal, raw = _compare(n1, n2)
    assert bal < 1e-10 and raw > 0.05


def _planted_llama(tmp_path, rng):
    t, _ = llama_tensors(rng, layers=2, d=32, heads=4, kv_heads=2, d_ff=48)
    t2, hd = dict(t), 8
    for n in range(2):
        L = f"model.layers.{n}"
        d = np.exp(rng.uniform(-1, 1, 48)) * rng.choice([-1.0, 1.0], 48)  # nonzero diagonal
        t2[f"{L}.mlp.up_proj.weight"] = d[:, None] * t[f"{L}.mlp.up_proj.weight"]
        t2[f"{L}.mlp.down_proj.weight"] = t[f"{L}.mlp.down_proj.weight"] / d[None, :]
        v, o = t[f"{L}.self_attn.v_proj.weight"].copy(), t[f"{L}.self_attn.o_proj.weight"].copy()
        for g in range(2):  # G ∈ GL(d_head) per kv group, shared by its two query heads
            G = rng.normal(size=(hd, hd)) + 2 * np.eye(hd)
            v[g * hd : (g + 1) * hd] = G @ v[g * hd : (g + 1) * hd]
            for h in (2 * g, 2 * g + 1):
                o[:, h * hd : (h + 1) * hd] = o[:, h * hd : (h + 1) * hd] @ np.linalg.inv(G)
        t2[f"{L}.self_attn.v_proj.weight"], t2[f"{L}.self_attn.o_proj.weight"] = v, o
        # rotary query/key gauge: per 2-plane (i, i + d/2) a scalar times a rotation
        q, k = t[f"{L}.self_attn.q_proj.weight"].copy(), t[f"{L}.self_attn.k_proj.weight"].copy()
        for g in range(2):
            C = np.zeros((hd, hd))
            for i in range(hd // 2):
                a, phi = np.exp(rng.uniform(-1, 1)), rng.uniform(0, 2 * np.pi)
                j = i + hd // 2
                C[np.ix_([i, j], [i, j])] = a * np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
            k[g * hd : (g + 1) * hd] = np.linalg.inv(C).T @ k[g * hd : (g + 1) * hd]
            for h in (2 * g, 2 * g + 1):
                q[h * hd : (h + 1) * hd] = C @ q[h * hd : (h + 1) * hd]
        t2[f"{L}.self_attn.q_proj.weight"], t2[f"{L}.self_attn.k_proj.weight"] = q, k
    np.savez(tmp_path / "a.npz", **t)
    np.savez(tmp_path / "b.npz", **t2)
    kw = dict(architecture="llama", heads=4, kv_heads=2)
    return load(str(tmp_path / "a.npz"), **kw), load(str(tmp_path / "b.npz"), **kw)


def test_swiglu_and_ov_planted(tmp_path):
    n1, n2 = _planted_llama(tmp_path, np.random.default_rng(3))
    plan = gauge_plan(n1)
    assert len(plan.spaces) == 2 and len(plan.heads) == 2 and len(plan.qk) == 2
    b1, b2 = balanced_network(n1), balanced_network(n2)
    for kind in ("mlp", "ov", "residual"):
        pairs = [p for p in n1.pairs if p.kind == kind]
        bal = max(float(np.max(np.abs(_invariants(_measure(b1, p)) - _invariants(_measure(b2, p)))))
                  for p in pairs)  # fmt: skip
        raw = max(float(np.max(np.abs(_measure(n1, p).angles - _measure(n2, p).angles))) for p in pairs)
        assert bal < 1e-10, kind
        assert raw > 0.01, kind
    ov = next(p for p in n1.pairs if p.kind == "ov")
    assert ov.symmetry == GL and pair_gauge_dependent(n1, ov, "balanced")  # only its GL invariants count
    # the GL invariants do not need the gauge at all
    a, c = _measure(n1, ov), _measure(n2, ov)
    assert np.allclose(a.product_sv, c.product_sv, rtol=1e-10) and a.lost_dims == c.lost_dims
    up_down = next(p for p in n1.pairs if p.kind == "mlp" and "up_proj" in p.left)
    assert up_down.symmetry == NONZERO_DIAG
    assert pair_gauge_dependent(n1, up_down, None) and not pair_gauge_dependent(n1, up_down, "balanced")
    # the residual stream into Q/K/V: its reader's rows move with the query/key gauge
    into_qkv = next(p for p in n1.pairs if p.right.endswith("qkv[stacked]"))
    assert pair_gauge_dependent(n1, into_qkv, None) and not pair_gauge_dependent(n1, into_qkv, "balanced")


def test_gpt2_heads_and_query_key_gauge(tmp_path):
    """GPT-2 (absolute positions): G ∈ GL(d_head) on each head's value → output and H ∈ GL(d_head)
    on its query/key (Q_h → H Q_h, K_h → H⁻ᵀ K_h, biases alike)."""
    from flagalign.models.synthetic import gpt2_tensors

    rng = np.random.default_rng(5)
    d, heads = 16, 4
    hd = d // heads
    t, _ = gpt2_tensors(rng, layers=2, d=d, heads=heads)
    t2 = {key: v.copy() for key, v in t.items()}
    for n in range(2):
        W, b, P = (t2[f"h.{n}.attn.c_attn.weight"], t2[f"h.{n}.attn.c_attn.bias"],
                   t2[f"h.{n}.attn.c_proj.weight"])  # Conv1D (in, out)  # fmt: skip
        for h in range(heads):
            c = slice(h * hd, (h + 1) * hd)
            cq, ck, cv = c, slice(d + c.start, d + c.stop), slice(2 * d + c.start, 2 * d + c.stop)
            H = rng.normal(size=(hd, hd)) + 2 * np.eye(hd)
            G = rng.normal(size=(hd, hd)) + 2 * np.eye(hd)
            W[:, cq], b[cq] = W[:, cq] @ H.T, H @ b[cq]
            Hit = np.linalg.inv(H).T
            W[:, ck], b[ck] = W[:, ck] @ Hit.T, Hit @ b[ck]
            W[:, cv], b[cv] = W[:, cv] @ G.T, G @ b[cv]
            P[c, :] = np.linalg.inv(G).T @ P[c, :]
    np.savez(tmp_path / "a.npz", **t)
    np.savez(tmp_path / "b.npz", **t2)
    n1 = load(str(tmp_path / "a.npz"), architecture="gpt2", heads=heads)
    n2 = load(str(tmp_path / "b.npz"), architecture="gpt2", heads=heads)
    assert len(gauge_plan(n1).qk) == 2
    bal, raw = _compare(n1, n2)
    assert bal < 1e-10 and raw > 0.01
    # no config.json in an .npz: the MLP activation is unknown, so its pairs and the residual
    # pairs touching it stay flagged even balanced; the ov pairs are GL (invariants only)
    assert {p.symmetry for p in n1.pairs if p.kind == "mlp"} == {"unknown"}
    assert all(pair_gauge_dependent(n1, p, "balanced") for p in n1.pairs)


def test_from_arrays_with_declared_symmetry():
    rng = np.random.default_rng(4)
    a = {"w1": rng.normal(size=(9, 5)), "w2": rng.normal(size=(7, 9)), "w3": rng.normal(size=(3, 7))}
    pairs = [Pair("w1", "w2", "sequential", 9, symmetry=POS_DIAG), Pair("w2", "w3", "sequential", 7)]
    net = Network.from_arrays(a, pairs)
    plan = gauge_plan(net)
    assert list(plan.spaces) == ["w1"] and "unknown" in plan.skipped[0][1]
    b = balanced_network(net)
    w1, w2 = b.matrix("w1"), b.matrix("w2")
    assert np.allclose(np.sum(w1 * w1, 1), np.sum(w2 * w2, 0), rtol=1e-12)
    assert np.array_equal(b.matrix("w3"), a["w3"])
    with pytest.raises(InputError):
        balanced_network(net, tol=0)


def test_deep_chain_converges_and_is_invariant():
    """20 ReLU layers: block sweeps alone would need ~10³ sweeps; with Newton a handful, and the
    planted network balances to the same point (eq. (74))."""
    rng = np.random.default_rng(6)
    L, w = 20, 12
    arr = {f"w{i}": rng.normal(size=(w, w)) for i in range(L)}
    planted = dict(arr)
    for i in range(L - 1):
        s = np.exp(rng.uniform(-1, 1, w))
        planted[f"w{i}"] = s[:, None] * planted[f"w{i}"]
        planted[f"w{i + 1}"] = planted[f"w{i + 1}"] / s[None, :]
    pairs = [Pair(f"w{i}", f"w{i + 1}", "sequential", w, symmetry=POS_DIAG) for i in range(L - 1)]
    n1, n2 = Network.from_arrays(arr, pairs), Network.from_arrays(planted, pairs)
    b1 = balanced_network(n1)
    info = b1.gauge_summary
    assert info["iterations"] < 50 and info["converged"] and info["residual"] <= 1e-13
    assert not any("gauge=balanced" in w for w in b1.warnings)
    bal, raw = _compare(n1, n2)
    assert bal < 1e-10 and raw > 0.05
