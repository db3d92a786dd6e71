"""The GL(n) invariants of a pair (eq. (76)): σ(W_next W) and its rank, from two thin QRs when
the hidden layer is the narrow side (an OV head), equal to the direct SVD of the product."""

import numpy as np
import scipy.linalg as sla

from flagalign.geometry.gauge import product_spectrum


def test_thin_route_matches_the_direct_product_svd():
    rng = np.random.default_rng(3)
    n, i, o = 16, 96, 80
    w = rng.standard_normal((n, i))
    wn = rng.standard_normal((o, n)) @ np.diag(np.r_[np.ones(12), np.zeros(4)])  # rank 12 reader
    s, r = product_spectrum(w, wn, 1e-12, 1e-12)
    direct = sla.svdvals(wn @ w)
    assert s.shape == direct.shape
    np.testing.assert_allclose(s[:12], direct[:12], rtol=1e-11)
    assert np.all(s[12:] <= 1e-12 * direct[0])
    assert r == 12 == np.linalg.matrix_rank(wn @ w)


def test_wide_hidden_layer_uses_the_product():
    rng = np.random.default_rng(4)
    w, wn = rng.standard_normal((40, 10)), rng.standard_normal((12, 40))
    s, r = product_spectrum(w, wn, 1e-12, 1e-12)
    np.testing.assert_allclose(s, sla.svdvals(wn @ w), rtol=1e-12)
    assert r == 10
