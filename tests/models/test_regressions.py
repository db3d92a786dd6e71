"""Regression tests for confirmed loader bugs (docs/formats.md states the fixed behaviour).

Each test failed before its fix: family metadata/forced architecture that does not match the
tensor names, GGUF BF16/TQ/MXFP4 float-ness, Qwen2 GGUF Q/K rows and biases, BatchNorm folding on
the sequential and traced paths, malformed safetensors header entries, traced ``residual``
detection, and Llama ``mlp_bias``.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from flagalign import load
from flagalign._arrays import input_eps
from flagalign.errors import CorruptFileError, InputError
from flagalign.models.loader import open_source
from flagalign.models.synthetic import llama_tensors, mlp_tensors, write_folder, write_safetensors

# ---------------------------------------------------------------- 1. family / tensor-name mismatch


def test_config_model_type_not_matching_names_falls_back(tmp_path):
    rng = np.random.default_rng(0)
    t = mlp_tensors(rng, sizes=(4, 8, 3))
    net = load(write_folder(tmp_path / "m", t, {"model_type": "llama", "num_attention_heads": 2}))
    assert net.architecture == "sequential"
    assert [(p.left, p.right, p.kind) for p in net.pairs] == [
        ("layers.0.weight", "layers.1.weight", "sequential")
    ]


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "resnet", "mobilenetv2", "efficientnet"])
def test_forced_architecture_not_matching_names_is_input_error(tmp_path, arch):
    rng = np.random.default_rng(0)
    path = write_safetensors(tmp_path / "mlp.safetensors", mlp_tensors(rng, sizes=(4, 8, 3)))
    with pytest.raises(InputError) as exc:
        load(path, architecture=arch, heads=2)
    msg = str(exc.value)
    assert path in msg and f"architecture={arch!r}" in msg and "\n" not in msg


# ---------------------------------------------------------------- 2. GGUF float types


def _bf16_bits(a):
    return (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def test_gguf_bf16_and_f16_are_float_and_get_their_eps(tmp_path):
    gguf = pytest.importorskip("gguf")
    Q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(0)
    # values exactly representable in bf16 (8 significant bits) and f16
    w0 = np.round(rng.standard_normal((8, 4)) * 8) / 8
    w1 = np.round(rng.standard_normal((3, 8)) * 8) / 8
    for dt, eps in (("BF16", 2.0**-7), ("F16", float(np.finfo(np.float16).eps))):
        p = str(tmp_path / f"mlp_{dt}.gguf")
        w = gguf.GGUFWriter(p, "gpt2")
        for i, a in enumerate((w0, w1)):
            if dt == "BF16":
                w.add_tensor(f"layers.{i}.weight", _bf16_bits(a), raw_shape=a.shape, raw_dtype=Q.BF16)
            else:
                w.add_tensor(f"layers.{i}.weight", a.astype(np.float16))
        w.add_tensor("layers.0.idx", np.arange(6, dtype=np.int32).reshape(2, 3))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        net = load(p)
        assert [(q.left, q.right) for q in net.pairs] == [("layers.0.weight", "layers.1.weight")]
        np.testing.assert_array_equal(net.matrix("layers.0.weight"), w0)
        np.testing.assert_array_equal(net.matrix("layers.1.weight"), w1)
        dtype = net.matrices["layers.0.weight"].dtype
        assert input_eps(dtype) == eps, dtype
        assert not open_source(p).entries["layers.0.idx"].is_float


def test_gguf_ternary_and_mxfp4_types_are_float(tmp_path):
    gguf = pytest.importorskip("gguf")
    Q = gguf.GGMLQuantizationType
    p = str(tmp_path / "q.gguf")
    w = gguf.GGUFWriter(p, "gpt2")
    types = [t for t in ("TQ1_0", "TQ2_0", "MXFP4") if hasattr(Q, t)]
    for t in types:
        block, size = gguf.GGML_QUANT_SIZES[Q[t]]
        raw = np.zeros((4, size * (256 // block)), dtype=np.uint8)  # 4 rows of 256 values
        w.add_tensor(f"{t}.weight", raw, raw_shape=raw.shape, raw_dtype=Q[t])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ents = open_source(p).entries
    for t in types:
        assert ents[f"{t}.weight"].shape == (4, 256)
        assert ents[f"{t}.weight"].is_float, t


# ---------------------------------------------------------------- 3. Qwen2 GGUF


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


# ---------------------------------------------------------------- 4. BatchNorm on sequential / traced


def _conv_bn_seq():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    with torch.no_grad():
        seq[1].weight.uniform_(0.5, 3)
        seq[1].bias.normal_()
        seq[1].running_var.uniform_(0.1, 4)
        seq[1].running_mean.normal_()
    return torch, seq


def _check_folded(net, seq, torch):
    bn = seq[1]
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    t = bn.bias.detach().double().numpy() - s * bn.running_mean.double().numpy()
    raw = seq[0].weight.detach().double().numpy().reshape(8, -1)
    b0 = seq[0].bias.detach().double().numpy()
    np.testing.assert_allclose(net.matrix("0.weight"), s[:, None] * raw, rtol=1e-6)
    np.testing.assert_allclose(net.bias("0.weight"), s * b0 + t, rtol=1e-6, atol=1e-6)
    # the folded conv reproduces conv -> BN on a real input
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        ref = seq[1](seq[0](x))[0, :, 0, 0].double().numpy()
    patch = x[0, :, :3, :3].double().numpy().reshape(-1)
    np.testing.assert_allclose(net.matrix("0.weight") @ patch + net.bias("0.weight"), ref, atol=1e-5)


def test_batchnorm_folded_on_traced_module_path():
    torch, seq = _conv_bn_seq()
    net = load(seq, fold_norms=True)
    assert net.architecture == "traced" and net.fold_norms
    _check_folded(net, seq, torch)
    assert not any("BatchNorm" in w for w in net.warnings)
    raw = load(seq, fold_norms=False)
    w0 = seq[0].weight.detach().double().numpy().reshape(8, -1)
    np.testing.assert_array_equal(raw.matrix("0.weight"), w0)


def test_batchnorm_folded_on_sequential_file_path(tmp_path):
    torch, seq = _conv_bn_seq()
    p = str(tmp_path / "seq.pt")
    torch.save(seq.state_dict(), p)
    net = load(p)
    assert net.architecture == "sequential"
    _check_folded(net, seq, torch)
    assert not any("BatchNorm" in w for w in net.warnings)


def test_batchnorm_not_after_a_layer_is_warned():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    m = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    net = load(m)
    assert any("BatchNorm not folded" in w and w.endswith(": 0") for w in net.warnings)


# ---------------------------------------------------------------- 5. malformed safetensors entries


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": 5, "shape": [2, 2], "data_offsets": [0, 16]},
        {"dtype": "F32", "shape": [2, 2], "data_offsets": ["0", "16"]},
        {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]},
        {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]},
        {"dtype": "F32", "shape": [2, 2], "data_offsets": [0.0, 16.0]},
        {"dtype": "F32", "shape": ["2", 2], "data_offsets": [0, 16]},
        [1, 2, 3],
    ],
)
def test_malformed_safetensors_entry_is_corrupt_file_error(tmp_path, entry):
    p = tmp_path / "bad.safetensors"
    h = json.dumps({"w": entry}).encode()
    p.write_bytes(struct.pack("<Q", len(h)) + h + b"\0" * 16)
    with pytest.raises(CorruptFileError, match="malformed header entry"):
        net = load(str(p))
        for k in net.matrices:
            net.matrix(k)


# ---------------------------------------------------------------- 6. traced residual detection


def test_traced_residual_needs_two_layer_summands_and_sees_add_():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class PosAdd(nn.Module):  # a learned offset is an addition but no residual connection
        def __init__(s):
            super().__init__()
            s.a, s.b = nn.Linear(4, 8), nn.Linear(8, 2)
            s.pos = nn.Parameter(torch.zeros(8))

        def forward(s, x):
            return s.b(torch.relu(s.a(x)) + s.pos)

    class InplaceRes(nn.Module):  # a true residual written with Tensor.add_
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(s, x):
            h = s.a(x)
            y = s.b(torch.relu(h))
            y = y.add_(h)
            return s.c(y)

    kinds = lambda n: {(p.left, p.right): p.kind for p in n.pairs}  # noqa: E731
    assert kinds(load(PosAdd())) == {("a.weight", "b.weight"): "sequential"}
    assert kinds(load(InplaceRes())) == {
        ("a.weight", "b.weight"): "sequential",
        ("b.weight", "c.weight"): "residual",
        ("a.weight", "c.weight"): "residual",
    }


# ---------------------------------------------------------------- 7. Llama mlp_bias


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
