"""Ridge-law prediction and rate fitting (docs/theory.md, eqs. (22), (25), (27))."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagalign.diagnostics.dynamics.rates import (
    Prediction,
    applicability,
    fit_rate,
    law_rate,
    predict_from_optimizer,
)


def _simulated_rate(eta, lam, beta, steps=4000):
    """Decay rate of an orbit deviation x (D is linear in it) under heavy-ball momentum with the
    orbit curvature 2λ of eq. (25), by direct iteration."""
    x_prev, x = 1.0, 1.0 - 2 * eta * lam  # first step from rest
    xs = []
    for _ in range(steps):
        x_prev, x = x, (1 + beta - 2 * eta * lam) * x - beta * x_prev
        xs.append(x)
    xs = np.abs(np.array(xs[-400:]))
    # envelope: fit log|x| on the running maxima (robust to oscillation)
    t = np.arange(xs.size)
    peaks = [i for i in range(1, xs.size - 1) if xs[i] >= xs[i - 1] and xs[i] >= xs[i + 1]]
    idx = np.array(peaks) if len(peaks) > 5 else t
    slope = np.polyfit(idx, np.log(xs[idx]), 1)[0]
    return -slope


def test_plain_sgd_rate_is_minus_log_one_minus_two_eta_lambda():
    # eq. (22) corrected (issue 12): D_{t+1} = (1 - 2ηλ) D_t + O(‖G + λp‖²)
    assert law_rate(0.1, 1e-2) == pytest.approx(-math.log(1 - 2e-3), rel=1e-15)
    # ≈ 2ηλ to first order
    assert law_rate(1e-3, 1e-3) == pytest.approx(2e-6, rel=1e-5)


@pytest.mark.parametrize("eta,lam,beta", [(0.1, 1e-2, 0.5), (0.05, 1e-2, 0.9), (0.5, 0.5, 0.9)])
def test_heavy_ball_rate_matches_iterated_recursion(eta, lam, beta):
    predicted = law_rate(eta, lam, beta)
    assert predicted == pytest.approx(_simulated_rate(eta, lam, beta), rel=2e-3)


def test_heavy_ball_limits():
    # overdamped, small ηλ: r ≈ 2ηλ/(1-β)
    assert law_rate(1e-3, 1e-3, 0.9) == pytest.approx(2e-6 / 0.1, rel=1e-3)
    # underdamped: |z| = sqrt(β) → r = -½ log β (D is linear in the orbit deviation)
    assert law_rate(0.5, 0.5, 0.9) == pytest.approx(-0.5 * math.log(0.9), rel=1e-12)


def test_law_rate_rejects_bad_hyperparameters():
    with pytest.raises(ValueError):
        law_rate(1.0, 1.0)
    with pytest.raises(ValueError):
        law_rate(0.1, 0.1, momentum=1.0)


@given(
    rate=st.floats(1e-5, 1e-1),
    logc=st.floats(-5, 5),
)
def test_fit_rate_recovers_exact_exponential(rate, logc):
    steps = np.arange(0, 200, 5, dtype=float)
    values = np.exp(logc - rate * steps)
    fit = fit_rate(steps, values, tail=1.0)
    assert fit.rate == pytest.approx(rate, rel=1e-8, abs=1e-12)
    assert fit.n_points == steps.size


def test_fit_rate_window_floor_and_stderr():
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1000, 10, dtype=float)
    # fast transient then rate 1e-3, plus a floor at 1e-4 reached late; multiplicative noise
    values = np.exp(-1e-3 * steps) + 5 * np.exp(-0.05 * steps)
    values *= np.exp(0.01 * rng.standard_normal(steps.size))
    fit = fit_rate(steps, values, tail=0.5)
    assert fit.start == pytest.approx(495.0)
    assert fit.rate == pytest.approx(1e-3, rel=0.05)
    assert 0 < fit.stderr < 1e-4
    # the whole range is biased by the transient
    assert fit_rate(steps, values, tail=1.0).rate > 1.2e-3
    # explicit window
    assert fit_rate(steps, values, start=600, stop=900).n_points == 31
    # floor removes points
    assert fit_rate(steps, values, tail=1.0, floor=0.5).n_points < steps.size


def test_fit_rate_too_few_points_is_nan():
    fit = fit_rate([0, 1], [1.0, 0.5])
    assert math.isnan(fit.rate) and fit.n_points < 3
    assert math.isnan(fit_rate([0, 1, 2, 3], [0.0, -1.0, np.nan, 1.0]).rate)
    with pytest.raises(ValueError):
        fit_rate([0, 1, 2], [1.0, 2.0])


torch = pytest.importorskip("torch")


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _params(m):
    return [m[0].weight, m[0].bias, m[2].weight]


def test_prediction_from_plain_sgd():
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=1e-2)
    p = predict_from_optimizer(opt, _params(m))
    assert p.rate == pytest.approx(law_rate(0.1, 1e-2))
    assert p.lr == 0.1 and p.weight_decay == 1e-2 and p.optimizer == "SGD"
    # the current hyper-parameters are read (a scheduler changing lr is followed)
    opt.param_groups[0]["lr"] = 0.05
    assert predict_from_optimizer(opt, _params(m)).rate == pytest.approx(law_rate(0.05, 1e-2))


def test_prediction_heavy_ball_and_unsupported_momentum_variants():
    m = _mlp()
    hb = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=1e-2, momentum=0.9)
    assert predict_from_optimizer(hb, _params(m)).rate == pytest.approx(law_rate(0.1, 1e-2, 0.9))
    # underdamped (2ηλ = 0.02 > (1 - √0.9)² ≈ 0.0026): no prediction
    under = torch.optim.SGD(m.parameters(), lr=0.2, weight_decay=0.05, momentum=0.9)
    p = predict_from_optimizer(under, _params(m))
    assert p.rate is None and "underdamped" in p.reason
    nest = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=1e-2, momentum=0.9, nesterov=True)
    p = predict_from_optimizer(nest, _params(m))
    assert p.rate is None and "Nesterov" in p.reason
    damp = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=1e-2, momentum=0.9, dampening=0.1)
    assert predict_from_optimizer(damp, _params(m)).rate is None


def test_no_prediction_for_adam_or_partial_decay():
    m = _mlp()
    for cls in (torch.optim.Adam, torch.optim.AdamW):
        p = predict_from_optimizer(cls(m.parameters(), lr=1e-3, weight_decay=1e-2), _params(m))
        assert p.rate is None and "not applicable" in p.reason and cls.__name__ in p.reason
    groups = [
        {"params": [m[0].weight, m[2].weight], "weight_decay": 1e-2},
        {"params": [m[0].bias, m[2].bias], "weight_decay": 0.0},
    ]
    p = predict_from_optimizer(torch.optim.SGD(groups, lr=0.1), _params(m))
    assert p.rate is None and "differ in weight_decay" in p.reason
    p = predict_from_optimizer(torch.optim.SGD(m.parameters(), lr=0.1), _params(m))
    assert p.rate is None and "weight_decay = 0" in p.reason
    p = predict_from_optimizer(None, _params(m))
    assert p.rate is None and "optimizer" in p.reason
    other = torch.optim.SGD([m[2].weight], lr=0.1, weight_decay=1e-2)
    assert predict_from_optimizer(other, _params(m)).rate is None


def test_prediction_unwraps_wrappers():
    m = _mlp()

    class Wrapper:  # like Lightning's LightningOptimizer / accelerate's AcceleratedOptimizer
        def __init__(self, opt):
            self._optimizer = opt

    opt = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=1e-2)
    assert predict_from_optimizer(Wrapper(opt), _params(m)).rate == pytest.approx(law_rate(0.1, 1e-2))


def test_applicability_by_activation():
    ok = Prediction(1e-3, "plain SGD")
    none = Prediction(None, "law not applicable: AdamW")
    assert applicability("imbalance_abs", "linear", ok)[0]
    assert applicability("imbalance_offdiag_abs", "linear", ok)[0]
    assert applicability("imbalance_diag_abs", "homogeneous", ok)[0]
    assert not applicability("imbalance_abs", "homogeneous", ok)[0]
    assert not applicability("imbalance_offdiag_abs", "homogeneous", ok)[0]
    assert not applicability("imbalance_diag_abs", "other", ok)[0]
    assert not applicability("imbalance_abs", "unknown", ok)[0]
    assert not applicability("commutator", "linear", ok)[0]
    flag, reason = applicability("imbalance_abs", "linear", none)
    assert not flag and reason == none.reason
