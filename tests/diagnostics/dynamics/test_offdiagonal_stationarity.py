"""Eq. (24): at a ridge stationary point of a ReLU pair,
D_ij = −(1/λ) E[(W_nextᵀδ)_i u_j (1[u_j>0] − 1[u_i>0])] (issue 12, error 9).

Exactly, at any point, D = −(1/λ) E + (1/λ)(W_nextᵀe_next − ẽW̃ᵀ) with e = G + λp the ridge
gradient; the test checks that identity to rounding and that, near stationarity, the stated
formula reproduces a clearly nonzero off-diagonal D while diag D ≈ 0.
"""

import numpy as np
import torch
from torch import nn


def test_offdiagonal_imbalance_stationarity_identity():
    torch.manual_seed(1)
    N, a, n, m = 300, 5, 7, 3
    X = torch.randn(N, a, dtype=torch.float64)
    Y = torch.randn(N, m, dtype=torch.float64) + 2 * torch.tanh(X[:, :3])
    net = nn.Sequential(nn.Linear(a, n), nn.ReLU(), nn.Linear(n, m)).double()
    lam = 0.1
    opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=5000, tolerance_grad=1e-13,
                            tolerance_change=1e-16, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = 0.5 * ((net(X) - Y) ** 2).sum(1).mean()
        loss = loss + lam / 2 * sum((p**2).sum() for p in net.parameters())
        loss.backward()
        return loss

    for _ in range(12):
        opt.step(closure)
    closure()
    W, b, V, c = (t.detach().numpy() for t in (net[0].weight, net[0].bias, net[2].weight, net[2].bias))
    eW = np.hstack([net[0].weight.grad.numpy(), net[0].bias.grad.numpy()[:, None]])  # ridge gradients
    eV = net[2].weight.grad.numpy()
    Xt = np.hstack([X.numpy(), np.ones((N, 1))])
    Wt = np.hstack([W, b[:, None]])
    U = Xt @ Wt.T
    delta = np.maximum(U, 0) @ V.T + c - Y.numpy()  # per-sample ∂ℓ/∂z
    back = delta @ V  # (W_nextᵀδ)_i
    on = (U > 0).astype(float)
    E = (back[:, :, None] * U[:, None, :] * (on[:, None, :] - on[:, :, None])).mean(0)
    D = V.T @ V - Wt @ Wt.T
    exact = -E / lam + (V.T @ eV - eW @ Wt.T) / lam
    assert np.allclose(D, exact, rtol=0, atol=1e-10 * np.abs(D).max())
    off = D - np.diag(np.diag(D))
    assert np.linalg.norm(off) > 1.0  # off-diagonal D is not driven to 0 (1.76 here)
    assert np.linalg.norm(np.diag(D)) < 0.01 * np.linalg.norm(off)  # diag D is (eq. (23))
    # near stationarity (‖e‖ ≈ 1e-2) the stationarity formula alone gives D to ~5 %
    assert np.linalg.norm(D + E / lam) < 0.1 * np.linalg.norm(off)
