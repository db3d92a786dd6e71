"""Figure of the ridge-law fit table (:class:`flagalign.diagnostics.dynamics.RateTable`).

A :class:`matplotlib.figure.Figure` built directly (no pyplot state, no backend switch).
:func:`rates_figure` is what ``RateTable.plot()`` and its notebook view call (registered by
``flagalign/__init__.py``, see :mod:`flagalign.diagnostics._figures`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["rates_figure"]


def _figure(figsize):
    from matplotlib.figure import Figure  # deferred: matplotlib is heavy and only for figures

    return Figure(figsize=figsize)


def _anchor(steps, values, lo, hi):
    """Mean step and mean log value of the positive points in [lo, hi] (the OLS centre of the
    fit, eq. (27)), or None."""
    ok = np.isfinite(values) & (values > 0) & (steps >= lo) & (steps <= hi)
    if ok.sum() < 2:
        return None
    return float(steps[ok].mean()), float(np.log(values[ok]).mean()), float(lo), float(hi)


# the norms of D the law is about (absolute: the law is a decay rate of ‖D‖ itself)
_LAW = ("imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs")
_SYMBOL = {"imbalance_abs": "‖D‖", "imbalance_diag_abs": "‖diag D‖",
           "imbalance_offdiag_abs": "‖D − diag D‖"}


def _chosen(table, metric):
    """One fit row per pair: ``metric``, or (None) the first norm of D the law applies to for
    that pair (‖D‖, else ‖diag D‖ across a ReLU, eq. (23)), else ‖D‖."""
    if metric is not None:
        return table[table["metric"] == metric]
    out = []
    for _, sub in table.groupby("pair", sort=False):
        law = sub[sub["metric"].isin(_LAW)]
        ok = law[law["applicable"].astype(bool)]
        pick = ok if len(ok) else law[law["metric"] == "imbalance_abs"]
        if len(pick):
            out.append(pick.sort_values("metric", key=lambda m: m.map(_LAW.index)).iloc[[0]])
    return table.iloc[:0] if not out else pd.concat(out)


def rates_figure(table, metric: str | None = None):
    """Per pair, the metric vs step (log scale) with the fitted slope over the fit window
    (solid black) and the law's predicted slope through the same centre (dotted), eqs. (22),
    (27). ``metric`` None: per pair the norm of D the law applies to (‖D‖, or ‖diag D‖ across
    a ReLU). Without a history: fitted rate ± stderr and the predicted rate per pair."""
    rows = _chosen(table, metric)
    hist = getattr(table, "history", None)
    fig = _figure((6.4, 3.4))
    ax = fig.subplots()
    ylabel = metric or "/".join(dict.fromkeys(rows["metric"])) or "imbalance_abs"
    ylabel = ", ".join(f"{_SYMBOL[m]} ({m})" if m in _SYMBOL else m for m in ylabel.split("/"))
    if hist is not None and len(hist):
        for i, r in enumerate(rows.itertuples(index=False)):
            pair, m = r.pair, r.metric
            sub = hist[(hist["pair"] == pair) & (hist["metric"] == m)].sort_values("step")
            s, v = sub["step"].to_numpy(float), sub["value"].to_numpy(float)
            pos = v > 0
            ax.plot(s[pos], v[pos], "o-", ms=2.5, lw=1, color=f"C{i % 10}",
                    label=pair if metric else f"{pair} ({m})")
            fit = rows[rows["pair"] == pair]
            if fit.empty or not np.isfinite(fit["rate"].iloc[0]):
                continue
            r = fit.iloc[0]
            a = _anchor(s, v, r["window_start"], r["window_stop"])
            if a is None:
                continue
            sm, ym, lo, hi = a
            x = np.array([lo, hi])
            ax.plot(x, np.exp(ym - r["rate"] * (x - sm)), "-", color="k", lw=1.2)
            if np.isfinite(r["predicted"]):
                ax.plot(x, np.exp(ym - r["predicted"] * (x - sm)), ":", color="k", lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.plot([], [], "-", color="k", label="fitted slope")
        ax.plot([], [], ":", color="k", label="predicted slope")
    else:
        y = np.arange(len(rows))
        ax.errorbar(rows["rate"], y, xerr=rows["stderr"], fmt="o", label="fitted ± stderr")
        ax.plot(rows["predicted"], y, "k|", ms=12, label="predicted")
        ax.set_yticks(y, [f"{p} ({m})" for p, m in zip(rows["pair"], rows["metric"])],
                      fontsize=7)
        ax.set_xlabel("decay rate per step")
    ax.legend(fontsize=7)
    ax.set_title(f"{ylabel}: fitted vs predicted decay (eq. (27))", fontsize=9)
    fig.tight_layout()
    return fig
