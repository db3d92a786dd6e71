"""``analyze(device=...)``: the torch code path (run here on the CPU, ``device="torch"``) gives
numpy's numbers — float64 to 1e-10 relative, float32 within the documented 1e-3 — and a missing
GPU is a clean InputError (exit 2 from the CLI)."""

from __future__ import annotations

import numpy as np
import pytest

import flagalign
from flagalign.errors import InputError
from flagalign.models.network import Network

torch = pytest.importorskip("torch")

FLOATS = ["overlap", "overlap_ratio", "angle_min_deg", "angle_median_deg", "angle_max_deg",
          "commutator", "commutator_null", "imbalance", "imbalance_diag", "imbalance_offdiag",
          "imbalance_abs"]
INTS = ["k", "intersection_dim", "lost_dims", "status"]


def _model(dtype):
    rng = np.random.default_rng(5)
    dims = [20, 64, 48, 48, 72, 16, 60]
    mats = {}
    for i in range(len(dims) - 1):
        a = rng.standard_normal((dims[i + 1], dims[i])) * np.exp(rng.uniform(-1, 1, dims[i]))
        mats[f"{i}.weight"] = a.astype(dtype)
    mats["2.weight"][:, :10] = 0.0  # rank-deficient: lost_dims > 0 with the next reader
    q = np.linalg.qr(mats["2.weight"].astype(np.float64))[0][:, :3]
    mats["3.weight"] = (mats["3.weight"] - (mats["3.weight"] @ q) @ q.T).astype(dtype)
    return Network.from_arrays(mats, biases={"0.weight": np.linspace(-1, 1, 64)})


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # Gram+eigh and SVD routes
def test_torch_path_matches_numpy(dtype):
    net = _model(dtype)
    ref = flagalign.analyze(net, heads=False, progress=False, jobs=1)
    got = flagalign.analyze(net, heads=False, progress=False, device="torch")
    assert got.summary["device"] == {"device": "torch", "precision": "float64"}
    assert (ref.pairs.status == "ok").all() and ref.pairs.lost_dims.max() > 0
    for c in INTS:
        assert list(got.pairs[c]) == list(ref.pairs[c]), c
    for c in FLOATS:
        assert _rel(got.pairs[c], ref.pairs[c]) < 1e-10, c
    f32 = flagalign.analyze(net, heads=False, progress=False, device="torch", precision="float32")
    for c in ["overlap", "commutator", "commutator_null", "imbalance", "imbalance_abs"]:
        assert _rel(f32.pairs[c], ref.pairs[c]) < 1e-3, c


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_an_input_error(tmp_path, capsys):
    with pytest.raises(InputError, match="CUDA is not available"):
        flagalign.analyze(_model(np.float32), device="cuda", progress=False)
    with pytest.raises(InputError, match="precision"):
        flagalign.analyze(_model(np.float32), precision="float32", progress=False)
    from flagalign.cli import main

    assert main(["analyze", "minilm", "--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
