"""Per-pair metrics recorded over training, and the rate table built from them (docs/theory.md §2).

Shared by :class:`~flagalign.AlignmentTracker` (live torch modules) and ``flagalign trajectory``
(saved checkpoints): both produce a long table (step, pair, metric, value) and call
:func:`rate_table`.
"""

from __future__ import annotations

import numpy as np

from ...geometry import pair_alignment
from ...geometry.factored import pair_products
from .rates import LAW_METRICS, Prediction, applicability, fit_rate, rate_regime

__all__ = ["METRICS", "pair_metrics", "alignment_metrics", "rate_table", "RATE_COLUMNS",
           "FLOOR_EPS_FACTOR"]

#: Recorded metric names, in table order.
METRICS = (
    # the imbalance names mean what they mean in pairs.csv (docs/schema.md): relative ...
    "imbalance",  # ‖D‖_F / (‖W̃W̃ᵀ‖_F + ‖W_nextᵀW_next‖_F), eq. (11)
    "imbalance_diag",  # ‖diag D‖ / (same denominator)
    "imbalance_offdiag",  # ‖D − diag D‖_F / (same denominator)
    # ... and absolute (squared weight units): what the ridge law's decay rates are about
    "imbalance_abs",  # ‖D‖_F
    "imbalance_diag_abs",  # ‖diag D‖
    "imbalance_offdiag_abs",  # ‖D − diag D‖_F
    "commutator",  # Gram commutator of W (eq. (10)), as `flagalign analyze` reports it
    "commutator_aug",  # same with W̃ = [W, b] (eq. (26)): → 0 with D in linear nets
    "overlap",  # mean cos² at k (eq. (2))
    "overlap_ratio",  # overlap / (k/n)
    "intersection_dim",  # eq. (5)
    "lost_dims",  # eq. (12)
)

RATE_COLUMNS = [
    "pair", "metric", "rate", "stderr", "predicted", "ratio", "applicable", "reason",
    "n_points", "window_start", "window_stop", "regime",
]  # fmt: skip

#: Imbalance values below FLOOR_EPS_FACTOR · eps(dtype) · (‖W̃W̃ᵀ‖ + ‖W_nextᵀW_next‖) are at the
#: rounding floor of the stored weights and are excluded from rate fits (eq. (27)).
FLOOR_EPS_FACTOR = 100.0


def pair_metrics(W, W_next, bias=None, k: int | None = None, method: str = "auto") -> tuple[dict, int]:
    """All tracked metrics of one pair (eqs. (2), (5), (10)–(12), (26)).

    Parameters
    ----------
    W : array_like (n, in)
        Writer (numpy or torch; converted to float64).
    W_next : array_like (out, n)
    bias : array_like (n,), optional
        W's bias, the extra column of W̃.
    k : int, optional
        Flag depth; default from :func:`flagalign.geometry.default_k`.
    method : str
        Top-k factor method (eq. (13)).

    Returns
    -------
    (dict, int)
        ``{metric: value}`` for every name in :data:`METRICS`, and the k used.
    """
    pa = pair_alignment(W, W_next, k=k, method=method, bias=bias)
    from ..._arrays import as_float64

    w, _ = as_float64(W, name="W")
    wn, _ = as_float64(W_next, name="W_next")
    b = None if bias is None else as_float64(bias, name="bias", ndim=1)[0]
    return alignment_metrics(pa, w, wn, b), pa.k


def alignment_metrics(pa, W, W_next, bias=None) -> dict:
    """The tracked metrics (:data:`METRICS`) of one measured pair: one record's values, shared by
    :func:`pair_metrics` (the tracker) and ``flagalign trajectory``.

    Parameters
    ----------
    pa : flagalign.geometry.PairAlignment
        The pair measured with ``bias`` (its imbalance includes W̃ = [W, b], eq. (11)).
    W : ndarray (n, in)
        Writer, float64 (without the bias column).
    W_next : ndarray (out, n)
    bias : ndarray (n,), optional
        W's bias: ``commutator_aug`` is then the Gram commutator of W̃ = [W, b] (eq. (26)),
        computed factored (:func:`flagalign.geometry.factored.pair_products`; nothing n×n for
        narrow pairs); without a bias it is ``pa.commutator`` (eq. (10)).

    Returns
    -------
    dict
        ``{metric: value}`` for every name in :data:`METRICS`.
    """
    im = pa.imbalance
    rel = pa.scalars()  # the relative norms exactly as pairs.csv has them
    if bias is None:
        aug = pa.commutator
    else:  # eq. (26): the Gram commutator of W̃ = [W, b], factored (nothing n×n for narrow pairs)
        aug = pair_products(np.column_stack([W, bias]), W_next, lost=False).commutator
    return {
        "imbalance": rel["imbalance"],
        "imbalance_diag": rel["imbalance_diag"],
        "imbalance_offdiag": rel["imbalance_offdiag"],
        "imbalance_abs": im.full,
        "imbalance_diag_abs": im.diag,
        "imbalance_offdiag_abs": im.offdiag,
        "commutator": pa.commutator,
        "commutator_aug": float(aug),
        "overlap": pa.overlap,
        "overlap_ratio": pa.overlap_ratio,
        "intersection_dim": pa.intersection_dim,
        "lost_dims": pa.lost_dims,
    }


def rate_table(
    history,
    predictions: dict[str, Prediction],
    activations: dict[str, str],
    *,
    eps: dict[str, float] | float = float(np.finfo(np.float32).eps),
    start=None,
    stop=None,
    tail: float = 0.5,
    metrics=("imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs", "commutator",
             "commutator_aug"),
):
    """Fitted vs predicted decay rate of each metric of each pair (eqs. (22)–(27)).

    Parameters
    ----------
    history : pandas.DataFrame
        Long table with columns step, pair, metric, value.
    predictions : dict
        pair -> :class:`Prediction` (missing pairs: "no optimizer").
    activations : dict
        pair -> "linear" | "homogeneous" | "other" | "unknown".
    eps : float or dict
        Unit roundoff of the stored weights (per pair); sets the fit floor of imbalance values.
    start, stop, tail :
        Fit window, see :func:`fit_rate`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RATE_COLUMNS`; ``ratio`` = rate / predicted.
    """
    import pandas as pd

    rows = []
    if history is None or len(history) == 0:
        return pd.DataFrame(columns=RATE_COLUMNS)
    none = Prediction(None, "no optimizer given: pass optimizer= to get a predicted rate")
    for pair, sub in history.groupby("pair", sort=False):
        wide = sub.pivot_table(index="step", columns="metric", values="value", aggfunc="last")
        wide = wide.sort_index()
        steps = wide.index.to_numpy(dtype=np.float64)
        pred = predictions.get(pair, none)
        act = activations.get(pair, "unknown")
        e = eps.get(pair, float(np.finfo(np.float32).eps)) if isinstance(eps, dict) else float(eps)
        floor = None
        if "imbalance_abs" in wide and "imbalance" in wide:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = wide["imbalance_abs"].to_numpy() / wide["imbalance"].to_numpy()
            floor = FLOOR_EPS_FACTOR * e * np.nan_to_num(scale, nan=0.0)
        for metric in metrics:
            if metric not in wide:
                continue
            fl = floor if metric in LAW_METRICS else None
            fit = fit_rate(steps, wide[metric].to_numpy(), start=start, stop=stop, tail=tail, floor=fl)
            ok, reason = applicability(metric, act, pred)
            predicted = pred.rate if metric in LAW_METRICS and pred.rate is not None else float("nan")
            ratio = fit.rate / predicted if np.isfinite(predicted) and predicted else float("nan")
            regime = (rate_regime(fit.rate, fit.stderr, predicted, pred.rate_decay_only)
                      if ok else "not applicable")
            rows.append(
                (pair, metric, fit.rate, fit.stderr, predicted, ratio, ok, reason, fit.n_points,
                 fit.start, fit.stop, regime)
            )  # fmt: skip
    return pd.DataFrame(rows, columns=RATE_COLUMNS)
