"""The factor-sharing pair measurement equals geometry.pair_alignment field by field."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign.diagnostics.analysis.store import compute_factors
from flagalign.geometry.commutator import commutator_factored
from flagalign.geometry.pair import assemble_pair
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
    got = assemble_pair(W, Wn, left, right, k=ref.k, tol=1e-6, bias=bias,
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
    task = pickle.loads(pickle.dumps((assemble_pair, W, Wn, f, g)))
    pa = task[0](*task[1:], k=2, tol=1e-6, rtol_w=1e-12, rtol_n=1e-12)
    assert pickle.loads(pickle.dumps(pa)).k == 2


# --- one-sided factors (diagnostics.gramfactors): cheaper than the full SVD, same results ---

from flagalign.diagnostics.analysis.store import one_sided_factors  # noqa: E402
from flagalign.geometry.gram import (  # noqa: E402
    gram_factors,
    gram_rounding,
    min_singular_value_exceeds,
    tall_svd_factors,
)


def _planted(rng, m, n, s):
    """float64 matrix with singular values ``s`` (descending) and Haar singular vectors."""
    u, _ = np.linalg.qr(rng.standard_normal((m, len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((n, len(s))))
    return (u * s) @ v.T


def _prefix_sine(a, b):
    """max over j of sin of the largest angle between span a[:, :j] and span b[:, :j]."""
    return max(np.linalg.norm(b[:, :j] - a[:, :j] @ (a[:, :j].T @ b[:, :j]), 2)
               for j in range(1, a.shape[1] + 1))


@pytest.mark.parametrize("shape", [(90, 40), (40, 90), (50, 50)])
def test_gram_factors_match_svd_and_certify_rank(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape).astype(np.float32).astype(np.float64)
    rtol = rank_rtol(shape, "float32")
    k = 10
    f = gram_factors(a, k, "UV", rtol)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    assert f is not None and f.rank == min(shape) == np.linalg.matrix_rank(a, rtol * s[0])
    assert 0 < f.smin <= s[-1]  # a proven lower bound
    np.testing.assert_allclose(f.s, s[:k], rtol=1e-12)
    assert _prefix_sine(u[:, :k], f.U) < 1e-10 and _prefix_sine(vt[:k].T, f.V) < 1e-10
    np.testing.assert_allclose(f.U.T @ f.U, np.eye(k), atol=1e-13)
    np.testing.assert_allclose(f.V.T @ f.V, np.eye(k), atol=1e-13)
    assert gram_factors(a, k, "U", rtol).V is None and gram_factors(a, k, "V", rtol).U is None


def test_gram_factors_refuse_rank_deficient_and_float64_tolerances():
    """No rank is ever *estimated* from Gram eigenvalues: below the certificate's reach the
    caller gets None (or, with rank_fallback, the rank counted from LAPACK singular values)."""
    rng = np.random.default_rng(3)
    s = np.concatenate([np.linspace(1, 0.1, 29), [1e-6]])  # σ_min below rtol·σ₁ = 7e-6
    a = _planted(rng, 60, 30, s)
    rtol = rank_rtol(a.shape, "float32")
    assert gram_factors(a, 5, "V", rtol) is None
    g = gram_factors(a, 5, "V", rtol, rank_fallback=True)
    assert g.rank == 29 == np.linalg.matrix_rank(a, rtol * s[0])
    # float64 weights with σ_min = 1e-9·σ₁: full rank at rtol ~ 1e-14, but σ_min² is far below
    # the Gram's rounding, so only LAPACK's singular values can say so
    b = _planted(rng, 60, 30, np.concatenate([np.linspace(1, 0.1, 29), [1e-9]]))
    assert gram_factors(b, 5, "V", rank_rtol(b.shape, "float64")) is None
    assert gram_factors(b, 5, "V", rank_rtol(b.shape, "float64"), rank_fallback=True).rank == 30
    # a well-conditioned float64 matrix is certified (σ_min ≫ rtol·σ₁ needs no fine resolution)
    c = rng.standard_normal((60, 30))
    assert gram_factors(c, 5, "V", rank_rtol(c.shape, "float64")).rank == 30


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), rel=st.floats(0.5, 2.0), n=st.integers(2, 30))
def test_min_singular_value_certificate_is_never_wrong(seed, rel, n):
    """Whenever the Cholesky certificate proves σ_min > thresh, it is true (planted σ_min)."""
    rng = np.random.default_rng(seed)
    thresh = 1e-3
    s = np.concatenate([rng.uniform(0.1, 1.0, n - 1), [thresh * rel]])
    a = _planted(rng, n + 7, n, np.sort(s)[::-1])
    g = a.T @ a
    ok, lb = min_singular_value_exceeds(g, gram_rounding(g, a.shape[0]), 1.0, thresh)
    smin = np.linalg.svd(a, compute_uv=False)[-1]
    if ok:
        assert smin > thresh and lb <= smin
    if rel > 1.001:
        assert ok  # the certificate's margin is tiny next to a 0.1% gap


def _float32(a):
    return a.astype(np.float32)


def _compare_one_sided(W, Wn, bias=None, k=None, expect_lost=None):
    """assemble_pair on one-sided factors (as analyze builds them) == geometry.pair_alignment."""
    from flagalign.diagnostics.analysis.measure import choose_k

    ref = pair_alignment(W, Wn, k=k, tol=1e-6, method="exact", bias=bias)
    w, wn = W.astype(np.float64), Wn.astype(np.float64)
    rt_w, rt_n = rank_rtol(w.shape, "float32"), rank_rtol(wn.shape, "float32")
    kf = max(1, min(64, w.shape[0] // 4, min(w.shape), min(wn.shape)))  # as analyze's plan
    left = one_sided_factors(w, kf, "U", rt_w)
    right = one_sided_factors(wn, kf, "V", rt_n)
    assert left is not None and right is not None
    assert choose_k(k, w.shape[0], left.rank, right.rank) == ref.k
    from flagalign.diagnostics.analysis.store import truncate

    got = assemble_pair(w, wn, left, truncate(right, ref.k), k=ref.k, tol=1e-6, bias=bias,
                       rtol_w=rt_w, rtol_n=rt_n, rank_next=right.rank)
    assert got.k == ref.k and got.method == ref.method == "exact"
    np.testing.assert_allclose(got.angles, ref.angles, atol=1e-10)
    np.testing.assert_allclose(got.flag_table, ref.flag_table, atol=1e-10)
    for f in ("overlap", "baseline", "overlap_ratio", "commutator"):
        assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-10, abs=1e-14), f
    for f in ("full", "diag", "offdiag", "relative"):
        assert getattr(got.imbalance, f) == pytest.approx(getattr(ref.imbalance, f), rel=1e-10), f
    assert got.intersection_dim == ref.intersection_dim
    # eq. (12) at the stored dtype's tolerance: geometry.lost_dims on the float32 arrays
    # (pair_alignment passes its float64 copies on, i.e. float64 tolerances)
    from flagalign.geometry import lost_dims

    assert got.lost_dims == lost_dims(W, Wn)
    if expect_lost is not None:
        assert got.lost_dims == expect_lost
    return left, right, got


@pytest.mark.parametrize("n,i,o", [(24, 60, 50), (60, 24, 30), (40, 40, 40), (60, 24, 70)])
def test_one_sided_factors_match_pair_alignment_full_rank(n, i, o):
    """Full-rank float32 weights: certified ranks, lost_dims by rank W' (r = n) or by the QR
    route W'Q = (W'W)R⁻¹ (r = i < n); every field equals pair_alignment's."""
    rng = np.random.default_rng(n * i + o)
    W, Wn = _float32(rng.standard_normal((n, i))), _float32(rng.standard_normal((o, n)))
    left, right, _ = _compare_one_sided(W, Wn, bias=rng.standard_normal(n))
    assert left.rank == min(n, i) and right.rank == min(o, n)


def test_one_sided_lost_dims_planted_tall_writer():
    """A tall writer whose column space meets ker W' in 3 dims (QR route, eq. (12))."""
    rng = np.random.default_rng(11)
    n, i = 60, 20
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    W = q[:, :i] @ rng.standard_normal((i, i))  # col W = span q1..q20
    Wn = rng.standard_normal((30, n - 3)) @ q[:, 3:].T  # kills q1..q3
    _compare_one_sided(_float32(W), _float32(Wn), expect_lost=3)


def test_tall_rank_deficient_writer_uses_r_svd():
    """A tall float32 writer with σ_min below rtol·σ₁ (as 48 of smollm2's ffn_up/gate are):
    tall_svd_factors gives its rank and column basis without the m×n left SVD basis."""
    rng = np.random.default_rng(12)
    n, i = 80, 30
    s = np.concatenate([np.linspace(2, 0.2, i - 2), [2e-6, 1e-6]])  # rank 28 at float32
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    W = (q[:, :i] * s) @ np.linalg.qr(rng.standard_normal((i, i)))[0].T
    Wn = rng.standard_normal((40, n - 4)) @ q[:, 4:].T  # kills q1..q4 ⊂ col W: lost 4
    w = _float32(W).astype(np.float64)
    rt = rank_rtol(w.shape, "float32")
    assert gram_factors(w, 8, "U", rt) is None  # not certifiable
    f = tall_svd_factors(w, 8, "U", rt)
    assert f.rank == 28 and f.col_map.shape == (i, 28)
    qr = w @ f.col_map  # orthonormal basis of the numerical column space
    np.testing.assert_allclose(qr.T @ qr, np.eye(28), atol=1e-9)
    left, _, got = _compare_one_sided(_float32(W), _float32(Wn), expect_lost=4)
    assert left.col_map is not None


def test_one_sided_writer_with_randomized_reader():
    """W of full row rank (certified) and a randomized (truncated) reader: lost_dims falls back
    to σ(W') itself, at W''s float32 tolerance (eq. (12))."""
    from flagalign.geometry import lost_dims, top_subspaces

    rng = np.random.default_rng(13)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    W = _float32(rng.standard_normal((40, 70)))
    Wn = _float32(rng.standard_normal((60, 38)) @ q[:, 2:].T)  # rank 38: W' kills q1, q2
    w, wn = W.astype(np.float64), Wn.astype(np.float64)
    left = one_sided_factors(w, 10, "U", rank_rtol(w.shape, "float32"))
    right = top_subspaces(wn, 10, method="randomized")
    assert left.rank == 40 and right.method == "randomized"
    got = assemble_pair(w, wn, left, right, k=10, tol=1e-6, rtol_w=rank_rtol(w.shape, "float32"),
                       rtol_n=rank_rtol(wn.shape, "float32"))
    assert got.lost_dims == lost_dims(W, Wn) == 2 and got.method == "randomized"
