"""What a hidden reparameterization (W, W_next) → (G W, W_next G⁻¹) leaves unchanged
(docs/theory.md, eqs. (5), (12), (14), (15); issue 12, error 1).

col(W) moves by G but row(W_next) by G⁻ᵀ: the two are moved together only for orthogonal G.
So angles, overlap and intersection_dim of (col W, row W_next) are O(n)- (and permutation-)
invariant but neither GL(n)- nor positive-diagonal-invariant; quantities of the product
W_next W (lost_dims, rank, singular values) are GL(n)-invariant.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign.geometry import pair_alignment
from flagalign.geometry.pair import lost_dims


def _orth(rng, n, k):
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


def _planted(seed=0, n=16, a=12, b=12, k=4):
    """W writes, and W_next reads, the same random 4-dim subspace Q of ℝⁿ."""
    rng = np.random.default_rng(seed)
    Q = _orth(rng, n, k)
    W = Q @ np.diag([4.0, 3.0, 2.0, 1.0]) @ _orth(rng, a, k).T
    Wn = _orth(rng, b, k) @ np.diag([3.0, 2.5, 2.0, 1.5]) @ Q.T
    return rng, W, Wn


def test_positive_diagonal_scaling_destroys_intersection_and_overlap():
    rng, W, Wn = _planted()
    before = pair_alignment(W, Wn, k=4)
    assert before.intersection_dim == 4 and abs(before.overlap - 1.0) < 1e-12
    s = np.exp(rng.standard_normal(W.shape[0]))  # a ReLU symmetry: positive diagonal S
    after = pair_alignment(s[:, None] * W, Wn / s[None, :], k=4)
    assert after.intersection_dim == 0
    assert after.overlap < 0.6  # 0.328 for this seed (issue 12: 0.46 for its pair): not invariant
    # the function-level quantities of W_next W are unchanged
    assert lost_dims(s[:, None] * W, Wn / s[None, :]) == lost_dims(W, Wn)


def test_orthogonal_and_permutation_moves_keep_pair_quantities():
    rng, W, Wn = _planted(1)
    ref = pair_alignment(W, Wn, k=4)
    for G in (_orth(rng, 16, 16), np.eye(16)[rng.permutation(16)]):
        out = pair_alignment(G @ W, Wn @ G.T, k=4)
        assert out.intersection_dim == ref.intersection_dim
        assert abs(out.overlap - ref.overlap) < 1e-10
        assert np.allclose(out.angles, ref.angles, atol=1e-7)
        assert abs(out.commutator - ref.commutator) < 1e-10


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_product_quantities_survive_gl(seed):
    rng = np.random.default_rng(seed)
    n = 10
    W = rng.standard_normal((n, 3)) @ rng.standard_normal((3, 8))  # rank 3
    Wn = rng.standard_normal((7, 5)) @ rng.standard_normal((5, n))  # rank 5
    G = rng.standard_normal((n, n)) + 3 * np.eye(n)
    Gi = np.linalg.inv(G)
    W2, Wn2 = G @ W, Wn @ Gi
    sv = np.linalg.svd(Wn @ W, compute_uv=False)
    sv2 = np.linalg.svd(Wn2 @ W2, compute_uv=False)
    assert np.allclose(sv, sv2, rtol=0, atol=1e-9 * sv[0])
    assert np.linalg.matrix_rank(Wn2 @ W2) == np.linalg.matrix_rank(Wn @ W)
    assert lost_dims(W2, Wn2) == lost_dims(W, Wn)
