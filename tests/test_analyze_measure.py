"""The factor-sharing pair measurement equals geometry.pair_alignment field by field."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign.diagnostics.factors import compute_factors
from flagalign.diagnostics.measure import commutator_factored, measure_pair
from flagalign.geometry import commutator_norm, pair_alignment, rank_rtol

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpoolctl.threadpool_limits(1):
        yield


def _low_rank(rng, m, n, r):
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n))


def _compare(W, Wn, bias=None, k=None):
    ref = pair_alignment(W, Wn, k=k, tol=1e-6, method="exact", bias=bias)
    left = compute_factors(W, min(W.shape), "exact")
    right = compute_factors(Wn, min(Wn.shape), "exact")
    got = measure_pair(W, Wn, left, right, k=ref.k, tol=1e-6, bias=bias,
                       rtol_w=rank_rtol(W.shape), rtol_n=rank_rtol(Wn.shape))
    assert got.k == ref.k and got.n == ref.n and got.method == ref.method == "exact"
    np.testing.assert_allclose(got.angles, ref.angles, atol=1e-12)
    np.testing.assert_allclose(got.flag_table, ref.flag_table, atol=1e-12)
    for f in ("overlap", "baseline", "overlap_ratio", "commutator"):
        assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-10, abs=1e-14), f
    for f in ("full", "diag", "offdiag", "relative"):
        assert getattr(got.imbalance, f) == pytest.approx(getattr(ref.imbalance, f), rel=1e-10), f
    assert got.intersection_dim == ref.intersection_dim
    assert got.lost_dims == ref.lost_dims
    return got


@settings(max_examples=25)
@given(
    n=st.integers(4, 40),
    i=st.integers(2, 50),
    o=st.integers(2, 50),
    rw=st.integers(1, 12),
    rn=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    use_bias=st.booleans(),
)
def test_matches_pair_alignment(n, i, o, rw, rn, seed, use_bias):
    """Random (often rank-deficient) pairs, with and without bias, both commutator orders."""
    rng = np.random.default_rng(seed)
    W = _low_rank(rng, n, i, min(rw, n, i))
    Wn = _low_rank(rng, o, n, min(rn, o, n))
    bias = rng.standard_normal(n) if use_bias else None
    _compare(W, Wn, bias)


def test_lost_dims_planted():
    """W writes a direction that W' annihilates: lost_dims counts it (eq. (12))."""
    rng = np.random.default_rng(4)
    n = 20
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    W = q[:, :6] @ rng.standard_normal((6, 15))  # col W = span q1..q6
    Wn = rng.standard_normal((12, n - 2)) @ q[:, 2:].T  # kills q1, q2
    assert _compare(W, Wn).lost_dims == 2


def test_factored_commutator_equals_direct():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((300, 40))  # n ≫ i, o: factored order is used
    Wn = rng.standard_normal((30, 300))
    a, b = W @ W.T, Wn.T @ Wn
    assert commutator_factored(W, Wn, a, b) == pytest.approx(commutator_norm(a, b), rel=1e-10)
    # a balanced pair (W'ᵀW' = WWᵀ, so the Grams commute) in the factored order: exactly 0
    # up to roundoff, with no cancellation noise of order sqrt(eps)
    o, _ = np.linalg.qr(rng.standard_normal((50, 40)))  # orthonormal columns
    Wbal = o @ W.T  # (50, 300): Wbalᵀ Wbal = W Wᵀ
    b2 = Wbal.T @ Wbal
    assert 300 * 300 * 40 + 2 * 50 * 300 * 40 < 300**3  # the factored branch is taken
    assert commutator_factored(W, Wbal, a, b2) < 1e-14


@pytest.mark.parametrize(
    "n,i,o,rw,rn",
    [
        (12, 20, 30, 12, 7),  # col W = ℝⁿ: σ(W'Q) = σ(W') shortcut
        (12, 20, 30, 12, 12),
        (16, 8, 40, 8, 5),  # tall reader (o > n): σ(S Vᵀ Q) reduction
        (16, 8, 6, 8, 6),  # wide reader (o < n): direct σ(W'Q)
        (30, 10, 50, 10, 30),
    ],
)
def test_lost_dims_branches(n, i, o, rw, rn):
    rng = np.random.default_rng(n + i + o)
    W = _low_rank(rng, n, i, rw)
    Wn = _low_rank(rng, o, n, rn)
    _compare(W, Wn)


def test_tasks_are_picklable():
    """Factor and pair tasks (and their results) survive pickling, for distributed runners."""
    import pickle

    rng = np.random.default_rng(7)
    W, Wn = rng.standard_normal((10, 6)), rng.standard_normal((5, 10))
    f = pickle.loads(pickle.dumps(compute_factors(W, 6, "exact")))
    g = pickle.loads(pickle.dumps(compute_factors(Wn, 5, "exact")))
    task = pickle.loads(pickle.dumps((measure_pair, W, Wn, f, g)))
    pa = task[0](*task[1:], k=2, tol=1e-6, rtol_w=1e-12, rtol_n=1e-12)
    assert pickle.loads(pickle.dumps(pa)).k == 2
