"""The pair assembler's narrow route (docs/theory.md §1.6): a pair with i + [bias] + o ≤ QR_RATIO·n
gets eqs. (10)–(12) and the null (50) from one QR, nothing n×n, and the same numbers as the dense
definitions."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign.geometry import gram_commutator, imbalance, lost_dims, pair_alignment
from flagalign.geometry.nulls import commutator_null_rms


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), i=st.integers(1, 6), o=st.integers(1, 6),
       lost=st.integers(0, 2), with_bias=st.booleans())
def test_narrow_pair_matches_dense_definitions(seed, i, o, lost, with_bias):
    rng = np.random.default_rng(seed)
    n = 64
    W = rng.standard_normal((n, i)) * np.exp(rng.uniform(-2, 2, i))
    Wn = rng.standard_normal((o, n))
    if lost and i >= lost:  # W_next blind to `lost` directions W writes
        q = np.linalg.qr(W)[0][:, :lost]
        Wn = Wn - (Wn @ q) @ q.T
    b = rng.standard_normal(n) if with_bias else None
    pa = pair_alignment(W, Wn, k=1, bias=b)
    assert pytest.approx(gram_commutator(W, Wn), rel=1e-12, abs=1e-15) == pa.commutator
    im = imbalance(W, Wn, b)
    assert pa.imbalance.full == pytest.approx(im.full, rel=1e-12)
    assert pa.imbalance.diag == pytest.approx(im.diag, rel=1e-12)
    assert pa.imbalance.offdiag == pytest.approx(im.offdiag, rel=1e-12, abs=1e-13 * im.full)
    assert pa.imbalance.relative == pytest.approx(im.relative, rel=1e-12)
    assert pa.commutator_null == pytest.approx(commutator_null_rms(W @ W.T, Wn.T @ Wn), rel=1e-12)
    assert pa.lost_dims == lost_dims(W, Wn)


def test_narrow_pair_never_forms_n_by_n():
    """20000×2 and 2×20000 (an n×n Gram would be 3.2 GB): peak traced memory O(n·r)."""
    rng = np.random.default_rng(3)
    W, Wn = rng.standard_normal((20000, 2)), rng.standard_normal((2, 20000))
    tracemalloc.start()
    pa = pair_alignment(W, Wn, bias=rng.standard_normal(20000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30e6
    assert np.isfinite(pa.commutator) and np.isfinite(pa.commutator_null) and pa.lost_dims == 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), with_bias=st.booleans())
def test_wide_pair_small_gram_route_matches_the_n_by_n_path(seed, with_bias):
    """i + o > n/4 (eq. (16b)): the small-Gram route gives the n×n path's numbers to 1e-12."""
    import flagalign.geometry.pair as gp

    rng = np.random.default_rng(seed)
    n, i, o = 60, int(rng.integers(16, 50)), int(rng.integers(16, 50))
    W = rng.standard_normal((n, i)) * np.exp(rng.uniform(-1, 1, i))
    Wn = rng.standard_normal((o, n)) * np.exp(rng.uniform(-1, 1, n))
    b = rng.standard_normal(n) if with_bias else None
    gp.GRAM_ROUTE = False
    try:
        ref = pair_alignment(W, Wn, k=4, bias=b)
    finally:
        gp.GRAM_ROUTE = True
    got = pair_alignment(W, Wn, k=4, bias=b)
    assert got.commutator == pytest.approx(ref.commutator, rel=1e-12)
    for f in ("full", "diag", "offdiag", "relative"):
        assert getattr(got.imbalance, f) == pytest.approx(getattr(ref.imbalance, f), rel=1e-12), f
    assert got.commutator_null == pytest.approx(ref.commutator_null, rel=1e-12)
    assert got.lost_dims == ref.lost_dims
