"""AlphaDropout is affine, not positively homogeneous (issue 12, error 10a)."""

import torch
from torch import nn

from flagalign.diagnostics.dynamics.tracker import discover_pairs


def test_alpha_dropout_is_not_homogeneous():
    torch.manual_seed(0)
    drop = nn.AlphaDropout(p=0.5).train()
    x = torch.randn(1000, 8).abs() + 0.1
    torch.manual_seed(1)
    y1 = drop(x)
    torch.manual_seed(1)
    y2 = drop(3.0 * x)
    assert not torch.allclose(y2, 3.0 * y1, atol=1e-3)  # σ(αu) ≠ ασ(u): the law (23) fails
    m = nn.Sequential(nn.Linear(4, 8), nn.AlphaDropout(0.2), nn.Linear(8, 3))
    assert [p.activation for p in discover_pairs(m)] == ["other"]
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))
    assert [p.activation for p in discover_pairs(m)] == ["homogeneous"]
