"""Chordal and geodesic distances on flag manifolds (docs/theory.md, eq. (66))."""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import Flag, InputError, flag_distance, subspace_distance

from _planted import random_orthogonal


def _type(rng, n):
    k = int(rng.integers(1, n))
    return tuple(sorted(rng.choice(np.arange(1, n), size=min(k, 3), replace=False).tolist()))


def _random_flag(rng, n, dims):
    return Flag(random_orthogonal(n, rng)[:, : dims[-1]], dims)


def _projectors(F: Flag):
    ps = [F.piece(i) @ F.piece(i).T for i in range(len(F.dims))]
    return ps + [np.eye(F.n) - sum(ps)]


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 9))
def test_chordal_is_the_piece_projector_distance(seed, n):
    rng = np.random.default_rng(seed)
    d = _type(rng, n)
    F, G = _random_flag(rng, n, d), _random_flag(rng, n, d)
    ref = np.sqrt(0.25 * sum(np.sum((P - Q) ** 2) for P, Q in zip(_projectors(F), _projectors(G))))
    assert flag_distance(F, G, "chordal") == pytest.approx(ref, abs=1e-12)
    assert flag_distance(F, G, "chordal") <= flag_distance(F, G, "geodesic") + 1e-15


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 9), k=st.integers(1, 8))
def test_one_step_type_is_the_grassmann_distance(seed, n, k):
    rng = np.random.default_rng(seed)
    k = min(k, n - 1)
    A, B = random_orthogonal(n, rng)[:, :k], random_orthogonal(n, rng)[:, :k]
    for metric in ("chordal", "geodesic"):
        assert flag_distance(Flag(A, (k,)), Flag(B, (k,)), metric) == pytest.approx(
            subspace_distance(A, B, metric), abs=1e-12
        )


def _horizontal(rng, sizes):
    n = sum(sizes)
    A = rng.standard_normal((n, n))
    A = A - A.T
    start = 0
    for s in sizes:
        A[start : start + s, start : start + s] = 0.0
        start += s
    return A


@pytest.mark.parametrize("dims,n", [((1, 2, 3), 4), ((2, 5), 7), ((1, 4), 6)])
def test_geodesic_is_a_first_order_exact_lower_bound(dims, n):
    rng = np.random.default_rng(n)
    Q = random_orthogonal(n, rng)
    F = Flag(Q[:, : dims[-1]], dims)
    sizes = F.sizes
    for t in (1.0, 0.3, 1e-2, 1e-4):
        A = _horizontal(rng, sizes)
        G = Flag((Q @ sla.expm(t * A))[:, : dims[-1]], dims)
        length = t * np.linalg.norm(A) / np.sqrt(2)  # length of t ↦ Q exp(tA) in O(n)/H
        d = flag_distance(F, G, "geodesic")
        assert d <= length * (1 + 1e-12)
        if t <= 1e-2:
            assert d == pytest.approx(length, rel=10 * t**2 + 1e-9)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 8))
def test_metric_axioms_and_invariances(seed, n):
    rng = np.random.default_rng(seed)
    d = _type(rng, n)
    F, G, H = (_random_flag(rng, n, d) for _ in range(3))
    for metric in ("chordal", "geodesic"):
        fg, gh, fh = flag_distance(F, G, metric), flag_distance(G, H, metric), flag_distance(F, H, metric)
        assert fh <= fg + gh + 1e-12
        assert flag_distance(G, F, metric) == pytest.approx(fg, abs=1e-13)
        assert flag_distance(F, F, metric) < 1e-7
        Q = random_orthogonal(n, rng)
        assert flag_distance(Flag(Q @ F.basis, d), Flag(Q @ G.basis, d), metric) == pytest.approx(fg, abs=1e-12)
        R = np.eye(d[-1])
        R[: d[0], : d[0]] = random_orthogonal(d[0], rng)  # rotation inside the first piece
        assert flag_distance(Flag(F.basis @ R, d), G, metric) == pytest.approx(fg, abs=1e-12)


def test_types_must_match_or_be_coarsened():
    rng = np.random.default_rng(5)
    Q = random_orthogonal(6, rng)
    F, G = Flag(Q[:, :4], (1, 2, 4)), Flag(Q[:, :4], (2, 3, 4))
    with pytest.raises(InputError, match="dims='common'"):
        flag_distance(F, G)
    assert flag_distance(F, G, dims="common") < 1e-12  # both coarsen to (2, 4): the same flag
    assert flag_distance(F, G, dims=(4,)) < 1e-12
    assert np.isnan(flag_distance(Flag(Q[:, :1], (1,)), Flag(Q[:, :2], (2,)), dims="common"))
    with pytest.raises(InputError, match="coarsen"):
        flag_distance(F, G, dims=(1,))
    with pytest.raises(InputError, match="different spaces"):
        flag_distance(F, Flag(np.eye(5)[:, :2], (1, 2)))


def test_baseline_is_the_rms_distance_of_random_flags():
    from flagalign.geometry import flag_distance_baseline

    rng = np.random.default_rng(12)
    n, d = 7, (1, 3, 4)
    sq = [
        flag_distance(_random_flag(rng, n, d), _random_flag(rng, n, d)) ** 2 for _ in range(400)
    ]
    base = flag_distance_baseline(d, n)
    assert abs(np.mean(sq) - base**2) < 4 * np.std(sq) / np.sqrt(len(sq))
    assert flag_distance_baseline((3,), 7) == pytest.approx(np.sqrt(3 * 4 / 7), abs=1e-15)
    with pytest.raises(InputError):
        flag_distance_baseline((0, 2), 5)
