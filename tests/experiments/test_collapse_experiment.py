"""``flagalign reproduce collapse --quick`` end to end (docs/theory.md §3, docs/results.md).

One quick run (module fixture, ~20–50 s on 2 shared cores) checks what must hold whatever the
verdict: the terminal phase is reached, records are consistent with a recomputation from the
saved columns, the table and figure are written, and the weight-only Gram commutator separates
the linear net (balanced adjacent Grams) from the ReLU net.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import time

    from flagalign.experiments.framework import get

    out = tmp_path_factory.mktemp("collapse")
    t0 = time.perf_counter()
    result = get("collapse")(out, quick=True, progress=False)
    return result, out, time.perf_counter() - t0


def test_quick_run_outputs(quick):
    import pandas as pd

    result, out, seconds = quick
    assert seconds < 180, f"--quick took {seconds:.0f} s (budget 180 s)"
    assert result.name == "collapse" and isinstance(result.passed, bool)
    names = {f.name for f in result.files}
    assert names == {"collapse_records.csv", "collapse_checks.csv", "collapse_table.md",
                     "collapse_metrics.png", "verdict.json"}
    assert all(f.exists() and f.stat().st_size > 0 for f in result.files)
    checks = pd.read_csv(out / "collapse_checks.csv")
    primary = checks[checks.primary]
    # Level 2 ×2, Level 3 linear, ReLU plateau, ρ ×5 (the ReLU Level-2 proxy ρ is n/a, eq. (39))
    assert len(primary) == 2 + 1 + 1 + 5
    na = checks[~checks.applicable]
    assert len(na) == 1 and na.net.iloc[0] == "relu" and "Level-2 overlap" in na.criterion.iloc[0]
    assert "| relu | Spearman ρ(Level-2 overlap: weight-only vs data) ≥ 0.5 | not applicable" in \
        result.table_markdown and "| n/a |" in result.table_markdown
    assert result.passed == bool(primary["pass"].all())
    from _verdict_checks import check_verdict

    doc = check_verdict(out / "verdict.json", "collapse", passed=result.passed)
    assert len(doc["criteria"]) == len(primary)
    assert [c["pass"] for c in doc["criteria"]] == list(primary["pass"])
    assert "PASS" in result.table_markdown or "FAIL" in result.table_markdown


def test_quick_run_reaches_terminal_phase_and_records_are_consistent(quick):
    import pandas as pd

    from flagalign.collapse import TOL_COMMUTATOR, TOL_SINE

    _, out, _ = quick
    rec = pd.read_csv(out / "collapse_records.csv")
    assert set(rec.activation) == {"linear", "relu"}
    for act, sub in rec.groupby("activation"):
        assert sub.step.iloc[0] == 0 and sub.step.is_monotonic_increasing
        tail = sub[sub.step >= sub.step.max() / 2]
        assert (tail.train_acc == 1.0).all(), f"{act}: not in the terminal phase"
        # level flags recomputed from the recorded numbers and the documented tolerances
        l2 = sub.level2_max_sine <= TOL_SINE
        assert (sub.level2 == l2).all()
        assert (sub.level3 == (l2 & (sub.level3_commutator <= TOL_COMMUTATOR))).all()
        np.testing.assert_allclose(sub.level2_baseline, 9 / 64, rtol=1e-12)
    final = rec.groupby("activation").tail(1).set_index("activation")
    # eq. (39) wiring: A's bias enters the Level-3 proxy; no Level-2 proxy across the ReLU
    assert rec.w_bias_included.all()
    relu = rec[rec.activation == "relu"]
    assert relu.w_level2_overlap.isna().all() and relu.w_level2_max_sine.isna().all()
    assert rec[rec.activation == "linear"].w_level2_overlap.notna().all()
    # weight-only Gram commutator: balanced linear net ≪ ReLU net (diagonal balance only)
    assert final.loc["linear", "w_level3_commutator"] < 0.2 * final.loc["relu", "w_level3_commutator"]
    # collapse progressed: NCC agrees with the classifier far better than chance (1 − 1/C)
    assert (final.nc4 < 0.1).all()
    assert np.isfinite(final[["nc1", "cdnv", "nc2_etf", "nc3"]].to_numpy()).all()


def test_whiten_gives_identity_covariance_on_the_pixel_support():
    """ZCA map of the experiment: covariance = projector onto the non-constant pixels' span,
    and the samples' Gram equals N times the hat matrix of the centred inputs (scipy.orth)."""
    from flagalign.experiments.neural_collapse import whiten
    from flagalign.experiments.training import load_digits_data

    data = load_digits_data()
    X = data.x.double().numpy()
    Z = whiten(data).x.double().numpy()
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-6)
    cov = Z.T @ Z / Z.shape[0]
    ev = np.linalg.eigvalsh(cov)
    rank = int(np.sum(np.var(X, axis=0) > 0))  # constant pixels carry no covariance
    assert rank == 61
    np.testing.assert_allclose(ev[-rank:], 1.0, atol=1e-5)
    np.testing.assert_allclose(ev[:-rank], 0.0, atol=1e-6)
    # independent reference: Z Zᵀ = N · (projector onto the column space of the centred X)
    from scipy.linalg import orth

    Q = orth(X - X.mean(axis=0))
    assert Q.shape[1] == rank
    np.testing.assert_allclose(Z @ Z.T, X.shape[0] * (Q @ Q.T), atol=1e-3)


def test_balanced_linear_chain_whitened_inputs_commute_with_classifier_gram():
    """Why the experiment whitens its inputs (docs/results.md, "Protocol"): in a balanced linear
    chain (W₃ᵀW₃ = W₂W₂ᵀ, W₂ᵀW₂ = W₁W₁ᵀ) the features' total Gram H̄ᵀH̄ = W₂W₁ X̄ᵀX̄ W₁ᵀW₂ᵀ
    commutes with the classifier Gram exactly when X̄ᵀX̄ ∝ I, and not for anisotropic inputs."""
    from scipy.stats import ortho_group

    from flagalign.geometry import commutator_norm

    rng = np.random.default_rng(3)
    p, d, C, N = 12, 8, 4, 400
    # balanced chain from shared singular values σ (rank C − 1), random orthogonal frames
    sig = np.diag([2.0, 1.5, 1.1])
    U0 = ortho_group.rvs(p, random_state=1)[:, :3]
    U1 = ortho_group.rvs(d, random_state=2)[:, :3]
    U2 = ortho_group.rvs(d, random_state=3)[:, :3]
    U3 = ortho_group.rvs(C, random_state=4)
    U3 = (U3 - U3.mean(axis=0))[:, :3]  # classifier rows centred
    U3 = np.linalg.qr(U3)[0][:, :3]
    W1, W2, W3 = U1 @ sig @ U0.T, U2 @ sig @ U1.T, U3 @ sig @ U2.T
    np.testing.assert_allclose(W3.T @ W3, W2 @ W2.T, atol=1e-12)
    np.testing.assert_allclose(W2.T @ W2, W1 @ W1.T, atol=1e-12)
    X = rng.standard_normal((N, p)) @ rng.standard_normal((p, p))  # anisotropic inputs
    X -= X.mean(axis=0)
    ev, Q = np.linalg.eigh(X.T @ X / N)
    Z = X @ (Q / np.sqrt(ev)) @ Q.T  # whitened
    for inputs, expect_zero in ((Z, True), (X, False)):
        H = inputs @ (W2 @ W1).T
        c = commutator_norm(W3.T @ W3, H.T @ H)
        if expect_zero:
            assert c < 1e-12
        else:
            assert c > 1e-2  # generic anisotropic inputs: the data adds a basis of its own
