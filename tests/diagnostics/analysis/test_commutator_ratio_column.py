"""The commutator_null / commutator_ratio columns of analyze (eq. (50)) come from the assembler."""

import numpy as np
import pytest

import flagalign as fa
from flagalign.geometry import gram_commutator
from flagalign.geometry.nulls import commutator_null_rms
from flagalign.geometry.random import haar_orthogonal
from flagalign.models import Network


def _row(W, Wn):
    net = Network.from_arrays({"l0.w": W, "l1.w": Wn})
    return fa.analyze(net, progress=False, heads=False).pairs.iloc[0]


def test_columns_match_geometry_and_pair_alignment():
    rng = np.random.default_rng(0)
    W, Wn = rng.standard_normal((24, 10)), rng.standard_normal((7, 24))
    row = _row(W, Wn)
    null = commutator_null_rms(W @ W.T, Wn.T @ Wn)
    assert row.commutator_null == pytest.approx(null, rel=1e-12)
    assert row.commutator_ratio == pytest.approx(gram_commutator(W, Wn) / null, rel=1e-9)
    pa = fa.pair_alignment(W, Wn)
    assert pa.commutator_null == pytest.approx(row.commutator_null, rel=1e-12)
    assert pa.scalars()["commutator_ratio"] == pytest.approx(row.commutator_ratio, rel=1e-9)


def test_ratio_about_one_for_rotated_reader_and_zero_for_balanced_pair():
    rng = np.random.default_rng(1)
    n = 48
    W = rng.standard_normal((n, 30)) * np.linspace(0.5, 2, 30)
    X = rng.standard_normal((20, n)) * np.linspace(0.5, 2, n)
    ratios = np.array([_row(W, X @ haar_orthogonal(n, rng).T).commutator_ratio
                       for _ in range(60)])
    # √(E c²) ≥ E c: the mean ratio is ≤ 1 by the (sub-percent) Jensen gap, within 3 SE
    se = ratios.std(ddof=1) / np.sqrt(ratios.size)
    assert abs(ratios.mean() - 1.0) <= 3 * se + 0.01
    balanced = _row(W, W.T.copy())
    assert balanced.status == "ok" and balanced.commutator_ratio == pytest.approx(0.0, abs=1e-12)
