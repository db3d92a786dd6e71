"""pair_alignment(symmetry=, gauge=) on one pair (docs/theory.md eqs. (73)–(76))."""

import numpy as np
import pytest

from flagalign.errors import InputError
from flagalign.geometry import pair_alignment
from flagalign.geometry.gauge import balance_pair, gl_balance


def _pair(rng, n=20):
    return rng.normal(size=(n, 25)), rng.normal(size=(30, n)) * 0.3, rng.normal(size=n)


@pytest.mark.parametrize("sym", ["pos-diag×perm", "nonzero-diag×perm"])
def test_diagonal_balance_is_invariant(sym):
    rng = np.random.default_rng(0)
    w, wn, b = _pair(rng)
    s = np.exp(rng.uniform(-2, 2, w.shape[0]))
    if sym.startswith("nonzero"):
        s *= rng.choice([-1.0, 1.0], s.size)
    a = pair_alignment(w, wn, bias=b, k=5, symmetry=sym, gauge="balanced")
    c = pair_alignment(s[:, None] * w, wn / s, bias=s * b, k=5, symmetry=sym, gauge="balanced")
    raw = pair_alignment(s[:, None] * w, wn / s, bias=s * b, k=5, symmetry=sym)
    assert np.max(np.abs(a.angles - c.angles)) < 1e-10
    assert abs(a.commutator - c.commutator) < 1e-12 and abs(a.overlap - c.overlap) < 1e-12
    assert a.intersection_dim == c.intersection_dim and a.lost_dims == c.lost_dims
    assert np.max(np.abs(a.flag_table - c.flag_table)) < 1e-12
    assert np.max(np.abs(a.angles - raw.angles)) > 0.05
    assert raw.gauge_dependent and not a.gauge_dependent and a.gauge == "balanced"
    # the balanced point: per-neuron in-norm² (bias included) = out-norm², so diag D = 0
    assert a.imbalance.diag < 1e-12 * a.imbalance.full


def test_gl_invariants_and_balance():
    rng = np.random.default_rng(1)
    w, wn, b = _pair(rng, n=12)
    G = rng.normal(size=(12, 12)) + 3 * np.eye(12)
    w2, wn2, b2 = G @ w, np.linalg.solve(G.T, wn.T).T, G @ b
    a = pair_alignment(w, wn, bias=b, k=3, symmetry="GL")
    c = pair_alignment(w2, wn2, bias=b2, k=3, symmetry="GL")
    ref = np.linalg.svd(wn @ w, compute_uv=False)
    assert np.allclose(a.product_sv, ref, rtol=1e-12)
    assert np.allclose(c.product_sv, ref, rtol=1e-10)
    assert a.product_rank == c.product_rank == 12 and a.lost_dims == c.lost_dims == 0
    assert a.gauge_dependent and np.max(np.abs(a.angles - c.angles)) > 0.01
    # eq. (73): in the balanced gauge the two Grams (bias included) are equal, so D = 0
    bal = pair_alignment(w2, wn2, bias=b2, k=3, symmetry="GL", gauge="balanced")
    assert bal.imbalance.relative < 1e-10
    g = gl_balance(np.eye(3) * 4.0, np.eye(3))
    assert np.allclose(g, np.eye(3) / np.sqrt(2))


def test_orthogonal_groups_change_nothing_and_errors():
    rng = np.random.default_rng(2)
    w, wn, b = _pair(rng)
    x = balance_pair(w, wn, b, "O")
    assert x[0] is w and x[1] is wn
    a = pair_alignment(w, wn, k=4, symmetry="perm", gauge="balanced")
    assert not a.gauge_dependent and a.product_sv.size == 0 and a.product_rank == -1
    assert pair_alignment(w, wn, k=4).symmetry == "unknown"
    assert pair_alignment(w, wn, k=4).gauge_dependent
    with pytest.raises(InputError, match="symmetry"):
        pair_alignment(w, wn, gauge="balanced")
    with pytest.raises(InputError):
        pair_alignment(w, wn, symmetry="affine")
    with pytest.raises(InputError):
        pair_alignment(w, wn, symmetry="GL", gauge="canonical")
