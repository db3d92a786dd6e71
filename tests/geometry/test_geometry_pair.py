"""Commutator, imbalance, top-k factors, lost_dims and pair_alignment (eqs. (9)–(14))."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagalign import (
    InputError,
    ShapeMismatchError,
    commutator_norm,
    gram_commutator,
    imbalance,
    lost_dims,
    pair_alignment,
    subspace_overlap,
    top_subspaces,
)
from flagalign.geometry import default_k

from _planted import random_orthogonal, well_conditioned


def _sym(rng, n):
    a = rng.standard_normal((n, n))
    return a + a.T


# --- commutator (eqs. (9), (10)) -------------------------------------------------------------
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12))
def test_commutator_bounds_and_orthogonal_invariance(seed, n):
    rng = np.random.default_rng(seed)
    A, B = _sym(rng, n), _sym(rng, n)
    c = commutator_norm(A, B)
    assert 0.0 <= c <= np.sqrt(2) + 1e-12
    ref = np.linalg.norm(A @ B - B @ A) / (np.linalg.norm(A) * np.linalg.norm(B))
    assert c == pytest.approx(ref, abs=1e-12)
    Q = random_orthogonal(n, rng)
    assert commutator_norm(Q @ A @ Q.T, Q @ B @ Q.T) == pytest.approx(c, abs=1e-10)


def test_commutator_zero_for_shared_eigenbasis_and_zero_matrix():
    rng = np.random.default_rng(0)
    Q = random_orthogonal(5, rng)
    A = Q @ np.diag(rng.standard_normal(5)) @ Q.T
    B = Q @ np.diag(rng.standard_normal(5)) @ Q.T
    assert commutator_norm(A, B) < 1e-14
    assert commutator_norm(A, np.zeros((5, 5))) == 0.0


def test_commutator_attains_bottcher_wenzel_bound():
    # X = [[0, 1], [1, 0]], Y = [[1, 0], [0, -1]] attain ‖XY − YX‖ = √2‖X‖‖Y‖
    X, Y = np.array([[0.0, 1], [1, 0]]), np.array([[1.0, 0], [0, -1]])
    assert commutator_norm(X, Y) == pytest.approx(np.sqrt(2))


def test_gram_commutator_shape_check_and_definition():
    rng = np.random.default_rng(1)
    W, Wn = rng.standard_normal((6, 4)), rng.standard_normal((3, 6))
    assert gram_commutator(W, Wn) == pytest.approx(commutator_norm(W @ W.T, Wn.T @ Wn))
    with pytest.raises(ShapeMismatchError):
        gram_commutator(W, rng.standard_normal((3, 5)))


# --- imbalance (eq. (11)) ------------------------------------------------------------------
def test_imbalance_against_explicit_matrix_with_bias():
    rng = np.random.default_rng(2)
    W, Wn, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    Wt = np.hstack([W, b[:, None]])
    D = Wn.T @ Wn - Wt @ Wt.T
    imb = imbalance(W, Wn, bias=b)
    assert imb.full == pytest.approx(np.linalg.norm(D))
    assert imb.diag == pytest.approx(np.linalg.norm(np.diag(D)))
    assert imb.offdiag == pytest.approx(np.linalg.norm(D - np.diag(np.diag(D))))
    assert imb.full**2 == pytest.approx(imb.diag**2 + imb.offdiag**2)
    assert imb.relative == pytest.approx(
        np.linalg.norm(D) / (np.linalg.norm(Wt @ Wt.T) + np.linalg.norm(Wn.T @ Wn))
    )
    assert 0 <= imb.relative <= 1


# --- balanced pair -------------------------------------------------------------------------
def test_balanced_linear_pair_is_perfectly_aligned():
    rng = np.random.default_rng(3)
    n = 12
    U, V = random_orthogonal(n, rng), random_orthogonal(n, rng)[:, :n]
    R = random_orthogonal(9, rng)[:, :n] if n <= 9 else np.linalg.qr(rng.standard_normal((20, n)))[0]
    s = np.linspace(5, 1, n)
    W = U @ np.diag(s) @ V.T
    Wn = R @ np.diag(s) @ U.T
    pa = pair_alignment(W, Wn, k=6)
    np.testing.assert_allclose(pa.angles, 0.0, atol=1e-7)
    assert pa.overlap == pytest.approx(1.0)
    assert pa.intersection_dim == 6
    assert pa.commutator < 1e-12
    assert pa.imbalance.full < 1e-10
    assert pa.lost_dims == 0
    assert pa.baseline == pytest.approx(6 / n) and pa.overlap_ratio == pytest.approx(n / 6)
    np.testing.assert_allclose(np.diag(pa.flag_table), np.arange(7), atol=1e-10)


def test_pair_alignment_accepts_torch_and_low_precision():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    W, Wn = rng.standard_normal((16, 8)), rng.standard_normal((10, 16))
    ref = pair_alignment(W, Wn, k=4)
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        Wt, Wnt = torch.tensor(W, dtype=dt), torch.tensor(Wn, dtype=dt)
        pa = pair_alignment(Wt, Wnt, k=4)
        tol = {torch.float32: 1e-5, torch.float16: 5e-2, torch.bfloat16: 2e-1}[dt]
        assert pa.overlap == pytest.approx(ref.overlap, abs=tol)
        assert pa.tol >= 1e-6


def test_pair_alignment_rejects_nan_and_bad_shapes():
    W = np.ones((4, 3))
    with pytest.raises(ShapeMismatchError):
        pair_alignment(W, np.ones((2, 5)))
    W[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pair_alignment(W, np.ones((2, 4)))


def test_default_k_rule():
    assert default_k(1536, 576) == 64
    assert default_k(64, 64) == 16
    assert default_k(32, 2) == 2
    assert default_k(2, 2) == 1


def test_reuses_given_factors():
    rng = np.random.default_rng(5)
    W, Wn = rng.standard_normal((20, 30)), rng.standard_normal((25, 20))
    left, right = top_subspaces(W, 5), top_subspaces(Wn, 5)
    a = pair_alignment(W, Wn, k=5, left=left, right=right)
    b = pair_alignment(W, Wn, k=5)
    np.testing.assert_allclose(a.angles, b.angles, atol=1e-12)


# --- top_subspaces (eq. (13)) --------------------------------------------------------------
def _gapped(rng, m, n, k):
    s = np.r_[np.linspace(10, 5, k), np.linspace(1, 0.1, min(m, n) - k)]
    U = np.linalg.qr(rng.standard_normal((m, min(m, n))))[0]
    V = np.linalg.qr(rng.standard_normal((n, min(m, n))))[0]
    return U @ np.diag(s) @ V.T


def test_randomized_matches_exact_on_gapped_matrix_and_is_deterministic():
    rng = np.random.default_rng(6)
    A = _gapped(rng, 600, 400, 20)
    ex = top_subspaces(A, 20, method="exact")
    rd = top_subspaces(A, 20, method="randomized", seed=3)
    assert rd.method == "randomized"
    assert subspace_overlap(ex.U, rd.U) >= 0.999
    assert subspace_overlap(ex.V, rd.V) >= 0.999
    np.testing.assert_allclose(rd.s, ex.s, rtol=1e-6)
    rd2 = top_subspaces(A, 20, method="randomized", seed=3)
    np.testing.assert_array_equal(rd.U, rd2.U)


def test_exact_factors_reconstruct():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((8, 5))
    t = top_subspaces(A, 5)
    np.testing.assert_allclose(t.U @ np.diag(t.s) @ t.V.T, A, atol=1e-12)
    with pytest.raises(InputError):
        top_subspaces(A, 6)
    with pytest.raises(InputError):
        top_subspaces(A, 2, method="magic")


# --- lost_dims (eq. (12)) ------------------------------------------------------------------
def _planted_lost(rng, n, r, lost):
    """W writes an r-dim subspace of ℝⁿ; W_next kills exactly ``lost`` directions of it."""
    Q = random_orthogonal(n, rng)
    col = Q[:, :r]
    W = col @ rng.standard_normal((r, 7))
    keep = np.hstack([Q[:, lost:r], Q[:, r:]])  # W_next reads everything but Q[:, :lost]
    Wn = rng.standard_normal((9, keep.shape[1])) @ keep.T
    return W, Wn


@given(seed=st.integers(0, 2**31 - 1), lost=st.integers(0, 4))
def test_lost_dims_planted_and_invariant(seed, lost):
    rng = np.random.default_rng(seed)
    n, r = 10, 6
    W, Wn = _planted_lost(rng, n, r, lost)
    assert lost_dims(W, Wn) == lost
    G = well_conditioned(n, rng)
    assert lost_dims(G @ W, Wn @ np.linalg.inv(G)) == lost
    d = np.exp(rng.uniform(-1, 1, n))
    P = np.eye(n)[rng.permutation(n)]
    S = P @ np.diag(d)
    assert lost_dims(S @ W, Wn @ np.linalg.inv(S)) == lost


def test_lost_dims_threshold_includes_the_basis_error():
    """Regression (seed 14946889, lost = 2): after S = P·diag(d) the basis Q of col(SW) carries
    the SVD's error ≈ max(shape)·ε·σ₁/σ_r (Wedin) into W_next Q, which put σ₅(W_next Q) = 1.5e-14
    above the bare threshold rtol_n·σ₁(W_next) = 1.25e-14; eq. (12)'s threshold adds that term."""
    import scipy.linalg as sla

    from flagalign.geometry.lost import basis_error

    rng = np.random.default_rng(14946889)
    W, Wn = _planted_lost(rng, 10, 6, 2)
    assert lost_dims(W, Wn) == 2
    G = well_conditioned(10, rng)
    assert lost_dims(G @ W, Wn @ np.linalg.inv(G)) == 2
    d = np.exp(rng.uniform(-1, 1, 10))
    S = np.eye(10)[rng.permutation(10)] @ np.diag(d)
    Ws, Wns = S @ W, Wn @ np.linalg.inv(S)
    assert lost_dims(Ws, Wns) == 2
    # the term is what made the difference: the bare threshold would count 1
    u, s, _ = sla.svd(Ws, full_matrices=False)
    q = u[:, :6]
    sv = sla.svdvals(Wns @ q)
    s_next = sla.svdvals(Wns)[0]
    bare = 10 * np.finfo(float).eps
    tol = bare + basis_error(Ws.shape, s[0], s[5])
    assert 6 - int(np.count_nonzero(sv > tol * s_next)) == 2
    assert pair_alignment(Ws, Wns, k=2).lost_dims == 2


def test_lost_dims_uses_the_stored_dtype_tolerance():
    """A direction written at 1e-8 relative is below float32's rank tolerance (eq. (3)): stored
    as float32 it is not part of col W, so W_next ignoring it loses nothing; the same numbers
    declared float64 keep it, and it is lost."""
    rng = np.random.default_rng(8)
    n = 10
    W = np.zeros((n, 6))
    W[:5, :5] = np.eye(5) + 0.1 * rng.standard_normal((5, 5))
    W[n - 1] = 1e-8 * rng.standard_normal(6)
    Wn = rng.standard_normal((7, n))
    Wn[:, n - 1] = 0.0  # W_next cannot read e_10
    W32, Wn32 = W.astype(np.float32), Wn.astype(np.float32)
    assert lost_dims(W32, Wn32) == 0
    assert pair_alignment(W32, Wn32, k=2).lost_dims == 0
    assert lost_dims(W32.astype(np.float64), Wn32.astype(np.float64)) == 1
    assert pair_alignment(W32.astype(np.float64), Wn32.astype(np.float64), k=2).lost_dims == 1
