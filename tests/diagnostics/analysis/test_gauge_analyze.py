"""analyze(..., gauge=...) and ``analyze --gauge``: symmetry, gauge and verdict columns
(docs/theory.md §6, docs/schema.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flagalign
from flagalign.errors import InputError
from flagalign.models.network import Network, Pair


def _mlp(rng, planted: bool):
    sizes = [10, 24, 20, 16, 6]
    arr = {f"w{i}": rng.normal(size=(b, a)) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))}
    bias = {f"w{i}": rng.normal(size=b) for i, b in enumerate(sizes[1:])}
    if planted:
        prng = np.random.default_rng(99)
        for i in range(len(sizes) - 2):
            s = np.exp(prng.uniform(-1.5, 1.5, sizes[i + 1]))
            arr[f"w{i}"], bias[f"w{i}"] = s[:, None] * arr[f"w{i}"], s * bias[f"w{i}"]
            arr[f"w{i + 1}"] = arr[f"w{i + 1}"] / s[None, :]
    pairs = [Pair(f"w{i}", f"w{i + 1}", "sequential", sizes[i + 1], symmetry="pos-diag×perm")
             for i in range(len(sizes) - 2)]  # fmt: skip
    return Network.from_arrays(arr, pairs, biases=bias)


def test_balanced_analysis_is_invariant():
    a = flagalign.analyze(_mlp(np.random.default_rng(0), False), gauge="balanced", progress=False, heads=False)
    b = flagalign.analyze(_mlp(np.random.default_rng(0), True), gauge="balanced", progress=False, heads=False)
    num = [c for c in a.pairs.columns if a.pairs[c].dtype.kind == "f" and c != "seconds"]
    diff = (a.pairs[num] - b.pairs[num]).abs().max().max()
    assert diff < 1e-10
    assert (a.pairs["gauge"] == "balanced").all() and not a.pairs["gauge_dependent"].any()
    assert (a.pairs["symmetry"] == "pos-diag×perm").all()
    assert a.summary["options"]["gauge"] == "balanced"
    # stored gauge: the numbers move with the planted scalings and every pair is flagged
    s1 = flagalign.analyze(_mlp(np.random.default_rng(0), False), progress=False, heads=False)
    s2 = flagalign.analyze(_mlp(np.random.default_rng(0), True), progress=False, heads=False)
    assert (s1.pairs["angle_median_deg"] - s2.pairs["angle_median_deg"]).abs().max() > 1.0
    assert s1.pairs["gauge_dependent"].all() and (s1.pairs["gauge"] == "stored").all()
    for c in ("overlap_verdict", "commutator_verdict", "imbalance_verdict"):
        assert set(s1.pairs[c]) <= {"aligned", "chance", "anti-aligned", "n/a"}


def test_bad_gauge():
    with pytest.raises(InputError):
        flagalign.analyze(_mlp(np.random.default_rng(0), False), gauge="canonical", progress=False)


def test_cli_gauge(tmp_path):
    from flagalign.cli import main

    np.savez(tmp_path / "m.npz", **{f"layers.{i}.weight": np.random.default_rng(i).normal(size=(8, 8))
                                    for i in range(3)})  # fmt: skip
    assert main(["analyze", str(tmp_path / "m.npz"), "--gauge", "balanced", "--out", str(tmp_path / "o"),
                 "-q", "--format", "csv"]) == 0  # fmt: skip
    df = pd.read_csv(tmp_path / "o" / "pairs.csv")
    assert set(df["gauge"]) == {"balanced"} and set(df["symmetry"]) == {"unknown"}
    assert df["gauge_dependent"].all()  # unknown activation: nothing can be balanced


def test_summary_reports_the_gauge_solver():
    a = flagalign.analyze(_mlp(np.random.default_rng(0), True), gauge="balanced", progress=False, heads=False)
    g = a.summary["gauge"]
    assert g["diagonal_layers"] == 3 and g["converged"] and g["residual"] <= 1e-13 and g["dead"] == 0
    assert "gauge" not in flagalign.analyze(_mlp(np.random.default_rng(0), True), progress=False,
                                            heads=False).summary  # fmt: skip
