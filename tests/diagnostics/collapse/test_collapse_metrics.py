"""Neural Collapse metrics and the Level-1/2/3 hierarchy (docs/theory.md, eqs. (30)–(39)).

Every formula is checked against an independent implementation written here (direct
covariances, np.linalg.pinv, explicit loops), planted collapse structures with known answers,
and Monte-Carlo random baselines with the closed forms stated in docs/theory.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign import collapse
from flagalign.collapse import Accumulator, CollapseReport, metrics, weight_only, weight_only_arrays
from flagalign.errors import InputError, ShapeMismatchError
from flagalign.models.network import Network


# -- helpers -------------------------------------------------------------------------------------
def simplex_etf(C: int, d: int, rng, scale: float = 1.0) -> np.ndarray:
    """C×d rows forming a simplex ETF (rows sum to 0, equal norms, cos = −1/(C−1))."""
    Q, _ = np.linalg.qr(rng.standard_normal((d, C)))
    E = np.eye(C) - np.ones((C, C)) / C
    return scale * np.sqrt(C / (C - 1)) * E @ Q.T


def features_around(means: np.ndarray, n: int, sigma: float, rng):
    C, d = means.shape
    y = np.repeat(np.arange(C), n)
    H = means[y] + sigma * rng.standard_normal((C * n, d))
    return H, y


def reference_metrics(H, y, W, b=None):
    """Independent, literal implementation of eqs. (30)–(37) (no shared code)."""
    C = W.shape[0]
    N, d = H.shape
    mu = np.stack([H[y == c].mean(0) for c in range(C)])
    muG = mu.mean(0)
    M = mu - muG
    Sw = np.zeros((d, d))
    for i in range(N):
        v = H[i] - mu[y[i]]
        Sw += np.outer(v, v)
    Sw /= N
    Sb = sum(np.outer(M[c], M[c]) for c in range(C)) / C
    nc1 = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True)) / C
    var = np.array([np.mean(np.sum((H[y == c] - mu[c]) ** 2, 1)) for c in range(C)])
    cd = [
        (var[i] + var[j]) / (2 * np.sum((mu[i] - mu[j]) ** 2))
        for i in range(C)
        for j in range(i + 1, C)
    ]
    norms = np.linalg.norm(M, axis=1)
    cos = [M[i] @ M[j] / (norms[i] * norms[j]) for i in range(C) for j in range(i + 1, C)]
    G = M @ M.T
    ideal = np.eye(C) - 1.0 / C
    etf = np.linalg.norm(G / np.linalg.norm(G) - ideal / np.linalg.norm(ideal))
    nc3 = np.linalg.norm(W / np.linalg.norm(W) - M / np.linalg.norm(M))
    logits = H @ W.T + (0 if b is None else b)
    ncc = np.argmin(((H[:, None, :] - mu[None]) ** 2).sum(-1), 1)
    nc4 = np.mean(np.argmax(logits, 1) != ncc)
    # Level 2 via scipy's subspace_angles on the top C-1 right singular vectors
    from scipy.linalg import subspace_angles

    Wc = W - W.mean(0)
    k = min(C - 1, d)
    va = np.linalg.svd(Wc)[2][:k].T
    vb = np.linalg.svd(M)[2][:k].T
    ang = np.sort(subspace_angles(va, vb))
    A, B = Wc.T @ Wc, M.T @ M
    comm = np.linalg.norm(A @ B - B @ A) / (np.linalg.norm(A) * np.linalg.norm(B))
    return dict(
        nc1=nc1,
        cdnv=np.mean(cd),
        nc2_equinorm=norms.std() / norms.mean(),
        nc2_equiangular=np.std(cos),
        nc2_maxangle=np.mean(np.abs(np.array(cos) + 1 / (C - 1))),
        nc2_etf=etf,
        nc3=nc3,
        nc4=nc4,
        level2_overlap=np.mean(np.cos(ang) ** 2),
        level3_commutator=comm,
        angles=ang,
    )


# -- cross-check against the independent implementation ------------------------------------------
@pytest.mark.parametrize("C,d,n", [(3, 5, 20), (5, 12, 15), (10, 30, 8), (6, 4, 10)])
def test_matches_independent_reference(C, d, n):
    rng = np.random.default_rng(C * 100 + d)
    means = rng.standard_normal((C, d)) * 2 + 3.0  # common offset: μ_G ≠ 0
    H, y = features_around(means, n, 0.7, rng)
    keep = rng.random(H.shape[0]) > 0.2  # unbalanced classes
    keep[np.searchsorted(y, np.arange(C))] = True
    H, y = H[keep], y[keep]
    W = rng.standard_normal((C, d))
    b = rng.standard_normal(C)
    rep = metrics(H, y, W, b)
    ref = reference_metrics(H, y, W, b)
    for key in ref:
        if key == "angles":
            np.testing.assert_allclose(rep.level2_angles, ref[key], atol=1e-9)
        else:
            np.testing.assert_allclose(getattr(rep, key), ref[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert rep.num_samples == H.shape[0] and rep.level2_k == min(C - 1, d)
    assert rep.level2_baseline == pytest.approx(min(C - 1, d) / d)


def test_torch_inputs_and_linear_module():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    means = simplex_etf(4, 8, rng, 3.0)
    H, y = features_around(means, 10, 0.3, rng)
    lin = torch.nn.Linear(8, 4)
    a = metrics(torch.tensor(H, dtype=torch.float64), torch.tensor(y), lin)
    b = metrics(H, y, lin.weight.detach().numpy(), lin.bias.detach().numpy())
    assert a == b


# -- planted structures --------------------------------------------------------------------------
@pytest.mark.parametrize("C,d", [(2, 3), (4, 4), (10, 64)])
def test_exact_etf_with_self_dual_classifier_is_level3(C, d):
    rng = np.random.default_rng(C + d)
    M = simplex_etf(C, d, rng, scale=2.5)
    offset = rng.standard_normal(d) * 5
    H = np.repeat(M + offset, 3, axis=0)  # every sample exactly at its class mean
    y = np.repeat(np.arange(C), 3)
    W = M * 0.7
    rep = metrics(H, y, classifier=W, bias=-W @ offset)  # b cancels the global mean
    assert rep.nc1 == pytest.approx(0, abs=1e-20)
    assert rep.cdnv == pytest.approx(0, abs=1e-20)
    for field in ("nc2_equinorm", "nc2_equiangular", "nc2_maxangle", "nc2_etf", "nc3", "nc4"):
        assert getattr(rep, field) == pytest.approx(0, abs=1e-12), field
    assert rep.level2_overlap == pytest.approx(1, abs=1e-12)
    assert rep.level2_intersection_dim == C - 1
    assert rep.level3_commutator == pytest.approx(0, abs=1e-12)
    assert (rep.level1, rep.level2, rep.level3, rep.level) == (True, True, True, 3)


def test_rotation_inside_span_keeps_level2_breaks_level3():
    """W = M R with R a rotation of row(M): same row space, different eigenbasis of the Gram.
    (For an exact ETF, MᵀM ∝ projector and any such W commutes — so M is made anisotropic.)"""
    rng = np.random.default_rng(7)
    C, d = 5, 12
    Q, _ = np.linalg.qr(rng.standard_normal((d, C - 1)))
    U = np.linalg.svd(np.eye(C) - 1 / C)[0][:, : C - 1]
    M = U @ np.diag([4.0, 3.0, 2.0, 1.0]) @ Q.T  # rows sum to 0, distinct singular values
    H = np.repeat(M, 2, axis=0)
    y = np.repeat(np.arange(C), 2)
    aligned = metrics(H, y, classifier=M)
    assert aligned.level == 3 and aligned.level3_commutator < 1e-12
    t = np.pi / 4  # rotate in the plane of the first two singular directions
    G = np.eye(C - 1)
    G[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    R = np.eye(d) - Q @ Q.T + Q @ G @ Q.T  # a rotation of ℝ^d preserving row(M)
    rep = metrics(H, y, classifier=M @ R)
    assert rep.level2_intersection_dim == C - 1 and rep.level2_max_sine < 1e-10
    assert rep.level2 and not rep.level3 and rep.level == 2
    assert rep.level3_commutator > collapse.TOL_COMMUTATOR
    assert rep.nc3 > 0.1  # not self-dual either


def test_commutator_alone_does_not_imply_level2():
    """Commuting Grams with orthogonal row spaces: commutator 0 but Level 2 (hence 3) fails."""
    C, d = 3, 6
    E = np.eye(C) - 1 / C
    U = np.linalg.svd(E)[0][:, : C - 1]
    M = U @ np.eye(C - 1, d)  # rows in span(e1, e2)
    W = U @ np.eye(C - 1, d, k=C - 1)  # rows in span(e3, e4)
    rep = metrics(np.repeat(M, 2, 0), np.repeat(np.arange(C), 2), classifier=W)
    assert rep.level3_commutator == pytest.approx(0, abs=1e-14)
    assert rep.level2_intersection_dim == 0 and not rep.level2 and not rep.level3


def test_noise_scaling_of_nc1_and_cdnv():
    """Σ_W = σ² I around an ETF of norm r: NC1 = (C−1)² σ²/(C r²)·… checked in closed form."""
    rng = np.random.default_rng(3)
    C, d, n, r, sigma = 4, 6, 4000, 2.0, 0.1
    M = simplex_etf(C, d, rng, scale=r)  # ‖m_c‖ = r, MᵀM has C−1 eigenvalues C r²/(C−1)
    H, y = features_around(M, n, sigma, rng)
    rep = metrics(H, y)
    # NC1 = Σ_k σ²/s_k² = (C−1) σ² (C−1)/(C r²); CDNV = 2dσ²/(2‖μ_i−μ_j‖²), ‖μ_i−μ_j‖² = 2Cr²/(C−1)
    assert rep.nc1 == pytest.approx((C - 1) ** 2 * sigma**2 / (C * r**2), rel=0.05)
    assert rep.cdnv == pytest.approx(d * sigma**2 * (C - 1) / (2 * C * r**2), rel=0.05)
    assert rep.level1 and rep.nc2_etf < 0.01
    assert np.isnan(rep.nc3) and not rep.level2 and rep.level == 1


def test_levels_2_3_do_not_require_level1():
    """Noisy features (NC1 large) with a classifier exactly self-dual to the means."""
    rng = np.random.default_rng(9)
    M = simplex_etf(4, 6, rng, 1.0)
    H, y = features_around(M, 50, 2.0, rng)
    Mhat = Accumulator(4, 6).update(H, y).centred_means()
    rep = metrics(H, y, classifier=3 * Mhat)
    assert rep.nc1 > 1 and not rep.level1
    assert rep.level2 and rep.level3 and rep.level == 3
    assert rep.nc3 == pytest.approx(0, abs=1e-12)


# -- random baselines (docs/theory.md, eq. (38) table) ------------------------------------------
def test_random_baselines():
    rng = np.random.default_rng(11)
    C, d, n = 6, 80, 100
    vals = []
    for _ in range(12):
        H = rng.standard_normal((C * n, d))
        y = np.repeat(np.arange(C), n)
        vals.append(metrics(H, y, rng.standard_normal((C, d))))
    mean = lambda f: np.mean([getattr(v, f) for v in vals])  # noqa: E731
    assert mean("nc1") == pytest.approx((C - 1) * n / (d - C), rel=0.15)
    assert mean("cdnv") == pytest.approx((n - 1) / 2, rel=0.1)
    assert mean("nc2_etf") == pytest.approx(np.sqrt((C - 2) * (C + 1) / ((C - 1) * d)), rel=0.25)
    assert mean("nc3") == pytest.approx(np.sqrt(2), rel=0.05)
    assert mean("nc4") == pytest.approx(1 - 1 / C, abs=0.08)
    assert mean("level2_overlap_ratio") == pytest.approx(1, rel=0.2)
    assert all(v.level == 0 for v in vals)


# -- accumulator ---------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    offset=st.sampled_from([0.0, 1e3]),
)
def test_accumulator_batches_equal_one_shot(seed, sizes, offset):
    rng = np.random.default_rng(seed)
    C, d = 4, 7
    N = sum(sizes)
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C) if N >= C else y[:C]
    if len(np.unique(y)) < C:
        y = np.arange(N) % C
        if N < C:
            return
    H = rng.standard_normal((N, d)) + offset
    one = Accumulator(C, d).update(H, y)
    many = Accumulator(C, d)
    start = 0
    for s in sizes:
        many.update(H[start : start + s], y[start : start + s])
        start += s
    mu = np.stack([H[y == c].mean(0) for c in range(C)])
    D = H - mu[y]
    Sw = D.T @ D / N
    scale = max(1.0, offset) ** 2
    for acc in (one, many):
        np.testing.assert_allclose(acc.class_means(), mu, rtol=0, atol=1e-12 * max(1, offset))
        np.testing.assert_allclose(acc.within_cov(), Sw, rtol=0, atol=1e-12 * scale / 1e3 + 1e-12)
    np.testing.assert_allclose(many.within_cov(), one.within_cov(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(many.class_variances(), one.class_variances(), rtol=0, atol=1e-12)
    W = rng.standard_normal((C, d))
    a, b = metrics(one, classifier=W), metrics(many, classifier=W)
    for f in ("nc1", "cdnv", "nc2_etf", "nc3", "level2_overlap", "level3_commutator"):
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-9, abs=1e-12), f


def test_accumulator_nc4_second_pass_matches_one_shot():
    rng = np.random.default_rng(5)
    C, d = 5, 9
    H, y = features_around(rng.standard_normal((C, d)), 30, 1.5, rng)
    W, b = rng.standard_normal((C, d)), rng.standard_normal(C)
    acc = Accumulator(C, d)
    for idx in np.array_split(rng.permutation(len(y)), 7):
        acc.update(H[idx], y[idx])
    assert np.isnan(metrics(acc, classifier=W).nc4)
    acc.freeze()
    for idx in np.array_split(np.arange(len(y)), 3):
        acc.update_decisions(H[idx], H[idx] @ W.T + b)
    assert metrics(acc, classifier=W, bias=b).nc4 == metrics(H, y, W, b).nc4
    with pytest.raises(InputError):
        acc.update(H, y)


def test_accumulator_errors():
    acc = Accumulator(3, 4)
    with pytest.raises(InputError, match="no samples"):
        acc.class_means()
    with pytest.raises(ShapeMismatchError):
        acc.update(np.zeros((2, 5)), [0, 1])
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        acc.update(np.zeros((2, 4)), [0, 3])
    acc.update(np.ones((2, 4)), [0, 1])
    with pytest.raises(InputError, match=r"classes \[2\]"):
        metrics(acc)
    with pytest.raises(InputError, match="NaN"):
        acc.update(np.full((1, 4), np.nan), [0])
    with pytest.raises(InputError, match="freeze"):
        acc.update_decisions(np.ones((1, 4)), np.ones((1, 3)))
    with pytest.raises(InputError, match="labels"):
        metrics(np.ones((3, 4)))
    with pytest.raises(ShapeMismatchError, match="classifier"):
        metrics(np.eye(3), [0, 1, 2], classifier=np.ones((3, 4)))


def test_report_frame_and_module_attribute():
    import flagalign

    assert flagalign.collapse is collapse
    rng = np.random.default_rng(2)
    H, y = features_around(rng.standard_normal((3, 4)), 5, 0.1, rng)
    rep = metrics(H, y, rng.standard_normal((3, 4)))
    assert isinstance(rep, CollapseReport)
    df = rep.to_frame()
    assert df.shape[0] == 1 and "level2_angles" not in df.columns
    assert {"nc1", "cdnv", "nc2_etf", "nc3", "nc4", "level2_overlap", "level3_commutator",
            "level2_intersection_dim", "level"} <= set(df.columns)
    with pytest.raises(Exception):
        rep.nc1 = 0.0  # frozen


# -- weight-only proxies -------------------------------------------------------------------------
def test_weight_only_on_planted_network():
    rng = np.random.default_rng(4)
    C, d, d_in = 4, 10, 7
    Wc = simplex_etf(C, d, rng, 1.5)  # ETF classifier, rows in a 3-dim subspace V
    V = np.linalg.svd(Wc)[2][: C - 1].T
    A_bal = V @ np.diag([1.0, 1.0, 1.0]) @ np.linalg.qr(rng.standard_normal((d_in, C - 1)))[0].T
    A_bal *= np.linalg.svd(Wc)[1][0]  # AAᵀ = W̄ᵀW̄: balanced, same basis
    net = Network.from_arrays({"fc1": A_bal, "fc2": Wc})
    wo = weight_only(net)
    assert (wo.source, wo.classifier, wo.penultimate) == ("weight-only", "fc2", "fc1")
    assert wo.etf == pytest.approx(0, abs=1e-12) and wo.equinorm == pytest.approx(0, abs=1e-12)
    assert wo.level2_overlap == pytest.approx(1) and wo.level2_intersection_dim == C - 1
    assert wo.level3_commutator == pytest.approx(0, abs=1e-12) and wo.level3
    # anisotropic A writing the same subspace: Level 2 kept, Level 3 broken
    A_rot = V @ np.diag([3.0, 1.0, 0.2]) @ np.linalg.qr(rng.standard_normal((C - 1, C - 1)))[0] @ \
        np.linalg.qr(rng.standard_normal((d_in, C - 1)))[0].T
    wo2 = weight_only_arrays(Wc, A_rot)
    assert wo2.level2 and wo2.level3_commutator == pytest.approx(0, abs=1e-12)  # ETF Gram ∝ P
    W_aniso = np.diag([1.0, 2.0, 3.0, 4.0]) @ Wc
    A_r = V @ np.linalg.qr(rng.standard_normal((C - 1, C - 1)))[0] @ np.diag([3, 1, 0.2]) @ \
        np.linalg.qr(rng.standard_normal((d_in, C - 1)))[0].T
    wo3 = weight_only_arrays(W_aniso, A_r)
    assert wo3.level2 and wo3.level3_commutator > 0.05 and not wo3.level3
    # independent reference for the commutator
    Wb = W_aniso - W_aniso.mean(0)
    P, Q = A_r @ A_r.T, Wb.T @ Wb
    ref = np.linalg.norm(P @ Q - Q @ P) / (np.linalg.norm(P) * np.linalg.norm(Q))
    assert wo3.level3_commutator == pytest.approx(ref, rel=1e-10)


def test_weight_only_errors_and_classifier_only():
    net = Network.from_arrays({"a": np.ones((3, 2)), "b": np.ones((5, 4))})
    with pytest.raises(InputError, match="pairs"):
        weight_only(net)
    wo = weight_only(net, classifier="b")
    assert np.isnan(wo.level2_overlap) and not wo.level2 and wo.penultimate == ""
    with pytest.raises(ShapeMismatchError):
        weight_only_arrays(np.ones((3, 4)), np.ones((5, 2)))
