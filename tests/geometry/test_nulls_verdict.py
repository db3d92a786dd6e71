"""Nulls of the overlap and the imbalance, z-scores and verdicts (docs/theory.md eqs. (77)–(79)),
each checked against seeded Monte Carlo over Haar rotations."""

import numpy as np
import pytest

from flagalign.errors import InputError
from flagalign.geometry.nulls import (
    commutator_null,
    commutator_null_sd,
    imbalance_null,
    overlap_null,
    trace_product_moments,
    verdict,
    z_score,
)
from flagalign.geometry.random import haar_orthogonal, haar_stiefel
from flagalign.geometry import commutator_norm


def _mc(n, draws, f, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([f(haar_orthogonal(n, rng)) for _ in range(draws)])


@pytest.mark.parametrize("n,ra,rb", [(9, 9, 4), (14, 5, 14), (6, 3, 3)])
def test_trace_product_moments_match_monte_carlo(n, ra, rb):
    rng = np.random.default_rng(n)
    a = rng.normal(size=ra)  # any symmetric spectra, signs included
    b = rng.exponential(size=rb)
    A, B = np.diag(np.r_[a, np.zeros(n - ra)]), np.diag(np.r_[b, np.zeros(n - rb)])
    x = _mc(n, 6000, lambda q: np.trace(A @ q @ B @ q.T), seed=1)
    m = trace_product_moments(a, b, n)
    se_mean = x.std() / np.sqrt(x.size)
    assert abs(x.mean() - m.mean) < 4 * se_mean
    # sd of the sample sd ≈ sd/√(2N) for near-normal X; 5 of them
    assert abs(x.std() - m.sd) < 5 * m.sd / np.sqrt(2 * x.size) + 0.02 * m.sd


def test_projector_case_is_the_heads_overlap_variance():
    n, a, b = 10, 3, 4
    m = trace_product_moments(np.ones(a), np.ones(b), n)
    assert m.mean == pytest.approx(a * b / n, rel=1e-14)
    assert m.sd**2 == pytest.approx(2 * a * b * (n - a) * (n - b) / (n**2 * (n - 1) * (n + 2)), rel=1e-12)
    assert m.sd**2 == pytest.approx(1.5333333333333333 - 1.44, rel=1e-12)  # hand computation


def test_overlap_null_against_monte_carlo():
    n, k = 16, 4
    rng = np.random.default_rng(3)
    u = haar_stiefel(n, k, rng)
    ov = np.array([np.sum((u.T @ haar_stiefel(n, k, rng)) ** 2) / k for _ in range(6000)])
    m = overlap_null(k, k, n)
    assert m.mean == pytest.approx(k / n)
    assert m.sd == pytest.approx(np.sqrt(2) * (n - k) / (n * np.sqrt((n - 1) * (n + 2))), rel=1e-12)
    assert abs(ov.mean() - m.mean) < 4 * ov.std() / np.sqrt(ov.size)
    assert ov.std() == pytest.approx(m.sd, rel=0.05)


def test_imbalance_null_closed_form_and_monte_carlo():
    n = 11
    rng = np.random.default_rng(4)
    W, Wn = rng.normal(size=(n, 7)), rng.normal(size=(5, n)) * 1.7
    A, B = W @ W.T, Wn.T @ Wn
    a, b = np.linalg.eigvalsh(A), np.linalg.eigvalsh(B)
    d2 = _mc(n, 6000, lambda q: np.linalg.norm(A - q @ B @ q.T) ** 2, seed=5)
    # E‖A − QBQᵀ‖² = ‖A‖² + ‖B‖² − 2 tr A tr B / n, exactly
    exact = np.linalg.norm(A) ** 2 + np.linalg.norm(B) ** 2 - 2 * np.trace(A) * np.trace(B) / n
    assert abs(d2.mean() - exact) < 4 * d2.std() / np.sqrt(d2.size)
    denom = (np.linalg.norm(A) + np.linalg.norm(B)) ** 2
    m = imbalance_null(a, b, n)
    assert m.mean == pytest.approx(exact / denom, rel=1e-12)
    assert (d2 / denom).std() == pytest.approx(m.sd, rel=0.05)


def test_commutator_null_sd_against_monte_carlo():
    n = 10
    rng = np.random.default_rng(6)
    a, b = rng.exponential(size=n), rng.exponential(size=6)
    A, B = np.diag(a), np.diag(np.r_[b, np.zeros(n - 6)])
    c = _mc(n, 4000, lambda q: commutator_norm(A, q @ B @ q.T), seed=7)
    null = commutator_null(a, b, n, samples=2000, seed=8)
    assert commutator_null_sd(null) == pytest.approx(c.std(), rel=0.06)


def test_verdict_rule():
    assert verdict(4.0, higher_is_aligned=True) == "aligned"
    assert verdict(-4.0, higher_is_aligned=True) == "anti-aligned"
    assert verdict(-4.0, higher_is_aligned=False) == "aligned"
    assert verdict(3.0, higher_is_aligned=False) == "chance"
    assert verdict(float("nan"), higher_is_aligned=True) == "n/a"
    assert z_score(1.0, 0.5, 0.0) != z_score(1.0, 0.5, 0.0)  # NaN for a degenerate null
    assert z_score(2.0, 1.0, 0.5) == 2.0


def test_random_pairs_are_mostly_chance_and_planted_pairs_are_not():
    """Under the null the verdict is 'chance' with probability ≈ 99.7 % (|z| ≤ 3); a pair whose
    reader shares the writer's top subspace is 'aligned' by the overlap null."""
    n, k = 64, 8
    rng = np.random.default_rng(9)
    m = overlap_null(k, k, n)
    u = haar_stiefel(n, k, rng)
    calls = [verdict(z_score(np.sum((u.T @ haar_stiefel(n, k, rng)) ** 2) / k, m.mean, m.sd),
                     higher_is_aligned=True) for _ in range(400)]  # fmt: skip
    assert calls.count("chance") >= 390
    assert verdict(z_score(1.0, m.mean, m.sd), higher_is_aligned=True) == "aligned"


def test_bad_inputs():
    with pytest.raises(InputError):
        overlap_null(0, 3, 5)
    with pytest.raises(InputError):
        trace_product_moments(np.ones(6), np.ones(2), 5)


def test_pair_verdicts_columns():
    from flagalign.geometry import pair_alignment
    from flagalign.geometry.nulls import VERDICT_COLUMNS, gram_moments, imbalance_null_from_moments, pair_verdicts

    rng = np.random.default_rng(10)
    n = 40
    w = rng.normal(size=(n, 30))
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    balanced = (vt.T * s) @ u.T  # W_next = Wᵀ-like: W_nextᵀW_next = W Wᵀ, D = 0, commutator 0
    rotated = balanced @ haar_orthogonal(n, rng)  # reader Haar-rotated
    for wn, expect in ((balanced, "aligned"), (rotated, "chance")):
        pa = pair_alignment(w, wn, k=5)
        null = commutator_null(np.linalg.svd(w, compute_uv=False) ** 2,
                               np.linalg.svd(wn, compute_uv=False) ** 2, n, samples=256)  # fmt: skip
        row = pair_verdicts(n=n, k=5, overlap=pa.overlap, commutator=pa.commutator, commutator_null=null,
                            imbalance=pa.imbalance.relative, w_moments=gram_moments(w),
                            next_moments=gram_moments(wn))  # fmt: skip
        assert tuple(row) == VERDICT_COLUMNS
        assert row["overlap_verdict"] == expect and row["commutator_verdict"] == expect
        assert row["imbalance_verdict"] == expect
    # moments route = spectra route
    a, b = np.linalg.eigvalsh(w @ w.T), np.linalg.eigvalsh(rotated.T @ rotated)
    assert imbalance_null_from_moments(*gram_moments(w), *gram_moments(rotated), n) == pytest.approx(
        imbalance_null(a, b, n), rel=1e-10)
