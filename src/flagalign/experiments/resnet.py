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

from .framework import ExperimentResult, register

__all__ = ["run", "CONFIG", "make_resnet", "inner_pairs", "predicted_angle"]

CONFIG = {
    "channels": (8, 16, 32),
    "blocks": 2,
    "n_train": 512,
    "lr": 0.25,
    "lam": 0.02,
    "efolds": 3.0,  # T = efolds / (ηλ)
    "records": 40,
    "seeds": 3,
}
QUICK = {"n_train": 128, "efolds": 1.0, "records": 16, "seeds": 1, "channels": (4, 8, 8)}

TOL_RATE = 0.05  # plain: fitted diag-D rate within 5 % of r
TOL_ANGLE = 0.2  # bn: median angular update within 20 % of the equilibrium prediction
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
        if not norm:  # keep the un-normalised residual sum from growing with depth
            with torch.no_grad():
                for blk in net.blocks:
                    blk.conv2.weight.mul_(0.25)
                    blk.conv2.bias.mul_(0.25)
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
                       "final_loss": float(loss), "steps": steps})  # fmt: skip
    return rows, ang_rows, finals
