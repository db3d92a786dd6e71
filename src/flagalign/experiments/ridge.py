"""``flagalign reproduce ridge``: the ridge law of docs/theory.md §2 measured on digits MLPs.

Depth-3, width-64 MLPs (64 → 64 → 64 → 10) trained full-batch on scikit-learn digits with plain
SGD and L2 decay λ ∈ {1e-3, 3e-3, 1e-2} on every parameter, for linear, ReLU and tanh
activations, plus one AdamW run. An :class:`~flagalign.AlignmentTracker` records both adjacent
pairs; rates are fitted on the last half of training (eq. (27)) and compared with
r = −log(1 − 2ηλ) (eq. (22), the stationary limit; the decay-only limit −2 log(1 − ηλ) differs
by ηλ/2 relative, ≤ 0.5 % here).

Pass criteria (printed beside each row):

* linear: full-D rate within 5 % of the prediction, and linear in λ (fitted r/λ constant
  within 5 % across λ);
* ReLU: diag-D rate within 5 %; off-diagonal rate < 50 % of the prediction;
* final Gram commutator (eq. (10)) of the linear net < 0.2 × that of the ReLU net (same λ, pair);
* AdamW: the tracker reports "law not applicable"; the measured drift is shown.

tanh rows are informational (no law: tanh is not positively homogeneous). ``--quick`` runs
λ ∈ {3e-3, 1e-2}, linear and ReLU only, for T = 1.5/(ηλ) steps, plus a shorter AdamW run.
Full batch (deterministic gradient descent) makes the O(η²) term of eq. (21) → −η²λ²D once the
loss has settled (eq. (28)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._output import OutputFolder
from .._progress import progress_bar
from .framework import ExperimentResult, register
from .verdict import write_verdict

LR = 0.2
LAMBDAS = (1e-3, 3e-3, 1e-2)
QUICK_LAMBDAS = (3e-3, 1e-2)
#: Each SGD run lasts T = EFOLDS / (ηλ) steps (ηλT = EFOLDS), so that every λ
#: sees the same predicted decay of D, e^(-2·EFOLDS) — the commutator comparison is then fair.
EFOLDS = {"full": 2.0, "quick": 1.5}
ADAM_STEPS = {"full": 1000, "quick": 400}
RECORDS = 60
ACTS = ("linear", "relu", "tanh")
QUICK_ACTS = ("linear", "relu")  # tanh rows are informational: left out of --quick
ADAM = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2, "activation": "relu"}
TOL = 0.05


@dataclass
class Run:
    optimizer: str
    activation: str
    lam: float
    lr: float
    rates: object  # DataFrame from tracker.fit_rates()
    history: object
    final_loss: float
    seconds: float


def _one_run(data, *, optimizer, activation, lam, lr, steps, every, seed=0) -> Run:
    from ..diagnostics.dynamics import AlignmentTracker
    from .training import make_mlp, make_optimizer, train

    model = make_mlp(64, 64, 3, 10, activation=activation, seed=seed)
    opt = make_optimizer(model, optimizer, lr=lr, weight_decay=lam)
    t0 = time.perf_counter()
    tracker = AlignmentTracker(model, every=every, optimizer=opt, method="exact")
    res = train(model, data.x, data.y, steps=steps, lr=lr, optimizer=opt,
                on_step=lambda s, _l: tracker.step())  # fmt: skip
    return Run(optimizer, activation, lam, lr, tracker.fit_rates(), tracker.history,
               float(res.losses[-1]), time.perf_counter() - t0)  # fmt: skip


def _val(rates, pair, metric, col="rate"):
    row = rates[(rates.pair == pair) & (rates.metric == metric)]
    return float(row[col].iloc[0]) if len(row) else float("nan")


def _final(history, pair, metric):
    h = history[(history.pair == pair) & (history.metric == metric)]
    return float(h.sort_values("step").value.iloc[-1])


def _fmt(x, digits=4):
    return "—" if not np.isfinite(x) else f"{x:.{digits}g}"


def _table(runs: list[Run]) -> tuple[str, bool, list[str], list]:
    """Markdown table, overall pass flag, criteria summary lines, and the same criteria as
    :class:`~flagalign.experiments.verdict.Criterion` objects (for ``verdict.json``)."""
    from .verdict import check

    crit = []
    lines = [
        "| optimizer | activation | λ | pair | predicted r | full D r (ratio) | diag D r (ratio) "
        "| off-diag D r (ratio) | final commutator | checks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok_all = True
    summary = []
    comm = {}
    for run in runs:
        for pair in run.rates.pair.unique():
            comm[(run.optimizer, run.activation, run.lam, pair)] = _final(run.history, pair, "commutator")
    lin_slopes: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        r = run.rates
        for pair in r.pair.unique():
            pred = _val(r, pair, "imbalance_abs", "predicted")
            full, dg, off = (_val(r, pair, m) for m in ("imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs"))
            c = comm[(run.optimizer, run.activation, run.lam, pair)]
            checks = []
            if run.optimizer != "sgd":
                reason = r[(r.pair == pair) & (r.metric == "imbalance_abs")].reason.iloc[0]
                good = "not applicable" in reason and not np.isfinite(pred)
                crit.append(check(f"{run.optimizer} {run.activation} λ={run.lam:g} pair {pair}: "
                                  "law reported not applicable (1 = yes)", float(good), ">=", 1.0,
                                  f"measured drift {full:.3g}/step"))  # fmt: skip
                checks.append(f"law not applicable (measured drift {full:.3g}/step): {'PASS' if good else 'FAIL'}")
            elif run.activation == "linear":
                good = abs(full / pred - 1) <= TOL
                tag = f"sgd linear λ={run.lam:g} pair {pair}"
                crit.append(check(f"{tag}: full-D rate, |r̂/r − 1|", abs(full / pred - 1), "<=",
                                  TOL, f"r = {pred:.4g}"))  # fmt: skip
                checks.append(f"full within 5%: {'PASS' if good else 'FAIL'}")
                lin_slopes.setdefault(pair, []).append((run.lam, full))
                cr = comm.get(("sgd", "relu", run.lam, pair), float("nan"))
                g2 = c < 0.2 * cr
                crit.append(check(f"{tag}: final commutator / ReLU's", c / cr, "<", 0.2,
                                  f"linear {c:.3g}, ReLU {cr:.3g}"))  # fmt: skip
                checks.append(f"comm < 0.2×ReLU ({_fmt(cr, 3)}): {'PASS' if g2 else 'FAIL'}")
                good = good and g2
            elif run.activation == "relu":
                g1 = abs(dg / pred - 1) <= TOL
                g2 = off < 0.5 * pred
                tag = f"sgd relu λ={run.lam:g} pair {pair}"
                crit.append(check(f"{tag}: diag-D rate, |r̂/r − 1|", abs(dg / pred - 1), "<=",
                                  TOL, f"r = {pred:.4g}"))  # fmt: skip
                crit.append(check(f"{tag}: off-diag-D rate / r", off / pred, "<", 0.5))
                checks.append(f"diag within 5%: {'PASS' if g1 else 'FAIL'}")
                checks.append(f"off-diag < 50%: {'PASS' if g2 else 'FAIL'}")
                good = g1 and g2
            else:
                good = True
                checks.append("no law (tanh not homogeneous); informational")
            ok_all &= bool(good)
            ratio = (lambda x: f"{_fmt(x)} ({x / pred:.3f})" if np.isfinite(pred) else _fmt(x))
            lam = f"{run.lam:g}" + (" (decoupled)" if run.optimizer == "adamw" else "")
            lines.append(
                f"| {run.optimizer} | {run.activation} | {lam} | {pair} | {_fmt(pred)} | "
                f"{ratio(full)} | {ratio(dg)} | {ratio(off)} | {_fmt(c, 3)} | {'; '.join(checks)} |"
            )
    for pair, pts in lin_slopes.items():
        per_lam = np.array([rate / lam for lam, rate in pts])
        spread = float(np.max(np.abs(per_lam / per_lam.mean() - 1))) if len(per_lam) > 1 else float("nan")
        good = len(per_lam) > 1 and spread <= TOL
        crit.append(check(f"sgd linear pair {pair}: linear in λ, max |(r̂/λ)/mean − 1|", spread,
                          "<=", TOL, "r̂/λ = " + ", ".join(f"{v:.4g}" for v in per_lam)))
        ok_all &= good
        summary.append(
            f"- linear, pair {pair}: fitted r/λ = {', '.join(f'{v:.4g}' for v in per_lam)} "
            f"(2η = {2 * LR:g}); max deviation {spread:.2%} — linear in λ: {'PASS' if good else 'FAIL'}"
        )
    return "\n".join(lines), ok_all, summary, crit


def _figure(runs: list[Run], tx, name: str) -> Path:
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy); no pyplot state

    present = {(r.optimizer, r.activation) for r in runs}
    panels = [p for p in [("sgd", a) for a in ACTS] + [("adamw", ADAM["activation"])] if p in present]
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    axes = axes[0]
    for ax, (opt, act) in zip(axes, panels):
        sel = [r for r in runs if r.optimizer == opt and r.activation == act]
        for i, run in enumerate(sel):
            pair = run.rates.pair.unique()[0]
            color = f"C{i}"
            for metric, style in (("imbalance_abs", "-"), ("imbalance_diag_abs", ":")):
                h = run.history[(run.history.pair == pair) & (run.history.metric == metric)]
                label = f"λ={run.lam:g} {'‖D‖' if metric == 'imbalance_abs' else '‖diag D‖'}"
                ax.semilogy(h.step, h.value, style, color=color, label=label)
            pred = _val(run.rates, pair, "imbalance_abs", "predicted")
            if np.isfinite(pred):
                h = run.history[(run.history.pair == pair) & (run.history.metric == "imbalance_diag_abs")]
                s0 = float(h.step.iloc[len(h) // 2])
                v0 = float(h.value.iloc[len(h) // 2])
                xs = np.array([s0, float(h.step.iloc[-1])])
                ax.semilogy(xs, v0 * np.exp(-pred * (xs - s0)), "--", color="k", lw=0.8)
        ax.set_title(f"{opt} / {act} (pair {sel[0].rates.pair.unique()[0] if sel else ''})", fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("imbalance (dashed: predicted slope)")
    fig.tight_layout()
    return tx.write_figure(name, fig, dpi=110)


@register("ridge")
def run(out_dir, quick: bool = False, progress: bool = True) -> ExperimentResult:
    """Run the ridge experiment; write table, CSVs and figure under ``out_dir`` (one atomic
    run, docs/security.md)."""
    with OutputFolder(out_dir, set_name="ridge").open() as tx:  # exit 2 before training
        return _run(tx, quick, progress)


def _run(tx, quick: bool, progress: bool) -> ExperimentResult:
    """Train, tabulate, and stage the outputs in ``tx`` (committed by :func:`run`)."""
    import pandas as pd

    from .training import load_digits_data, torch_threads

    mode = "quick" if quick else "full"
    lambdas = QUICK_LAMBDAS if quick else LAMBDAS
    configs = []
    for a in QUICK_ACTS if quick else ACTS:
        for lam in lambdas:
            steps = int(round(EFOLDS[mode] / (LR * lam)))
            configs.append(dict(optimizer="sgd", activation=a, lam=lam, lr=LR, steps=steps))
    configs.append(dict(optimizer=ADAM["optimizer"], activation=ADAM["activation"],
                        lam=ADAM["weight_decay"], lr=ADAM["lr"], steps=ADAM_STEPS[mode]))  # fmt: skip
    bar = progress_bar(len(configs), progress, "ridge")
    runs = []
    with torch_threads(1):
        data = load_digits_data()
        for cfg in configs:
            runs.append(_one_run(data, every=max(1, cfg["steps"] // RECORDS), **cfg))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    table, passed, summary, crit = _table(runs)
    total = sum(r.seconds for r in runs)
    header = (
        f"digits (1797 samples, full batch), MLP 64-64-64-10, PyTorch default init, "
        f"SGD η = {LR:g} for T = {EFOLDS[mode]:g}/(ηλ) steps "
        f"({', '.join(str(c['steps']) for c in configs[:len(lambdas)])} for λ = "
        f"{', '.join(f'{l:g}' for l in lambdas)}), {RECORDS} records per run; rates fitted on the "
        "last half of each run; "
        f"AdamW: lr {ADAM['lr']:g}, weight_decay {ADAM['weight_decay']:g}, {ADAM_STEPS[mode]} steps. "
        f"Training time {total:.0f} s{' (--quick)' if quick else ''}."
    )
    md = "\n".join([header, "", table, "", *summary, "",
                    f"**Overall: {'PASS' if passed else 'FAIL'}**"])  # fmt: skip
    rates = pd.concat([r.rates.assign(optimizer=r.optimizer, activation=r.activation, lam=r.lam,
                                      final_loss=r.final_loss) for r in runs])  # fmt: skip
    hist = pd.concat([r.history.assign(optimizer=r.optimizer, activation=r.activation, lam=r.lam)
                      for r in runs])  # fmt: skip
    files = [tx.write_text("ridge.md", md + "\n"), tx.write_csv("ridge_rates.csv", rates),
             tx.write_csv("ridge_history.csv", hist), _figure(runs, tx, "ridge_imbalance.png"),
             write_verdict(tx, "ridge", crit, quick=quick, seconds=total,
                           meta={"lr": LR, "lambdas": list(lambdas), "efolds": EFOLDS[mode],
                                 "adam": ADAM, "adam_steps": ADAM_STEPS[mode],
                                 "seconds": "training time (sum over runs)"})]  # fmt: skip
    return ExperimentResult(name="ridge", table_markdown=md, passed=bool(passed), files=files)
