"""The Haar null of the Gram commutator (eq. (50)) against independent references."""

import numpy as np
import pytest

from flagalign.errors import InputError
from flagalign.geometry import commutator_norm, gram_commutator
from flagalign.geometry.nulls import (
    NullEstimate,
    commutator_null,
    commutator_null_rms,
    commutator_null_sq,
)
from flagalign.geometry.random import haar_orthogonal


def _brute(a, b, n, samples, seed):
    """Full n×n Haar simulation: c(A, Q B Qᵀ) with dense diagonal A, B (no reduced block)."""
    rng = np.random.default_rng(seed)
    A = np.diag(np.r_[a, np.zeros(n - len(a))])
    B = np.diag(np.r_[b, np.zeros(n - len(b))])
    vals = []
    for _ in range(samples):
        q = haar_orthogonal(n, rng)
        vals.append(commutator_norm(A, q @ B @ q.T))
    return np.array(vals)


@pytest.mark.parametrize("n,ra,rb", [(10, 3, 7), (8, 8, 8), (12, 5, 2)])
def test_mc_null_matches_full_haar_simulation(n, ra, rb):
    rng = np.random.default_rng(n + ra + rb)
    a, b = rng.random(ra) + 0.1, rng.random(rb) + 0.1
    est = commutator_null(a, b, n, samples=2000, seed=1)
    ref = _brute(a, b, n, 2000, seed=2)
    se = np.hypot(est.se, ref.std(ddof=1) / np.sqrt(ref.size))
    assert abs(est.mean - ref.mean()) <= 3 * se
    # the exact Weingarten second moment against the brute-force mean of c²
    c2 = ref**2
    assert abs(commutator_null_sq(a, b, n) - c2.mean()) <= 3 * c2.std(ddof=1) / np.sqrt(c2.size)


def test_identity_weingarten_check():
    # A = B = I commute for every Q: E c² = 0 exactly, and the MC null is 0
    n = 6
    assert commutator_null_sq(np.ones(n), np.ones(n), n) == pytest.approx(0.0, abs=1e-15)
    assert commutator_null(np.ones(n), np.ones(n), n, samples=8).mean == pytest.approx(0.0, abs=1e-7)


def test_ratio_about_one_for_haar_rotated_reader_and_zero_for_balanced_pair():
    rng = np.random.default_rng(0)
    n = 24
    w = rng.standard_normal((n, 10)) * np.linspace(1, 3, 10)
    x = rng.standard_normal((7, n)) * np.linspace(0.5, 2, n)
    a = np.linalg.svd(w, compute_uv=False) ** 2
    b = np.linalg.svd(x, compute_uv=False) ** 2
    null = commutator_null(a, b, n, samples=512, seed=3)
    # one Haar-rotated reader per draw: the mean ratio over draws is 1 within 3 SE
    ratios = np.array([gram_commutator(w, x @ haar_orthogonal(n, rng).T) for _ in range(400)])
    ratios /= null.mean
    se = np.hypot(ratios.std(ddof=1) / np.sqrt(ratios.size), null.se / null.mean)
    assert abs(ratios.mean() - 1.0) <= 3 * se
    # balanced pair W_next = Wᵀ: the two Grams coincide, commutator 0, ratio 0
    bal = gram_commutator(w, w.T) / commutator_null(a, a, n, samples=64).mean
    assert bal == pytest.approx(0.0, abs=1e-12)


def test_invariances_seed_and_zeros():
    rng = np.random.default_rng(5)
    a, b = rng.random(4), rng.random(6)
    base = commutator_null(a, b, 9, samples=32, seed=7)
    assert isinstance(base, NullEstimate) and base.samples == 32
    assert commutator_null(a, b, 9, samples=32, seed=7) == base  # seeded
    scaled = commutator_null(5 * a, 0.1 * b, 9, samples=32, seed=7)  # scale-free
    assert scaled.mean == pytest.approx(base.mean, rel=1e-12)
    padded = commutator_null(np.r_[a, 0, 0], b, 9, samples=32, seed=7)  # zeros may be omitted
    assert padded == base
    assert commutator_null([], b, 9) == NullEstimate(0.0, 0.0, 256)


@pytest.mark.parametrize("kw", [dict(a=[-1.0], b=[1.0], n=3), dict(a=[np.nan], b=[1.0], n=3),
                                dict(a=[1.0] * 4, b=[1.0], n=3), dict(a=[1.0], b=[1.0], n=0),
                                dict(a=[[1.0]], b=[1.0], n=3)])
def test_bad_input_is_input_error(kw):
    with pytest.raises(InputError):
        commutator_null(**kw)
    with pytest.raises(InputError):
        commutator_null([1.0], [1.0], 3, samples=1)


def test_early_stop_is_deterministic_and_within_its_target():
    rng = np.random.default_rng(8)
    a, b = rng.random(30) + 0.5, rng.random(40) + 0.5
    full = commutator_null(a, b, 64, samples=400, seed=2)
    early = commutator_null(a, b, 64, samples=400, seed=2, rel_se=0.01)
    assert 8 <= early.samples < 400 and early.se <= 0.01 * early.mean
    assert early == commutator_null(a, b, 64, samples=400, seed=2, rel_se=0.01)
    assert abs(early.mean - full.mean) <= 3 * np.hypot(early.se, full.se)


def test_rms_null_from_grams_is_the_exact_second_moment_and_bounds_the_mean():
    rng = np.random.default_rng(11)
    n = 32
    w = rng.standard_normal((n, 20))
    x = rng.standard_normal((12, n))
    a = np.linalg.svd(w, compute_uv=False) ** 2
    b = np.linalg.svd(x, compute_uv=False) ** 2
    rms = commutator_null_rms(w @ w.T, x.T @ x)
    assert rms == pytest.approx(np.sqrt(commutator_null_sq(a, b, n)), rel=1e-10)
    # Jensen: E c ≤ √(E c²), and the gap is small at n = 32 (eq. (50): 0.2 %)
    est = commutator_null(a, b, n, samples=2000, seed=4)
    assert est.mean - 3 * est.se <= rms <= 1.01 * (est.mean + 3 * est.se)
    assert commutator_null_rms(np.zeros((3, 3)), np.eye(3)) == 0.0
    with pytest.raises(InputError):
        commutator_null_rms(np.eye(3), np.eye(4))
