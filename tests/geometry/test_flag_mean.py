"""Flag mean (Draper et al. 2014) and FlagIRLS flag median (Mankovich et al. 2022)
(docs/theory.md, eqs. (67)–(68))."""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import Flag, InputError, flag_distance, flag_mean, flag_median, subspace_distance
from flagalign.geometry.flag_mean import _items, _soft_gaps

from _planted import random_orthogonal


def _noisy(F: Flag, eps: float, rng) -> Flag:
    A = rng.standard_normal((F.n, F.n))
    A = (A - A.T) / np.sqrt(2 * F.n)
    return Flag(sla.expm(eps * A) @ F.basis, F.dims)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 9), k=st.integers(1, 6))
def test_mean_of_copies_is_that_flag(seed, n, k):
    rng = np.random.default_rng(seed)
    dims = tuple(sorted(rng.choice(np.arange(1, n), size=min(2, n - 1), replace=False).tolist()))
    F = Flag(random_orthogonal(n, rng)[:, : dims[-1]], dims)
    copies = []
    for _ in range(k):  # each copy with its own basis inside the pieces
        R = sla.block_diag(*(random_orthogonal(s, rng) for s in F.sizes[:-1]))
        copies.append(Flag(F.basis @ R, dims))
    M = flag_mean(copies)
    assert M.dims == dims
    assert flag_distance(M, F) < 1e-10 and flag_distance(M, F, "geodesic") < 1e-10
    assert flag_distance(flag_median(copies), F) < 1e-10
    # copies of one subspace: that subspace, as a flag of type (k,)
    S = random_orthogonal(n, rng)[:, : dims[0]] @ rng.standard_normal((dims[0], dims[0]))
    Ms = flag_mean([S] * k)
    assert Ms.dims == (dims[0],) and subspace_distance(Ms.basis, S) < 1e-7


def test_mean_is_draper_top_eigenvectors():
    rng = np.random.default_rng(2)
    n = 7
    subs = [random_orthogonal(n, rng)[:, : int(rng.integers(1, 4))] for _ in range(5)]
    w = rng.uniform(0.5, 2.0, 5)
    M = flag_mean(subs, dims=(1, 2, 3), weights=w)
    S = sum(wi * X @ X.T for wi, X in zip(w, subs))
    evals, evecs = np.linalg.eigh(S)
    top = evecs[:, ::-1][:, :3]
    assert flag_distance(M, Flag(top, (1, 2, 3))) < 1e-10
    # a zero weight drops an input
    M0 = flag_mean(subs + [random_orthogonal(n, rng)[:, :2]], dims=(1, 2, 3), weights=list(w) + [0.0])
    assert flag_distance(M0, M) < 1e-10


@pytest.mark.parametrize("seed", range(10))
def test_mean_of_noisy_set_beats_every_member(seed):
    rng = np.random.default_rng(100 + seed)
    n, dims = 10, (2, 4)
    truth = Flag(random_orthogonal(n, rng)[:, :4], dims)
    members = [_noisy(truth, 0.05, rng) for _ in range(15)]
    M = flag_mean(members, dims=dims)
    best = min(flag_distance(X, truth) for X in members)
    assert flag_distance(M, truth) < best


@pytest.mark.parametrize("target", ["grassmann", "flag"])
def test_flag_median_is_robust_to_one_outlier_in_five(target):
    rng = np.random.default_rng(7)
    n = 8
    errs_med, errs_mean = [], []
    for _ in range(10):
        if target == "grassmann":
            truth = Flag(random_orthogonal(n, rng)[:, :2], (2,))
            outlier = random_orthogonal(n, rng)[:, :2]
        else:
            truth = Flag(random_orthogonal(n, rng)[:, :3], (1, 3))
            outlier = Flag(random_orthogonal(n, rng)[:, :3], (1, 3))
        inliers = [_noisy(truth, 1e-3, rng) for _ in range(4)]
        data = [X if target == "flag" else X.basis for X in inliers] + [outlier]
        med, mean = flag_median(data, dims=truth.dims), flag_mean(data, dims=truth.dims)
        errs_med.append(flag_distance(med, truth))
        errs_mean.append(flag_distance(mean, truth))
        spread = max(flag_distance(X, truth) for X in inliers)
        assert errs_med[-1] < 3 * spread
    assert np.median(errs_mean) > 20 * np.median(errs_med)


def test_irls_objective_never_increases():
    rng = np.random.default_rng(8)
    n = 6
    data = [random_orthogonal(n, rng)[:, :2] for _ in range(6)]
    items, _ = _items(data)
    objs = []
    for it in range(1, 8):
        Y = flag_median(data, dims=(2,), max_iter=it)
        objs.append(sum(np.sqrt(_soft_gaps(Y, x)) for x in items))
    assert np.all(np.diff(objs) <= 1e-12)
    M = flag_mean(data, dims=(2,))
    assert objs[-1] <= sum(np.sqrt(_soft_gaps(M, x)) for x in items) + 1e-12


def test_errors():
    with pytest.raises(InputError):
        flag_mean([])
    with pytest.raises(InputError, match="different dimensions"):
        flag_mean([np.eye(3)[:, :1], np.eye(4)[:, :1]])
    with pytest.raises(InputError, match="weights"):
        flag_mean([np.eye(3)[:, :1]], weights=[-1.0])
    with pytest.raises(InputError, match="dims"):
        flag_mean([np.eye(3)[:, :1]], dims=(2,))
