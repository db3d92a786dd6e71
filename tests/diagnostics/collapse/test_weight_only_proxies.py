"""Weight-only proxies of eq. (39) (issue 12, error 8): the Level-3 proxy includes A's bias, the
Level-2 proxy is not applicable across a ReLU plus bias."""

import numpy as np
import pytest
import torch
from torch import nn

from flagalign.diagnostics.collapse import weight_only_arrays


def _ridge_stationary_linear_net():
    """A linear net x → A x + b → W h + c, cross-entropy + (λ/2)‖θ‖², solved to ‖∇‖ < 1e-7."""
    torch.manual_seed(0)
    X = torch.randn(200, 8, dtype=torch.float64) + 1.0
    T = torch.randn(8, 4, dtype=torch.float64)
    y = (X @ T + 1.5 * torch.randn(200, 4, dtype=torch.float64)).argmax(1)
    m = nn.Sequential(nn.Linear(8, 6), nn.Linear(6, 4)).double()
    lam = 5e-2
    opt = torch.optim.LBFGS(m.parameters(), lr=1, max_iter=2000, tolerance_grad=1e-12,
                            tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(X), y) + lam / 2 * sum((p**2).sum() for p in m.parameters())
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    assert max(p.grad.norm().item() for p in m.parameters()) < 1e-6
    return [t.detach().numpy() for t in (m[0].weight, m[0].bias, m[1].weight)]


def test_level3_proxy_includes_the_bias():
    A, b, W = _ridge_stationary_linear_net()
    without = weight_only_arrays(W, A, activation="linear")
    with_bias = weight_only_arrays(W, A, bias=b, activation="linear")
    assert with_bias.bias_included and not without.bias_included
    assert without.level3_commutator > 1e-3  # 0.0094: the bias floor of eq. (26)
    assert with_bias.level3_commutator < 1e-5  # balanced: ÃÃᵀ = WᵀW (eq. (11))
    with pytest.raises(Exception):
        weight_only_arrays(W, A, bias=b[:-1])


def test_level2_proxy_not_applicable_across_relu():
    rng = np.random.default_rng(0)
    A, b, W = rng.standard_normal((6, 8)), rng.standard_normal(6), rng.standard_normal((4, 6))
    relu = weight_only_arrays(W, A, bias=b, activation="relu")
    assert np.isnan(relu.level2_overlap) and not relu.level2 and "not applicable" in relu.level2_note
    assert np.isfinite(relu.level3_commutator)
    lin = weight_only_arrays(W, A, bias=b, activation="linear")
    assert np.isfinite(lin.level2_overlap) and lin.level2_note == ""
    unknown = weight_only_arrays(W, A)
    assert np.isfinite(unknown.level2_overlap) and "activation=" in unknown.level2_note
