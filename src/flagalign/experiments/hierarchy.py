"""``flagalign reproduce hierarchy``: the Level-1/2/3 hierarchy and the Level-3 obstruction.

Replaces the protocol of ``reproduce collapse`` (whose ReLU net never collapsed) by one that can
test the claim and fail (issue 16, docs/results.md "hierarchy"): a fixed 600-sample subset of
sklearn digits, ZCA-whitened (float64), MLP 64→128→128→128→10 in float64 with leaky-ReLU slope
α ∈ {0, 0.25, 0.5, 0.75, 1} (α = 0: ReLU, α = 1: linear), MSE loss
L = (1/2N) Σᵢ ‖f(xᵢ) − yᵢ‖² on one-hot targets, full-batch gradient descent **without
momentum** on L + (λ/2)‖θ‖² (coupled L2 on every parameter, biases included),
λ ∈ {1e-3, 2e-3}, η per α chosen by :func:`tune_lr`, T = EFOLDS / (ηλ) steps.

Why this protocol (docs/theory.md §2–§3): plain GD makes the one-step recursion of D (eq. (21))
exact and lets us *verify* stationarity of the ridge objective by the gradient ratio
ρ_∇ = ‖∇(L + R)‖ / ‖λθ‖ (0 at a stationary point, where ∇L = −λθ). At such a point (eq. (24))
a linear net has D = 0 on every hidden pair, hence a zero bias-augmented commutator c̃ (eq. (26)),
while a ReLU net has only diag D = 0; c̃ is judged against its Haar null (eq. (50),
:func:`flagalign.geometry.nulls.commutator_null`).

Per record (log- and evenly-spaced steps) and per hidden pair (W_l, b_l, W_{l+1}), l = 1..3:
c̃, ‖D‖, ‖diag D‖, ‖offdiag D‖, relative off-diagonal D = ‖offdiag D‖/(‖W̃W̃ᵀ‖_F+‖W_nextᵀW_next‖_F);
per record: NC1, CDNV, NC3, rank M, Level-2 angles (k = C − 1, and on the top-r directions of
the centred classifier W̄ above a spectral gap, see :func:`top_r`), train accuracy, loss and ρ_∇.
At the last record: c̃ / null for every pair.

The pass criteria were committed to docs/results.md before the first full run; :func:`verdict`
evaluates them and ``verdict.json`` records each (name, measured, threshold, pass).
"""

from __future__ import annotations

import time
from pathlib import Path

from .._output import OutputFolder
from .._progress import progress_bar
from .framework import ExperimentResult, register
from .hierarchy_protocol import (  # noqa: F401  (re-exported: the protocol and its thresholds)
    CE, CONFIG, GAP_RATIO, LIN_NULL_MAX, LOSSES, LR_GRID, NULL_SAMPLES, QUICK, RELU_NULL_MIN,
    RHO_MAX, TOL_FLAT, TOL_GRAD, TOL_NC1, TOL_RATE, TOL_SINE,
)  # fmt: skip
from .hierarchy_train import (  # noqa: F401  (re-exported)
    load_data, run_grid, top_r, torch_threads_one, train_one, tune_lr, zca_whiten,
)  # fmt: skip
from .hierarchy_verdict import verdict

__all__ = ["run", "CONFIG", "train_one", "top_r", "zca_whiten", "verdict"]


def _lr_text(lr, tuned: bool = True) -> str:
    if isinstance(lr, dict):
        return ("(" + ", ".join(f"α={a:g}: {v:g}" for a, v in lr.items())
                + (", tuned)" if tuned else ", fixed)"))  # fmt: skip
    return f"{lr:g}"


def _figure(frame, finals, tx, name: str) -> Path:
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy); no pyplot state

    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for lam in sorted(finals.lam.unique()):
        g = finals[finals.lam == lam].groupby("alpha").c_aug_over_null
        ax.errorbar(g.mean().index, g.mean(), yerr=g.std().fillna(0), marker="o",
                    label=f"λ={lam:g}", capsize=3)  # fmt: skip
    ax.axhline(1.0, color="gray", ls=":", label="Haar null")
    ax.set_xlabel("leaky-ReLU slope α (1 = linear)")
    ax.set_ylabel("c̃ / null (final, mean ± sd over seeds, pairs)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=7)
    sel = frame[(frame.seed == 0) & (frame.pair == 2) & (frame.step > 0)]
    lam0 = sorted(frame.lam.unique())[-1]
    sel = sel[sel.lam == lam0]
    for key, ax, title in (("c_aug", axes[1], "c̃ (pair 2)"),
                           ("D_diag", axes[2], "‖diag D‖ and rel. off-diag D (pair 2)")):  # fmt: skip
        for a in sorted(sel.alpha.unique()):
            s = sel[sel.alpha == a]
            ax.semilogy(s.step, s[key], label=f"α={a:g}")
            if key == "D_diag":
                ax.semilogy(s.step, s.D_off_rel, ls="--", color=ax.lines[-1].get_color())
        ax.set_title(f"{title}, seed 0, λ={lam0:g}", fontsize=9)
        ax.set_xlabel("GD step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return tx.write_figure(name, fig, dpi=100)


@register("hierarchy")
def run(out_dir, quick: bool = False, progress: bool = True, seeds: int | None = None,
        jobs: int = 1, loss: str = "mse") -> ExperimentResult:  # fmt: skip
    """Run the hierarchy experiment; write records, finals, verdict.json and a figure.

    ``loss="ce"`` runs the secondary cross-entropy table (:data:`CE`; with ``quick``, the
    quick protocol with cross-entropy): the MSE criteria reported as measured values. The
    files are written as one atomic run (set ``hierarchy``, docs/security.md).
    """
    if loss not in LOSSES:
        from ..errors import InputError

        raise InputError(f"--loss: choose one of {', '.join(LOSSES)}, got {loss!r}")
    with OutputFolder(out_dir, set_name="hierarchy").open() as tx:  # exit 2 before training
        return _run(tx, quick, progress, seeds, jobs, loss)


def _run(tx, quick: bool, progress: bool, seeds, jobs: int, loss: str) -> ExperimentResult:
    """Train, tabulate, and stage the outputs in ``tx`` (committed by :func:`run`)."""
    from .verdict import criteria_table, frame_markdown, write_verdict

    cfg = {**CONFIG, "loss": "mse", **(CE if loss == "ce" else {}), **(QUICK if quick else {})}
    cfg["loss"] = loss
    if seeds is not None:
        cfg["seeds"] = int(seeds)
    t0 = time.perf_counter()
    bar = progress_bar(len(cfg["alphas"]) * len(cfg["lambdas"]) * cfg["seeds"],
                       progress and jobs == 1, "hierarchy")
    pilot = None
    if cfg["lr"] == "tuned":
        cfg["lr"], pilot = tune_lr(cfg["alphas"], max(cfg["lambdas"]), cfg["efolds"],
                                   cfg["records"], cfg.get("n_train"), jobs, loss)  # fmt: skip
    try:
        frame, finals = run_grid(alphas=cfg["alphas"], lambdas=cfg["lambdas"],
                                 seeds=cfg["seeds"], efolds=cfg["efolds"],
                                 records=cfg["records"], lr=cfg["lr"],
                                 n_train=cfg.get("n_train"), jobs=jobs, loss=loss,
                                 progress=bar.update if bar is not None else None)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    crit = verdict(finals, cfg["alphas"])
    seconds = time.perf_counter() - t0
    files = [tx.write_csv("hierarchy_records.csv", frame),
             tx.write_csv("hierarchy_final.csv", finals)]
    if pilot is not None:
        files.append(tx.write_csv("hierarchy_lr_pilot.csv", pilot))
    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    meta["secondary"] = loss == "ce"  # CE: criteria reported as measured, no pass claim
    if isinstance(meta["lr"], dict):
        meta["lr"] = {str(k): v for k, v in meta["lr"].items()}
    meta["train_seconds_sum"] = float(finals.drop_duplicates(["lam", "alpha", "seed"]).seconds.sum())
    files.append(write_verdict(tx, "hierarchy", crit, quick=quick, seconds=seconds, meta=meta))
    files.append(_figure(frame, finals, tx, "hierarchy.png"))
    summ = (finals.groupby(["lam", "alpha", "pair"])
            .agg(c_aug=("c_aug", "mean"), ratio=("c_aug_over_null", "mean"),
                 ratio_sd=("c_aug_over_null", "std"), D_off_rel=("D_off_rel", "mean"),
                 grad_ratio=("grad_ratio", "max"), nc1=("nc1", "max"), r=("r", "min"),
                 sine_r=("level2_r_max_sine", "max"), acc=("train_acc", "min"),
                 diag_prefloor_ratio=("rate_D_diag_prefloor", "mean"),
                 rate_pred=("predicted_rate", "first"))
            .reset_index())  # fmt: skip
    summ["diag_prefloor_ratio"] = summ.diag_prefloor_ratio / summ.pop("rate_pred")
    head = (f"Digits (ZCA-whitened, float64{', ' + str(cfg['n_train']) + ' samples' if cfg.get('n_train') else ', 1797 samples'}), "
            f"MLP {'→'.join(map(str, cfg['widths']))}, leaky-ReLU α ∈ {list(cfg['alphas'])}, "
            f"{'MSE' if loss == 'mse' else 'cross-entropy (secondary table: criteria as measured values)'}, "
            f"full-batch GD η = {_lr_text(cfg['lr'], pilot is not None)} without momentum, coupled L2 λ ∈ "
            f"{list(cfg['lambdas'])}, T = {cfg['efolds']:g}/(ηλ) steps, seeds 0–{cfg['seeds'] - 1}"
            f"{' (--quick)' if quick else ''}; {seconds:.0f} s wall.")  # fmt: skip
    md = "\n".join([head, "", criteria_table(crit), "",
                    "Per (λ, α, pair), final record, mean over seeds (ρ_∇ and NC1: max; "
                    "diag_prefloor_ratio: supplementary, diag-D rate before the eq. (28) floor / r):",
                    "",
                    frame_markdown(summ)])  # fmt: skip
    files.append(tx.write_text("hierarchy.md", md + "\n"))
    passed = all(c.passed for c in crit)
    return ExperimentResult(name="hierarchy", table_markdown=md, passed=passed, files=files)
