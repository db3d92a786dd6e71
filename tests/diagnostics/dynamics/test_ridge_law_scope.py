"""Scope of the ridge law, eqs. (22), (25), (28) (issue 12, errors 2 and 3).

Near a ridge stationary point the forcing of eq. (21) is F = −λ²D + (e_nextᵀe_next − ẽẽᵀ) with
e = G + λp, so D shrinks by (1 − 2ηλ) per step (not (1 − ηλ)²), and with heavy-ball momentum the
orbit deviations see curvature 2λ: z² − (1 + β − 2ηλ) z + β = 0.
"""

import math

import numpy as np
import pandas as pd
import pytest

from flagalign.diagnostics.dynamics.metrics import rate_table
from flagalign.diagnostics.dynamics.rates import Prediction, damping, law_rate, rate_regime


def _fit(t, v):
    return -np.polyfit(t, np.log(v), 1)[0]


def _scalar_net(eta, lam, beta=0.0, steps=400, y=2.0, a=1.5, b=0.3):
    """f(x) = a·b·x on one sample x = 1, target y, loss ½(ab − y)² + (λ/2)(a² + b²), heavy-ball
    SGD as torch does it (v ← βv + g, p ← p − ηv). Returns |D_t| = |a² − b²|."""
    p = np.array([a, b])
    v = np.zeros(2)
    out = []
    for _ in range(steps):
        r = p[0] * p[1] - y
        g = np.array([r * p[1], r * p[0]]) + lam * p
        v = beta * v + g
        p = p - eta * v
        out.append(abs(p[0] ** 2 - p[1] ** 2))
    return np.array(out)


def test_scalar_two_layer_rate_is_minus_log_one_minus_two_eta_lambda():
    eta, lam = 0.1, 0.5  # ηλ = 0.05
    D = _scalar_net(eta, lam)
    fitted = _fit(np.arange(100, 200), D[100:200])
    assert fitted == pytest.approx(0.105361, abs=2e-6)
    assert law_rate(eta, lam) == pytest.approx(-math.log(1 - 2 * eta * lam), rel=1e-15)
    assert law_rate(eta, lam) == pytest.approx(fitted, rel=1e-5)
    # the old eq. (22), −2 log(1 − ηλ) = 0.102587, is the decay-only limit and misses by 2.6 %
    assert law_rate(eta, lam, limit="decay-only") == pytest.approx(0.102587, abs=1e-6)
    assert abs(law_rate(eta, lam, limit="decay-only") / fitted - 1) > 0.02


def test_exact_recursion_with_ridge_gradient():
    """D_{t+1} = (1 − 2ηλ) D_t + η² (e_nextᵀe_next − ẽẽᵀ), e = G + λp, for a linear net with bias."""
    rng = np.random.default_rng(0)
    N, a, n, m = 40, 5, 4, 3
    X = rng.standard_normal((N, a))
    Y = rng.standard_normal((N, m))
    W, bias, V = rng.standard_normal((n, a)), rng.standard_normal(n), rng.standard_normal((m, n))
    eta, lam = 0.05, 0.2
    Xt = np.hstack([X, np.ones((N, 1))])
    Wt = np.hstack([W, bias[:, None]])
    H = Xt @ Wt.T
    R = (H @ V.T - Y) / N
    GV, GWt = R.T @ H, (R @ V).T @ Xt
    D = V.T @ V - Wt @ Wt.T
    eV, eW = GV + lam * V, GWt + lam * Wt
    V2, Wt2 = V - eta * eV, Wt - eta * eW
    D2 = V2.T @ V2 - Wt2 @ Wt2.T
    pred = (1 - 2 * eta * lam) * D + eta**2 * (eV.T @ eV - eW @ eW.T)
    assert np.allclose(D2, pred, rtol=0, atol=1e-12 * np.abs(D).max())
    # the old reading F → +λ²D (eq. (28) before issue 12) is wrong at first order in ηλ
    old = ((1 - eta * lam) ** 2 + (eta * lam) ** 2) * D + eta**2 * (eV.T @ eV - eW @ eW.T)
    assert not np.allclose(D2, old, rtol=0, atol=1e-6 * np.abs(D).max())


def test_heavy_ball_overdamped_uses_orbit_curvature_two_lambda():
    eta, lam, beta = 0.01, 0.05, 0.9  # ηλ = 5e-4
    assert damping(eta, lam, beta) == "overdamped"
    D = _scalar_net(eta, lam, beta, steps=2000)  # above the rounding floor of a² − b² (1e-15)
    fitted = _fit(np.arange(500, 2000), D[500:2000])
    assert fitted == pytest.approx(0.01119, abs=5e-5)
    assert law_rate(eta, lam, beta) == pytest.approx(fitted, rel=2e-3)
    # the former prediction (curvature λ) was 0.01053: 6 % too slow
    assert law_rate(eta, lam, beta, limit="decay-only") == pytest.approx(0.01053, abs=1e-5)


def test_heavy_ball_eta_lambda_2e3_is_underdamped():
    eta, lam, beta = 0.04, 0.05, 0.9  # ηλ = 0.002 > (1 − √β)²/2 = 0.00132
    assert damping(eta, lam, beta) == "underdamped"
    assert 2 * eta * lam > (1 - math.sqrt(beta)) ** 2 > eta * lam  # the old test said overdamped
    D = _scalar_net(eta, lam, beta, steps=450)  # still above the rounding floor (1e-15)
    t = np.arange(D.size)
    peaks = np.array([i for i in range(100, D.size - 1) if D[i] >= D[i - 1] and D[i] >= D[i + 1]])
    env = _fit(peaks, D[peaks])
    assert env == pytest.approx(0.0530, abs=1.5e-3)
    assert law_rate(eta, lam, beta) == pytest.approx(-0.5 * math.log(beta), rel=1e-12)
    assert env == pytest.approx(law_rate(eta, lam, beta), rel=0.03)
    assert D[-1] > 1e-12


def _history(rate, steps=np.arange(0, 400, 10)):
    rows = []
    for s in steps:
        v = math.exp(-rate * s)
        rows += [(s, "p", "imbalance_abs", v), (s, "p", "imbalance", 0.5)]
    return pd.DataFrame(rows, columns=["step", "pair", "metric", "value"])


def test_fit_rates_regime_column():
    eta, lam = 0.1, 0.3  # ηλ = 0.03: stationary 0.0619, decay-only 0.0609 (indistinguishable)
    pred = Prediction(law_rate(eta, lam), "plain SGD", lr=eta, weight_decay=lam, momentum=0.0,
                      optimizer="SGD", rate_decay_only=law_rate(eta, lam, limit="decay-only"))
    slow = rate_table(_history(0.0286), {"p": pred}, {"p": "linear"}, eps=1e-16)
    assert slow.loc[slow.metric == "imbalance_abs", "regime"].item() == "convergence-limited"
    ok = rate_table(_history(0.0615), {"p": pred}, {"p": "linear"}, eps=1e-16)
    assert ok.loc[ok.metric == "imbalance_abs", "regime"].item() == "decay-limited"
    fast = rate_table(_history(0.2), {"p": pred}, {"p": "linear"}, eps=1e-16)
    assert fast.loc[fast.metric == "imbalance_abs", "regime"].item() == "transient"
    none = rate_table(_history(0.06), {}, {"p": "linear"}, eps=1e-16)
    assert none.loc[none.metric == "imbalance_abs", "regime"].item() == "not applicable"


def test_rate_regime_separates_the_two_limits_under_momentum():
    s, d = law_rate(0.01, 0.05, 0.9), law_rate(0.01, 0.05, 0.9, limit="decay-only")
    assert rate_regime(s, 1e-6, s, d) == "stationary"
    assert rate_regime(d, 1e-6, s, d) == "decay-only"
    assert rate_regime(0.5 * d, 1e-6, s, d) == "convergence-limited"
    assert rate_regime(float("nan"), 1e-6, s, d) == "no fit"
    assert rate_regime(0.1, 1e-6, None) == "no prediction"


def test_three_layer_linear_net_convergence_limited():
    """A 3-layer linear MSE net with biases, ηλ = 0.03: late in training the ridge gradient
    converges at ρ = 0.0075 < ηλ per step, and ‖D‖ follows it at ≈ 2ρ = 0.015, far below the
    law (0.0619): the regime is "convergence-limited" (eq. (22))."""
    eta, lam = 0.1, 0.3
    rng = np.random.default_rng(0)
    a, n, b, N = 3, 3, 2, 50
    X = rng.standard_normal((N, a)) * np.array([1.0, 0.5, 0.2]) + rng.standard_normal(a)
    T = rng.standard_normal((b, a)) * rng.uniform(0.3, 1.2)
    Y = X @ T.T + 0.3 * rng.standard_normal((N, b))
    Ws = [rng.standard_normal((n, a + 1)) * 0.5, rng.standard_normal((n, n + 1)) * 0.5,
          rng.standard_normal((b, n + 1)) * 0.5]  # [W, bias] per layer
    Xt = np.hstack([X, np.ones((N, 1))])
    one = np.ones((N, 1))
    D, E = [], []
    for _ in range(1100):
        W1, W2, W3 = Ws
        H1 = np.hstack([Xt @ W1.T, one])
        H2 = np.hstack([H1 @ W2.T, one])
        R = (H2 @ W3.T - Y) / N
        d2 = R @ W3[:, :n]
        d1 = d2 @ W2[:, :n]
        gs = [d1.T @ Xt + lam * W1, d2.T @ H1 + lam * W2, R.T @ H2 + lam * W3]
        E.append(np.sqrt(sum((g**2).sum() for g in gs)))
        Ws = [W - eta * g for W, g in zip(Ws, gs)]
        W1, W2 = Ws[0], Ws[1]
        D.append(np.linalg.norm(W2[:, :n].T @ W2[:, :n] - W1 @ W1.T))  # pair (1, 2), eq. (11)
    D, E = np.array(D), np.array(E)
    t = np.arange(700, 1100)
    r_D, rho = _fit(t, D[700:1100]), _fit(t, E[700:1100])
    law = law_rate(eta, lam)
    assert D[700:1100].min() > 1e-15  # above the rounding floor of D (≈ 1e-16 ‖W‖²)
    assert rho < eta * lam / 2  # a mode converging slower than ηλ
    assert r_D < 0.5 * law
    assert r_D == pytest.approx(2 * rho, rel=0.15)
    assert rate_regime(r_D, 0.0, law, law_rate(eta, lam, limit="decay-only")) == "convergence-limited"


def test_predict_from_optimizer_uses_the_corrected_criterion():
    torch = pytest.importorskip("torch")
    from flagalign.diagnostics.dynamics.rates import predict_from_optimizer

    m = torch.nn.Linear(3, 3)
    params = list(m.parameters())
    p = predict_from_optimizer(torch.optim.SGD(params, lr=0.04, weight_decay=0.05, momentum=0.9), params)
    assert p.rate is None and "underdamped" in p.reason  # ηλ = 0.002: formerly "overdamped"
    p = predict_from_optimizer(torch.optim.SGD(params, lr=0.01, weight_decay=0.05, momentum=0.9), params)
    assert p.rate == pytest.approx(0.011189, abs=2e-6)
    assert p.rate_decay_only == pytest.approx(0.010526, abs=2e-6)
    p = predict_from_optimizer(torch.optim.SGD(params, lr=1.0, weight_decay=0.6), params)
    assert p.rate is None and "alternates" in p.reason
