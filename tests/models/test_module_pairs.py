"""Live torch models paired as ``flagalign.load`` pairs them: ``module_pairs`` and the tracker."""

from __future__ import annotations

import pytest

from flagalign import load
from flagalign.models.module import linear_module_pairs, module_pairs

torch = pytest.importorskip("torch")


def _tiny_bert():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
        max_position_embeddings=16,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertModel(cfg).eval()


def test_tracker_pairs_on_bert_equal_load():
    from flagalign.diagnostics.dynamics.tracker import AlignmentTracker, discover_pairs

    model = _tiny_bert()
    net = load(model)
    assert net.architecture == "bert"
    whole = [
        (p.left[: -len(".weight")], p.right[: -len(".weight")])
        for p in net.pairs
        if not net.matrices[p.left].derived and not net.matrices[p.right].derived
    ]
    tracked = [(p.left, p.right) for p in discover_pairs(model)]
    assert tracked == whole  # the same pairs, in the same order
    exp = []
    for n in (0, 1):
        L = f"encoder.layer.{n}"
        exp += [(f"{L}.attention.output.dense", f"{L}.intermediate.dense"),
                (f"{L}.intermediate.dense", f"{L}.output.dense")]  # fmt: skip
    assert tracked == exp
    # registration order would have paired query -> key -> value; the layer graph never does
    assert not any("attention.self" in a and "attention.self" in c for a, c in tracked)
    # everything load pairs that the tracker leaves out is a derived matrix (head slice, stacked Q/K/V)
    left_out = [p for p in net.pairs if (p.left[:-7], p.right[:-7]) not in set(tracked)]
    assert left_out and all(net.matrices[p.left].derived or net.matrices[p.right].derived for p in left_out)
    tr = AlignmentTracker(model, every=1)
    assert [(p.left, p.right) for p in tr.pairs] == tracked


def test_module_pairs_none_for_unrecognised_modules():
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert module_pairs(mlp) is None
    from flagalign.diagnostics.dynamics.tracker import discover_pairs

    assert [(p.left, p.right, p.activation) for p in discover_pairs(mlp)] == [("0", "2", "homogeneous")]


def test_linear_module_pairs_skips_conv_views():
    from timm_like import ResNet18Like

    m = ResNet18Like()
    pairs = module_pairs(m)
    assert pairs is not None and len(pairs) == 23
    assert linear_module_pairs(m, pairs) == []  # convs and conv -> fc: no Linear -> Linear pair
