"""Rank tolerances of eq. (3) for low-precision stored dtypes (docs/theory.md §1.1, issue 11)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from flagalign._arrays import input_eps, storage_error
from flagalign.geometry import default_sine_tol, numerical_rank, orthonormal_basis, rank_rtol
from flagalign.geometry._basis import storage_noise_ratio

torch = pytest.importorskip("torch")


def _cast(a, dtype):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dtype)


def _planted(rng, m, n, r, lo=1.0, hi=2.0):
    u = np.linalg.qr(rng.standard_normal((m, r)))[0]
    v = np.linalg.qr(rng.standard_normal((n, r)))[0]
    return (u * rng.uniform(lo, hi, r)) @ v.T


def test_float32_float64_unchanged():
    """eq. (3) keeps max(shape)·ε for float32/float64 (goldens of fp32 models unchanged)."""
    for shape in [(384, 1536), (5, 3)]:
        assert rank_rtol(shape, "float64") == max(shape) * np.finfo(np.float64).eps
        assert rank_rtol(shape, "float32") == max(shape) * np.finfo(np.float32).eps
    assert default_sine_tol("float32") == 10 * np.finfo(np.float32).eps
    assert default_sine_tol("float64") == 1e-6


def test_unit_roundoff_is_half_epsilon():
    """Issue 12 item 10b: u = ε/2 (|fl(x) − x| ≤ u|x|, attained halfway between neighbours)."""
    for name, tdt in [("bfloat16", torch.bfloat16), ("float16", torch.float16)]:
        assert storage_error(name) == input_eps(name) / 2
        x = torch.tensor([1.0 + storage_error(name) * 0.999], dtype=torch.float32).to(tdt)
        assert float(x) == 1.0  # rounds down to 1: |error| ≤ u
        x = np.float32(1.0 + 1.001 * storage_error(name))
        assert float(torch.tensor([x]).to(tdt)) == 1.0 + input_eps(name)


@pytest.mark.parametrize("tdt,name", [(torch.bfloat16, "bfloat16"), (torch.float16, "float16")])
@pytest.mark.parametrize("shape,r", [((300, 500), 7), ((2048, 256), 40), ((1024, 1024), 1000)])
def test_planted_rank_recovered(tdt, name, shape, r):
    """A rank-r matrix (σ ∈ [1, 2]) stored in bf16/fp16 keeps rank r (issue 11: it was 0)."""
    rng = np.random.default_rng(r)
    w = _cast(_planted(rng, *shape, r), tdt)
    assert rank_rtol(shape, name) < 0.1
    assert numerical_rank(w) == r
    assert orthonormal_basis(w).shape == (shape[0], r)


@pytest.mark.parametrize("tdt,name", [(torch.bfloat16, "bfloat16"), (torch.float16, "float16")]
                         + ([(torch.float8_e4m3fn, "float8_e4m3fn"), (torch.float8_e5m2, "float8_e5m2")]
                            if hasattr(torch, "float8_e5m2") else []))
@pytest.mark.parametrize("shape", [(256, 256), (200, 700), (1000, 64)])
def test_storage_error_below_threshold(tdt, name, shape):
    """‖fl(W) − W‖₂ ≤ rank_rtol·σ₁ (data-aware ρ = ‖W‖_F/σ₁, and the shape-only bound), for
    Gaussian and row-scaled matrices: singular values below the threshold are rounding noise."""
    rng = np.random.default_rng(shape[0])
    for w in (rng.standard_normal(shape),
              rng.standard_normal(shape) * np.exp(rng.standard_normal((shape[0], 1)))):
        w = w.astype(np.float32).astype(np.float64)
        stored = torch.from_numpy(w).to(tdt).to(torch.float64).numpy()
        e2 = np.linalg.norm(stored - w, 2)
        s = np.linalg.svd(w, compute_uv=False)
        rho = storage_noise_ratio(w, s[0])
        assert np.linalg.norm(stored - w) <= storage_error(name) * np.linalg.norm(w) * (1 + 1e-12)
        assert e2 <= rank_rtol(shape, name, rho) * s[0]
        assert rank_rtol(shape, name, rho) <= rank_rtol(shape, name)


@pytest.mark.parametrize("qname", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_quantized_storage_error(qname):
    """GGUF block quantization: ‖E‖_F ≤ δ_q‖W‖_F and ‖E‖₂ ≤ rank_rtol·σ₁ (eq. (3)), measured by
    re-quantizing float data (row-scaled Gaussian, like trained weights)."""
    gguf = pytest.importorskip("gguf")
    qt = getattr(gguf.GGMLQuantizationType, qname)
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((384, 1024)) * np.exp(0.5 * rng.standard_normal((384, 1)))).astype(np.float32)
    deq = gguf.quants.dequantize(gguf.quants.quantize(w, qt), qt).astype(np.float64)
    e = deq - w
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    rho = storage_noise_ratio(w.astype(np.float64), s[0])
    assert np.linalg.norm(e) <= storage_error(qname.lower()) * np.linalg.norm(w)
    q = qname.lower()
    assert np.linalg.norm(e, 2) <= rank_rtol(w.shape, q, rho, storage=True) * s[0]
    assert rank_rtol(w.shape, q, storage=True) == 2 * storage_error(q) < 0.5
    # default (QUANT_STORAGE_DEFAULT False): the dequantized float32 matrix is taken as exact
    assert rank_rtol(w.shape, q) == max(w.shape) * np.finfo(np.float32).eps
    assert default_sine_tol(q) == default_sine_tol("float32")


@pytest.mark.realmodel
def test_smollm2_q4_1_block_scale_bound():
    """The packaged SmolLM2 Q4_1 file: the block scale/2 bound on the dequantization error,
    √(Σ_blocks 32·(d/2)²)/‖W‖_F, is below δ_q(q4_1) (measured 0.143 ≤ 0.15)."""
    gguf = pytest.importorskip("gguf")
    from flagalign.models.aliases import alias_path

    try:
        path = alias_path("smollm2")
    except Exception:
        pytest.skip("smollm2 not installed")
    reader = gguf.GGUFReader(path)
    err2 = tot2 = 0.0
    for t in reader.tensors:
        if t.tensor_type.name != "Q4_1" or not t.name.startswith("blk.1"):
            continue
        raw = np.asarray(t.data).view(np.uint8).reshape(-1, 20)  # fp16 d, fp16 m, 16 nibble bytes
        d = raw[:, 0:2].copy().view(np.float16).astype(np.float64).ravel()
        w = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64)
        err2 += float(np.sum(32 * (d / 2) ** 2))
        tot2 += float(np.sum(w * w))
    assert tot2 > 0
    rel = np.sqrt(err2 / tot2)
    assert 0.1 < rel <= storage_error("q4_1")


def _well_conditioned_llama(rng, d=64, ff=192, heads=4, kv=2, plant_rank=40):
    """Synthetic Llama whose matrices have σ ∈ [1, 2], gate_proj = up_proj·M (one column space)
    and down_proj's row space inside col(up_proj) — of dimension d, except layer 0's, of rank
    ``plant_rank``: both layer-0 MLP pairs lose d − plant_rank dimensions (eq. (12)) and every
    other pair loses none, with every σ(W_next Q) ≥ 1 far above the tolerance."""
    from flagalign.models.synthetic import llama_tensors

    t, cfg = llama_tensors(rng, layers=2, d=d, heads=heads, kv_heads=kv, d_ff=ff, vocab=11)
    for k, v in list(t.items()):
        if v.ndim == 2:
            t[k] = _planted(rng, *v.shape, min(v.shape))
    for layer, r in ((0, plant_rank), (1, d)):
        L = f"model.layers.{layer}.mlp"
        up = t[f"{L}.up_proj.weight"]  # (ff, d): col space S, d-dim in ℝ^ff
        t[f"{L}.gate_proj.weight"] = up @ _planted(rng, d, d, d)
        z = np.linalg.qr(up)[0] @ np.linalg.qr(rng.standard_normal((d, r)))[0]
        y = np.linalg.qr(rng.standard_normal((d, r)))[0]
        t[f"{L}.down_proj.weight"] = (y * rng.uniform(1, 2, r)) @ z.T
    return t, cfg


@pytest.mark.parametrize("tdt", [torch.bfloat16, torch.float16])
def test_synthetic_llama_low_precision_all_pairs_ok(tmp_path, tdt):
    """Issue 11: a bf16/fp16 Llama with hidden sizes > 128 used to give 'rank 0 (zero map)' for
    every pair; now every pair is ok, ranks are as planted and lost_dims as planted."""
    from safetensors.torch import save_file

    import flagalign
    from flagalign.geometry import numerical_rank as nrank

    d, ff, plant = 64, 192, 40
    t, cfg = _well_conditioned_llama(np.random.default_rng(11), d=d, ff=ff, plant_rank=plant)
    save_file({k: _cast(v, tdt) for k, v in t.items()}, os.path.join(tmp_path, "model.safetensors"))
    with open(os.path.join(tmp_path, "config.json"), "w") as f:
        json.dump(cfg, f)
    assert max(ff, d) * input_eps(str(tdt).replace("torch.", "")) > 1 or tdt == torch.float16
    a = flagalign.analyze(str(tmp_path), progress=False, heads=False)
    rows = a.pairs.to_dict("records") if hasattr(a.pairs, "to_dict") else list(a.pairs)
    assert rows and all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
    for r in rows:
        planted = r["kind"] == "mlp" and ".layers.0." in r["left"]
        assert r["lost_dims"] == (d - plant if planted else 0), r["pair"]
    net = flagalign.load(str(tmp_path))
    for name, info in net.matrices.items():
        if "[" in name:
            continue
        w = torch.from_numpy(net.matrix(name)).to(tdt)  # the stored dtype, for eq. (3)
        want = plant if name == "model.layers.0.mlp.down_proj.weight" else min(info.shape)
        assert nrank(w) == want, name
