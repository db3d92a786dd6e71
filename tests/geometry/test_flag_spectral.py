"""Gap-chosen partial flags of a singular spectrum (docs/theory.md, eqs. (60), (62)–(63))."""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from flagalign import Flag, InputError, flag_distance, relative_position, soft_relative_position, spectral_flag
from flagalign.geometry import piece_overlaps, storage_perturbation
from flagalign.geometry.spectral_flag import DEFAULT_MIN_MARGIN

from _planted import random_orthogonal


def _planted(rng, sizes, levels, n_out, n_in, jitter=0.0):
    s = np.concatenate([np.full(k, v) for k, v in zip(sizes, levels)])
    s = s * (1 + jitter * rng.uniform(-1, 1, s.size))
    r = s.size
    U = random_orthogonal(n_out, rng)[:, :r]
    V = random_orthogonal(n_in, rng)[:, :r]
    return U @ np.diag(s) @ V.T, U, s, V


@given(seed=st.integers(0, 2**31 - 1), sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_planted_clusters_recover_type(seed, sizes):
    rng = np.random.default_rng(seed)
    levels = 10.0 * 0.5 ** np.arange(len(sizes))
    r = sum(sizes)
    W, *_ = _planted(rng, sizes, levels, r + 2, r + 1, jitter=1e-15)
    cum = tuple(np.cumsum(sizes))  # the last split is the rank, below the side's dimension
    assert spectral_flag(W, "left").dims == cum
    assert spectral_flag(W, "right").dims == cum
    # float32 storage: jitter up to 1e-9 is still one cluster (δ ≈ 1e-7 ‖W‖_F)
    W32 = _planted(rng, sizes, levels, r + 2, r + 1, jitter=1e-9)[0].astype(np.float32)
    F = spectral_flag(W32)
    assert F.dims == cum
    assert np.all(F.margins >= DEFAULT_MIN_MARGIN)
    assert F.perturbation == pytest.approx(storage_perturbation(W32), rel=1e-12)


def test_storage_perturbation_formula():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((30, 20))
    eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
    ref = eps32 * np.linalg.norm(W) + 30 * eps64 * np.linalg.norm(W, 2)
    assert storage_perturbation(W, "float32") == pytest.approx(ref, rel=1e-12)
    assert storage_perturbation(W.astype(np.float32)) == pytest.approx(
        storage_perturbation(W.astype(np.float32).astype(np.float64), "float32"), rel=1e-12
    )
    assert storage_perturbation(W, "bfloat16") > storage_perturbation(W, "float16") > storage_perturbation(W)


def test_isotropic_matrix_is_one_piece_and_rank_split():
    rng = np.random.default_rng(2)
    F = spectral_flag(3.0 * random_orthogonal(9, rng))
    assert F.dims == () and F.basis.shape == (9, 0) and F.sizes == (9,)
    # tall isometry: only the split at its rank, i.e. the column space as one piece
    Q = random_orthogonal(9, rng)[:, :4]
    G = spectral_flag(2.0 * Q, "left")
    assert G.dims == (4,)
    assert flag_distance(G, Flag.from_basis(Q, dims=(4,))) < 1e-12
    assert spectral_flag(2.0 * Q, "right").dims == ()


def test_rotation_inside_a_cluster_changes_nothing_reported():
    rng = np.random.default_rng(3)
    sizes, levels = [2, 3, 1], [4.0, 2.0, 1.0]
    W, U, s, V = _planted(rng, sizes, levels, 8, 7)
    R = np.eye(6)
    R[2:5, 2:5] = random_orthogonal(3, rng)  # rotate the left singular basis of the 3-cluster
    W2 = U @ R @ np.diag(s) @ V.T
    assert not np.allclose(W, W2)
    F, F2 = spectral_flag(W), spectral_flag(W2)
    other = Flag.from_basis(random_orthogonal(8, rng)[:, :5], dims=(1, 3, 5))
    assert F.dims == F2.dims == (2, 5, 6)
    np.testing.assert_allclose(F.margins, F2.margins, rtol=1e-9)
    assert flag_distance(F, F2) < 1e-12 and flag_distance(F, F2, "geodesic") < 1e-12
    assert soft_relative_position(F, other) == pytest.approx(soft_relative_position(F2, other), abs=1e-12)
    np.testing.assert_allclose(piece_overlaps(F, other), piece_overlaps(F2, other), atol=1e-12)
    G = Flag.from_basis(random_orthogonal(8, rng)[:, :6], dims=(2, 5, 6))
    assert flag_distance(F, G) == pytest.approx(flag_distance(F2, G), abs=1e-12)
    assert flag_distance(F, G, "geodesic") == pytest.approx(flag_distance(F2, G, "geodesic"), abs=1e-12)
    rp, rp2 = relative_position(F, other), relative_position(F2, other)
    np.testing.assert_array_equal(rp.matrix, rp2.matrix)


def test_perturbation_below_margin_keeps_every_split_decision():
    rng = np.random.default_rng(4)
    W, *_ = _planted(rng, [2, 2, 3], [5.0, 4.0, 1.0], 9, 9)
    W = W + 1e-3 * rng.standard_normal(W.shape)  # a spectrum with many small gaps
    delta = 1e-3
    F = spectral_flag(W, perturbation=delta)
    s = np.append(F.values, 0.0)
    gaps = (s[:-1] - s[1:])[: F.n - 1]
    # Weyl: ‖E‖₂ moves every gap by ≤ 2‖E‖₂, so no decision flips below this
    decision_margin = np.min(np.abs(gaps - DEFAULT_MIN_MARGIN * delta)) / 2
    assert 0 < len(F.dims) < F.n - 1
    for _ in range(20):
        E = rng.standard_normal(W.shape)
        E *= 0.99 * decision_margin / np.linalg.norm(E, 2)
        assert spectral_flag(W + E, perturbation=delta).dims == F.dims
    # the bound is not vacuous: a perturbation closing the smallest kept gap merges the clusters
    d = F.dims[int(np.argmin(F.margins))]
    u, sv, vt = sla.svd(W)
    sv2 = sv.copy()
    sv2[d] = sv[d - 1] - 0.5 * DEFAULT_MIN_MARGIN * delta
    assert d not in spectral_flag(u @ np.diag(sv2) @ vt, perturbation=delta).dims


@given(seed=st.integers(0, 2**31 - 1))
def test_equivariance_under_orthogonal_maps_and_scaling(seed):
    rng = np.random.default_rng(seed)
    W, *_ = _planted(rng, [1, 2, 2], [3.0, 2.0, 0.5], 6, 5)
    P, Q = random_orthogonal(6, rng), random_orthogonal(5, rng)
    F, Fr = spectral_flag(W), spectral_flag(W, "right")
    G, Gr = spectral_flag(P @ W @ Q), spectral_flag(-2.5 * W, "right")
    assert G.dims == F.dims and Gr.dims == Fr.dims
    np.testing.assert_allclose(G.margins, F.margins, rtol=1e-8)
    np.testing.assert_allclose(Gr.margins, Fr.margins, rtol=1e-8)
    assert flag_distance(Flag(P @ F.basis, F.dims), G) < 1e-10
    assert flag_distance(Fr, Gr) < 1e-10


def test_low_precision_tensors_give_coarser_types():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    W, *_ = _planted(rng, [1, 1, 1, 1], [1.0, 0.999, 0.7, 0.2], 6, 6)
    # bf16: δ ≈ 2⁻⁷·‖W‖_F ≈ 0.0124, so only gaps ≥ 0.124 survive: 0.001 merges, 0.3, 0.5, 0.2 stay
    assert spectral_flag(torch.tensor(W)).dims == (1, 2, 3, 4)
    assert spectral_flag(torch.tensor(W, dtype=torch.bfloat16)).dims == (2, 3, 4)


def test_max_dim_and_errors():
    rng = np.random.default_rng(6)
    W, *_ = _planted(rng, [1, 1, 1], [3.0, 2.0, 1.0], 5, 5)
    assert spectral_flag(W, max_dim=2).dims == (1, 2)
    with pytest.raises(InputError, match="side"):
        spectral_flag(W, side="up")
    with pytest.raises(InputError, match="NaN"):
        spectral_flag(np.full((3, 3), np.nan))
    with pytest.raises(InputError, match="increasing"):
        Flag(np.eye(3), (2, 1))
    with pytest.raises(InputError, match="orthonormal"):
        Flag(np.ones((3, 2)), (1, 2))
    with pytest.raises(InputError, match="does not fit"):
        Flag(np.eye(3), (1, 4))


def test_flag_from_top_k_factors_matches_spectral_flag():
    from flagalign import top_subspaces
    from flagalign.geometry import flag_from_spectrum

    rng = np.random.default_rng(9)
    W, *_ = _planted(rng, [2, 1, 3, 2], [6.0, 4.0, 2.0, 1.0], 12, 10)
    W = W + 1e-9 * rng.standard_normal(W.shape)
    W32 = W.astype(np.float32)
    k = 6
    top = top_subspaces(W32, k)
    F = flag_from_spectrum(top.U, top.s, storage_perturbation(W32, sigma1=top.s[0]))
    ref = spectral_flag(W32, max_dim=k - 1)  # the split after σ_k needs σ_{k+1}: not known from k
    assert F.dims == ref.dims == (2, 3)
    np.testing.assert_allclose(F.margins, ref.margins, rtol=1e-6)
    assert flag_distance(F, ref) < 1e-6


def test_stored_dtype_of_an_upcast_copy():
    rng = np.random.default_rng(10)
    W, *_ = _planted(rng, [1, 1, 1, 1], [1.0, 0.999, 0.7, 0.2], 6, 6)
    W32 = W.astype(np.float32)
    up = W32.astype(np.float64)
    assert spectral_flag(up, dtype="float32").dims == spectral_flag(W32).dims
    np.testing.assert_allclose(spectral_flag(up, dtype="float32").margins, spectral_flag(W32).margins)
    assert spectral_flag(up, dtype="bfloat16").dims == (2, 3, 4)
