"""Pair.symmetry: the hidden-layer group of every pair (docs/theory.md eqs. (70)–(72)).

Each label is checked against the network function: a random element of the claimed group,
applied to the pair's hidden layer, leaves the output unchanged, and an element just outside
it (where the claim is "smaller than GL") changes it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from flagalign import load
from flagalign.models.symmetry import (
    GL, NONZERO_DIAG, O, PERM, POS_DIAG, SIGNED_PERM, UNKNOWN, meet, op_symmetry, path_symmetry,
)  # fmt: skip
from flagalign.models.synthetic import gpt2_tensors, llama_tensors, mlp_tensors, write_folder

torch = pytest.importorskip("torch")
nn = torch.nn


def test_meet_table():
    assert meet() == GL
    assert meet(GL, POS_DIAG) == POS_DIAG
    assert meet(POS_DIAG, SIGNED_PERM) == PERM
    assert meet(O, NONZERO_DIAG) == SIGNED_PERM
    assert meet(O, POS_DIAG) == PERM
    assert meet(POS_DIAG, "nonsense") == UNKNOWN
    assert op_symmetry("ReLU") == POS_DIAG and op_symmetry("gelu_new") == PERM
    assert op_symmetry("Tanh") == SIGNED_PERM and op_symmetry("LayerNorm") == UNKNOWN
    assert path_symmetry(["Dropout", "ReLU", "MaxPool2d"]) == POS_DIAG
    assert path_symmetry(["ReLU", "Tanh"]) == PERM


def _mlp(*acts):
    layers, sizes = [], [6, 10, 9, 8, 7, 5][: len(acts) + 2]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(acts):
            layers.extend(acts[i])
    return nn.Sequential(*layers).double()


def _act_group_holds(act, group, rng) -> bool:
    """Does y = W2 act(S W1 x) = W2 act(W1 x) S... hold for a random element of ``group``?"""
    torch.manual_seed(0)
    m = _mlp([act])
    x = torch.randn(7, 6, dtype=torch.double)
    y = m(x)
    s = {POS_DIAG: np.exp(rng.uniform(-1, 1, 10)),
         SIGNED_PERM: rng.choice([-1.0, 1.0], 10),
         NONZERO_DIAG: np.exp(rng.uniform(-1, 1, 10)) * rng.choice([-1.0, 1.0], 10)}[group]  # fmt: skip
    s = torch.tensor(s)
    with torch.no_grad():
        m[0].weight.mul_(s[:, None]), m[0].bias.mul_(s), m[2].weight.div_(s[None, :])
    return bool(torch.allclose(m(x), y, atol=1e-12))


@pytest.mark.parametrize(
    "act,expected",
    [(nn.ReLU(), POS_DIAG), (nn.LeakyReLU(0.1), POS_DIAG), (nn.Tanh(), SIGNED_PERM), (nn.GELU(), PERM),
     (nn.SiLU(), PERM), (nn.Identity(), GL), (nn.LayerNorm(10), UNKNOWN)],
)  # fmt: skip
def test_traced_activation_groups(act, expected):
    net = load(_mlp([act]))
    assert [p.symmetry for p in net.pairs] == [expected]
    rng = np.random.default_rng(0)
    if expected in (POS_DIAG, SIGNED_PERM):
        assert _act_group_holds(act, expected, rng)
        # and the next larger group does not hold: sign flips for ReLU, scalings for tanh
        assert not _act_group_holds(act, NONZERO_DIAG, rng)
    if expected == PERM:
        assert not _act_group_holds(act, SIGNED_PERM, rng)


def test_traced_chain_and_unknowns(tmp_path):
    net = load(_mlp([nn.ReLU(), nn.Dropout(0.1)], [nn.Tanh()], [nn.GELU()], []))
    assert [p.symmetry for p in net.pairs] == [POS_DIAG, SIGNED_PERM, PERM, GL]

    class Gated(nn.Module):  # a product of two branches: the traced rule does not guess
        def __init__(self):
            super().__init__()
            self.g, self.u, self.d = nn.Linear(4, 8), nn.Linear(4, 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.d(torch.nn.functional.silu(self.g(x)) * self.u(x))

    assert {p.symmetry for p in load(Gated()).pairs} == {UNKNOWN}
    # a state dict with no activation information: unknown, never guessed
    write_folder(tmp_path / "mlp", mlp_tensors(np.random.default_rng(0)), {})
    assert {p.symmetry for p in load(str(tmp_path / "mlp")).pairs} == {UNKNOWN}


def test_transformer_families(tmp_path):
    rng = np.random.default_rng(0)
    t, cfg = llama_tensors(rng)
    write_folder(tmp_path / "llama", t, cfg)
    c = Counter((p.kind, p.symmetry) for p in load(str(tmp_path / "llama")).pairs)
    assert set(c) == {("ov", GL), ("residual", O), ("mlp", NONZERO_DIAG)}
    c = Counter((p.kind, p.symmetry) for p in load(str(tmp_path / "llama"), fold_norms=False).pairs)
    assert ("residual", SIGNED_PERM) in c
    t, cfg = gpt2_tensors(rng)
    write_folder(tmp_path / "gpt2", t, cfg)
    c = Counter((p.kind, p.symmetry) for p in load(str(tmp_path / "gpt2")).pairs)
    assert set(c) == {("ov", GL), ("residual", O), ("mlp", PERM)}
    write_folder(tmp_path / "gpt2relu", t, dict(cfg, activation_function="relu"))
    c = Counter((p.kind, p.symmetry) for p in load(str(tmp_path / "gpt2relu")).pairs)
    assert ("mlp", POS_DIAG) in c


def test_rmsnorm_stream_admits_rotations_layernorm_only_those_fixing_ones():
    """Eq. (72): RMSNorm(Qz) = Q RMSNorm(z) for every orthogonal Q; LayerNorm only when Q fixes 1."""
    rng = np.random.default_rng(1)
    n = 8
    z = rng.normal(size=n)
    rms = lambda v: v / np.sqrt(np.mean(v**2))  # noqa: E731
    ln = lambda v: (v - v.mean()) / np.std(v)  # noqa: E731
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    assert np.allclose(rms(q @ z), q @ rms(z), atol=1e-13)
    assert not np.allclose(ln(q @ z), q @ ln(z), atol=1e-6)
    # a rotation of the complement of 1
    e = np.ones(n) / np.sqrt(n)
    basis = np.linalg.qr(np.column_stack([e, rng.normal(size=(n, n - 1))]))[0]
    r = np.linalg.qr(rng.normal(size=(n - 1, n - 1)))[0]
    q1 = basis @ np.block([[np.eye(1), np.zeros((1, n - 1))], [np.zeros((n - 1, 1)), r]]) @ basis.T
    assert np.allclose(ln(q1 @ z), q1 @ ln(z), atol=1e-12)
    # and no non-orthogonal G commutes with RMSNorm: a diagonal scaling breaks it
    d = np.diag(np.exp(rng.uniform(-1, 1, n)))
    assert not np.allclose(rms(d @ z), d @ rms(z), atol=1e-6)


def test_packaged_models(minilm, smollm2):
    assert {(p.kind, p.symmetry) for p in minilm.pairs} == {("ov", GL), ("residual", PERM), ("mlp", PERM)}
    assert {(p.kind, p.symmetry) for p in smollm2.pairs} == {("ov", GL), ("residual", O), ("mlp", NONZERO_DIAG)}
