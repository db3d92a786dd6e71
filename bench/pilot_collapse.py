"""Pilot runs behind the protocol of ``flagalign reproduce collapse`` (docs/results.md, COLLAPSE).

One training run per call; prints one JSON line per record (log-spaced steps) with the data-based
collapse metrics and the weight-only proxies of docs/theory.md eqs. (30)–(39). Examples::

    python bench/pilot_collapse.py --act relu --prep zca               # the experiment's protocol
    python bench/pilot_collapse.py --act relu --prep standard --sched step --loss mse
    python bench/pilot_collapse.py --act linear --prep zca --wd 0 --save lin.npz

``--sched step`` divides η by 10 at 1/3 and 2/3 of the steps (Papyan, Han & Donoho 2020);
``--save`` writes the inputs, labels and every layer's weights/biases to an .npz;
``--analyse FILE.npz`` prints, for a saved depth-3 *linear* net, the quantities of
docs/theory.md eq. (37)(a): balance errors, the off-diagonal share of K = V₀ᵀX̄ᵀX̄V₀ on the
chain's top C − 1 input directions, and the
commutators of W̄ᵀW̄ with MᵀM, with M's diagonalised-K version, with the total feature Gram and
with Σ_W.
One torch/BLAS thread (shared CPUs).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def analyse(path: str) -> dict:
    """docs/theory.md eq. (37)(a) diagnostics of a saved depth-3 linear net (see module doc)."""
    from flagalign.geometry import commutator_norm as cn

    z = np.load(path)
    X, y = z["x"].astype(np.float64), z["y"]
    W1, W2, W3 = z["W0"], z["W2"], z["W4"]
    C = int(y.max()) + 1
    A = W2 @ W1
    H = X @ A.T
    mu_x = np.stack([X[y == c].mean(0) for c in range(C)])
    Xb = mu_x - mu_x.mean(0)
    mu = np.stack([H[y == c].mean(0) for c in range(C)])
    M = mu - mu.mean(0)
    Hc = H - H.mean(0)
    Sw = sum((H[y == c] - mu[c]).T @ (H[y == c] - mu[c]) for c in range(C)) / len(H)
    Wc = W3 - W3.mean(0)
    G = Wc.T @ Wc
    Ua, sa, Vat = np.linalg.svd(A, full_matrices=False)
    K = Vat @ Xb.T @ Xb @ Vat.T
    Kd = np.diag(np.diag(K))
    k = C - 1  # the input directions the chain amplifies most
    Kk = K[:k, :k]
    out = {
        "balance_W3tW3_vs_W2W2t": np.linalg.norm(W3.T @ W3 - W2 @ W2.T) / np.linalg.norm(W3.T @ W3),
        "balance_W2tW2_vs_W1W1t": np.linalg.norm(W2.T @ W2 - W1 @ W1.T) / np.linalg.norm(W2.T @ W2),
        "K_offdiag_share_top_C-1": np.linalg.norm(Kk - np.diag(np.diag(Kk))) / np.linalg.norm(Kk),
        "c(WbarGram, MtM)": cn(G, M.T @ M),
        "c(WbarGram, MtM with K diagonal)": cn(G, Ua @ np.diag(sa) @ Kd @ np.diag(sa) @ Ua.T),
        "c(WbarGram, total feature Gram)": cn(G, Hc.T @ Hc),
        "c(WbarGram, Sigma_W)": cn(G, Sw),
        "c(WbarGram, W2W2t) weight-only": cn(G, W2 @ W2.T),
    }
    out = {k: round(float(v), 4) for k, v in out.items()}
    print(json.dumps(out))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--act", default="relu", choices=["linear", "relu"])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--loss", default="cross_entropy", choices=["cross_entropy", "mse"])
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--mom", type=float, default=0.9)
    p.add_argument("--bs", type=int, default=128)
    p.add_argument("--sched", default="const", choices=["const", "step"])
    p.add_argument("--prep", default="zca", choices=["standard", "zca"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nrec", type=int, default=8, help="log-spaced records from step 100")
    p.add_argument("--save", default="")
    p.add_argument("--tag", default="")
    p.add_argument("--analyse", default="", metavar="NPZ", help="analyse a saved linear net")
    a = p.parse_args(argv)
    if a.analyse:
        analyse(a.analyse)
        return

    import torch

    from flagalign.collapse import metrics, weight_only_arrays
    from flagalign.experiments.neural_collapse import whiten
    from flagalign.experiments.training import (features, load_digits_data, make_mlp,
                                                make_optimizer, torch_threads, train)  # fmt: skip

    with torch_threads(1):
        data = load_digits_data()
        if a.prep == "zca":
            data = whiten(data)
        x, y = data.x, data.y
        model = make_mlp(x.shape[1], a.width, a.depth, 10, activation=a.act, seed=a.seed)
        opt = make_optimizer(model, "sgd", lr=a.lr, weight_decay=a.wd, momentum=a.mom)
        when = set(np.geomspace(100, a.steps, a.nrec).round().astype(int).tolist()) | {a.steps}
        t0 = time.time()

        def record(step: int, loss: float) -> None:
            with torch.no_grad():
                H = features(model, x)
                acc = float((model(x).argmax(1) == y).double().mean())
            last, prev = model[-1], model[-3]
            r = metrics(H, y, last.weight.detach(), last.bias.detach())
            w = weight_only_arrays(last.weight.detach(), prev.weight.detach(),
                                   bias=prev.bias.detach(), activation=a.act)  # eq. (39), Ã = [A, b]
            Hd, yd = H.double().numpy(), y.numpy()
            mu = np.stack([Hd[yd == c].mean(0) for c in range(10)])
            s = np.linalg.svd(mu - mu.mean(0), compute_uv=False)[:9]
            row = dict(tag=a.tag, step=step, loss=loss, acc=acc, nc1=r.nc1, etf=r.nc2_etf,
                       nc3=r.nc3, nc4=r.nc4, l2s=r.level2_max_sine,
                       l2dim=r.level2_intersection_dim, l3=r.level3_commutator, w_etf=w.etf,
                       w_l2s=w.level2_max_sine, w_l3=w.level3_commutator,
                       sines=np.round(np.sin(r.level2_angles), 3).tolist(),
                       M_sv_ratio=np.round(s / s[0], 3).tolist())  # fmt: skip
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)  # fmt: skip

        def on_step(step: int, loss: float) -> None:
            if a.sched == "step":
                f = 1.0 if step < a.steps / 3 else 0.1 if step < 2 * a.steps / 3 else 0.01
                for g in opt.param_groups:
                    g["lr"] = a.lr * f
            if step in when:
                record(step, loss)

        record(0, float("nan"))
        train(model, x, y, steps=a.steps, lr=a.lr, optimizer=opt, batch_size=a.bs, loss=a.loss,
              seed=a.seed, on_step=on_step)  # fmt: skip
        print(json.dumps({"tag": a.tag, "seconds": round(time.time() - t0, 1)}), flush=True)
        if a.save:
            lin = [(i, m) for i, m in enumerate(model) if hasattr(m, "weight")]
            np.savez(a.save, x=x.numpy(), y=y.numpy(),
                     **{f"W{i}": m.weight.detach().double().numpy() for i, m in lin},
                     **{f"b{i}": m.bias.detach().double().numpy() for i, m in lin})  # fmt: skip


if __name__ == "__main__":
    main()
