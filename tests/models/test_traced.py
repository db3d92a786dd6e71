"""torch.nn.Module sources without a family rule: torch.fx data flow (docs/formats.md §6)."""

from __future__ import annotations

import pytest

from flagalign import load


def test_traced_residual_needs_two_layer_summands_and_sees_add_():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class PosAdd(nn.Module):  # a learned offset is an addition but no residual connection
        def __init__(s):
            super().__init__()
            s.a, s.b = nn.Linear(4, 8), nn.Linear(8, 2)
            s.pos = nn.Parameter(torch.zeros(8))

        def forward(s, x):
            return s.b(torch.relu(s.a(x)) + s.pos)

    class InplaceRes(nn.Module):  # a true residual written with Tensor.add_
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(s, x):
            h = s.a(x)
            y = s.b(torch.relu(h))
            y = y.add_(h)
            return s.c(y)

    kinds = lambda n: {(p.left, p.right): p.kind for p in n.pairs}  # noqa: E731
    assert kinds(load(PosAdd())) == {("a.weight", "b.weight"): "sequential"}
    assert kinds(load(InplaceRes())) == {
        ("a.weight", "b.weight"): "sequential",
        ("b.weight", "c.weight"): "residual",
        ("a.weight", "c.weight"): "residual",
    }
