"""geometry.factored.pair_products (docs/theory.md eqs. (16)–(19)) against the dense definitions
of eqs. (10)–(12) (geometry.commutator, geometry.imbalance, geometry.pair.lost_dims)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagalign.geometry import gram_commutator, imbalance, imbalance_matrix, lost_dims
from flagalign.geometry.factored import QR_RATIO, pair_products

REL = 1e-10


def _dense_rows(W, Wn, b=None):
    """The pairs.csv imbalance columns from the dense n×n D (diagnostics/pairs.py definitions)."""
    im = imbalance(W, Wn, b)
    d = imbalance_matrix(W, Wn, b)
    wt = W if b is None else np.column_stack([W, b])
    denom = np.linalg.norm(wt @ wt.T) + np.linalg.norm(Wn.T @ Wn)
    assert np.isclose(im.full, np.linalg.norm(d))
    return im, im.diag / denom, im.offdiag / denom


def _check(W, Wn, b=None, rel=REL):
    pp = pair_products(W, Wn, bias=b)
    im, diag_rel, off_rel = _dense_rows(W, Wn, b)
    assert pp.commutator == pytest.approx(gram_commutator(W, Wn), rel=rel, abs=1e-13)
    assert pp.imbalance.full == pytest.approx(im.full, rel=rel)
    assert pp.imbalance.diag == pytest.approx(im.diag, rel=rel)
    assert pp.imbalance.offdiag == pytest.approx(im.offdiag, rel=rel, abs=1e-12 * im.full)
    assert pp.imbalance.relative == pytest.approx(im.relative, rel=rel)
    assert pp.imbalance_diag_rel == pytest.approx(diag_rel, rel=rel)
    assert pp.imbalance_offdiag_rel == pytest.approx(off_rel, rel=rel, abs=1e-12)
    assert pp.lost_dims == lost_dims(W, Wn)
    return pp


@pytest.mark.parametrize("n,i,o", [(60, 3, 5), (200, 17, 9), (40, 30, 25), (12, 20, 3), (90, 40, 30)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_dense_definitions(n, i, o, with_bias):
    rng = np.random.default_rng(n + i + o)
    W, Wn = rng.standard_normal((n, i)), rng.standard_normal((o, n))
    b = rng.standard_normal(n) if with_bias else None
    pp = _check(W, Wn, b)
    k = i + o + with_bias
    assert pp.route == ("qr" if k <= QR_RATIO * n else "gram" if i + with_bias < n and o < n else "dense")


def test_qr_route_forms_nothing_n_by_n():
    rng = np.random.default_rng(0)
    n = 3000
    W, Wn = rng.standard_normal((n, 4)), rng.standard_normal((3, n))
    tracemalloc.start()
    pp = pair_products(W, Wn)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pp.route == "qr" and pp.m == 7 and not pp.offdiag_direct
    assert peak < 0.05 * n * n * 8  # an n×n float64 would be 72 MB; O(n·k) is ~0.2 MB
    _check(W, Wn)


def test_lost_dims_planted():
    """col W ∩ ker W_next of planted dimension 3 in ℝ¹⁰⁰ (eq. (12))."""
    rng = np.random.default_rng(1)
    n = 100
    U = np.linalg.qr(rng.standard_normal((n, 10)))[0]
    W = U[:, :6] @ rng.standard_normal((6, 8))  # rank 6, col = span U[:, :6]
    Wn = rng.standard_normal((5, 4)) @ U[:, 3:7].T  # reads only U[:, 3:7]
    pp = pair_products(W, Wn)
    assert pp.route == "qr" and pp.rank_w == 6 and pp.lost_dims == 3 == lost_dims(W, Wn)


def test_commuting_pair_and_zero_matrix():
    rng = np.random.default_rng(2)
    n = 50
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    W = Q[:, :3] * [3.0, 2.0, 1.0]  # WWᵀ and W_nextᵀW_next diagonal in the same basis
    Wn = (Q[:, 1:4] * [5.0, 1.0, 2.0]).T
    assert pair_products(W, Wn).commutator < 1e-14
    assert pair_products(np.zeros((n, 2)), Wn).commutator == 0.0


def test_offdiag_guard_nearly_diagonal_D():
    """D nearly diagonal: √(‖D‖² − ‖diag D‖²) would cancel; the guard sums it directly (eq. (18))."""
    rng = np.random.default_rng(3)
    n = 400
    W = np.zeros((n, 3))
    W[[5, 77, 300], [0, 1, 2]] = [1.0, 2.0, 3.0]
    Wn = W.T * (1.0 + 1e-3)  # D = ((1+1e-3)² − 1)·WWᵀ: diagonal
    Wn[0, 6] = 1e-9  # a tiny off-diagonal part
    pp = pair_products(W, Wn)
    d = imbalance_matrix(W, Wn)
    off = np.linalg.norm(d - np.diag(np.diag(d)))
    assert pp.offdiag_direct
    assert pp.imbalance.offdiag == pytest.approx(off, rel=1e-9)
    naive = np.sqrt(max(pp.imbalance.full**2 - pp.imbalance.diag**2, 0.0))
    assert abs(naive - off) > 1e-3 * off  # the subtraction would have been wrong


def test_reuse_qr_factor():
    rng = np.random.default_rng(4)
    W, Wn, b = rng.standard_normal((90, 4)), rng.standard_normal((6, 90)), rng.standard_normal(90)
    a = pair_products(W, Wn, bias=b)
    again = pair_products(W, Wn, bias=b, qr=a.R)
    assert again.commutator == a.commutator and again.imbalance == a.imbalance
    assert again.lost_dims == a.lost_dims


def test_gram_route_falls_back_when_subtraction_cancels():
    """Nearly commuting / balanced pair on a mid-size k: the small-Gram route (eq. (16b)) would
    cancel, so the n×n route answers (same numbers as the definitions)."""
    rng = np.random.default_rng(8)
    n = 40
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    W = Q[:, :20] * rng.uniform(1, 2, 20)
    Wn = (W * (1 + 1e-9)).T  # balanced up to 1e-9: D ≈ 0, c = 0
    pp = pair_products(W, Wn)
    assert pp.route == "dense"
    assert pp.commutator < 1e-13
    im = imbalance(W, Wn)
    assert pp.imbalance.full == pytest.approx(im.full, rel=1e-6)


def test_dense_route_reuses_grams():
    rng = np.random.default_rng(5)
    W, Wn = rng.standard_normal((20, 30)), rng.standard_normal((10, 20))
    pp = pair_products(W, Wn, g_w=W @ W.T, g_next=Wn.T @ Wn)
    assert pp.route == "dense" and pp.commutator == pytest.approx(gram_commutator(W, Wn), rel=REL)


@given(
    n=st.integers(8, 60),
    i=st.integers(1, 6),
    o=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_property_matches_dense_and_invariances(n, i, o, seed, scale):
    rng = np.random.default_rng(seed)
    W, Wn = rng.standard_normal((n, i)), scale * rng.standard_normal((o, n))
    pp = _check(W, Wn, rel=1e-9)
    # eq. (10): c is invariant under O(n) acting on the hidden space and under scalings of W, W_next
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    rot = pair_products(Q @ W, 7.0 * Wn @ Q.T)
    assert rot.commutator == pytest.approx(pp.commutator, rel=1e-9, abs=1e-13)
    assert rot.imbalance.diag >= 0 and 0 <= pp.commutator <= 1 / np.sqrt(2) + 1e-12
    assert 0 <= pp.imbalance.relative <= 1 + 1e-12


def test_issue13_shape_fast_and_small():
    """A 20000×2 writer and a 2×20000 reader (issue 13): well under a second, tiny memory."""
    rng = np.random.default_rng(6)
    W, Wn = rng.standard_normal((20000, 2)), rng.standard_normal((2, 20000))
    tracemalloc.start()
    t = time.perf_counter()
    pp = pair_products(W, Wn, bias=rng.standard_normal(20000))
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dt < 0.5 and peak < 20e6  # n×n would be 3.2 GB
    assert pp.route == "qr" and pp.m == 5 and pp.lost_dims == 0
    assert np.isfinite(pp.commutator) and np.isfinite(pp.imbalance.offdiag)
