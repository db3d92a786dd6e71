"""``flagalign reproduce resnet``: the ridge law in a residual network, with and without BatchNorm.

A small ResNet on 8×8 digits — a 3×3 stem, 3 stages × 2 basic blocks with (8, 16, 32)
channels (stride 2 at stages 2 and 3, 1×1 projection shortcuts), global average pooling and a
linear classifier — trained by full-batch gradient descent without momentum on a fixed,
stratified subset of the digits (cross-entropy), with coupled L2 decay λ on **every** parameter.

* ``plain`` (no normalisation, biases on every conv): inside each basic block the pair
  conv1 → ReLU → conv2 is positively homogeneous per channel, so the per-channel quantity
  diag D_c = ‖W_out[:, c]‖² − ‖[W_in[c], b_in[c]]‖² obeys eq. (21)–(23) entrywise and decays at
  r = −2 log(1 − ηλ) per step (docs/theory.md §2; the conv sums over kernel taps and positions
  but the per-channel scaling symmetry is the same). Residual joins are not tested: a channel of
  the residual stream is written by several layers (the skip and every block's conv2) and read
  by several, so no single pair owns it (the layer graph does not pair them either).
* ``bn`` (BatchNorm after every conv, convs without bias): each conv filter feeding a BN is
  scale-invariant, the hypotheses of eq. (20)–(23) fail and no ridge law is claimed. What
  happens instead (Kosson et al. 2024, "Rotational equilibrium"): with gradient g ⊥ w, GD with
  coupled L2 gives ‖w_{t+1}‖² = (1 − ηλ)²‖w_t‖² + η²‖g_t‖², whose equilibrium has a per-step
  angular update tan φ = √(2ηλ − η²λ²)/(1 − ηλ) ≈ √(2ηλ), independent of the loss.
  We measure φ per filter over the last tenth of training and, as information, the same diag-D
  rate as in ``plain`` (no prediction) and the Gram commutator vs its Haar null (eq. (50)).

Pass criteria: docs/results.md ("resnet"), fixed before the first full run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .._output import OutputFolder
from ..diagnostics.dynamics.rates import law_rate
from .framework import ExperimentResult, register

__all__ = ["run", "CONFIG", "make_resnet", "inner_pairs", "predicted_angle"]

CONFIG = {
    "channels": (8, 16, 32),
    "blocks": 2,
    "n_train": 256,
    "lr": 0.1,  # protocol v2; v1 (first full run) used 0.25 — see docs/results.md
    "lam": 0.02,
    "efolds": 2.0,  # T = efolds / (ηλ)
    "records": 40,
    "seeds": 2,
}
QUICK = {"n_train": 64, "efolds": 0.5, "records": 12, "seeds": 1, "channels": (4, 8, 8),
         "lr": 0.25}

TOL_RATE = 0.05  # plain: fitted diag-D rate within 5 % of r
TOL_ANGLE = 0.2  # bn: median angular update within 20 % of the equilibrium prediction
TOL_NORM = 0.01  # bn: the norm recursion without first-order term (BN's ε breaks it slightly)
ACC_MIN = 0.9  # both: the net must train, else the test says nothing
NULL_SAMPLES = 128


def predicted_angle(lr: float, lam: float) -> float:
    """Equilibrium per-step angular update φ of a scale-invariant weight under GD with coupled
    L2 (Kosson et al. 2024): tan φ = √(2ηλ − η²λ²)/(1 − ηλ)."""
    x = lr * lam
    return float(np.arctan(np.sqrt(2 * x - x * x) / (1 - x)))


def make_resnet(channels, blocks: int, *, norm: bool, seed: int):
    """The ResNet of the module docstring (float32, PyTorch default init, seeded)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not norm)
            self.bn1 = nn.BatchNorm2d(cout) if norm else nn.Identity()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=not norm)
            self.bn2 = nn.BatchNorm2d(cout) if norm else nn.Identity()
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not norm),
                                           nn.BatchNorm2d(cout) if norm else nn.Identity())

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return torch.relu(h + (x if self.short is None else self.short(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, channels[0], 3, 1, 1, bias=not norm)
            self.bn = nn.BatchNorm2d(channels[0]) if norm else nn.Identity()
            layers, cin = [], channels[0]
            for s, c in enumerate(channels):
                for b in range(blocks):
                    layers.append(Block(cin, c, 2 if (s > 0 and b == 0) else 1))
                    cin = c
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(cin, 10)

        def forward(self, x):
            h = torch.relu(self.bn(self.stem(x)))
            h = self.blocks(h)
            return self.fc(h.mean(dim=(2, 3)))

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = Net()
        if not norm:
            # He init keeps the signal alive through 13 un-normalised convs (PyTorch's default,
            # gain 1/√3 per layer, shrinks it ~1e-3 and weight decay then kills the net); the
            # residual branches start at 1/4 scale so that the sums do not grow with depth.
            with torch.no_grad():
                for m in net.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                        m.bias.zero_()
                for blk in net.blocks:
                    blk.conv2.weight.mul_(0.25)
    finally:
        torch.random.set_rng_state(state)
    return net


def inner_pairs(net) -> list[tuple[str, object, object]]:
    """(name, conv1, conv2) of every basic block: the pairs the per-channel law is about."""
    return [(f"block{i}", blk.conv1, blk.conv2) for i, blk in enumerate(net.blocks)]


def _pair_record(conv1, conv2) -> dict:
    from ..geometry import commutator_norm

    W1 = conv1.weight.detach().double().numpy().reshape(conv1.out_channels, -1)
    if conv1.bias is not None:
        W1 = np.column_stack([W1, conv1.bias.detach().double().numpy()])
    W2 = conv2.weight.detach().double().numpy()  # (out, in, kh, kw)
    W2 = W2.transpose(1, 0, 2, 3).reshape(W2.shape[1], -1)  # (in = c, out·kh·kw)
    A, B = W1 @ W1.T, W2 @ W2.T  # per-channel Grams on ℝ^c (in-side and out-side)
    d = np.diag(B) - np.diag(A)
    return {"D_diag": float(np.linalg.norm(d)), "in_norm2": float(np.trace(A)),
            "c_aug": float(commutator_norm(A, B)), "_A": A, "_B": B}  # fmt: skip


def _load(n_train: int):
    import torch
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = []
    for c in range(10):  # stratified fixed subset
        ic = np.flatnonzero(y == c)
        idx.extend(rng.permutation(ic)[: n_train // 10 + (1 if c < n_train % 10 else 0)])
    idx = np.sort(np.asarray(idx))
    X = X[idx] / 16.0
    X = (X - X.mean()) / X.std()
    return (torch.as_tensor(X.reshape(-1, 1, 8, 8), dtype=torch.float32),
            torch.as_tensor(y[idx], dtype=torch.long))  # fmt: skip


def _bn_filters(net) -> list[tuple[str, object]]:
    """Every conv whose output feeds a BatchNorm (scale-invariant per output filter)."""
    import torch

    out = [("stem", net.stem)]
    for i, blk in enumerate(net.blocks):
        out += [(f"block{i}.conv1", blk.conv1), (f"block{i}.conv2", blk.conv2)]
        if blk.short is not None:
            out.append((f"block{i}.short", blk.short[0]))
    return [(n, m) for n, m in out if isinstance(m, torch.nn.Conv2d)]


def train_variant(X, y, *, norm: bool, seed: int, cfg: dict) -> tuple[list[dict], list[dict]]:
    """Full-batch GD with coupled L2; returns (per-record pair rows, per-filter angle rows)."""
    import torch
    import torch.nn.functional as F

    net = make_resnet(cfg["channels"], cfg["blocks"], norm=norm, seed=seed)
    net.train()  # BN uses batch statistics: the full batch, so the objective is deterministic
    params = list(net.parameters())
    lr, lam = cfg["lr"], cfg["lam"]
    steps = int(round(cfg["efolds"] / (lr * lam)))
    n_rec = cfg["records"]
    when = set(np.linspace(0, steps, n_rec + 1).round().astype(int).tolist())
    tail_start = int(0.9 * steps)
    rows, angles = [], {}
    norm_err, eq_index = 0.0, []
    filters = _bn_filters(net) if norm else []
    prev = None
    for t in range(steps + 1):
        if t in when:
            with torch.no_grad():
                acc = float((net(X).argmax(1) == y).float().mean())
            for name, c1, c2 in inner_pairs(net):
                rec = _pair_record(c1, c2)
                rec.pop("_A"), rec.pop("_B")
                rows.append({"step": t, "pair": name, "train_acc": acc, **rec})
        if t == steps:
            break
        if norm and t >= tail_start:
            prev = [m.weight.detach().clone().reshape(m.out_channels, -1) for _, m in filters]
        loss = F.cross_entropy(net(X), y)
        grads = torch.autograd.grad(loss, params)
        if norm:  # scale invariance: ‖w'‖² = (1−ηλ)²‖w‖² + η²‖g‖² exactly iff ⟨w, g⟩ = 0
            gmap = {id(p): g for p, g in zip(params, grads)}
            worst, eq = 0.0, []
            for _, m in filters:
                w = m.weight.detach().double().reshape(m.out_channels, -1)
                g = gmap[id(m.weight)].double().reshape(m.out_channels, -1)
                w1 = (1 - lr * lam) * w - lr * g
                err = 2 * lr * (1 - lr * lam) * (w * g).sum(1).abs() / (w1 * w1).sum(1)
                worst = max(worst, float(err.max()))
                eq.append((lr * (g * g).sum(1) / (2 * lam * (w * w).sum(1))).numpy())
            norm_err = max(norm_err, worst)
            if t >= tail_start:
                eq_index.append(float(np.median(np.concatenate(eq))))
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.mul_(1.0 - lr * lam).sub_(lr * g)
        if norm and t >= tail_start:
            for (name, m), w0 in zip(filters, prev):
                w1 = m.weight.detach().reshape(m.out_channels, -1)
                cos = (w0 * w1).sum(1) / (w0.norm(dim=1) * w1.norm(dim=1))
                angles.setdefault(name, []).append(torch.arccos(cos.clamp(-1, 1)).double().numpy())
    ang_rows = [{"filter_layer": name, "filter": i, "angle": float(np.mean([a[i] for a in v]))}
                for name, v in angles.items() for i in range(len(v[0]))]  # fmt: skip
    finals = []
    from ..geometry.nulls import commutator_null

    for name, c1, c2 in inner_pairs(net):
        rec = _pair_record(c1, c2)
        a = np.clip(np.linalg.eigvalsh(rec["_A"]), 0, None)
        b = np.clip(np.linalg.eigvalsh(rec["_B"]), 0, None)
        nl = commutator_null(a, b, rec["_A"].shape[0], samples=NULL_SAMPLES, seed=0)
        finals.append({"pair": name, "c_aug": rec["c_aug"], "null": nl.mean,
                       "c_over_null": rec["c_aug"] / nl.mean if nl.mean > 0 else float("nan"),
                       "final_loss": float(loss.detach()), "steps": steps,
                       "norm_recursion_err": norm_err if norm else float("nan"),
                       "equilibrium_index": float(np.mean(eq_index)) if eq_index else float("nan")})  # fmt: skip
    return rows, ang_rows, finals


def _rates(rows, r_pred: float):
    import pandas as pd

    from ..diagnostics.dynamics.rates import fit_rate

    df = pd.DataFrame(rows)
    out = []
    for pair, g in df.groupby("pair", sort=False):
        fit = fit_rate(g.step, g.D_diag, tail=0.5)
        out.append({"pair": pair, "rate_D_diag": fit.rate, "rate_se": fit.stderr,
                    "ratio": fit.rate / r_pred,
                    "D_diag_first": float(g.D_diag.iloc[0]), "D_diag_last": float(g.D_diag.iloc[-1])})
    return pd.DataFrame(out)


def verdict(rates, angles, finals, cfg) -> list:
    """docs/results.md ("resnet") criteria."""
    from .verdict import check

    out = []
    r = law_rate(cfg["lr"], cfg["lam"])
    p = rates[rates.variant == "plain"]
    fp = finals[finals.variant == "plain"].drop_duplicates("seed")
    out.append(check("plain: the net trains (min final train accuracy over seeds)",
                     fp.train_acc.min(), ">=", ACC_MIN))
    dev = (p.ratio - 1).abs()
    worst = p.loc[dev.idxmax()]
    out.append(check("plain: per-channel diag D of every block's conv1→conv2 decays at "
                     "r = −2log(1−ηλ): max |r̂/r − 1| over blocks and seeds", dev.max(), "<=",
                     TOL_RATE, f"r = {r:.4g}; worst {worst.pair} seed {int(worst.seed)}: "
                     f"r̂ = {worst.rate_D_diag:.4g}"))
    fb = finals[finals.variant == "bn"].drop_duplicates("seed")
    out.append(check("bn: the net trains (min final train accuracy over seeds)",
                     fb.train_acc.min(), ">=", ACC_MIN))
    out.append(check("bn: scale invariance, ‖w′‖² = (1−ηλ)²‖w‖² + η²‖g‖² per filter: max "
                     "relative error over all steps, filters, seeds", fb.norm_recursion_err.max(),
                     "<=", TOL_NORM))
    phi = predicted_angle(cfg["lr"], cfg["lam"])
    med = angles.groupby("seed").angle.median()
    dev = (med / phi - 1).abs().max()
    out.append(check("bn: median per-step angular update of conv filters before a BN, last 10 % "
                     "of steps, vs the equilibrium arctan(√(2ηλ−η²λ²)/(1−ηλ)): max |φ̂/φ − 1| "
                     "over seeds", dev, "<=", TOL_ANGLE,
                     f"φ = {phi:.4g} rad; medians {', '.join(f'{x:.4g}' for x in med)}; "
                     f"equilibrium index η‖g‖²/(2λ‖w‖²) (1 at equilibrium): "
                     f"{', '.join(f'{x:.3g}' for x in fb.equilibrium_index)}"))
    return out


@register("resnet")
def run(out_dir, quick: bool = False, progress: bool = True,
        seeds: int | None = None) -> ExperimentResult:  # fmt: skip
    """Train both variants for every seed; write CSVs, verdict.json, a figure and a table
    (one atomic run, set ``resnet``, docs/security.md)."""
    with OutputFolder(out_dir, set_name="resnet").open() as tx:  # exit 2 before training
        return _run(tx, quick, progress, seeds)


def _run(tx, quick: bool, progress: bool, seeds) -> ExperimentResult:
    """Train, tabulate, and stage the outputs in ``tx`` (committed by :func:`run`)."""
    import pandas as pd

    from .hierarchy import torch_threads_one
    from .verdict import criteria_table, frame_markdown, write_verdict

    cfg = {**CONFIG, **(QUICK if quick else {})}
    if seeds is not None:
        cfg["seeds"] = int(seeds)
    torch_threads_one()
    t0 = time.perf_counter()
    X, y = _load(cfg["n_train"])
    r_pred = law_rate(cfg["lr"], cfg["lam"])
    recs, angs, fins, rates = [], [], [], []
    for variant, norm in (("plain", False), ("bn", True)):
        for s in range(cfg["seeds"]):
            t1 = time.perf_counter()
            rows, ang, finals = train_variant(X, y, norm=norm, seed=s, cfg=cfg)
            sec = time.perf_counter() - t1
            meta = {"variant": variant, "seed": s}
            recs += [{**meta, **r} for r in rows]
            angs += [{**meta, **a} for a in ang]
            fins += [{**meta, **f, "seconds": sec} for f in finals]
            rates.append(_rates(rows, r_pred).assign(**meta))
            if progress and sys.stderr.isatty():
                print(f"resnet: {variant} seed {s}: {sec:.0f} s", file=sys.stderr)
    recs, angs, fins = pd.DataFrame(recs), pd.DataFrame(angs), pd.DataFrame(fins)
    rates = pd.concat(rates, ignore_index=True)
    acc_last = recs.groupby(["variant", "seed"]).train_acc.last().rename("train_acc")
    fins = fins.merge(acc_last.reset_index(), on=["variant", "seed"])
    crit = verdict(rates, angs, fins, cfg)
    seconds = time.perf_counter() - t0
    names = ("resnet_records.csv", "resnet_rates.csv", "resnet_angles.csv", "resnet_final.csv")
    files = [tx.write_csv(f, df) for f, df in zip(names, (recs, rates, angs, fins))]
    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    meta["predicted_rate"] = r_pred
    meta["predicted_angle"] = predicted_angle(cfg["lr"], cfg["lam"])
    files.append(write_verdict(tx, "resnet", crit, quick=quick, seconds=seconds, meta=meta))
    files.append(_figure(recs, r_pred, tx, "resnet.png"))
    info = (rates.groupby(["variant", "pair"])
            .agg(rate=("rate_D_diag", "mean"), ratio=("ratio", "mean"),
                 D_first=("D_diag_first", "mean"), D_last=("D_diag_last", "mean"))
            .reset_index())  # fmt: skip
    fin = (fins.groupby(["variant", "pair"])
           .agg(c_aug=("c_aug", "mean"), c_over_null=("c_over_null", "mean"),
                loss=("final_loss", "mean")).reset_index())  # fmt: skip
    acc = recs.groupby(["variant", "seed"]).train_acc.last().groupby("variant").mean()
    head = (f"ResNet (stem + 3 stages × {cfg['blocks']} basic blocks, channels "
            f"{list(cfg['channels'])}) on {cfg['n_train']} digits (8×8), full-batch GD η = "
            f"{cfg['lr']:g}, coupled L2 λ = {cfg['lam']:g} on every parameter, T = "
            f"{cfg['efolds']:g}/(ηλ) = {int(fins.steps.iloc[0])} steps, cross-entropy, seeds "
            f"0–{cfg['seeds'] - 1}{' (--quick)' if quick else ''}; final train accuracy "
            f"plain {acc.get('plain', float('nan')):.3f}, bn {acc.get('bn', float('nan')):.3f}; "
            f"{seconds:.0f} s wall.")  # fmt: skip
    md = "\n".join([head, "", criteria_table(crit), "",
                    "Per-channel diag D of conv1→conv2 (mean over seeds; bn: no law, informational):",
                    "", frame_markdown(info), "",
                    "Final Gram commutator of the same pairs vs its Haar null (eq. (50); "
                    "informational):", "", frame_markdown(fin)])  # fmt: skip
    files.append(tx.write_text("resnet.md", md + "\n"))
    return ExperimentResult(name="resnet", table_markdown=md,
                            passed=all(c.passed for c in crit), files=files)  # fmt: skip


def _figure(recs, r_pred: float, tx, name: str) -> Path:
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy); no pyplot state

    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, variant in zip(axes, ("plain", "bn")):
        sub = recs[(recs.variant == variant) & (recs.seed == 0)]
        for pair, g in sub.groupby("pair", sort=False):
            ax.semilogy(g.step, g.D_diag, label=pair)
        g = sub[sub.pair == sub.pair.iloc[0]]
        s0, v0 = float(g.step.iloc[len(g) // 2]), float(g.D_diag.iloc[len(g) // 2])
        xs = np.array([s0, float(g.step.iloc[-1])])
        ax.semilogy(xs, v0 * np.exp(-r_pred * (xs - s0)), "k--", lw=0.8, label="slope r")
        ax.set_title(f"{variant}: per-channel ‖diag D‖ (conv1→conv2), seed 0", fontsize=9)
        ax.set_xlabel("GD step")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return tx.write_figure(name, fig, dpi=100)
