"""Flag tables, hard flag intersections and relative position (docs/theory.md eqs. (6)–(8))."""

import itertools

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import (
    InputError,
    ToleranceError,
    flag_intersection_dims,
    flag_table,
    intersection_dim,
    principal_angles,
    relative_position,
)

from _planted import random_orthogonal


def _orth(rng, n, p):
    return random_orthogonal(n, rng)[:, :p]


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12), p=st.integers(1, 6), q=st.integers(1, 6))
def test_flag_table_properties_and_reference(seed, n, p, q):
    rng = np.random.default_rng(seed)
    U, V = _orth(rng, n, min(p, n)), _orth(rng, n, min(q, n))
    T = flag_table(U, V)
    assert T.shape == (U.shape[1] + 1, V.shape[1] + 1)
    i, j = np.indices(T.shape)
    assert np.all(T <= np.minimum(i, j) + 1e-12) and np.all(T >= -1e-15)
    assert np.all(np.diff(T, axis=0) >= -1e-12) and np.all(np.diff(T, axis=1) >= -1e-12)
    # independent reference: sum of cos² of principal angles between the flag members
    for a in range(1, T.shape[0]):
        for b in range(1, T.shape[1]):
            ref = np.sum(np.cos(principal_angles(U[:, :a], V[:, :b])) ** 2)
            assert T[a, b] == pytest.approx(ref, abs=1e-10)


def test_flag_table_rejects_non_orthonormal():
    with pytest.raises(InputError, match="orthonormal"):
        flag_table(np.ones((4, 2)), np.eye(4)[:, :2])


def test_flag_intersection_dims_planted_and_ks():
    rng = np.random.default_rng(0)
    Q = random_orthogonal(6, rng)
    U = Q
    V = Q[:, [0, 3, 1, 5, 2, 4]]
    D = flag_intersection_dims(U, V)
    assert D.shape == (7, 7)
    for i in range(7):
        for j in range(7):
            assert D[i, j] == intersection_dim(U[:, :i], V[:, :j]) if i and j else D[i, j] == 0
    sub = flag_intersection_dims(U, V, ks=[2, 4])
    np.testing.assert_array_equal(sub, D[np.ix_([2, 4], [2, 4])])
    # soft table equals hard counts when every angle is 0 or π/2
    np.testing.assert_allclose(flag_table(U, V), D, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8])
def test_relative_position_recovers_planted_permutation(n):
    rng = np.random.default_rng(n)
    perms = list(itertools.permutations(range(n))) if n <= 4 else [
        tuple(rng.permutation(n)) for _ in range(6)
    ]
    for w in perms:
        Q = random_orthogonal(n, rng)
        # V's flag: e_j-th member; U = Q (standard flag). Choose V so that dim(U_i ∩ V_j) =
        # #{a < i : w[a] < j}: V's column j is U's column w⁻¹(j), then mixed within V's flag by
        # an upper-triangular matrix (which preserves V's flag).
        winv = np.argsort(w)
        V = Q[:, winv]
        T = np.triu(rng.standard_normal((n, n))) + 3 * np.eye(n)
        V = np.linalg.qr(V @ T)[0]
        assert relative_position(Q, V) == list(w)


def test_relative_position_generic_is_reversal_and_identity():
    rng = np.random.default_rng(9)
    n = 5
    U, V = random_orthogonal(n, rng), random_orthogonal(n, rng)
    assert relative_position(U, V) == list(range(n))[::-1]
    assert relative_position(U, U) == list(range(n))


def test_relative_position_noisy_table_raises_with_advice():
    rng = np.random.default_rng(2)
    U = random_orthogonal(4, rng)
    # U and V share their first member up to an angle of 1e-5: at tol=1e-7 the first member is
    # not shared but the rest is consistent — perturb so the table is not a permutation table
    V = U.copy()
    V[:, 0] = np.cos(1e-5) * U[:, 0] + np.sin(1e-5) * U[:, 1]
    V[:, 1] = -np.sin(1e-5) * U[:, 0] + np.cos(1e-5) * U[:, 1]
    assert relative_position(U, V, tol=1e-4) == [0, 1, 2, 3]
    # at a tight tol the table is still a permutation's (generic inside span(u0,u1))
    assert relative_position(U, V, tol=1e-9) == [1, 0, 2, 3]


def test_relative_position_inconsistent_table_raises_with_advice():
    # V is I rotated by ~1e-2: at tol=1e-2 some sines fall on each side of the tolerance and the
    # table is not a permutation's (dim(U2 ∩ V2) = 1 although U1 ⊂ V2 and V1 ⊂ U2 are counted)
    S = np.array([[0, 0.0095, 0.0069], [-0.0095, 0, -0.0222], [-0.0069, 0.0222, 0]])
    V = sla.expm(S)
    with pytest.raises(ToleranceError, match="loosen tol"):
        relative_position(np.eye(3), V, tol=1e-2)
    assert relative_position(np.eye(3), V, tol=0.1) == [0, 1, 2]
    assert relative_position(np.eye(3), V, tol=1e-4) == [2, 1, 0]
