"""eq. (12d): factors of a rank-deficient square/wide writer from one eigendecomposition of AAᵀ,
checked against the SVD (rank, column-space basis, top-k vectors, lost_dims)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flagalign.geometry._basis import rank_from_singular_values
from flagalign.geometry.gram import gram_eigen_factors
from flagalign.geometry.lost import lost_dims_at, lost_dims_from_factors


def _planted(rng, m, n, r, floor):
    """An m×n matrix with r singular values in [0.05, 1] and the rest at ``floor``."""
    u = np.linalg.qr(rng.standard_normal((m, m)))[0]
    v = np.linalg.qr(rng.standard_normal((n, m)))[0]
    s = np.concatenate([np.geomspace(1.0, 0.05, r), np.full(m - r, floor)])
    return (u * s) @ v.T


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(8, 40), extra=st.integers(0, 20),
       frac=st.floats(0.3, 0.95))
def test_rank_basis_and_vectors_match_the_svd(seed, m, extra, frac):
    rng = np.random.default_rng(seed)
    n, r = m + extra, max(1, int(frac * m))
    a = _planted(rng, m, n, r, 1e-6)
    rtol = 2.0**-8  # a bf16-like tolerance: σ = 1e-6 is below it, σ ≥ 0.05 above
    f = gram_eigen_factors(a, 4, "UV", rtol)
    assert f is not None
    u, s, _ = np.linalg.svd(a)
    assert f.rank == rank_from_singular_values(s, rtol) == r
    if r < m:  # the basis spans the SVD's numerical column space, within its stated error
        assert f.basis_err <= 0.01 * rtol
        b = f.col_basis
        sin = np.linalg.norm(b - u[:, :r] @ (u[:, :r].T @ b), 2)  # ‖(I − U_rU_rᵀ)B‖₂ = sin Θ
        assert sin <= f.basis_err + 1e-12
    k = f.s.size
    np.testing.assert_allclose(f.s, s[:k], rtol=1e-10)
    assert np.allclose(np.abs(np.sum(f.U * u[:, :k], axis=0)), 1.0, atol=1e-8)


def test_refuses_an_eigenvalue_at_the_threshold_and_tall_matrices():
    rng = np.random.default_rng(0)
    a = _planted(rng, 20, 30, 10, 2.0**-8 * 1.0)  # σ exactly at rtol·σ₁
    assert gram_eigen_factors(a, 4, "U", 2.0**-8) is None
    assert gram_eigen_factors(rng.standard_normal((30, 20)), 4, "U", 2.0**-8) is None
    # float64-like tolerance: the Gram cannot resolve σ ≈ 1e-13·σ₁
    b = _planted(rng, 20, 30, 10, 1e-12)
    assert gram_eigen_factors(b, 4, "U", 20 * np.finfo(float).eps) is None


@pytest.mark.parametrize("killed", [0, 2, 5])
def test_lost_dims_through_the_eigen_basis_equal_the_svd_definition(killed):
    rng = np.random.default_rng(killed)
    W = _planted(rng, 24, 24, 18, 1e-7)  # square writer of numerical rank 18 at bf16's rtol
    Wn = rng.standard_normal((30, 24))
    if killed:  # W' cannot read `killed` directions of W's numerical column space
        q = np.linalg.svd(W)[0][:, :killed]
        Wn -= (Wn @ q) @ q.T
    rtol = 2.0**-8
    left = gram_eigen_factors(W, 4, "U", rtol)
    assert left is not None and left.col_basis is not None and left.rank == 18
    right = type("F", (), {"s": np.linalg.svd(Wn, compute_uv=False), "V": None, "rank": None})()
    got = lost_dims_from_factors(W, Wn, left, right, rtol, rtol)
    assert got == lost_dims_at(W, Wn, rtol, rtol) == killed


@pytest.mark.parametrize("killed", [0, 3])
def test_reader_gram_certificate_without_forming_the_product(killed):
    """eq. (12d): σ_min(W'Q_r) > τ proven from Q_rᵀ(W'ᵀW')Q_r with the reader's Gram; lost_dims
    equals eq. (12)'s either way (certified: 0; not provable: W'Q_r is formed)."""
    from flagalign.geometry.gram import GramFactors
    from flagalign.geometry.lost import _certified_from_reader_gram

    rng = np.random.default_rng(11 + killed)
    W = _planted(rng, 24, 24, 18, 1e-7)
    Wn = rng.standard_normal((40, 24))
    if killed:
        q = np.linalg.svd(W)[0][:, :killed]
        Wn -= (Wn @ q) @ q.T
    rtol = 2.0**-8
    left = gram_eigen_factors(W, 4, "U", rtol)
    sn = np.linalg.svd(Wn, compute_uv=False)
    right = GramFactors(None, sn[:4], np.linalg.svd(Wn)[2][:4].T, "exact", 24, float(sn[-1]),
                        Wn.T @ Wn, "in")
    tau = (rtol + left.basis_err) * sn[0]
    assert _certified_from_reader_gram(left.col_basis, right, 40, tau, sn[0]) is (killed == 0)
    got = lost_dims_from_factors(W, Wn, left, right, rtol, rtol)
    assert got == lost_dims_at(W, Wn, rtol, rtol) == killed
