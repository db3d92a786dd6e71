"""The gap-chosen flag columns of pairs.csv (docs/schema.md; docs/theory.md eqs. (62)–(66)).

References are computed here independently: splits from numpy's full SVD and eq. (63) written
out, the chordal flag distance from piece projectors (¼ Σ‖Pᵢ − Qᵢ‖²_F)^½, the soft relative
position from the member overlaps ‖FᵢᵀGⱼ‖²_F.
"""

import importlib
import math

import numpy as np
import pandas as pd
import pytest

import flagalign as fa
from flagalign.diagnostics.analysis.table import PAIR_COLUMNS
from flagalign.geometry.pair_flags import parse_flag_type
from flagalign.models import Network
from _planted import random_orthogonal

FLAG_COLUMNS = ["flag_type_left", "flag_type_right", "flag_splits_left", "flag_splits_right",
                "flag_distance", "flag_distance_baseline", "flag_distance_ratio",
                "soft_relative_position", "soft_relative_position_baseline"]
_EPS = {"float64": np.finfo(np.float64).eps, "float32": np.finfo(np.float32).eps}


def _row(W, Wn):
    net = Network.from_arrays({"l0.w": W, "l1.w": Wn})
    return fa.analyze(net, progress=False, heads=False).pairs.iloc[0]


def _matrix(s, n_out, n_in, rng, u=None):
    u = random_orthogonal(n_out, rng)[:, : len(s)] if u is None else u
    return u @ np.diag(s) @ random_orthogonal(n_in, rng)[:, : len(s)].T


def _ref_dims(A, side, k, dtype):
    """Eq. (63) by hand on numpy's SVD: splits d < k with σ_d − σ_{d+1} ≥ 10 δ (eq. (62))."""
    u, s, vt = np.linalg.svd(A)
    delta = _EPS[dtype] * np.linalg.norm(A) + max(A.shape) * _EPS["float64"] * s[0]
    dims = tuple(d for d in range(1, k) if s[d - 1] - s[d] >= 10 * delta and s[d - 1] > s[d])
    return dims, (u if side == "left" else vt.T)[:, :k]


def _projectors(basis, dims, n):
    edges = (0,) + dims
    ps = [basis[:, a:b] @ basis[:, a:b].T for a, b in zip(edges, edges[1:])]
    top = basis[:, : dims[-1]]
    return ps + [np.eye(n) - top @ top.T]


def test_columns_exist_in_order_with_schema_dtypes():
    assert list(PAIR_COLUMNS[-len(FLAG_COLUMNS):]) == FLAG_COLUMNS
    rng = np.random.default_rng(0)
    net = Network.from_arrays({"l0.w": rng.standard_normal((16, 8)), "l1.w": np.zeros((5, 16)),
                               "l2.w": rng.standard_normal((3, 5))})
    df = fa.analyze(net, progress=False, heads=False).pairs
    assert str(df["flag_splits_left"].dtype) == "Int64"
    bad = df[df["status"] != "ok"]
    assert len(bad) == 2 and bad[FLAG_COLUMNS].isna().all().all()


def test_columns_match_independent_reference():
    """Planted clusters on each side (different types): type, distance, soft position, baselines."""
    rng = np.random.default_rng(1)
    n = 48  # k = 12
    sw = np.r_[[6.0] * 3, [4.0] * 2, np.linspace(3, 1, 10), 0.5 * np.ones(5)]
    sn = np.r_[[5.0] * 2, np.linspace(4.5, 3, 4), [2.0] * 4, np.linspace(1.5, 0.2, 10)]
    W = _matrix(sw, n, 30, rng)
    Wn = _matrix(sn, n, 40, rng).T  # reader (40 × n): its input flag is a random basis of ℝⁿ
    row = _row(W, Wn)
    k = int(row.k)
    assert k == 12
    d, U = _ref_dims(W, "left", k, "float64")
    e, V = _ref_dims(Wn, "right", k, "float64")
    assert d == (3, 5, 6, 7, 8, 9, 10, 11) and e == (2, 3, 4, 5, 6, 10, 11)
    assert parse_flag_type(row.flag_type_left) == d and parse_flag_type(row.flag_type_right) == e
    assert (row.flag_splits_left, row.flag_splits_right) == (len(d), len(e))
    common = tuple(sorted(set(d) & set(e)))
    P, Q = _projectors(U, common, n), _projectors(V, common, n)
    ref = math.sqrt(0.25 * sum(np.linalg.norm(p - q) ** 2 for p, q in zip(P, Q)))
    assert row.flag_distance == pytest.approx(ref, rel=1e-9)
    sizes = np.diff((0,) + common + (n,)).astype(float)
    base = math.sqrt(0.5 * float(np.sum(sizes * (1 - sizes / n))))
    assert row.flag_distance_baseline == pytest.approx(base, rel=1e-12)
    assert row.flag_distance_ratio == pytest.approx(ref / base, rel=1e-9)
    num = den = num0 = 0.0
    for a in d:
        for b in e:
            t = np.linalg.norm(U[:, :a].T @ V[:, :b]) ** 2
            num += min(a, b) - t
            num0 += min(a, b) - a * b / n
            den += min(a, b) - max(0, a + b - n)
    assert row.soft_relative_position == pytest.approx(num / den, rel=1e-9)
    assert row.soft_relative_position_baseline == pytest.approx(num0 / den, rel=1e-12)


def test_identical_flags_give_zero_and_float32_sets_the_splits():
    """Reader input flag = writer output flag: distance 0 and soft position 0. Stored as float32,
    a gap of 1e-6 is below 10δ (one piece). The same numbers labelled float64 are believed to
    16 digits, so float32's rounding, which spreads every planted cluster by ~1e-7, splits them
    all: δ must come from the stored dtype."""
    rng = np.random.default_rng(2)
    n = 40  # k = 10
    s = np.array([8.0, 8.0, 8.0, 5.0, 5.0, 3.0, 2.5, 2.5 - 1e-6, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6])
    u = random_orthogonal(n, rng)[:, : s.size]
    W = _matrix(s, n, 20, rng, u=u).astype(np.float32)
    Wn = _matrix(s, n, 24, rng, u=u).T.astype(np.float32)
    row32 = _row(W, Wn)
    assert row32.flag_type_left == row32.flag_type_right == "(3,5,6,8,9)"
    assert row32.flag_distance == pytest.approx(0.0, abs=1e-4)  # float32 rounding of the bases
    assert row32.soft_relative_position == pytest.approx(0.0, abs=1e-8)
    row64 = _row(W.astype(np.float64), Wn.astype(np.float64))
    assert row64.flag_type_left == "(1..9)"


def test_invariant_under_signed_permutation_scale_and_cluster_rotation_not_positive_diag():
    rng = np.random.default_rng(3)
    n = 36  # k = 9
    s = np.r_[[5.0] * 3, np.linspace(4, 1, 8), 0.3 * np.ones(4)]
    u = random_orthogonal(n, rng)[:, : s.size]
    q1 = random_orthogonal(20, rng)[:, : s.size]
    W = u @ np.diag(s) @ q1.T
    Wn = (_matrix(s[::-1].copy(), n, 25, rng)).T
    base = _row(W, Wn)[FLAG_COLUMNS]
    P = np.eye(n)[rng.permutation(n)] * rng.choice([-1.0, 1.0], size=n)[:, None]
    r = np.eye(s.size)
    r[:3, :3] = random_orthogonal(3, rng)  # rotation inside the 3-cluster: same left pieces
    for W2, Wn2 in ((P @ W, Wn @ P.T), (7.0 * W, Wn / 7.0), (u @ np.diag(s) @ (q1 @ r).T, Wn)):
        got = _row(W2, Wn2)[FLAG_COLUMNS]
        assert got.flag_type_left == base.flag_type_left
        assert got.flag_type_right == base.flag_type_right
        np.testing.assert_allclose(got.iloc[2:].astype(float), base.iloc[2:].astype(float),
                                   rtol=1e-9)
    # a positive diagonal rescaling of the hidden units (a ReLU symmetry) moves identical flags
    Wid = _matrix(s, n, 20, rng, u=u)
    Wnid = _matrix(s, n, 24, rng, u=u).T
    D = np.diag(np.geomspace(0.2, 5.0, n)[rng.permutation(n)])
    assert _row(Wid, Wnid).flag_distance < 1e-9
    assert _row(D @ Wid, Wnid @ np.linalg.inv(D)).flag_distance > 0.1


def test_no_full_svd_is_added(monkeypatch):
    """The flags come from the factors the pair already has (flag_from_spectrum), never from a
    new SVD of W (spectral_flag's own SVD or σ₁ by svdvals)."""

    class _NoSVD:
        def __getattr__(self, name):
            raise AssertionError(f"scipy.linalg.{name} called by the flag columns")

    monkeypatch.setattr(importlib.import_module("flagalign.geometry.spectral_flag"), "sla",
                        _NoSVD())
    rng = np.random.default_rng(4)
    row = _row(rng.standard_normal((32, 12)).astype(np.float32),
               rng.standard_normal((9, 32)).astype(np.float32))
    assert row.status == "ok" and row.flag_type_left == "(1..7)"


def test_pair_alignment_reports_the_same_flag_columns():
    rng = np.random.default_rng(5)
    W, Wn = rng.standard_normal((24, 10)), rng.standard_normal((7, 24))
    row = _row(W, Wn)
    sc = fa.pair_alignment(W, Wn).scalars()
    for c in FLAG_COLUMNS:
        if isinstance(sc[c], str):
            assert sc[c] == row[c]
        else:
            assert sc[c] == pytest.approx(float(row[c]), rel=1e-9)
    assert isinstance(pd.DataFrame([sc])["flag_type_left"].iloc[0], str)


def test_summary_has_per_kind_medians():
    rng = np.random.default_rng(6)
    net = Network.from_arrays({f"l{i}.w": rng.standard_normal((24, 24)) for i in range(4)})
    an = fa.analyze(net, progress=False, heads=False)
    bk = an.summary["by_kind"]["sequential"]
    assert bk["median_flag_distance_ratio"] == pytest.approx(an.pairs.flag_distance_ratio.median())
    assert bk["median_soft_relative_position"] == pytest.approx(
        an.pairs.soft_relative_position.median())
