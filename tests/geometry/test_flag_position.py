"""Schubert cells of partial flags and the soft relative position (docs/theory.md, eqs. (64)–(65))."""

import itertools

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import Flag, InputError, ToleranceError, relative_position, soft_relative_position
from flagalign.geometry import RelativePosition, piece_overlaps, soft_relative_position_baseline

from _planted import random_orthogonal, well_conditioned


def _contingency(rows, cols):
    """All non-negative integer matrices with the given row and column sums."""
    if len(rows) == 1:
        yield np.array([cols])
        return
    for first in itertools.product(*(range(min(rows[0], c) + 1) for c in cols)):
        if sum(first) != rows[0]:
            continue
        rest = [c - f for c, f in zip(cols, first)]
        for tail in _contingency(rows[1:], rest):
            yield np.vstack([first, tail])


def _sizes(dims, n):
    full = (0,) + dims + (n,)
    return [b - a for a, b in zip(full, full[1:])]


def _block_upper(rng, sizes):
    n = sum(sizes)
    T = rng.standard_normal((n, n))
    start = 0
    for s in sizes:  # zero the blocks below the block diagonal
        T[start + s :, start : start + s] = 0.0
        start += s
    return T + 3 * np.eye(n)


def _plant(r, d, e, n, rng):
    """Flags F of type d and G of type e in the Schubert cell of the contingency matrix r,
    moved by random parabolic elements of each and a common random GL(n) element."""
    Q = np.eye(n)
    fs, gs = _sizes(d, n), _sizes(e, n)
    # G's piece j takes r[i, j] fresh columns of F's piece i
    fstart = np.concatenate([[0], np.cumsum(fs)])
    used = [0] * len(fs)
    cols = []
    for j in range(len(gs)):
        for i in range(len(fs)):
            for _ in range(r[i, j]):
                cols.append(fstart[i] + used[i])
                used[i] += 1
    Gb = Q[:, cols] @ _block_upper(rng, gs)
    Fb = Q @ _block_upper(rng, fs)
    g = well_conditioned(n, rng, cond=5.0)
    F = Flag(np.linalg.qr(g @ Fb)[0], d)
    G = Flag(np.linalg.qr(g @ Gb)[0], e)
    return F, G


CASES = [((1, 2), (1, 2), 3), ((1,), (2,), 3), ((1,), (1, 2), 3), ((2,), (2,), 4), ((1, 3), (2,), 4), ((1, 2), (2, 3), 4)]


@pytest.mark.parametrize("d,e,n", CASES)
def test_every_planted_cell_is_recognised(d, e, n):
    rng = np.random.default_rng(sum(d) * 10 + sum(e) + n)
    cells = list(_contingency(_sizes(d, n), _sizes(e, n)))
    assert len(cells) > 1
    ident = np.minimum.outer(np.array((0,) + d + (n,)), np.array((0,) + e + (n,)))
    for r in cells:
        F, G = _plant(r, d, e, n, rng)
        rp = relative_position(F, G)
        assert isinstance(rp, RelativePosition)
        np.testing.assert_array_equal(rp.matrix, r)
        # exact intersections sit ~tol below the tolerance: the margin is ~tol, and a looser
        # tolerance gives the same cell with a larger margin
        assert rp.margin > 0.5e-6 and rp.certified
        loose = relative_position(F, G, tol=1e-3)
        np.testing.assert_array_equal(loose.matrix, r)
        assert loose.margin > 0.5e-3
        assert rp.is_identity == bool(np.array_equal(np.diff(np.diff(ident, axis=0), axis=1), r))
        np.testing.assert_array_equal(rp.matrix.sum(axis=1), _sizes(d, n))
        # when the planted angles are exactly 0 or π/2 the soft matrix is the hard one
        if np.allclose(np.abs(F.basis.T @ G.basis) * (1 - np.abs(F.basis.T @ G.basis)), 0, atol=1e-9):
            np.testing.assert_allclose(piece_overlaps(F, G), r, atol=1e-9)


def test_type_12_in_r3_all_six_cells_with_permutations():
    rng = np.random.default_rng(0)
    seen = set()
    for w in itertools.permutations(range(3)):
        r = np.zeros((3, 3), dtype=int)
        r[np.arange(3), w] = 1
        F, G = _plant(r, (1, 2), (1, 2), 3, rng)
        rp = relative_position(F, G)
        assert rp.permutation == list(w)
        # the same answer as the complete-flag array path (eq. (8))
        Fc = np.column_stack([F.basis, np.cross(F.basis[:, 0], F.basis[:, 1])])
        Gc = np.column_stack([G.basis, np.cross(G.basis[:, 0], G.basis[:, 1])])
        assert relative_position(Fc, Gc) == list(w)
        seen.add(tuple(w))
    assert len(seen) == 6
    assert relative_position(F, F).is_identity
    U, V = random_orthogonal(3, rng), random_orthogonal(3, rng)
    assert relative_position(Flag.from_basis(U[:, :2]), Flag.from_basis(V[:, :2])).is_generic


def test_perturbation_below_margin_changes_no_rank_decision():
    rng = np.random.default_rng(1)
    n = 6
    for r in list(_contingency(_sizes((2, 4), n), _sizes((1, 3), n)))[:8]:
        F, G = _plant(r, (2, 4), (1, 3), n, rng)
        rp = relative_position(F, G, tol=1e-3)
        for _ in range(5):
            A = rng.standard_normal((n, n))
            A = A - A.T
            t = 0.49 * rp.margin / np.linalg.norm(A, 2)  # sin Θ ≤ ‖R − I‖₂ ≤ t‖A‖₂ < margin/2
            G2 = Flag(sla.expm(t * A) @ G.basis, G.dims)
            np.testing.assert_array_equal(relative_position(F, G2, tol=1e-3).table, rp.table)
            B = rng.standard_normal((n, n))
            B = B - B.T
            s = 0.49 * rp.margin / np.linalg.norm(B, 2)
            F2 = Flag(sla.expm(s * B) @ F.basis, F.dims)  # both move: total < margin
            np.testing.assert_array_equal(relative_position(F2, G2, tol=1e-3).table, rp.table)


def test_margin_is_distance_to_flipping():
    # a line at angle θ from a plane: the one decision flips when tol crosses sin θ
    theta = 1e-4
    F = Flag(np.eye(3)[:, :2], (2,))
    G = Flag(np.array([[np.cos(theta)], [0.0], [np.sin(theta)]]), (1,))
    a, b = relative_position(F, G, tol=2e-4), relative_position(F, G, tol=0.5e-4)
    assert a.margin == pytest.approx(2e-4 - np.sin(theta), rel=1e-9)
    assert b.margin == pytest.approx(np.sin(theta) - 0.5e-4, rel=1e-9)
    assert a.table[1, 1] == 1 and b.table[1, 1] == 0


def test_inconsistent_tolerance_raises():
    S = np.array([[0, 0.0095, 0.0069], [-0.0095, 0, -0.0222], [-0.0069, 0.0222, 0]])
    V = sla.expm(S)
    with pytest.raises(ToleranceError, match="loosen tol"):
        relative_position(Flag.from_basis(np.eye(3)), Flag.from_basis(V), tol=1e-2)


def _rotate_away(F: Flag, t: float) -> Flag:
    """Rotate basis vector a towards vector n−1−a by angle t (all a < n/2 at once); at t = π/2
    the flag is reversed."""
    n = F.n
    Q = np.linalg.qr(np.column_stack([F.basis, np.eye(n)]))[0][:, :n]
    Q[:, : F.basis.shape[1]] = F.basis
    Q = np.linalg.qr(Q)[0] * np.sign(np.diag(np.linalg.qr(Q)[1]))
    R = np.eye(n)
    for a in range(n // 2):
        b = n - 1 - a
        R[[a, a, b, b], [a, b, a, b]] = [np.cos(t), -np.sin(t), np.sin(t), np.cos(t)]
    return Flag((Q @ R.T)[:, : F.basis.shape[1]], F.dims)


@pytest.mark.parametrize("dims,n", [((1, 2, 3, 4), 5), ((2, 4), 6), ((1, 3), 5)])
def test_soft_position_zero_when_identical_and_monotone_rotating_away(dims, n):
    rng = np.random.default_rng(n)
    F = Flag(random_orthogonal(n, rng)[:, : dims[-1]], dims)
    assert soft_relative_position(F, F) == 0.0 or soft_relative_position(F, F) < 1e-15
    vals = [soft_relative_position(F, _rotate_away(F, t)) for t in np.linspace(0, np.pi / 2, 25)]
    assert vals[0] < 1e-15
    assert np.all(np.diff(vals) > 0)
    if dims == tuple(range(1, n)):
        assert vals[-1] == pytest.approx(1.0, abs=1e-12)


def test_soft_position_coarsening_and_spearman():
    rng = np.random.default_rng(7)
    n = 5
    Q = random_orthogonal(n, rng)
    F = Flag(Q[:, :4], (1, 2, 3, 4))
    assert soft_relative_position(F, F.coarsen((2, 4))) < 1e-15
    for w in [(1, 0, 2, 3, 4), (4, 3, 2, 1, 0), (2, 0, 4, 1, 3)]:
        G = Flag(Q[:, np.argsort(w)][:, :4], (1, 2, 3, 4))
        a = np.arange(n)
        spear = np.sum((a - np.array(w)) ** 2) / np.sum((a - a[::-1]) ** 2)
        assert soft_relative_position(F, G) == pytest.approx(spear, abs=1e-12)
        assert relative_position(F, G).permutation == list(w)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 8))
def test_soft_position_invariances_and_range(seed, n):
    rng = np.random.default_rng(seed)
    d = tuple(sorted(rng.choice(np.arange(1, n), size=min(2, n - 1), replace=False).tolist()))
    e = tuple(sorted(rng.choice(np.arange(1, n), size=1).tolist()))
    F = Flag(random_orthogonal(n, rng)[:, : d[-1]], d)
    G = Flag(random_orthogonal(n, rng)[:, : e[-1]], e)
    s = soft_relative_position(F, G)
    assert 0 <= s <= 1
    Q = random_orthogonal(n, rng)
    assert soft_relative_position(Flag(Q @ F.basis, d), Flag(Q @ G.basis, e)) == pytest.approx(s, abs=1e-12)
    R = np.eye(d[-1])
    R[: d[0], : d[0]] = random_orthogonal(d[0], rng)
    assert soft_relative_position(Flag(F.basis @ R, d), G) == pytest.approx(s, abs=1e-12)
    M = piece_overlaps(F, G)
    np.testing.assert_allclose(M.sum(axis=1), F.sizes, atol=1e-12)
    np.testing.assert_allclose(M.sum(axis=0), G.sizes, atol=1e-12)


def test_soft_baseline_matches_monte_carlo():
    rng = np.random.default_rng(11)
    n, d, e = 6, (1, 3), (2, 4)
    vals = [
        soft_relative_position(
            Flag(random_orthogonal(n, rng)[:, :3], d), Flag(random_orthogonal(n, rng)[:, :4], e)
        )
        for _ in range(400)
    ]
    base = soft_relative_position_baseline(d, e, n)
    assert abs(np.mean(vals) - base) < 4 * np.std(vals) / np.sqrt(len(vals))
    with pytest.raises(InputError):
        soft_relative_position_baseline((0,), (1,), 3)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 7))
def test_soft_numerator_is_mean_squared_displacement_of_the_matching(seed, n):
    rng = np.random.default_rng(seed)
    F = Flag.from_basis(random_orthogonal(n, rng)[:, : n - 1])
    G = Flag.from_basis(random_orthogonal(n, rng)[:, : n - 1])
    M = piece_overlaps(F, G)
    a = np.arange(n)
    num = 0.5 * np.sum(M * (a[:, None] - a[None, :]) ** 2)
    den = 0.5 * np.sum((a - a[::-1]) ** 2)
    assert soft_relative_position(F, G) == pytest.approx(num / den, abs=1e-12)
