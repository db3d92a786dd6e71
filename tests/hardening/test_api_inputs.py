"""Python API arguments are refused with InputError, never coerced, truncated or half-used.

Issue 13: ragged lists, meta-device, sparse, float8 and complex torch tensors (the imaginary
part was dropped), k = nan / 2.5 / True / "3", analyze(kinds=123), intersection_dim(tol=nan);
an all-zero W or W_next gave an overlap instead of NaN; compare of two all-zero models reported
angle 0 / overlap 1; float64 weights near 1e300 failed with "IndexError: index 0 is out of bounds".
"""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

import flagalign as fa
from flagalign.errors import InputError

RNG = np.random.default_rng(0)
W = RNG.standard_normal((8, 5))
WN = RNG.standard_normal((6, 8))


def test_ragged_list():
    with pytest.raises(InputError, match="ragged"):
        fa.pair_alignment([[1.0, 2.0], [3.0]], WN)


torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: torch.zeros(8, 5, device="meta"), "meta"),
        (lambda: torch.from_numpy(W).to_sparse(), "sparse"),
        (lambda: torch.from_numpy(W).to_sparse_csr(), "sparse"),
        (lambda: torch.from_numpy(W).to(torch.float8_e4m3fn), "float8"),
        (lambda: torch.from_numpy(W).to(torch.complex64), "complex"),
        (lambda: torch.complex(torch.from_numpy(W), torch.from_numpy(W)), "complex"),
    ],
    ids=["meta", "sparse_coo", "sparse_csr", "float8", "complex64", "complex128"],
)
def test_torch_tensors_refused(make, needle):
    with pytest.raises(InputError, match=needle):
        fa.pair_alignment(make(), WN)
    with pytest.raises(InputError, match=needle):
        fa.principal_angles(make(), W)


@pytest.mark.parametrize("k", [float("nan"), 2.5, True, "3", 0, -1, 3.0])
def test_bad_k_refused(k):
    with pytest.raises(InputError, match="k"):
        fa.pair_alignment(W, WN, k=k)
    with pytest.raises(InputError, match="k"):
        fa.top_subspaces(W, k)


@pytest.mark.parametrize("k", [float("nan"), 2.5, True, "3"])
def test_bad_k_refused_by_analyze_and_compare(tmp_path, k):
    from flagalign.diagnostics.compare import compare_networks

    path = str(tmp_path / "m.safetensors")
    save_file({"layers.0.weight": W, "layers.1.weight": WN}, path)
    with pytest.raises(InputError):
        fa.analyze(path, k=k)
    net = fa.load(path)
    with pytest.raises(InputError):
        compare_networks(net, net, k=k)


def test_numpy_int_k_accepted():
    assert fa.pair_alignment(W, WN, k=np.int64(2)).k == 2


@pytest.mark.parametrize("kinds", [123, [1, 2], 4.5])
def test_analyze_kinds_type(tmp_path, kinds):
    path = str(tmp_path / "m.safetensors")
    save_file({"layers.0.weight": W, "layers.1.weight": WN}, path)
    with pytest.raises(InputError, match="kinds"):
        fa.analyze(path, kinds=kinds)


def test_analyze_negative_seed(tmp_path):
    path = str(tmp_path / "m.safetensors")
    save_file({"layers.0.weight": W, "layers.1.weight": WN}, path)
    with pytest.raises(InputError, match="seed"):
        fa.analyze(path, seed=-1)
    with pytest.raises(InputError, match="seed"):
        fa.pair_alignment(W, WN, seed=-1)


@pytest.mark.parametrize("tol", [float("nan"), float("inf"), -1e-3, True, "0.1"])
def test_intersection_dim_tol(tol):
    with pytest.raises(InputError, match="tol"):
        fa.intersection_dim(W, W, tol=tol)
    with pytest.raises(InputError, match="tol"):
        fa.pair_alignment(W, WN, tol=tol)


@pytest.mark.parametrize("which", ["W", "W_next"])
def test_all_zero_side_is_nan_with_status(which):
    w, wn = (np.zeros_like(W), WN) if which == "W" else (W, np.zeros_like(WN))
    p = fa.pair_alignment(w, wn)
    assert np.isnan(p.overlap) and np.isnan(p.overlap_ratio)
    assert p.angles.size == 0 and p.intersection_dim == 0
    assert which in p.status and "zero" in p.status
    # the Gram observables stay defined: D = W_nextᵀW_next − WWᵀ has one side zero
    np.testing.assert_allclose(p.imbalance.full, np.linalg.norm(wn.T @ wn - w @ w.T), rtol=1e-12)
    assert fa.pair_alignment(W, WN).status == "ok"


def test_compare_all_zero_models_not_aligned(tmp_path, capsys):
    from flagalign.cli import main

    z = {"layers.0.weight": np.zeros((8, 5)), "layers.1.weight": np.zeros((6, 8))}
    save_file(z, str(tmp_path / "a.safetensors"))
    save_file(z, str(tmp_path / "b.safetensors"))
    from flagalign.diagnostics.compare import compare_networks

    df, _ = compare_networks(fa.load(tmp_path / "a.safetensors"), fa.load(tmp_path / "b.safetensors"))
    for col in ("out_max_angle_deg", "out_overlap", "in_max_angle_deg", "in_overlap"):
        assert df[col].isna().all(), df
    assert main(["compare", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]) in (0, 2)


def test_huge_float64_weights_compute(tmp_path):
    """Weights near 1e300 overflow the Grams; angles are scale invariant, so they must match."""
    ref = fa.pair_alignment(W, WN)
    big = fa.pair_alignment(W * 1e300, WN * 1e300)
    assert big.status == "ok"
    np.testing.assert_allclose(big.angles, ref.angles, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(big.commutator, ref.commutator, rtol=1e-10)  # eq. (10): scale-free
    np.testing.assert_allclose(big.imbalance.relative, ref.imbalance.relative, rtol=1e-10)
    assert np.isinf(big.imbalance.full)  # ‖D‖ ≈ 1e601: honestly beyond float64
    mixed = fa.pair_alignment(W * 2.0**900, WN * 2.0**-900)  # one Gram would underflow
    np.testing.assert_allclose(mixed.commutator, ref.commutator, rtol=1e-10)
    path = str(tmp_path / "big.safetensors")
    save_file({"layers.0.weight": W * 1e300, "layers.1.weight": WN * 1e300}, path)
    row = fa.analyze(path).pairs.iloc[0]
    assert row["status"] == "ok", row["status"]
    np.testing.assert_allclose(row["overlap"], ref.overlap, rtol=1e-10)


def test_head_overlap_negative_seed(tmp_path):
    from flagalign.models.synthetic import llama_tensors, write_folder

    t, cfg = llama_tensors(np.random.default_rng(0), layers=1)
    net = fa.load(write_folder(tmp_path / "m", t, cfg))
    with pytest.raises(InputError, match="seed"):
        fa.head_overlap(net, "v", control="random-init", seed=-1)
