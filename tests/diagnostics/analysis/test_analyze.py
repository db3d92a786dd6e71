"""flagalign.analyze on planted structure: a synthetic safetensors MLP whose pairs have
prescribed principal angles, intersection dimensions, a lost direction, a balanced pair and a
NaN matrix; each reported number is checked against the construction (not against the code)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flagalign.diagnostics import PAIR_COLUMNS, analyze
from flagalign.diagnostics.analysis import make_plan
from flagalign.diagnostics.analysis.store import FactorStore
from flagalign.geometry import choose_method
from flagalign.models.network import Network, Pair

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpoolctl.threadpool_limits(1):
        yield


ANGLES_DEG = np.array([0.0, 0.0, 0.0, 10.0, 20.0, 30.0, 45.0, 90.0])
N0, N1, K = 32, 48, 8  # hidden sizes of pair 0->1 and 1->2; planted rank K


def _orth(n, k, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def planted_mlp(seed: int = 0):
    """Weights of layers.0 .. layers.4 (PyTorch (out, in)) with known geometry.

    * 0 -> 1 (hidden ℝ^32): col W0 = span U, row W1 = span V, principal angles ANGLES_DEG
      (canonical form v_i = cos θ_i u_i + sin θ_i u⊥_i), ranks 8 ⇒ k = min(64, 32/4, 8) = 8;
      three zero angles ⇒ intersection_dim 3; θ = 90° ⇒ W1 annihilates u_8 ⇒ lost_dims 1.
      layers.0 has a bias (enters the imbalance through W̃ = [W, b]).
    * 1 -> 2 (hidden ℝ^48): W2 = O W1ᵀ with orthonormal O ⇒ W2ᵀW2 = W1W1ᵀ: balanced (D = 0),
      commuting Grams, identical flags (all angles 0, overlap 1, intersection_dim 8).
    * layers.3 contains a NaN ⇒ pairs 2 -> 3 and 3 -> 4 are not ok.
    """
    rng = np.random.default_rng(seed)
    th = np.radians(ANGLES_DEG)
    q = _orth(N0, 2 * K, rng)
    u = q[:, :K]
    v = q[:, :K] * np.cos(th) + q[:, K:] * np.sin(th)
    w0 = u @ np.diag(np.linspace(2.0, 1.0, K)) @ _orth(20, K, rng).T  # (32, 20)
    w1 = _orth(N1, K, rng) @ np.diag(np.linspace(3.0, 1.5, K)) @ v.T  # (48, 32)
    w2 = _orth(40, N0, rng) @ w1.T  # (40, 48)
    w3 = rng.standard_normal((24, 40))
    w3[5, 7] = np.nan
    w4 = rng.standard_normal((10, 24))
    b0 = 0.3 * rng.standard_normal(N0)
    return {
        "layers.0.weight": w0,
        "layers.0.bias": b0,
        "layers.1.weight": w1,
        "layers.2.weight": w2,
        "layers.3.weight": w3,
        "layers.4.weight": w4,
    }


@pytest.fixture(scope="module")
def planted_file(tmp_path_factory):
    from safetensors.numpy import save_file

    path = tmp_path_factory.mktemp("planted") / "mlp.safetensors"
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in planted_mlp().items()},
              str(path))
    return path


@pytest.fixture(scope="module")
def planted_csv(planted_file, tmp_path_factory):
    """pairs.csv written by the CLI for the planted model (read back as a user would)."""
    from flagalign.cli import main

    out = tmp_path_factory.mktemp("out")
    with threadpoolctl.threadpool_limits(1):
        rc = main(["analyze", str(planted_file), "--out", str(out), "--quiet"])
    assert rc == 0
    return pd.read_csv(out / "pairs.csv").set_index("pair"), out


def _row(df, a, b):
    return df.loc[f"layers.{a}.weight -> layers.{b}.weight"]


def test_planted_angles_and_intersections(planted_csv):
    df, _ = planted_csv
    assert list(df.reset_index().columns) == list(PAIR_COLUMNS) + ["schema_version", "run_id"]
    r = _row(df, 0, 1)
    assert r["status"] == "ok"
    assert (r["dim"], r["k"]) == (N0, K)
    assert r["angle_min_deg"] == pytest.approx(0.0, abs=1e-6)
    assert r["angle_median_deg"] == pytest.approx(np.median(ANGLES_DEG), abs=1e-6)
    assert r["angle_max_deg"] == pytest.approx(90.0, abs=1e-6)
    assert r["intersection_dim"] == 3
    assert r["lost_dims"] == 1
    overlap = float(np.mean(np.cos(np.radians(ANGLES_DEG)) ** 2))
    assert r["overlap"] == pytest.approx(overlap, abs=1e-10)
    assert r["baseline"] == pytest.approx(K / N0)
    assert r["overlap_ratio"] == pytest.approx(overlap / (K / N0), abs=1e-9)
    assert r["method"] == "exact"


def test_planted_imbalance_and_commutator_reference(planted_csv):
    """Pair 0 -> 1 against a direct numpy evaluation of eqs. (10), (11) with the bias column."""
    df, _ = planted_csv
    w = planted_mlp()
    w0, w1, b0 = w["layers.0.weight"], w["layers.1.weight"], w["layers.0.bias"]
    wt = np.column_stack([w0, b0])
    d = w1.T @ w1 - wt @ wt.T
    denom = np.linalg.norm(wt @ wt.T) + np.linalg.norm(w1.T @ w1)
    r = _row(df, 0, 1)
    assert r["imbalance_abs"] == pytest.approx(np.linalg.norm(d), rel=1e-9)
    assert r["imbalance"] == pytest.approx(np.linalg.norm(d) / denom, rel=1e-9)
    assert r["imbalance_diag"] == pytest.approx(np.linalg.norm(np.diag(d)) / denom, rel=1e-9)
    a, b = w0 @ w0.T, w1.T @ w1
    comm = np.linalg.norm(a @ b - b @ a) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert r["commutator"] == pytest.approx(comm, rel=1e-9)


def test_planted_balanced_pair(planted_csv):
    df, _ = planted_csv
    r = _row(df, 1, 2)
    assert r["status"] == "ok"
    assert r["imbalance"] == pytest.approx(0.0, abs=1e-12)
    assert r["commutator"] == pytest.approx(0.0, abs=1e-12)
    assert r["k"] == K
    assert r["overlap"] == pytest.approx(1.0, abs=1e-12)
    assert r["intersection_dim"] == K
    assert r["angle_max_deg"] == pytest.approx(0.0, abs=1e-5)
    assert r["lost_dims"] == 0


def test_nan_matrix_fails_only_its_pairs(planted_csv):
    df, out = planted_csv
    for a, b in ((2, 3), (3, 4)):
        r = _row(df, a, b)
        assert r["status"] != "ok" and "layers.3.weight" in r["status"]
        assert math.isnan(r["overlap"]) and math.isnan(r["commutator"]) and math.isnan(r["k"])
    assert (df["status"] == "ok").sum() == 2
    import json

    def no_nan(c):
        raise AssertionError(f"summary.json is not strict JSON: {c}")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert summary["n_failed"] == 2 and summary["schema_version"]
    assert len(summary["pairs"]) == 4


def test_strict_turns_failures_into_exit_3(planted_file, tmp_path, capsys):
    from flagalign.cli import main

    rc = main(["analyze", str(planted_file), "--out", str(tmp_path), "-q", "--strict",
               "--format", "csv"])
    assert rc == 3
    assert "2 of 4 pairs are not ok" in capsys.readouterr().err
    assert (tmp_path / "pairs.csv").exists() and not (tmp_path / "report.html").exists()


def test_randomized_matches_exact_on_planted_pair():
    """Forcing the randomized SVD must give the same planted angles (eq. (13))."""
    w = planted_mlp(seed=3)
    net = Network.from_arrays({k: w[k] for k in ("layers.0.weight", "layers.1.weight")})
    ex = analyze(net, method="exact", progress=False).pairs.iloc[0]
    rd = analyze(net, method="randomized", progress=False).pairs.iloc[0]
    assert rd["method"] == "randomized" and ex["method"] == "exact"
    for col in ("angle_min_deg", "angle_median_deg", "angle_max_deg", "overlap"):
        assert rd[col] == pytest.approx(ex[col], abs=1e-6)
    assert rd["intersection_dim"] == ex["intersection_dim"] == 3


def test_k_is_capped_at_rank_and_columns_fixed():
    w = planted_mlp()
    net = Network.from_arrays({k: w[k] for k in ("layers.0.weight", "layers.1.weight")})
    an = analyze(net, k=20, progress=False)
    assert list(an.pairs.columns) == list(PAIR_COLUMNS)
    assert an.pairs.iloc[0]["k"] == K  # rank 8 < 20
    an4 = analyze(net, k=4, progress=False)
    assert an4.pairs.iloc[0]["k"] == 4
    assert an4.flag_tables[an4.pairs.iloc[0]["pair"]].shape == (5, 5)
    # top-4 of U and V: angles 0,0,0,10 ⇒ overlap = (3 + cos²10°)/4
    assert an4.pairs.iloc[0]["overlap"] == pytest.approx((3 + np.cos(np.radians(10)) ** 2) / 4)


def test_shared_factors_computed_once_and_freed():
    """Each matrix gets one SVD however many pairs use it; nothing stays loaded afterwards."""
    rng = np.random.default_rng(1)
    arr = {"a": rng.standard_normal((16, 8)), "b": rng.standard_normal((12, 16)),
           "c": rng.standard_normal((9, 16))}
    pairs = [Pair("a", "b", "sequential", 16), Pair("a", "c", "residual", 16)]
    an = analyze(Network.from_arrays(arr, pairs), progress=False)
    assert an.summary["svds"] == 3
    assert (an.pairs["status"] == "ok").all()
    net = Network.from_arrays(arr, pairs)
    store = FactorStore(net, make_plan(net).matrices)
    store.factors("a")
    store.release("a")
    assert store.live == 1
    store.release("a")
    assert store.live == 0


def test_kinds_filter_and_errors():
    from flagalign.errors import InputError

    rng = np.random.default_rng(2)
    arr = {"a": rng.standard_normal((16, 8)), "b": rng.standard_normal((12, 16)),
           "c": rng.standard_normal((9, 16))}
    pairs = [Pair("a", "b", "mlp", 16), Pair("a", "c", "residual", 16)]
    net = Network.from_arrays(arr, pairs)
    an = analyze(net, kinds=["mlp"], progress=False)
    assert an.pairs["kind"].tolist() == ["mlp"]
    with pytest.raises(InputError, match="kinds"):
        analyze(net, kinds=["ov"], progress=False)
    with pytest.raises(InputError, match="layers"):
        analyze(net, layers="7", progress=False)
    with pytest.raises(InputError):
        analyze(net, k=0, progress=False)
    with pytest.raises(InputError):
        analyze(net, method="svd", progress=False)


def test_zero_matrix_is_a_status_not_a_crash():
    arr = {"a": np.zeros((16, 8)), "b": np.ones((12, 16))}
    an = analyze(Network.from_arrays(arr), progress=False)
    row = an.pairs.iloc[0]
    assert row["status"] != "ok" and "zero" in row["status"]


def test_auto_method_threshold():
    """auto: exact up to 2048² entries, randomized above (unless k ≥ min(shape)/4)."""
    assert choose_method((1536, 576), "auto", 64) == "exact"
    assert choose_method((576, 49152), "auto", 64) == "randomized"
    assert choose_method((576, 49152), "auto", 200) == "exact"
    assert choose_method((576, 49152), "exact", 64) == "exact"


def test_progress_bar_only_on_a_tty(monkeypatch, capsys):
    import io
    import sys

    class TTY(io.StringIO):
        def isatty(self):
            return True

    rng = np.random.default_rng(0)
    net = Network.from_arrays({f"l{i}": rng.standard_normal((16, 16)) for i in range(3)})
    analyze(net, progress=True)  # pytest's captured stderr is not a TTY: silent
    assert capsys.readouterr().err == ""
    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    analyze(net, progress=True)
    assert "2/2" in tty.getvalue()
    tty2 = TTY()
    monkeypatch.setattr(sys, "stderr", tty2)
    analyze(net, progress=False)
    assert tty2.getvalue() == ""


def test_layers_filter_uses_network_depths():
    from flagalign.diagnostics.analysis import parse_layers
    from flagalign.errors import InputError

    assert parse_layers("0,3,10-12") == [0, 3, 10, 11, 12]
    for bad in ("", "a", "3-1", "1,,2"):
        with pytest.raises(InputError):
            parse_layers(bad)
    rng = np.random.default_rng(3)
    arr = {f"layers.{i}.weight": rng.standard_normal((12, 12)) for i in range(5)}
    net = Network.from_arrays(arr)
    an = analyze(net, layers="1-2", progress=False)
    assert an.pairs["depth"].tolist() == [1, 2]
    assert an.pairs["left"].tolist() == ["layers.1.weight", "layers.2.weight"]
    assert an.summary["options"]["layers"] == [1, 2]


def test_one_sided_factors_equal_full_svd_path(monkeypatch):
    """analyze's one-sided factors (diagnostics.gramfactors) give the same table as the full
    thin SVD of every matrix: float32 weights with full-rank, rank-deficient tall, wide and
    square matrices, writers and readers, a lost direction."""
    import flagalign.diagnostics.analysis.store as factors

    rng = np.random.default_rng(21)
    q, _ = np.linalg.qr(rng.standard_normal((96, 96)))
    s = np.concatenate([np.linspace(3, 0.3, 38), [1e-6, 5e-7]])  # rank 38 at float32
    arr = {
        "l0": rng.standard_normal((40, 30)),  # wide-ish, full rank
        "l1": (q[:, :40] * s) @ _orth(40, 40, rng).T,  # tall 96x40, rank 38: lost via col_map
        "l2": rng.standard_normal((50, 95)) @ q[:, 1:].T,  # kills q1 ⊂ col l1
        "l3": rng.standard_normal((50, 50)),  # square
        "l4": rng.standard_normal((20, 50)),
    }
    arr = {k: v.astype(np.float32) for k, v in arr.items()}
    fast = analyze(Network.from_arrays(arr), progress=False, heads=False)
    calls = []

    def no_one_sided(*a, **k):
        calls.append(1)
        return None

    monkeypatch.setattr(factors, "one_sided_factors", no_one_sided)
    full = analyze(Network.from_arrays(arr), progress=False, heads=False)
    assert calls and len(fast.pairs) == len(full.pairs) == 4
    assert (fast.pairs["status"] == "ok").all()
    for c in PAIR_COLUMNS:
        if c == "seconds":
            continue
        a, b = fast.pairs[c], full.pairs[c]
        if pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-10,
                                       err_msg=c)
        else:
            assert a.tolist() == b.tolist(), c
    assert fast.pairs["lost_dims"].tolist()[1] >= 1  # l1 -> l2 loses q1
    for name in fast.flag_tables:
        np.testing.assert_allclose(fast.flag_tables[name], full.flag_tables[name], atol=1e-6)
