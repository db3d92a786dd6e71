"""The flags of a pair from its top-k factors (geometry/pair_flags.py; docs/theory.md eqs. (62)–(66),
(69))."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagalign.errors import InputError
from flagalign.geometry import Flag, flag_table, piece_overlaps
from flagalign.geometry.pair_flags import (
    format_flag_type,
    pair_flags,
    parse_flag_type,
    piece_overlaps_from_table,
)
from _planted import random_orthogonal


@given(st.lists(st.integers(1, 200), unique=True, max_size=30))
def test_flag_type_string_round_trips(dims):
    dims = tuple(sorted(dims))
    text = format_flag_type(dims)
    assert parse_flag_type(text) == dims
    assert text.startswith("(") and text.endswith(")") and " " not in text


def test_flag_type_string_examples():
    assert format_flag_type(range(1, 64)) == "(1..63)"
    assert format_flag_type((1, 2, 3, 4, 5, 7, 9, 10)) == "(1..5,7,9,10)"
    assert format_flag_type((4,)) == "(4)"
    assert format_flag_type(()) == "()"
    for bad in ("1..3", "(3,2)", "(a)", "(0..2)", "(1..2,2)"):
        with pytest.raises(InputError):
            parse_flag_type(bad)


def test_piece_overlaps_from_table_matches_piece_overlaps():
    rng = np.random.default_rng(3)
    n, k = 17, 9
    for _ in range(20):
        u = random_orthogonal(n, rng)[:, :k]
        v = random_orthogonal(n, rng)[:, :k]
        d = tuple(sorted(rng.choice(np.arange(1, k), size=rng.integers(1, k), replace=False)))
        e = tuple(sorted(rng.choice(np.arange(1, k), size=rng.integers(1, k), replace=False)))
        ref = piece_overlaps(Flag(u, d), Flag(v, e))
        got = piece_overlaps_from_table(flag_table(u, v), d, e, n)
        np.testing.assert_allclose(got, ref, atol=1e-12)
        assert got.sum() == pytest.approx(n)
    with pytest.raises(InputError):
        piece_overlaps_from_table(np.zeros((4, 4)), (5,), (1,), 10)


def _factors(s, n, rng):
    u = random_orthogonal(n, rng)[:, : len(s)]
    return u @ np.diag(s) @ random_orthogonal(len(s), rng).T, u


def test_pair_flags_planted_clusters_and_float32_delta():
    """Exact clusters are one piece; eq. (62)'s δ at float32 merges a gap float64 would keep."""
    rng = np.random.default_rng(0)
    n = 30
    s = np.array([5.0, 5.0, 5.0, 3.0, 3.0, 2.0, 2.0 - 1e-6, 1.0, 0.5, 0.25])
    W, u = _factors(s, n, rng)
    Wn = (W @ random_orthogonal(s.size, rng)).T  # reader whose input flag is u's
    v = u
    f64 = pair_flags(u, s, W, "float64", v, s, Wn, "float64")
    assert f64.left.dims == (3, 5, 6, 7, 8, 9)
    f32 = pair_flags(u, s, W, "float32", v, s, Wn, "float32")
    assert f32.left.dims == (3, 5, 7, 8, 9) == f32.right.dims
    assert f32.distance == pytest.approx(0.0, abs=1e-12)
    assert f32.soft_position == pytest.approx(0.0, abs=1e-12)
    sizes = np.diff((0, 3, 5, 7, 8, 9, n)).astype(float)
    assert f32.distance_baseline == pytest.approx(np.sqrt(0.5 * np.sum(sizes * (1 - sizes / n))))


def test_pair_flags_handles_overflowing_norms():
    rng = np.random.default_rng(1)
    s = np.array([4.0, 2.0, 1.0, 0.5])
    W, u = _factors(s, 12, rng)
    big = 2.0**1000
    ref = pair_flags(u, s, W, "float32", u, s, W.T, "float32")
    got = pair_flags(u, s * big, W * big, "float32", u, s * big, W.T * big, "float32")
    with np.errstate(over="ignore"):
        assert np.isinf(np.linalg.norm(W * big))
    assert got.left.dims == ref.left.dims and got.left.perturbation == pytest.approx(
        ref.left.perturbation * big, rel=1e-12)


def test_pair_flags_trivial_flag_gives_nan():
    """An isotropic top-k (one cluster) has no split below k: NaN, not 0 ("identical")."""
    rng = np.random.default_rng(2)
    s = np.ones(5)
    W, u = _factors(s, 20, rng)
    f = pair_flags(u, s, W, "float32", u, s, W.T, "float32")
    assert f.left.dims == () and np.isnan(f.distance) and np.isnan(f.soft_position)
    with pytest.raises(InputError):
        pair_flags(u[:, :0], s[:0], W, "float32", u, s, W.T, "float32")


def test_chordal_flag_distance_without_svd_matches_piecewise_angles_and_small_angles():
    """flag_distance(chordal) sums residual norms (no SVD): equal to the per-piece principal
    angles of eq. (1) on random flags, and exact for planted angles of 1e-10 rad."""
    from flagalign.geometry import flag_distance, principal_cosines_sines

    rng = np.random.default_rng(7)
    n = 15
    for _ in range(20):
        d = tuple(sorted(rng.choice(np.arange(1, 9), size=rng.integers(1, 8), replace=False)))
        F = Flag(random_orthogonal(n, rng)[:, : d[-1]], d)
        G = Flag(random_orthogonal(n, rng)[:, : d[-1]], d)
        total = 0.0
        for i in range(len(d)):
            total += float(np.sum(principal_cosines_sines(F.piece(i), G.piece(i))[1] ** 2))
        total += float(np.sum(principal_cosines_sines(F.member(-1), G.member(-1))[1] ** 2))
        assert flag_distance(F, G, "chordal") == pytest.approx(np.sqrt(0.5 * total), abs=1e-13)
    t1, t2 = 1e-10, 2e-10
    e = random_orthogonal(8, rng)
    Fb = e[:, :3]
    Gb = np.column_stack([np.cos(t1) * e[:, 0] + np.sin(t1) * e[:, 4], e[:, 1],
                          np.cos(t2) * e[:, 2] + np.sin(t2) * e[:, 5]])
    ref = np.sqrt(np.sin(t1) ** 2 + np.sin(t2) ** 2)  # ½ (pieces + complement) = Σ sin²
    got = flag_distance(Flag(Fb, (1, 3)), Flag(Gb, (1, 3)), "chordal")
    assert got == pytest.approx(ref, rel=1e-6)


def test_quantized_dtype_uses_the_quantization_error():
    """Eq. (62) for a block-quantized type: δ_q·(max row norm + max column norm) with
    δ_q = κ/2^b (eq. (3)), so a gap float32 resolves is one piece at q8_0."""
    from flagalign._arrays import storage_error
    from flagalign.geometry import storage_perturbation

    rng = np.random.default_rng(11)
    s = np.array([4.0, 3.9, 2.0, 1.0, 0.5])  # gap 0.1 after σ₁
    W, u = _factors(s, 40, rng)
    ref = storage_error("q8_0") * (np.linalg.norm(W, axis=1).max() + np.linalg.norm(W, axis=0).max())
    ref += 40 * np.finfo(float).eps * 4.0
    assert storage_perturbation(W, "q8_0", sigma1=4.0) == pytest.approx(ref, rel=1e-12)
    assert 0.1 < 10 * ref < 1.0  # between the small gap and the large ones
    f32 = pair_flags(u, s, W, "float32", u, s, W.T, "float32")
    q8 = pair_flags(u, s, W, "q8_0", u, s, W.T, "q8_0")
    assert f32.left.dims == (1, 2, 3, 4) and q8.left.dims == (2, 3, 4)
