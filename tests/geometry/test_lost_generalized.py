"""eq. (12b): the generalized Cholesky certificate of lost_dims = 0 for a full-column-rank writer,
checked against the SVD definition of eq. (12) (``lost_dims_at``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flagalign.geometry.gram import gram_factors
from flagalign.geometry.lost import _certified_generalized, lost_dims_at, lost_dims_from_factors


def _orth(rng, n, k):
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


def _reader_with_gap(rng, W, o, smallest):
    """A reader W' (o×n) whose restriction to col W has singular values in [smallest, 1]."""
    n, i = W.shape
    q = np.linalg.qr(W)[0]
    sv = np.linspace(1.0, smallest, i)
    left = _orth(rng, o, i)
    on_col = (left * sv) @ q.T
    rest = rng.standard_normal((o, n))
    rest -= (rest @ q) @ q.T  # only reads the orthogonal complement of col W
    return on_col + 0.5 * rest


@pytest.mark.parametrize("smallest, expect", [(1.0, True), (0.1, True), (1e-3, False), (1e-9, False)])
def test_certificate_matches_the_singular_values(smallest, expect):
    rng = np.random.default_rng(3)
    W = rng.standard_normal((200, 40))
    Wn = _reader_with_gap(rng, W, 60, smallest)
    s1 = np.linalg.svd(Wn, compute_uv=False)[0]
    tau = 1e-3 * s1
    q = np.linalg.qr(W)[0]
    smin = np.linalg.svd(Wn @ q, compute_uv=False)[-1]
    assert bool(smin > 1.05 * tau) is expect  # the planted case is far from the threshold
    got = _certified_generalized(Wn @ W, W.T @ W, tau, W.shape[0])
    assert got is expect
    if got:  # a certificate is a proof: the true σ_min(W'Q) exceeds the threshold
        assert smin > tau


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), killed=st.integers(0, 5), scale=st.sampled_from([1e-3, 1.0, 1e4]))
def test_one_sided_lost_dims_equal_the_svd_definition(seed, killed, scale):
    rng = np.random.default_rng(seed)
    n, i, o = 90, 24, 30
    W = scale * rng.standard_normal((n, i))
    Wn = rng.standard_normal((o, n))
    if killed:  # W' cannot read `killed` directions of col W
        q = np.linalg.qr(W)[0][:, :killed]
        Wn -= (Wn @ q) @ q.T
    rtol_w = rtol_n = max(W.shape) * np.finfo(np.float32).eps
    left = gram_factors(W, 6, "U", rtol_w)
    right = gram_factors(Wn, 6, "V", rtol_n, rank_fallback=True)
    assert left is not None and left.gram_side == "in" and right is not None
    got = lost_dims_from_factors(W, Wn, left, right, rtol_w, rtol_n, Wn @ W)
    assert got == lost_dims_at(W, Wn, rtol_w, rtol_n) == killed


def test_certificate_refuses_a_threshold_inside_the_rounding():
    # τ at the rounding level of the Grams: nothing can be proven, the QR route decides
    rng = np.random.default_rng(0)
    W = rng.standard_normal((50, 10))
    Wn = rng.standard_normal((10, 50))
    m, g = Wn @ W, W.T @ W
    smin = np.linalg.svd(Wn @ np.linalg.qr(W)[0], compute_uv=False)[-1]
    assert not _certified_generalized(m, g, smin, 50)  # σ_min > σ_min is false
    assert not _certified_generalized(m, g, smin * (1 - 1e-15), 50)  # inside the rounding
    assert _certified_generalized(m, g, smin * (1 - 1e-6), 50)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), o=st.integers(5, 40), cut=st.floats(1e-4, 0.9))
def test_inertia_count_equals_the_singular_value_count(seed, o, cut):
    """eq. (12c): #{σ(W'Q) > τ} from the inertia of MᵀM − t²WᵀW equals the count of the singular
    values of W'Q (Q from a Householder QR), whenever the inertia route answers."""
    from flagalign.geometry.lost import _count_by_inertia, _m_rounding

    rng = np.random.default_rng(seed)
    n, i = 80, 20
    W = rng.standard_normal((n, i)) * np.geomspace(1.0, 1e-2, i)
    # o ≥ i: a planted spread of σ(W'Q) down to 1e-3; o < i: W'Q has i − o zero singular values
    Wn = _reader_with_gap(rng, W, o, 1e-3) if o >= i else rng.standard_normal((o, n))
    q = np.linalg.qr(W)[0]
    sv = np.linalg.svd(Wn @ q, compute_uv=False)
    tau = cut * sv[0]
    smin_w = np.linalg.svd(W, compute_uv=False)[-1]
    delta = _m_rounding(W, Wn, W.T @ W, smin_w, tau)
    assert delta < 1e-6  # M's rounding is far below the spacing of σ(W'Q) here
    got = _count_by_inertia(Wn @ W, W.T @ W, tau, n, delta)
    if got is not None:
        assert got == int(np.count_nonzero(sv > tau))
    else:  # only a singular value at τ to within the rounding may make it refuse
        assert np.any(np.abs(sv / tau - 1.0) <= 1e-6)
