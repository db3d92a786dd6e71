"""Per-matrix flag drift over checkpoints (diagnostics/flag_drift.py; docs/theory.md eqs. (63)–(67),
(69))."""

import math

import numpy as np
import pytest

from flagalign.diagnostics.flag_drift import FlagHistory, drift_values, matrix_flags
from flagalign.geometry import spectral_flag, top_subspaces
from flagalign.geometry.pair_flags import parse_flag_type
from flagalign.models import Network
from _planted import random_orthogonal

N = 40  # out dim of "w"; k = default_k(20, 20) = 5


def _w(s, u, rng):
    q = random_orthogonal(20, rng)[:, : s.size]
    return (u[:, : s.size] @ np.diag(s) @ q.T).astype(np.float32)


def _proj_distance(ua, ub, dims, n):
    def proj(b):
        edges = (0,) + dims
        return ([b[:, i:j] @ b[:, i:j].T for i, j in zip(edges, edges[1:])]
                + [np.eye(n) - b[:, : dims[-1]] @ b[:, : dims[-1]].T])
    return math.sqrt(0.25 * sum(np.linalg.norm(p - q) ** 2 for p, q in zip(proj(ua), proj(ub))))


def test_matrix_flags_agree_with_spectral_flag():
    rng = np.random.default_rng(0)
    s = np.array([4.0, 4.0, 3.0, 2.0, 2.0, 1.0, 0.5])
    w = _w(s, random_orthogonal(N, rng), rng)
    f = top_subspaces(w.astype(np.float64), 5)
    out, inn = matrix_flags(f, w.astype(np.float64), "float32")
    assert out.dims == spectral_flag(w, "left", max_dim=4).dims == (2, 3)
    assert inn.dims == spectral_flag(w, "right", max_dim=4).dims == (2, 3)
    assert matrix_flags(f._replace(s=np.zeros(5)), w, "float32") is None
    assert all(math.isnan(v) for v in drift_values(None, (out, inn)) if not isinstance(v, str))


def test_history_distances_to_previous_and_to_the_mean():
    """Steps 1, 2 share one flag, step 3 is rotated: d_prev = (NaN, 0, d), the mean of
    (F, F, G) is nearer F; a step with an all-zero matrix is NaN and does not spoil the others."""
    rng = np.random.default_rng(1)
    s = np.array([5.0, 4.0, 4.0, 3.0, 2.0, 1.5, 1.0])  # splits below 5: (1, 3, 4)
    u = random_orthogonal(N, rng)
    R = random_orthogonal(N, rng)
    mats = [_w(s, u, rng), _w(s, u, rng), _w(s, R @ u, rng), np.zeros((N, 20), np.float32)]
    h = FlagHistory()
    for step, m in enumerate(mats, 1):
        h.add(step, f"c{step}", Network.from_arrays({"w": m, "r": np.ones((3, N), np.float32)}),
              names=["w"])
    t = h.table()
    out = t[t.side == "out"].set_index("step")
    assert parse_flag_type(out.loc[1, "common_type"]) == (1, 3, 4)
    assert math.isnan(out.loc[1, "distance_prev"]) and out.loc[2, "distance_prev"] < 1e-5
    ref = _proj_distance(u[:, :5], (R @ u)[:, :5], (1, 3, 4), N)
    assert out.loc[3, "distance_prev"] == pytest.approx(ref, rel=1e-4)  # float32 storage
    assert out.loc[1, "distance_mean"] < out.loc[3, "distance_mean"] < ref
    assert out.loc[1, "distance_mean"] == pytest.approx(out.loc[2, "distance_mean"], abs=1e-5)
    assert out.loc[4, ["distance_prev", "distance_mean", "flag_type"]].isna().all()
    sizes = np.diff((0, 1, 3, 4, N)).astype(float)
    assert out.loc[1, "baseline"] == pytest.approx(np.sqrt(0.5 * np.sum(sizes * (1 - sizes / N))))
    # identical flags at every step: the mean is that flag (eq. (67))
    h2 = FlagHistory()
    for step in (1, 2, 3):
        net = Network.from_arrays({"w": mats[0], "r": np.ones((3, N), np.float32)})
        h2.add(step, str(step), net, names=["w"])
    assert (h2.table().distance_mean < 1e-12).all()
