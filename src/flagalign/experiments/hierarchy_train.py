"""Training and the (λ, α, seed) grid of ``flagalign reproduce hierarchy`` (protocol in
:mod:`flagalign.experiments.hierarchy`): data (ZCA-whitened digits), one full-batch GD run with
its per-record pair and collapse statistics (:func:`train_one`), the grid (:func:`run_grid`,
optionally in a process pool) and the η pilots (:func:`tune_lr`)."""

from __future__ import annotations

import time

import numpy as np

from .._threads import set_process_blas_threads
from ..diagnostics.dynamics.rates import law_rate
from .hierarchy_protocol import CONFIG, GAP_RATIO, LOSSES, LR_GRID, NULL_SAMPLES, TOL_GRAD

__all__ = ["zca_whiten", "load_data", "top_r", "train_one", "run_grid", "tune_lr",
           "torch_threads_one"]


def zca_whiten(X: np.ndarray) -> np.ndarray:
    """ZCA-whiten float64 inputs: (x − x̄) Σ^{-1/2} on the support of the pixel covariance Σ
    (eigenvalues above max(N, p)·ε·λ_max, eq. (3)); constant pixels stay 0."""
    Xc = X - X.mean(axis=0)
    ev, U = np.linalg.eigh(Xc.T @ Xc / Xc.shape[0])
    keep = ev > max(Xc.shape) * np.finfo(np.float64).eps * ev.max()
    return Xc @ ((U[:, keep] / np.sqrt(ev[keep])) @ U[:, keep].T)


def load_data(n_train: int | None = None):
    """Whitened digits (float64) and labels; the first ``n_train`` samples of a fixed
    permutation (seed 0) when given, else all 1797."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if n_train is not None:
        idx = np.sort(np.random.default_rng(0).permutation(y.size)[:n_train])
        X, y = X[idx], y[idx]
    return zca_whiten(X.astype(np.float64)), y.astype(np.int64)


def top_r(Wc: np.ndarray, ratio: float = GAP_RATIO) -> int:
    """Number r of class directions the centred classifier W̄ keeps: its singular values
    s_k ≥ ratio · s_1 among the first C − 1 (weight decay can prune a class direction to
    ≈ 0; a pruned direction is not a misaligned one)."""
    s = np.linalg.svd(Wc, compute_uv=False)[: Wc.shape[0] - 1]
    return int(np.sum(s >= ratio * s[0])) if s.size and s[0] > 0 else 0


def _pair_stats(W, b, Wn) -> dict:
    from ..geometry import commutator_norm

    Wt = np.column_stack([W, b])
    A, B = Wt @ Wt.T, Wn.T @ Wn
    D = B - A
    dg = np.diag(D)
    denom = np.linalg.norm(A) + np.linalg.norm(B)
    off = float(np.linalg.norm(D - np.diag(dg)))
    return {"c_aug": float(commutator_norm(A, B)), "D": float(np.linalg.norm(D)),
            "D_diag": float(np.linalg.norm(dg)), "D_off": off, "D_off_rel": off / denom}  # fmt: skip


def _collapse_stats(H, y, W4, b4) -> dict:
    from ..collapse import metrics
    from ..diagnostics.collapse.metrics import centre_rows
    from ..geometry import principal_angles

    rep = metrics(H, y, W4, b4)
    C = W4.shape[0]
    means = np.stack([H[y == c].mean(axis=0) for c in range(C)])
    M = means - means.mean(axis=0)
    sM = np.linalg.svd(M, compute_uv=False)
    rank_m = int(np.sum(sM > max(M.shape) * np.finfo(float).eps * max(sM[0], np.abs(means).max())))
    Wc = centre_rows(W4)
    r = top_r(Wc)
    vw = np.linalg.svd(Wc, full_matrices=False)[2][:r].T
    vm = np.linalg.svd(M, full_matrices=False)[2][:r].T
    ang = principal_angles(vw, vm) if r > 0 else np.array([np.pi / 2])
    return {"nc1": rep.nc1, "cdnv": rep.cdnv, "nc3": rep.nc3, "nc2_etf": rep.nc2_etf,
            "rank_M": min(rank_m, C - 1), "level2_max_sine": rep.level2_max_sine,
            "level3_commutator": rep.level3_commutator, "r": r,
            "level2_r_max_sine": float(np.sin(np.max(ang)))}  # fmt: skip


def _schedule(steps: int, n: int) -> list[int]:
    even = np.linspace(steps / n, steps, n).round().astype(int)
    logs = np.geomspace(1, steps, n).round().astype(int)
    return sorted({0, *even.tolist(), *logs.tolist()})


def train_one(X, y, *, alpha: float, lam: float, lr: float, steps: int, records: int,
              seed: int, widths=CONFIG["widths"], loss: str = "mse") -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Train one MLP by full-batch GD on L + (λ/2)‖θ‖² and record it.

    ``loss``: ``"mse"`` (L = (1/2N) Σ‖f(x) − onehot(y)‖²) or ``"ce"`` (mean softmax
    cross-entropy; the secondary table).

    Returns
    -------
    (rows, finals) : list of dict, list of dict
        ``rows``: one dict per record (network-level and per-pair values, pairs as
        ``pair`` = 1..3 in long form); ``finals``: per pair, the last record with c̃/null.
    """
    import torch

    from ..geometry.nulls import commutator_null

    torch.manual_seed(seed)
    layers = [torch.nn.Linear(widths[i], widths[i + 1]).double() for i in range(len(widths) - 1)]
    params = [p for lin in layers for p in (lin.weight, lin.bias)]
    Xt = torch.as_tensor(X)
    Y = torch.nn.functional.one_hot(torch.as_tensor(y), widths[-1]).double()
    n = Xt.shape[0]

    def forward(x):
        h = x
        for lin in layers[:-1]:
            h = torch.nn.functional.leaky_relu(lin(h), alpha) if alpha != 1.0 else lin(h)
        return h, layers[-1](h)

    when = set(_schedule(steps, records))
    rows: list[dict] = []
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    yt = torch.as_tensor(y)

    def objective(out):
        if loss == "ce":
            return torch.nn.functional.cross_entropy(out, yt)
        return 0.5 * ((out - Y) ** 2).sum() / n

    def record(step: int) -> None:
        h, out = forward(Xt)
        value = objective(out)
        grads = torch.autograd.grad(value, params)
        with torch.no_grad():
            num = sum(float(((g + lam * p) ** 2).sum()) for g, p in zip(grads, params))
            den = sum(float(((lam * p) ** 2).sum()) for p in params)
            acc = float((out.argmax(1) == torch.as_tensor(y)).double().mean())
            base = {"step": step, "loss": float(value), "train_acc": acc,
                    "grad_ratio": float(np.sqrt(num / den))}  # fmt: skip
            W = [lin.weight.detach().numpy() for lin in layers]
            B = [lin.bias.detach().numpy() for lin in layers]
            base.update(_collapse_stats(h.detach().numpy(), y, W[-1], B[-1]))
        for l in range(len(layers) - 1):
            rows.append({**base, "pair": l + 1, **_pair_stats(W[l], B[l], W[l + 1])})

    record(0)
    for t in range(1, steps + 1):
        _, out = forward(Xt)
        grads = torch.autograd.grad(objective(out), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.mul_(1.0 - lr * lam).sub_(lr * g)
        if t in when:
            record(t)
    finals = []
    W = [lin.weight.detach().numpy() for lin in layers]
    B = [lin.bias.detach().numpy() for lin in layers]
    for l in range(len(layers) - 1):
        Wt = np.column_stack([W[l], B[l]])
        a = np.clip(np.linalg.eigvalsh(Wt @ Wt.T), 0, None)
        bb = np.clip(np.linalg.eigvalsh(W[l + 1].T @ W[l + 1]), 0, None)
        null = commutator_null(a, bb, W[l].shape[0], samples=NULL_SAMPLES, seed=0)
        last = [r for r in rows if r["pair"] == l + 1][-1]
        finals.append({**last, "null": null.mean, "null_se": null.se,
                       "c_aug_over_null": last["c_aug"] / null.mean})  # fmt: skip
    return rows, finals


def _rate(rows: list[dict], key: str) -> float:
    from ..diagnostics.dynamics.rates import fit_rate

    steps = [r["step"] for r in rows]
    return fit_rate(steps, [r[key] for r in rows], tail=0.5).rate


def _rate_prefloor(rows: list[dict], key: str, factor: float = 20.0) -> float:
    """Supplementary (not a criterion; added after run 1/2, docs/results.md): the rate fitted on
    the records from T/4 on whose value is still ``factor``× above the final one, i.e. before
    the forcing floor of eq. (28). NaN with fewer than 3 such records."""
    from ..diagnostics.dynamics.rates import fit_rate

    st = np.array([r["step"] for r in rows], dtype=float)
    v = np.array([r[key] for r in rows], dtype=float)
    ok = (st >= 0.25 * st.max()) & (v > factor * v[-1])
    if ok.sum() < 3:
        return float("nan")
    return fit_rate(st[ok], v[ok], start=0).rate



_DATA: dict = {}


def _task(task: tuple) -> tuple[list[dict], list[dict]]:
    """One (λ, α, seed) run (top-level so that a process pool can pickle it)."""
    lam, a, s, lr, efolds, records, n_train, loss = task
    torch_threads_one()
    if n_train not in _DATA:
        _DATA[n_train] = load_data(n_train)
    X, y = _DATA[n_train]
    steps = int(round(efolds / (lr * lam)))
    t0 = time.perf_counter()
    rows, finals = train_one(X, y, alpha=a, lam=lam, lr=lr, steps=steps, records=records, seed=s,
                             loss=loss)  # fmt: skip
    sec = time.perf_counter() - t0
    meta = {"objective": loss, "lam": lam, "alpha": a, "seed": s, "lr": lr, "steps": steps}
    out_f = []
    for f in finals:
        pr = [r for r in rows if r["pair"] == f["pair"]]
        out_f.append({**meta, **f, "seconds": sec,
                      "predicted_rate": law_rate(lr, lam),
                      **{f"rate_{k}": _rate(pr, k)
                         for k in ("D", "D_diag", "D_off", "D_off_rel", "c_aug")},
                      "rate_D_diag_prefloor": _rate_prefloor(pr, "D_diag")})  # fmt: skip
    return [{**meta, **r} for r in rows], out_f


def torch_threads_one() -> None:
    """One intra-op thread for torch and BLAS (stable timings on shared CPUs, determinism)."""
    import torch

    torch.set_num_threads(1)
    set_process_blas_threads(1)  # this runs in the experiment's own worker process


def run_grid(*, alphas, lambdas, seeds, efolds, records, lr, n_train=None, jobs=1,
             progress=None, loss="mse"):  # fmt: skip
    """Train every (λ, α, seed); return (records frame, finals frame with fitted rates).

    ``jobs`` > 1 runs the independent trainings in a process pool (one thread each); the
    results do not depend on ``jobs``.
    """
    import pandas as pd

    lr_of = lr if isinstance(lr, dict) else {a: lr for a in alphas}
    tasks = [(lam, a, s, lr_of[a], efolds, records, n_train, loss)
             for lam in lambdas for a in alphas for s in range(seeds)]  # fmt: skip
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as ex:
            results = list(ex.map(_task, tasks))
    else:
        results = []
        for t in tasks:
            results.append(_task(t))
            if progress is not None:
                progress(1)
    rows = [r for res in results for r in res[0]]
    finals = [f for res in results for f in res[1]]
    return pd.DataFrame(rows), pd.DataFrame(finals)


def tune_lr(alphas, lam, efolds, records, n_train, jobs=1, loss="mse") -> tuple[dict, object]:
    """η per α: the largest η in :data:`LR_GRID` whose seed-0 run at λ = ``lam`` ends with
    ρ_∇ ≤ TOL_GRAD, else the η with the smallest final ρ_∇. Returns (η by α, pilot finals)."""
    import pandas as pd

    pilots = []
    for lr in LR_GRID:
        _, f = run_grid(alphas=alphas, lambdas=(lam,), seeds=1, efolds=efolds, records=records,
                        lr=lr, n_train=n_train, jobs=jobs, loss=loss)  # fmt: skip
        pilots.append(f)
    pil = pd.concat(pilots, ignore_index=True).drop_duplicates(["alpha", "lr"])
    chosen = {}
    for a in alphas:
        g = pil[pil.alpha == a].set_index("lr").grad_ratio
        ok = [lr for lr in LR_GRID if g[lr] <= TOL_GRAD]
        chosen[a] = ok[0] if ok else float(g.idxmin())
    return chosen, pil
