"""Grassmann distances, equal and unequal dimensions (docs/theory.md, eq. (61))."""

import math

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import InputError, subspace_distance

from _planted import planted_pair, random_orthogonal


def _ref(A, B, metric, unequal="metric"):
    """Independent reference from scipy's principal angles."""
    th = sla.subspace_angles(A, B)
    k, l = np.linalg.matrix_rank(A), np.linalg.matrix_rank(B)
    f = th if metric == "geodesic" else np.sin(th)
    extra = abs(k - l) * ((math.pi / 2) ** 2 if metric == "geodesic" else 1.0)
    return math.sqrt(np.sum(f**2) + (extra if unequal == "metric" else 0.0))


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12), k=st.integers(1, 6), l=st.integers(1, 6))
def test_random_cases_match_scipy(seed, n, k, l):
    rng = np.random.default_rng(seed)
    k, l = min(k, n), min(l, n)
    A, B = rng.standard_normal((n, k)), rng.standard_normal((n, l))
    for metric in ("geodesic", "chordal"):
        for unequal in ("metric", "containment"):
            assert subspace_distance(A, B, metric, unequal) == pytest.approx(
                _ref(A, B, metric, unequal), abs=1e-12
            )


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 12), k=st.integers(1, 6))
def test_random_equal_dims_match_pymanopt(seed, n, k):
    manifolds = pytest.importorskip("pymanopt.manifolds")
    rng = np.random.default_rng(seed)
    k = min(k, n // 2)  # generic: no forced zero angle (pymanopt's arccos is inaccurate there)
    qa = np.linalg.qr(rng.standard_normal((n, k)))[0]
    qb = np.linalg.qr(rng.standard_normal((n, k)))[0]
    ref = manifolds.Grassmann(n, k).dist(qa, qb)
    assert subspace_distance(qa, qb, "geodesic") == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("scale", [1e-12, 1e-9, 1e-6, 1e-3, 0.3])
def test_planted_angles_to_1e14(scale):
    rng = np.random.default_rng(int(-math.log10(scale) * 7))
    for m in (1, 2, 4):
        angles = np.sort(scale * rng.uniform(1.0, 3.0, m))
        U, V = planted_pair(angles, 2 * m + 3, rng, extra_a=2)
        # equal dims: V vs the first m columns of U's planted part
        Ue = U[:, :m]
        assert abs(subspace_distance(Ue, V, "geodesic") - np.sqrt(np.sum(angles**2))) <= 1e-14
        assert abs(subspace_distance(Ue, V, "chordal") - np.sqrt(np.sum(np.sin(angles) ** 2))) <= 1e-14
        # unequal dims: U has 2 extra directions orthogonal to V
        g = math.sqrt(np.sum(angles**2) + 2 * (math.pi / 2) ** 2)
        assert abs(subspace_distance(U, V, "geodesic") - g) <= 1e-14
        c = math.sqrt(np.sum(np.sin(angles) ** 2) + 2)
        assert abs(subspace_distance(U, V, "chordal") - c) <= 1e-14
        assert abs(subspace_distance(U, V, "geodesic", "containment") - np.sqrt(np.sum(angles**2))) <= 1e-14
    if scale <= 1e-9:  # relative accuracy survives where arccos would return 0
        d = subspace_distance(Ue, V, "geodesic")
        assert d == pytest.approx(np.sqrt(np.sum(angles**2)), rel=1e-3)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 9), k=st.integers(1, 9), l=st.integers(1, 9))
def test_chordal_equals_projector_formula(seed, n, k, l):
    rng = np.random.default_rng(seed)
    k, l = min(k, n), min(l, n)
    qa = np.linalg.qr(rng.standard_normal((n, k)))[0]
    qb = np.linalg.qr(rng.standard_normal((n, l)))[0]
    p = qa @ qa.T - qb @ qb.T
    # ½‖P_A − P_B‖²_F = |k−l|/2 + Σ sin²θ, and the metric adds the other |k−l|/2
    ref = math.sqrt(0.5 * np.sum(p**2) + abs(k - l) / 2)
    assert subspace_distance(qa, qb, "chordal") == pytest.approx(ref, abs=1e-12)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 8), dims=st.lists(st.integers(1, 8), min_size=3, max_size=3))
def test_metric_across_dimensions(seed, n, dims):
    rng = np.random.default_rng(seed)
    A, B, C = (rng.standard_normal((n, min(d, n))) for d in dims)
    for metric in ("geodesic", "chordal"):
        dab, dbc, dac = (subspace_distance(X, Y, metric) for X, Y in ((A, B), (B, C), (A, C)))
        assert dac <= dab + dbc + 1e-12
        assert subspace_distance(B, A, metric) == pytest.approx(dab, abs=1e-13)
        assert subspace_distance(A, A @ rng.standard_normal((A.shape[1], A.shape[1])), metric) <= 1e-6


def test_invariances_and_errors():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    Q = random_orthogonal(7, rng)
    G = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    for metric in ("geodesic", "chordal"):
        d = subspace_distance(A, B, metric)
        assert subspace_distance(Q @ A, Q @ B, metric) == pytest.approx(d, abs=1e-13)
        assert subspace_distance(A @ G, B, metric) == pytest.approx(d, abs=1e-13)
    with pytest.raises(InputError, match="different spaces"):
        subspace_distance(A, np.ones((6, 1)))
    with pytest.raises(InputError, match="metric"):
        subspace_distance(A, B, "procrustes")
