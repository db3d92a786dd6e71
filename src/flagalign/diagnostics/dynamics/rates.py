"""Decay rates of alignment metrics: the ridge-law prediction and the fit (docs/theory.md §2).

* :func:`law_rate` — the per-step rate r at which ‖D‖ decays under (heavy-ball) SGD with L2
  weight decay λ and learning rate η near a ridge stationary point, eqs. (22) and (25);
  :func:`damping` — over/underdamped momentum; :func:`rate_regime` — whether a fitted rate is
  decay-limited (the law), convergence-limited or transient, eq. (22).
* :func:`predict_from_optimizer` — reads η, λ, momentum from a torch optimiser object and checks
  the hypotheses of the law for the parameters of one pair; returns a :class:`Prediction`
  whose ``rate`` is None with a ``reason`` when no prediction applies (Adam/AdamW, decay not on
  every parameter, Nesterov, dampening, mixed learning rates...).
* :func:`fit_rate` — least-squares slope of log(value) against the step over a window, eq. (27).
* :func:`applicability` — whether a metric obeys the law for the activation between the pair,
  eqs. (23)–(24).

Nothing here imports torch: the optimiser is inspected through its ``param_groups``.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

import numpy as np

from ...errors import InputError

__all__ = [
    "Prediction",
    "RateFit",
    "LAW_METRICS",
    "law_rate",
    "damping",
    "rate_regime",
    "REGIME_RTOL",
    "predict_from_optimizer",
    "fit_rate",
    "applicability",
    "unwrap_optimizer",
]

#: Metrics the ridge law speaks about (norms of D, eq. (11)).
LAW_METRICS = ("imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs")


@dataclass(frozen=True)
class Prediction:
    """Predicted per-step decay rate of ‖D‖ for one pair, or why there is none.

    Attributes
    ----------
    rate : float or None
        r of eq. (22)/(25), per optimiser step; None when the law's hypotheses fail.
    reason : str
        How it was obtained ("plain SGD: r = -2 log(1 - ηλ)") or why there is none.
    lr, weight_decay, momentum : float or None
        The hyper-parameters read (None when unavailable).
    optimizer : str
        Class name of the optimiser (``""`` when none was given).
    rate_decay_only : float or None
        The other limit of eq. (22), ``law_rate(..., limit="decay-only")`` (data gradients
        negligible); used by :func:`rate_regime`.
    """

    rate: float | None
    reason: str
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    optimizer: str = ""
    rate_decay_only: float | None = None


@dataclass(frozen=True)
class RateFit:
    """Result of :func:`fit_rate`: ``rate`` = −slope of log(value) per step, eq. (27)."""

    rate: float
    stderr: float
    n_points: int
    start: float
    stop: float


def law_rate(lr: float, weight_decay: float, momentum: float = 0.0, *, limit: str = "stationary") -> float:
    """Per-step decay rate of ‖D‖ near a stationary point of the ridge objective (eqs. (22), (25)).

    Near the stationary point the imbalance D is linear in the deviation along the symmetry
    orbit, and the ridge objective's curvature along that orbit is 2λ (the data loss is flat on
    it). With heavy-ball momentum β (torch's SGD with ``dampening=0, nesterov=False``; β = 0 is
    plain SGD) those deviations follow x_{t+1} = (1+β−2ηλ) x_t − β x_{t−1}, so

        r = −log |z_max|,  z² − (1+β−2ηλ) z + β = 0.

    Plain SGD: r = −log(1 − 2ηλ) (eq. (22)). Overdamped momentum (2ηλ ≤ (1 − √β)²):
    r ≈ 2ηλ/(1 − β); underdamped (2ηλ > (1 − √β)²): the roots are complex, |z| = √β and the
    envelope of ‖D‖ decays at r = −½ log β. This is the rate of the *decay-limited* regime; if
    the data gradient converges more slowly, ‖D‖ follows it instead (eq. (22), :func:`rate_regime`).

    ``limit="decay-only"`` gives the other limit of eq. (22): data gradients negligible
    (η²‖F‖ ≪ ηλ‖D‖, e.g. a cross-entropy net far from its ridge minimum), where every parameter
    just decays, x_{t+1} = (1+β−ηλ) x_t − β x_{t−1}, and D, quadratic in the weights, decays at
    r = −2 log |z_max| of z² − (1+β−ηλ) z + β = 0 (plain SGD: −2 log(1 − ηλ); underdamped:
    −log β). The two limits agree to first order in ηλ (2ηλ/(1 − β)) and differ at second order
    (plain SGD: relative ηλ/2) — and by a factor 2 in the underdamped case.

    Raises
    ------
    InputError
        ηλ outside (0, 1) or β outside [0, 1).
    """
    eta, lam, beta = float(lr), float(weight_decay), float(momentum)
    if not (0.0 <= beta < 1.0):
        raise InputError(f"momentum must be in [0, 1), got {beta}")
    if not (0.0 < eta * lam < 1.0):
        raise InputError(f"lr*weight_decay must be in (0, 1), got {eta * lam}")
    if limit not in ("stationary", "decay-only"):
        raise InputError(f"limit must be 'stationary' or 'decay-only', got {limit!r}")
    curv, power = (2.0, 1.0) if limit == "stationary" else (1.0, 2.0)
    b = 1.0 + beta - curv * eta * lam
    if beta == 0.0:
        zmax = abs(b)
    else:
        disc = cmath.sqrt(b * b - 4.0 * beta)
        zmax = max(abs((b + disc) / 2.0), abs((b - disc) / 2.0))
    return math.inf if zmax == 0.0 else -power * math.log(zmax)


def damping(lr: float, weight_decay: float, momentum: float = 0.0) -> str:
    """``"overdamped"`` when 2ηλ ≤ (1 − √β)² (real roots of eq. (25)), else ``"underdamped"``.

    Plain SGD (β = 0) is overdamped for every 2ηλ ≤ 1.
    """
    eta, lam, beta = float(lr), float(weight_decay), float(momentum)
    return "overdamped" if 2.0 * eta * lam <= (1.0 - math.sqrt(beta)) ** 2 else "underdamped"


#: Relative tolerance of :func:`rate_regime` around the law (with 3 standard errors on top).
REGIME_RTOL = 0.05


def rate_regime(rate: float, stderr: float, predicted: float | None, decay_only: float | None = None) -> str:
    """Which regime of eq. (22) a fitted decay rate of ‖D‖ is in.

    ``predicted`` is the stationary-point law (:func:`law_rate`), ``decay_only`` the
    decay-only limit (``law_rate(..., limit="decay-only")``); tol = max(REGIME_RTOL·predicted,
    3·stderr).

    * ``"stationary"`` / ``"decay-only"`` — within tol of that limit and farther from the other
      (the two limits differ by more than tol);
    * ``"decay-limited"`` — within tol of both (they are indistinguishable at this tol, e.g.
      plain SGD with small ηλ): the fit measures the law;
    * ``"convergence-limited"`` — significantly slower than both: the forcing
      η²(e_nextᵀe_next − ẽẽᵀ) of eq. (22) (e = G + λp, the ridge gradient) decays more slowly
      than the decay factor, i.e. training has not converged and ‖D‖ follows the data gradient;
    * ``"transient"`` — significantly faster than both (far from equilibrium, early training);
    * ``"no fit"`` (rate NaN) or ``"no prediction"`` (``predicted`` None/NaN).
    """
    if predicted is None or not np.isfinite(predicted):
        return "no prediction"
    if not np.isfinite(rate):
        return "no fit"
    other = predicted if decay_only is None or not np.isfinite(decay_only) else float(decay_only)
    se = float(stderr) if np.isfinite(stderr) else 0.0
    tol = max(REGIME_RTOL * abs(predicted), 3.0 * se)
    near_s, near_d = abs(rate - predicted) <= tol, abs(rate - other) <= tol
    if near_s and near_d:
        return "decay-limited"
    if near_s or near_d:
        return "stationary" if abs(rate - predicted) <= abs(rate - other) else "decay-only"
    if rate < min(predicted, other):
        return "convergence-limited"
    if rate > max(predicted, other):
        return "transient"
    return "between limits"


def unwrap_optimizer(opt):
    """The torch optimiser behind Lightning / Accelerate / HF wrappers (``.optimizer``)."""
    seen = 0
    while opt is not None and seen < 5:
        inner = getattr(opt, "optimizer", None) or getattr(opt, "_optimizer", None)
        if inner is None or inner is opt or not hasattr(inner, "param_groups"):
            break
        opt, seen = inner, seen + 1
    return opt


def predict_from_optimizer(optimizer, params) -> Prediction:
    """Ridge-law prediction for the tensors ``params`` (W, its bias, W_next) of one pair.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer or wrapper, or None
    params : list of torch.Tensor
        Every parameter the pair's D depends on: W, W's bias (if any) and W_next.

    Returns
    -------
    Prediction
        ``rate`` is None, with the reason, unless the optimiser is ``torch.optim.SGD`` with
        weight_decay > 0 on **every** parameter in ``params``, one common (lr, weight_decay,
        momentum), no Nesterov, no dampening, ``maximize=False`` and, with momentum β, the
        overdamped regime 2ηλ ≤ (1 − √β)² (eq. (25)).
    """
    if optimizer is None:
        return Prediction(None, "no optimizer given: pass optimizer= to get a predicted rate")
    opt = unwrap_optimizer(optimizer)
    cls = type(opt).__name__
    groups = getattr(opt, "param_groups", None)
    if groups is None:
        return Prediction(None, f"{cls} has no param_groups: cannot read hyper-parameters", optimizer=cls)
    if cls != "SGD":
        kind = "adaptive optimizer" if "adam" in cls.lower() or "rms" in cls.lower() else "optimizer"
        return Prediction(
            None,
            f"law not applicable: {cls} ({kind}) has no closed-form decay of D",
            optimizer=cls,
        )
    found = []
    for p in params:
        g = next((g for g in groups if any(q is p for q in g["params"])), None)
        if g is None:
            return Prediction(None, "a parameter of the pair is not in the optimizer", optimizer=cls)
        found.append(g)
    keys = ("lr", "weight_decay", "momentum", "dampening", "nesterov", "maximize")
    hp = {k: {_float_or(g.get(k)) for g in found} for k in keys}
    lr, wd, mom = (next(iter(hp[k])) if len(hp[k]) == 1 else None for k in keys[:3])
    if any(len(hp[k]) > 1 for k in keys):
        diff = ", ".join(k for k in keys if len(hp[k]) > 1)
        return Prediction(None, f"no prediction: parameters of the pair differ in {diff}", optimizer=cls)
    if not wd:
        reason = (
            "no prediction: weight decay is 0 for some parameter of the pair (the law needs L2 "
            "decay on every weight and bias involved)"
            if any(g.get("weight_decay") for g in groups)
            else "no prediction: weight_decay = 0 (D is conserved up to O(η²), not decayed)"
        )
        return Prediction(None, reason, lr=lr, weight_decay=0.0, momentum=mom, optimizer=cls)
    if next(iter(hp["maximize"])):
        return Prediction(None, "no prediction: maximize=True", optimizer=cls)
    if next(iter(hp["nesterov"])):
        return Prediction(None, "no closed-form prediction for Nesterov momentum", lr=lr,
                          weight_decay=wd, momentum=mom, optimizer=cls)
    if mom and next(iter(hp["dampening"])):
        return Prediction(None, "no closed-form prediction for momentum with dampening > 0",
                          lr=lr, weight_decay=wd, momentum=mom, optimizer=cls)
    if not (0 < lr * wd < 1):
        return Prediction(None, f"no prediction: lr*weight_decay = {lr * wd:g} is not in (0, 1)",
                          lr=lr, weight_decay=wd, momentum=mom, optimizer=cls)
    if not mom and 2.0 * lr * wd >= 1.0:
        return Prediction(None, f"no prediction: 2ηλ = {2 * lr * wd:g} ≥ 1, D alternates in sign (eq. 22)",
                          lr=lr, weight_decay=wd, momentum=mom, optimizer=cls)
    if mom and damping(lr, wd, mom) == "underdamped":
        return Prediction(None, (
            "no fitted-rate prediction: underdamped heavy-ball momentum (2ηλ > (1-√β)²) — D "
            f"oscillates; only its envelope decays, at -½ log β = {-0.5 * math.log(mom):.4g} "
            "(eq. 25), which a log-linear fit does not measure"),
            lr=lr, weight_decay=wd, momentum=mom, optimizer=cls)  # fmt: skip
    rate = law_rate(lr, wd, mom or 0.0)
    if mom:
        reason = ("overdamped heavy-ball SGD: r = -log z_max, z² - (1+β-2ηλ)z + β = 0 (eq. 25; "
                  "approximate: D has no closed recursion under momentum)")
    else:
        reason = "plain SGD: r = -log(1 - 2ηλ) (eq. 22)"
    return Prediction(rate, reason, lr=lr, weight_decay=wd, momentum=mom or 0.0, optimizer=cls,
                      rate_decay_only=law_rate(lr, wd, mom or 0.0, limit="decay-only"))


def _float_or(v):
    if isinstance(v, bool) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):  # e.g. a tensor lr
        return v


def fit_rate(steps, values, *, start=None, stop=None, tail: float = 0.5, floor=None) -> RateFit:
    """Decay rate of ``values`` by least squares on log(value) vs step (eq. (27)).

    Parameters
    ----------
    steps, values : array_like
        Same length; non-finite or non-positive values are dropped.
    start, stop : float, optional
        Fit window in steps (inclusive). Default: the last ``tail`` fraction of the step range.
    tail : float
        Fraction of the step range used when ``start`` is None (late training, where the O(η²)
        gradient term of eq. (21) is smallest).
    floor : float or array_like, optional
        Values at or below ``floor`` (same length as ``values`` if an array) are dropped — the
        precision floor of the stored weights, where log(value) stops decaying.

    Returns
    -------
    RateFit
        ``rate`` = −slope per step, ``stderr`` its OLS standard error; NaN when fewer than 3
        points remain.
    """
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if s.shape != v.shape:
        raise InputError(f"steps and values differ in length: {s.shape} vs {v.shape}")
    ok = np.isfinite(v) & (v > 0) & np.isfinite(s)
    if floor is not None:
        ok &= v > np.asarray(floor, dtype=np.float64)
    if s.size:
        lo = float(np.min(s)) if s.size else 0.0
        hi = float(np.max(s))
        if start is None:
            start = hi - tail * (hi - lo)
        if stop is None:
            stop = hi
        ok &= (s >= start) & (s <= stop)
    x, y = s[ok], np.log(v[ok]) if np.any(ok) else np.empty(0)
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0:
        return RateFit(float("nan"), float("nan"), n, float(start or 0), float(stop or 0))
    xm = x - x.mean()
    slope = float(np.dot(xm, y - y.mean()) / np.dot(xm, xm))
    resid = y - y.mean() - slope * xm
    se = float(np.sqrt(np.dot(resid, resid) / (n - 2) / np.dot(xm, xm)))
    return RateFit(-slope, se, n, float(start), float(stop))


def applicability(metric: str, activation: str, prediction: Prediction) -> tuple[bool, str]:
    """Does ``metric`` obey the ridge law for a pair joined by ``activation``? (eqs. (23), (24))

    ``activation`` is ``"linear"`` (identity: all of D), ``"homogeneous"`` (ReLU-like σ(az) =
    aσ(z), a > 0: diag D only), ``"other"`` (tanh, GELU, norms...: no law) or ``"unknown"``.
    """
    if metric not in LAW_METRICS:
        return False, "no rate law for this metric (reported for information)"
    if prediction.rate is None:
        return False, prediction.reason
    if activation == "linear":
        return True, prediction.reason
    if activation == "homogeneous":
        if metric == "imbalance_diag_abs":
            return True, prediction.reason + "; per-neuron law of homogeneous activations (eq. 23)"
        return False, (
            "positively homogeneous activation: only diag(D) obeys the law; off-diagonal D is "
            "not driven to 0 (eq. 24)"
        )
    if activation == "other":
        return False, "activation is not positively homogeneous: no law for D"
    return False, (
        "activation between the layers unknown (not inside one nn.Sequential): pass "
        "pairs=[(left, right, 'linear'|'homogeneous')] to assert it"
    )
