"""Null statistics and effective heads (docs/theory.md, eqs. (41)–(44), (46)) vs independent
references: Monte Carlo over Haar subspaces, dense eigenvalues, dense SVD."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagalign.diagnostics.heads.bases import factored_svd
from flagalign.diagnostics.heads.stats import (
    effective_heads,
    effective_heads_baseline,
    mean_overlap_se,
    overlap_sums,
    pair_overlap_std,
)
from flagalign.geometry import overlap_baseline


def _haar(rng, n, r):
    return np.linalg.qr(rng.standard_normal((n, r)))[0]


@pytest.mark.parametrize("a,b,n", [(1, 1, 10), (4, 4, 32), (3, 7, 20), (8, 8, 64)])
def test_pair_std_and_mean_match_monte_carlo(a, b, n):
    rng = np.random.default_rng(a * 100 + b * 10 + n)
    m = 4000
    x = np.array([np.sum((_haar(rng, n, a).T @ _haar(rng, n, b)) ** 2) for _ in range(m)])
    x /= min(a, b)
    sd = pair_overlap_std(a, b, n)
    # mean within 4 SE of the MC mean; the std within 6 % (SE of an MC std ≈ 1/√(2m) ≈ 1.1 %,
    # inflated by the kurtosis of small-dimensional cases)
    assert x.mean() == pytest.approx(overlap_baseline(a, b, n), abs=4 * sd / np.sqrt(m))
    assert x.std(ddof=1) == pytest.approx(sd, rel=0.06)


def test_overlap_baseline_agrees_with_geometry_core():
    from flagalign.geometry import overlap_baseline as core

    for a, b, n in [(1, 1, 10), (3, 7, 20), (64, 64, 576)]:
        assert overlap_baseline(a, b, n) == core(a, b, n)


def test_pairs_of_a_shared_head_are_uncorrelated():
    """Justifies SE = σ/√pairs: overlaps (1,2) and (1,3) are uncorrelated under the null."""
    rng = np.random.default_rng(11)
    n, r, m = 16, 3, 4000
    xy = []
    for _ in range(m):
        U1, U2, U3 = (_haar(rng, n, r) for _ in range(3))
        xy.append((np.sum((U1.T @ U2) ** 2), np.sum((U1.T @ U3) ** 2)))
    c = np.corrcoef(np.array(xy).T)[0, 1]
    assert abs(c) < 4 / np.sqrt(m)
    assert mean_overlap_se(r, r, n, 4) == pytest.approx(pair_overlap_std(r, r, n) / 2)


def _dense_pr(bases):
    P = sum(B @ B.T for B in bases)
    ev = np.linalg.eigvalsh(P)
    return ev.sum() ** 2 / np.sum(ev**2)


def test_effective_heads_planted_cases_and_eigenvalue_definition():
    rng = np.random.default_rng(12)
    n, r, H = 40, 4, 4
    Q = _haar(rng, n, n)
    orth = [Q[:, i * r : (i + 1) * r] for i in range(H)]
    same = [orth[0] @ np.linalg.qr(rng.standard_normal((r, r)))[0] for _ in range(H)]
    pairs = [orth[0], orth[0], orth[1], orth[1]]
    for bases, want in ((orth, H), (same, 1), (pairs, 2)):
        S = overlap_sums(bases)
        eff = effective_heads(S, [r] * H)
        assert eff == pytest.approx(want, rel=1e-12)
        assert eff == pytest.approx(_dense_pr(bases) / r, rel=1e-12)  # eq. (43) as a PR
    rand = [_haar(rng, n, r) for _ in range(H)]
    assert effective_heads(overlap_sums(rand), [r] * H) == pytest.approx(
        _dense_pr(rand) / r, rel=1e-12
    )


def test_effective_heads_baseline_matches_monte_carlo():
    rng = np.random.default_rng(13)
    n, r, H, m = 48, 6, 8, 300
    e = [effective_heads(overlap_sums([_haar(rng, n, r) for _ in range(H)]), [r] * H)
         for _ in range(m)]
    # eq. (46) plugs in E tr(P²); Jensen makes the MC mean slightly different: allow 2 %
    assert np.mean(e) == pytest.approx(effective_heads_baseline([r] * H, n), rel=0.02)
    assert effective_heads_baseline([r] * H, n) == pytest.approx(H / (1 + (H - 1) * r / n))


@given(st.integers(2, 12), st.integers(1, 5), st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_factored_svd_matches_dense(n, r, m, seed):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, r)), rng.standard_normal((r, m))
    U, s, V = factored_svd(A, B)
    M = A @ B
    k = min(n, m, r)
    assert np.allclose(U * s @ V.T, M, atol=1e-10 * max(1, np.abs(M).max()))
    assert np.allclose(s[:k], np.linalg.svd(M, compute_uv=False)[:k], atol=1e-10 * (1 + s[0]))
    w = U.shape[1]  # min(n, r, m) when r exceeds a side
    assert w == V.shape[1] == s.size == min(n, r, m)
    assert np.allclose(U.T @ U, np.eye(w), atol=1e-10)
    assert np.allclose(V.T @ V, np.eye(w), atol=1e-10)
