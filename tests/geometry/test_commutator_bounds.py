"""Bounds of the normalised commutator and what c = 0 means (docs/theory.md, eqs. (9), (10),
(33); issue 12, errors 4 and 5)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign.geometry import commutator_norm, gram_commutator
from flagalign.geometry.flags import relative_position


def test_two_rank_one_projectors_at_45_degrees_attain_one_over_sqrt2():
    u = np.array([1.0, 0.0])
    v = np.array([1.0, 1.0]) / math.sqrt(2)
    c = commutator_norm(np.outer(u, u), np.outer(v, v))
    assert abs(c - 1 / math.sqrt(2)) < 1e-15
    # at any other angle it is smaller: c = √2 |cos θ sin θ| for rank-1 projectors
    for th in np.linspace(0, np.pi / 2, 19):
        w = np.array([math.cos(th), math.sin(th)])
        c = commutator_norm(np.outer(u, u), np.outer(w, w))
        assert abs(c - math.sqrt(2) * abs(math.cos(th) * math.sin(th))) < 1e-14
        assert c <= 1 / math.sqrt(2) + 1e-15


def _psd(rng, n, r, spread):
    X = rng.standard_normal((n, r)) * np.exp(spread * rng.standard_normal(r))
    return X @ X.T


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 7), st.integers(1, 7), st.integers(1, 7),
       st.floats(0, 3))
def test_psd_commutator_is_at_most_one_over_sqrt2(seed, n, r1, r2, spread):
    rng = np.random.default_rng(seed)
    A, B = _psd(rng, n, r1, spread), _psd(rng, n, r2, spread)
    assert commutator_norm(A, B) <= 1 / math.sqrt(2) + 1e-12


def test_symmetric_indefinite_inputs_can_exceed_one_over_sqrt2():
    # the √2 bound of Böttcher–Wenzel holds for all matrices and is attained by symmetric
    # indefinite ones; only for PSD inputs (Grams) is the supremum 1/√2
    A = np.array([[1.0, 0.0], [0.0, -1.0]])
    B = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert abs(commutator_norm(A, B) - math.sqrt(2)) < 1e-15


def test_zero_commutator_with_flags_in_generic_position():
    """W Wᵀ = diag(9, 4, 1) and W_nextᵀW_next = diag(1, 4, 9) commute, yet the output flag of W
    and the input flag of W_next are in the opposite (generic) relative position."""
    W = np.diag([3.0, 2.0, 1.0])
    Wn = np.diag([1.0, 2.0, 3.0])
    assert gram_commutator(W, Wn) == 0.0
    U = np.linalg.svd(W)[0]  # output flag of W (left singular vectors, σ decreasing)
    V = np.linalg.svd(Wn)[2].T  # input flag of W_next (right singular vectors)
    assert relative_position(U, V) == [2, 1, 0]  # w₀: generic position, not the identity
    # basis alignment = c = 0 AND relative position = identity
    Wn_aligned = np.diag([3.0, 2.0, 1.0])
    V2 = np.linalg.svd(Wn_aligned)[2].T
    assert gram_commutator(W, Wn_aligned) == 0.0 and relative_position(U, V2) == [0, 1, 2]


def test_etf_distance_bound_is_below_sqrt2():
    from flagalign.diagnostics.collapse.metrics import centre_rows, etf_distance

    rng = np.random.default_rng(0)
    worst = 0.0
    for C in (3, 5, 10):
        bound = math.sqrt(2 - 2 / math.sqrt(C - 1))
        # rank-1 centred means attain the bound
        m = centre_rows(rng.standard_normal((C, 1)) @ rng.standard_normal((1, 7)))
        assert abs(etf_distance(m) - bound) < 1e-12
        for _ in range(200):
            M = centre_rows(rng.standard_normal((C, 6)) * np.exp(2 * rng.standard_normal(6)))
            e = etf_distance(M)
            worst = max(worst, e)
            assert e <= bound + 1e-12 < math.sqrt(2)
    assert worst > 0.5
