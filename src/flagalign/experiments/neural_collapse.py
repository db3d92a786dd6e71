"""``flagalign reproduce collapse``: Neural Collapse and the Level-1/2/3 hierarchy on digits MLPs.

Superseded by ``flagalign reproduce hierarchy`` (:mod:`flagalign.experiments.hierarchy`; its
ReLU net never reached collapse, so this run does not test the claim). Kept, and documented in
docs/results.md, as the record of the old protocol.

Two depth-3, width-64 MLPs (64 → 64 → 64 → 10), one linear and one ReLU, are trained on all
1797 scikit-learn digits with minibatch SGD (batch 128, momentum 0.9, constant η = 0.05) and L2
weight decay λ = 5e-4 on every parameter, with cross-entropy, far into the terminal phase
(100 % train accuracy after a few hundred steps; the run lasts ``STEPS`` steps ≈ 2 100 epochs,
``--quick`` ≈ 285 epochs). The inputs are **ZCA-whitened** on the training set (pixel
covariance = identity on its 61-dim support, see :func:`whiten`): for a linear net the Level-3
prediction comes from balancedness of adjacent *weight* Grams, and the data-based commutator
c(W̄ᵀW̄, MᵀM) inherits it only when the inputs' own Gram adds no basis of its own
(docs/results.md, "Protocol"). At log- and evenly-spaced steps we record, on the training
set, NC1–NC4 and Levels 1–3 with data (docs/theory.md, eqs. (30)–(38)) and the weight-only
proxies of eq. (39) (classifier ETF geometry, Level-2 overlap and Gram commutator of the pair
penultimate layer → classifier).

Pass criteria (each printed beside its row; tolerances of eq. (38)):

1. Level 2 (data) reached at the end by the linear and by the ReLU net;
2. Level 3 (data) reached at the end by the linear net;
3. the ReLU net's data commutator stays above ``TOL_COMMUTATOR`` over the last quarter of
   the records (a plateau, not a slow approach; the learning rate is kept constant so that a
   plateau is not an artefact of a decayed step size);
4. Spearman ρ ≥ ``RHO_MIN`` between each weight-only proxy and its data counterpart over the
   records, per net (ETF: eq. (39) classifier ETF vs nc2_etf; Level 2: weight overlap vs data
   overlap — linear net only: across a ReLU plus bias the Level-2 proxy is not applicable and
   the row is reported as "n/a", outside the verdict; Level 3: Gram commutator of Ã = [A, b]
   (A's bias included, eq. (39)) vs data commutator).

``verdict.json`` lists the primary criteria (name, measured, threshold, pass).

Supplementary rows (reported, not part of ``passed``) give the weight-only Level-3 verdicts.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._output import OutputFolder
from .._progress import progress_bar
from .framework import ExperimentResult, register
from .verdict import write_verdict

__all__ = ["run", "CONFIG", "RHO_MIN", "whiten"]

#: Hyper-parameters shared by both nets (see the module docstring).
CONFIG = {
    "depth": 3,
    "width": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "loss": "cross_entropy",
    "inputs": "zca",
    "seed": 0,
}
STEPS = {"full": 30000, "quick": 4000}
#: records: this many evenly spaced steps plus as many log-spaced ones (early dynamics).
RECORDS = {"full": 40, "quick": 16}
ACTS = ("linear", "relu")
#: minimum Spearman rank correlation between a weight-only proxy and its data counterpart.
RHO_MIN = 0.5
#: (label, weight-only column, data column) compared by Spearman ρ.
PROXIES = (
    ("ETF", "w_etf", "nc2_etf"),
    ("Level-2 overlap", "w_level2_overlap", "level2_overlap"),
    ("Level-3 commutator", "w_level3_commutator", "level3_commutator"),
)


def whiten(data):
    """ZCA-whiten the training inputs: x ↦ Σ^{-1/2}(x − x̄) on the support of the pixel
    covariance Σ (docs/theory.md, eq. (37)(a): with Σ ∝ I on its support the features' total Gram
    of a balanced linear chain commutes with the classifier Gram).

    Parameters
    ----------
    data : Digits
        From :func:`~flagalign.experiments.training.load_digits_data`.

    Returns
    -------
    Digits
        A new object whose ``x`` has zero mean and identity covariance on the span of the
        eigenvectors of Σ with eigenvalue above the rank tolerance of eq. (3),
        max(N, p)·ε·λ_max (constant pixels stay 0); ``x_test`` (if any) gets the same map, with
        the training mean and Σ.
    """
    import torch

    from .training import Digits

    X = data.x.double().numpy()
    mean = X.mean(axis=0)
    Xc = X - mean
    ev, U = np.linalg.eigh(Xc.T @ Xc / Xc.shape[0])
    keep = ev > max(Xc.shape) * np.finfo(np.float64).eps * ev.max()
    Z = (U[:, keep] / np.sqrt(ev[keep])) @ U[:, keep].T

    def apply(x):
        if x.shape[0] == 0:
            return x
        return torch.as_tensor((x.double().numpy() - mean) @ Z, dtype=torch.float32)

    return Digits(x=apply(data.x), y=data.y, x_test=apply(data.x_test), y_test=data.y_test,
                  n_classes=data.n_classes)  # fmt: skip


def _schedule(steps: int, n: int) -> list[int]:
    even = np.linspace(steps / n, steps, n).round().astype(int)
    logs = np.geomspace(1, steps, n).round().astype(int)
    return sorted({0, *even.tolist(), *logs.tolist()})


def _record(model, data, step: int, loss: float, activation: str):
    """One row: data-based CollapseReport, weight-only proxies (prefixed ``w_``), accuracy.

    The weight-only proxies (eq. (39)) get the bias of the layer feeding the classifier (the
    Level-3 proxy uses Ã = [A, b]) and the activation between the two (``"relu"``: the Level-2
    proxy is NaN, not applicable across a ReLU plus bias)."""
    import torch

    from ..diagnostics.collapse import metrics, weight_only_arrays
    from .training import features

    with torch.no_grad():
        H = features(model, data.x)
        acc = float((model(data.x).argmax(1) == data.y).double().mean())
    last, prev = model[-1], model[-3]  # classifier and the linear layer feeding it
    rep = metrics(H, data.y, last.weight.detach(), last.bias.detach())
    wo = weight_only_arrays(last.weight.detach(), prev.weight.detach(),
                            bias=prev.bias.detach(), activation=activation)
    row = {"step": step, "loss": loss, "train_acc": acc}
    row.update(rep.to_dict())
    row.update({f"w_{k}": v for k, v in wo.to_dict().items() if not isinstance(v, str)})
    return row


def _train_one(data, activation: str, steps: int, n_records: int, bar=None):
    from .training import make_mlp, train

    c = CONFIG
    model = make_mlp(data.n_features, c["width"], c["depth"], data.n_classes,
                     activation=activation, seed=c["seed"])  # fmt: skip
    when = set(_schedule(steps, n_records))
    rows = [_record(model, data, 0, float("nan"), activation)]

    def on_step(step: int, loss: float) -> None:
        if step in when:
            rows.append(_record(model, data, step, loss, activation))
        if bar is not None:
            bar.update(1)

    train(model, data.x, data.y, steps=steps, lr=c["lr"], weight_decay=c["weight_decay"],
          momentum=c["momentum"], batch_size=c["batch_size"], loss=c["loss"], seed=c["seed"],
          on_step=on_step)  # fmt: skip
    return rows


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def _fmt(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _tables(frame, steps: int) -> tuple[str, bool, list[dict], list]:
    """Markdown tables, overall pass flag, check rows (collapse_checks.csv) and the primary
    criteria as :class:`~flagalign.experiments.verdict.Criterion` objects (verdict.json)."""
    from ..diagnostics.collapse import TOL_COMMUTATOR, TOL_NC1, TOL_SINE
    from .verdict import check

    final = {a: frame[frame.activation == a].iloc[-1] for a in ACTS}
    checks: list[dict] = []
    crit: list = []

    def add(net, what, value, ok, primary=True, applicable=True, criterion=None):
        checks.append({"net": net, "criterion": what, "value": value, "pass": bool(ok),
                       "primary": primary and applicable, "applicable": applicable})  # fmt: skip
        if criterion is not None and primary and applicable:
            crit.append(criterion)

    for a in ACTS:
        f = final[a]
        what = f"Level 2 reached at the end (all C−1 angles sin θ ≤ {TOL_SINE})"
        add(a, what,
            f"max sin θ = {_fmt(f.level2_max_sine)}, dim = {int(f.level2_intersection_dim)}",
            f.level2, criterion=check(f"{a}: {what}, max sin θ", f.level2_max_sine, "<=",
                                      TOL_SINE, f"dim = {int(f.level2_intersection_dim)}"))  # fmt: skip
    f = final["linear"]
    what = f"Level 3 reached at the end (Level 2 and commutator ≤ {TOL_COMMUTATOR})"
    add("linear", what, f"commutator = {_fmt(f.level3_commutator)}", f.level3,
        criterion=check(f"linear: {what}, data commutator (NaN without Level 2)",
                        f.level3_commutator if f.level2 else float("nan"), "<=",
                        TOL_COMMUTATOR))  # fmt: skip
    relu = frame[frame.activation == "relu"]
    tail = relu.iloc[-max(2, len(relu) // 4):]
    what = f"data commutator plateau > {TOL_COMMUTATOR} over the last quarter of records"
    add("relu", what,
        f"min = {_fmt(tail.level3_commutator.min())}, final level 3 = {_fmt(bool(final['relu'].level3))}",
        bool((tail.level3_commutator > TOL_COMMUTATOR).all() and not final["relu"].level3),
        criterion=check(f"relu: {what}, min over the last quarter", tail.level3_commutator.min(),
                        ">", TOL_COMMUTATOR))  # fmt: skip
    for a in ACTS:
        sub = frame[(frame.activation == a) & (frame.step > 0)]
        for label, wcol, dcol in PROXIES:
            what = f"Spearman ρ({label}: weight-only vs data) ≥ {RHO_MIN}"
            if label == "Level-2 overlap" and a != "linear":
                # eq. (39): across a ReLU plus bias the features are not in col(A)
                add(a, what, "not applicable (ReLU + bias between A and the classifier, "
                    "eq. (39); weight-only Level-2 proxy is NaN)", False, applicable=False)
                continue
            rho = _spearman(sub[wcol], sub[dcol])
            add(a, what, f"ρ = {_fmt(rho)}", rho >= RHO_MIN,
                criterion=check(f"{a}: {what}", rho, ">=", RHO_MIN))  # fmt: skip
    for a in ACTS:
        f = final[a]
        if a == "linear":
            add(a, f"(supplementary) weight-only Level 3: Level-2 proxy and Gram commutator ≤ "
                f"{TOL_COMMUTATOR}", f"Gram commutator = {_fmt(f.w_level3_commutator)}",
                f.w_level3, primary=False)  # fmt: skip
        else:  # no Level-2 proxy across a ReLU: the Gram commutator alone
            add(a, f"(supplementary) weight-only Gram commutator ≤ {TOL_COMMUTATOR} (Level-2 "
                "proxy not applicable)", f"Gram commutator = {_fmt(f.w_level3_commutator)}",
                f.w_level3_commutator <= TOL_COMMUTATOR, primary=False)  # fmt: skip
    for a in ACTS:
        # eq. (39): the classifier-ETF proxy equals nc2_etf when W̄ ∝ M, so its error should
        # shrink with NC3 whatever the direction each of them moves in.
        sub = frame[(frame.activation == a) & (frame.step > 0)]
        gap = (sub.w_etf - sub.nc2_etf).abs()
        rho = _spearman(gap, sub.nc3)
        add(a, "(supplementary) ETF-proxy error e = abs(w: ETF − NC2 ETF) tracks NC3: "
            f"ρ(e, NC3) ≥ {RHO_MIN}",
            f"ρ = {_fmt(rho)}, error {_fmt(gap.iloc[0])} → {_fmt(gap.iloc[-1])}",
            rho >= RHO_MIN, primary=False)  # fmt: skip
    passed = all(c["pass"] for c in checks if c["primary"])

    lines = ["| net | criterion | measured | pass |", "|---|---|---|---|"]
    for c in checks:
        if not c["applicable"]:
            ok = "n/a"
        else:
            ok = ("PASS" if c["pass"] else "FAIL") if c["primary"] else ("yes" if c["pass"] else "no")
        lines.append(f"| {c['net']} | {c['criterion']} | {c['value']} | {ok} |")
    cols = [("train_acc", "train acc"), ("nc1", "NC1"), ("cdnv", "CDNV"),
            ("nc2_equinorm", "NC2 equinorm"), ("nc2_equiangular", "NC2 equiang."),
            ("nc2_etf", "NC2 ETF"), ("nc3", "NC3"), ("nc4", "NC4"),
            ("level2_overlap", "L2 overlap"), ("level2_overlap_ratio", "L2 ratio"),
            ("level2_max_sine", "L2 max sin θ"), ("level2_intersection_dim", "L2 dim"),
            ("level3_commutator", "L3 comm."), ("level", "level"), ("w_etf", "w: ETF"),
            ("w_level2_overlap", "w: L2 overlap"), ("w_level2_max_sine", "w: L2 max sin θ"),
            ("w_level3_commutator", "w: Gram comm.")]  # fmt: skip
    first100 = {
        a: frame[(frame.activation == a) & (frame.train_acc >= 1.0)].step.min() for a in ACTS
    }
    lines += ["", f"Final record (step {steps}; tolerances NC1 ≤ {TOL_NC1}, sin θ ≤ {TOL_SINE}, "
              f"commutator ≤ {TOL_COMMUTATOR}; `w:` = weight-only, no data):", "",
              "| net | first step at 100 % train acc | " + " | ".join(c[1] for c in cols) + " |",
              "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for a in ACTS:
        f = final[a]
        lines.append(f"| {a} | {_fmt(first100[a]) if np.isfinite(first100[a]) else 'never'} | "
                     + " | ".join(_fmt(f[c]) for c, _ in cols) + " |")  # fmt: skip
    return "\n".join(lines), passed, checks, crit


def _figure(frame, tx, name: str) -> Path:
    from matplotlib.figure import Figure  # deferred: matplotlib is heavy and only for the figure

    from ..diagnostics.collapse import TOL_COMMUTATOR, TOL_NC1, TOL_SINE

    panels = [
        ("NC1 (eq. 31)", [("nc1", "data")], TOL_NC1, True),
        ("CDNV (eq. 31)", [("cdnv", "data")], None, True),
        ("NC2 ETF distance (eqs. 33, 39)", [("nc2_etf", "data"), ("w_etf", "weight-only")], None,
         False),
        ("NC3 self-duality (eq. 34)", [("nc3", "data")], None, False),
        ("NC4 classifier ≠ NCC (eq. 35)", [("nc4", "data")], None, False),
        ("Level 2: max sin θ (eq. 36)",
         [("level2_max_sine", "data"), ("w_level2_max_sine", "weight-only")], TOL_SINE, True),
        ("Level 2: overlap (eq. 36)",
         [("level2_overlap", "data"), ("w_level2_overlap", "weight-only")], None, False),
        ("Level 3: commutator (eqs. 37, 39)",
         [("level3_commutator", "data"), ("w_level3_commutator", "weight-only")], TOL_COMMUTATOR,
         True),
        ("train accuracy", [("train_acc", "")], None, False),
    ]  # fmt: skip
    fig = Figure(figsize=(13, 10))
    axes = fig.subplots(3, 3)
    colors = {"linear": "tab:blue", "relu": "tab:red"}
    for ax, (title, series, tol, logy) in zip(axes.flat, panels):
        for a in ACTS:
            sub = frame[(frame.activation == a) & (frame.step > 0)]
            for col, kind in series:
                ax.plot(sub.step, sub[col], color=colors[a],
                        linestyle="-" if kind in ("data", "") else "--",
                        label=f"{a} {kind}".strip(), marker=".", markersize=3)  # fmt: skip
        if tol is not None:
            ax.axhline(tol, color="gray", linestyle=":", label="tolerance")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("SGD step")
        ax.legend(fontsize=7)
    fig.suptitle("Neural Collapse levels on digits MLPs: linear vs ReLU (docs/theory.md §3)")
    fig.tight_layout()
    return tx.write_figure(name, fig, dpi=110)


@register("collapse")
def run(out_dir, quick: bool = False, progress: bool = True) -> ExperimentResult:
    """Train the linear and ReLU nets, record, tabulate, plot (see the module docstring); the
    files are one atomic run (docs/security.md)."""
    with OutputFolder(out_dir, set_name="collapse").open() as tx:  # exit 2 before training
        return _run(tx, quick, progress)


def _run(tx, quick: bool, progress: bool) -> ExperimentResult:
    """Train, tabulate, and stage the outputs in ``tx`` (committed by :func:`run`)."""
    import pandas as pd

    from .training import load_digits_data, torch_threads

    mode = "quick" if quick else "full"
    steps, n_rec = STEPS[mode], RECORDS[mode]
    bar = progress_bar(steps * len(ACTS), progress, "collapse")
    t0 = time.perf_counter()
    rows = []
    try:
        with torch_threads(1):
            data = load_digits_data()
            if CONFIG["inputs"] == "zca":
                data = whiten(data)
            for a in ACTS:
                for r in _train_one(data, a, steps, n_rec, bar):
                    rows.append({"activation": a, **r})
    finally:
        if bar is not None:
            bar.close()
    frame = pd.DataFrame(rows)
    table, passed, checks, crit = _tables(frame, steps)
    seconds = time.perf_counter() - t0
    c = CONFIG
    header = (f"Digits MLPs {64}→{c['width']}→…→10 (depth {c['depth']}), SGD η={c['lr']} "
              f"momentum {c['momentum']}, λ={c['weight_decay']} on all parameters, batch "
              f"{c['batch_size']}, {c['loss']}, {c['inputs']}-whitened inputs, constant η, "
              f"{steps} steps ({mode}), seed {c['seed']}; "
              f"{seconds:.0f} s on 1 thread.")  # fmt: skip
    table = header + "\n\n" + table
    files = [tx.write_csv("collapse_records.csv", frame),
             tx.write_csv("collapse_checks.csv", pd.DataFrame(checks)),
             tx.write_text("collapse_table.md", table + "\n"),
             _figure(frame, tx, "collapse_metrics.png"),
             write_verdict(tx, "collapse", crit, quick=quick, seconds=seconds,
                           meta={**CONFIG, "steps": steps, "superseded_by": "hierarchy",
                                 "not_applicable": [f"{c['net']}: {c['criterion']}"
                                                    for c in checks if not c["applicable"]]})]
    return ExperimentResult(name="collapse", table_markdown=table, passed=passed, files=files)
