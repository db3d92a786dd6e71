"""Principal angles, overlap, baseline and intersection dimension (docs/theory.md eqs. (1)–(5))."""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import (
    InputError,
    intersection_dim,
    overlap_baseline,
    principal_angles,
    subspace_overlap,
)

from _planted import mp_principal_angles, planted_pair, random_orthogonal, well_conditioned


def _low_rank(rng, n, a, r):
    return rng.standard_normal((n, r)) @ rng.standard_normal((r, a))


@pytest.mark.parametrize(
    "n,a,b,ra,rb",
    [(10, 3, 4, 3, 4), (50, 7, 7, 7, 7), (30, 12, 5, 12, 5), (40, 10, 8, 4, 8), (25, 9, 9, 3, 2),
     (64, 1, 20, 1, 20), (200, 30, 40, 30, 40)],
)
def test_agrees_with_scipy(n, a, b, ra, rb):
    rng = np.random.default_rng(n * 100 + a)
    A, B = _low_rank(rng, n, a, ra), _low_rank(rng, n, b, rb)
    ours = principal_angles(A, B)
    ref = np.sort(sla.subspace_angles(A, B))
    assert ours.shape == (min(ra, rb),)
    assert np.all(np.diff(ours) >= 0)
    np.testing.assert_allclose(ours, ref, atol=1e-10, rtol=0)


@given(
    n=st.integers(2, 30),
    a=st.integers(1, 8),
    b=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_agrees_with_scipy_property(n, a, b, seed):
    """General position (a + b ≤ n): no angle is forced to 0, where scipy is accurate."""
    a, b = min(a, n // 2), min(b, n // 2)
    if a == 0 or b == 0:
        return
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, a)), rng.standard_normal((n, b))
    np.testing.assert_allclose(
        principal_angles(A, B), np.sort(sla.subspace_angles(A, B)), atol=1e-10, rtol=0
    )


@given(
    n=st.integers(2, 12),
    a=st.integers(1, 12),
    b=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_forced_intersections_against_high_precision(n, a, b, seed):
    """When a + b > n some angles are exactly 0. scipy 1.17's subspace_angles pairs its
    sine/cosine mask in the wrong order there and returns ~1e-8 for them; we check against an
    independent 40-digit mpmath reference instead, to 1e-12."""
    a, b = min(a, n), min(b, n)
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, a)), rng.standard_normal((n, b))
    ref = mp_principal_angles(A, B)
    got = principal_angles(A, B)
    np.testing.assert_allclose(got, ref, atol=1e-12, rtol=0)
    assert np.sum(got < 1e-12) >= max(0, a + b - n)


def test_planted_tiny_and_right_angles():
    rng = np.random.default_rng(1)
    planted = np.array([1e-9, 1e-5, 0.3, 1.0, np.pi / 2])
    U, V = planted_pair(planted, 16, rng)
    got = principal_angles(U, V)
    assert abs(got[0] - 1e-9) <= 1e-12
    np.testing.assert_allclose(got, planted, atol=1e-12, rtol=0)
    # a non-orthonormal spanning set of the same subspaces gives the same angles
    got2 = principal_angles(U @ well_conditioned(5, rng), V @ well_conditioned(5, rng))
    assert abs(got2[0] - 1e-9) <= 1e-12


def test_arccos_alone_would_fail_at_1e9():
    # documents why the sine branch exists: arccos of the cosine cannot resolve 1e-9 rad
    assert abs(np.arccos(np.cos(1e-9)) - 1e-9) > 1e-10


def test_orthogonal_and_identical_subspaces():
    e = np.eye(6)
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, 2:5]), [np.pi / 2] * 2, atol=1e-15)
    np.testing.assert_allclose(principal_angles(e[:, :3], e[:, :3] * 7.0), 0.0, atol=1e-15)
    assert subspace_overlap(e[:, :2], e[:, 2:5]) == 0.0
    assert subspace_overlap(e[:, :3], e[:, :3] @ np.array([[1, 2, 0], [0, 1, 3], [0, 0, 1.0]])) == pytest.approx(1.0)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 20), a=st.integers(1, 6), b=st.integers(1, 6))
def test_invariant_under_common_rotation(seed, n, a, b):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, min(a, n))), rng.standard_normal((n, min(b, n)))
    Q = random_orthogonal(n, rng)
    np.testing.assert_allclose(principal_angles(Q @ A, Q @ B), principal_angles(A, B), atol=1e-10)


def test_overlap_is_mean_cos2_and_in_unit_interval():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((12, 4)), rng.standard_normal((12, 6))
    th = principal_angles(A, B)
    assert subspace_overlap(A, B) == pytest.approx(np.mean(np.cos(th) ** 2), abs=1e-12)
    assert 0.0 <= subspace_overlap(A, B) <= 1.0


@pytest.mark.parametrize("a,b,n", [(3, 3, 20), (2, 7, 15), (10, 4, 40)])
def test_baseline_matches_monte_carlo(a, b, n):
    rng = np.random.default_rng(a * b * n)
    samples = [
        subspace_overlap(rng.standard_normal((n, a)), rng.standard_normal((n, b)))
        for _ in range(3000)
    ]
    se = np.std(samples) / np.sqrt(len(samples))
    assert abs(np.mean(samples) - overlap_baseline(a, b, n)) < 4 * se
    assert overlap_baseline(a, b, n) == max(a, b) / n


def test_baseline_rejects_bad_dims():
    with pytest.raises(InputError):
        overlap_baseline(5, 3, 4)


@given(seed=st.integers(0, 2**31 - 1), d=st.integers(0, 4), extra=st.integers(0, 3))
def test_planted_intersection_dim_and_gl_invariance(seed, d, extra):
    rng = np.random.default_rng(seed)
    n = 16
    angles = np.r_[np.zeros(d), np.linspace(0.2, 1.2, 3)]
    U, V = planted_pair(angles, n, rng, extra_a=extra)
    assert intersection_dim(U, V) == d
    G = well_conditioned(n, rng)
    assert intersection_dim(G @ U, G @ V, tol=1e-8) == d


def test_intersection_dim_counts_sines_not_angles():
    rng = np.random.default_rng(5)
    U, V = planted_pair([1e-7, 1e-3], 6, rng)
    assert intersection_dim(U, V, tol=1e-6) == 1
    assert intersection_dim(U, V, tol=1e-2) == 2
    assert intersection_dim(U, V, tol=1e-8) == 0


def test_rejects_mismatched_spaces_and_complex():
    with pytest.raises(InputError):
        principal_angles(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(InputError):
        principal_angles(np.ones((3, 1), dtype=complex), np.ones((3, 1)))


def test_zero_subspace():
    assert principal_angles(np.zeros((4, 2)), np.eye(4)[:, :2]).size == 0
    assert np.isnan(subspace_overlap(np.zeros((4, 2)), np.eye(4)[:, :2]))
