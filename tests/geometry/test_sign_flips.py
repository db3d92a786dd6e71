"""Odd activations admit sign flips (docs/theory.md, eq. (15); issue 12, error 10c)."""

import numpy as np

from flagalign.geometry import pair_alignment


def test_tanh_admits_sign_flips_relu_does_not():
    rng = np.random.default_rng(0)
    W, b, V = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal((3, 6))
    x = rng.standard_normal((4, 50))
    S = np.diag(rng.choice([-1.0, 1.0], 6))
    S[0, 0] = -1.0
    f = V @ np.tanh(W @ x + b[:, None])
    g = (V @ S) @ np.tanh(S @ W @ x + (S @ b)[:, None])
    assert np.allclose(f, g, atol=1e-13)  # tanh(−u) = −tanh(u)
    relu = lambda u: np.maximum(u, 0)  # noqa: E731
    assert not np.allclose(V @ relu(W @ x + b[:, None]), (V @ S) @ relu(S @ W @ x + (S @ b)[:, None]))
    # a sign flip is orthogonal, so the O(n)-invariant pair quantities do not move
    p, q = pair_alignment(W, V, k=2), pair_alignment(S @ W, V @ S, k=2)
    assert abs(p.overlap - q.overlap) < 1e-12 and abs(p.commutator - q.commutator) < 1e-12
