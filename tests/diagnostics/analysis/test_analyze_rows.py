"""Rows of analyze against the geometry reference: lost_dims, imbalance parts, default k
(regression cases from review; each failed before its fix)."""

import numpy as np
import pytest

import flagalign as fa
from flagalign.models import Network


def _mat(rng, m, n, svals):
    U = np.linalg.qr(rng.standard_normal((m, len(svals))))[0]
    V = np.linalg.qr(rng.standard_normal((n, len(svals))))[0]
    return (U * svals) @ V.T


def _analyze_row(W, Wn, **kw):
    net = Network.from_arrays({"l0.w": W, "l1.w": Wn})
    return fa.analyze(net, progress=False, heads=False, **kw).pairs.iloc[0]


@pytest.mark.parametrize("rank_w", [20, 12])  # full column rank (QR path) / rank-deficient tall
def test_analyze_lost_dims_with_ill_conditioned_tall_writer(rank_w):
    """W'Q formed from M = W'W amplified M's rounding by cond(W) and undercounted lost_dims."""
    rng = np.random.default_rng(1)
    for _ in range(8):
        W = _mat(rng, 40, 20, np.logspace(0, -3, rank_w))
        Wn = _mat(rng, 30, 40, np.ones(10))  # reads a 10-dim subspace
        expected = fa.lost_dims(W, Wn)
        assert expected == rank_w - 10
        assert _analyze_row(W, Wn).lost_dims == expected


def test_randomized_analyze_lost_dims_uses_stored_dtype():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((8, 12)).astype(np.float32)
    Wn = (rng.standard_normal((16, 4)) @ rng.standard_normal((4, 8))).astype(np.float32)
    assert fa.lost_dims(W, Wn) == 4
    for method in ("exact", "randomized"):
        assert _analyze_row(W, Wn, method=method).lost_dims == 4


def test_balanced_pair_has_zero_not_nan_imbalance_parts():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((6, 6))
    row = _analyze_row(W, W.T.copy())
    assert row.status == "ok"
    assert row.imbalance_abs == 0.0 and row.imbalance_diag == 0.0 and row.imbalance_offdiag == 0.0


def test_pair_alignment_default_k_respects_rank():
    rng = np.random.default_rng(3)
    W = _mat(rng, 40, 30, np.ones(3))  # rank 3 writer into R^40
    Wn = rng.standard_normal((20, 40))
    pa = fa.pair_alignment(W, Wn)
    assert pa.k == 3 == _analyze_row(W, Wn).k
