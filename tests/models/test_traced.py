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


# ---------------------------------------------------------------- ViT / ConvNeXt / MultiheadAttention


def _vit(depth=12):
    torch = pytest.importorskip("torch")
    from timm_like import VisionTransformer

    torch.manual_seed(0)
    m = VisionTransformer(depth=depth).eval()
    m(torch.randn(1, 3, 16, 16))  # the module runs as written
    return torch, m


def test_vit_fused_attention_heads_and_ov_pairs():
    import numpy as np

    torch, m = _vit()
    net = load(m)
    assert net.architecture == "traced"
    kinds = {}
    for p in net.pairs:
        kinds.setdefault(p.kind, []).append(p)
    # 12 blocks x 4 heads, V rows of head h -> proj columns of head h
    assert len(kinds["ov"]) == 48 and len(net.attention) == 12
    a = net.attention[3]
    assert (a.heads, a.head_dim, a.d_model) == (4, 8, 32)
    qkv = m.blocks[3].attn.qkv.weight.detach().double().numpy()
    np.testing.assert_allclose(net.head_slice(a, "v", 2), qkv[64 + 16 : 64 + 24], rtol=1e-7)
    np.testing.assert_allclose(net.head_slice(a, "q", 1), qkv[8:16], rtol=1e-7)
    ov = [p for p in kinds["ov"] if p.note == "layer 3 head 2"]
    assert [(p.left, p.right) for p in ov] == [
        ("blocks.3.attn.qkv.weight[v][kv2]", "blocks.3.attn.proj.weight[head2]")
    ]
    # the stream: each reader gets the last writers only; no writer -> every later reader
    other = {(p.left, p.right): p.kind for p in net.pairs if p.kind != "ov"}
    exp = {("patch_embed.proj.weight", "blocks.0.attn.qkv.weight"): "sequential",
           ("patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"): "residual"}  # fmt: skip
    for i in range(12):
        b = f"blocks.{i}"
        exp[(f"{b}.attn.proj.weight", f"{b}.mlp.fc1.weight")] = "residual"
        exp[(f"{b}.mlp.fc1.weight", f"{b}.mlp.fc2.weight")] = "sequential"
        nxt = f"blocks.{i + 1}.attn.qkv.weight" if i < 11 else "head.weight"
        exp[(f"{b}.mlp.fc2.weight", nxt)] = "residual"
    assert other == exp
    assert len(net.pairs) == 48 + 38  # was 481 pairs with the writer -> every-reader rule
    assert not net.warnings  # attention recognised: nothing here is a guess


def test_vit_depth_follows_data_flow():
    _, m = _vit(depth=4)
    net = load(m)
    from test_convnets import _assert_depth_strictly_increases

    _assert_depth_strictly_increases(net)
    depth = {(p.left, p.right): p.depth for p in net.pairs}
    assert depth[("patch_embed.proj.weight", "blocks.0.attn.qkv.weight")] == 0
    assert depth[("blocks.3.mlp.fc2.weight", "head.weight")] == max(depth.values())


def test_shape_reads_are_not_data_flow():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class ShapeUser(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(s, x):
            h = s.a(x)
            B, N, C = h.shape  # a metadata read of a's output ...
            y = s.b(x).reshape(B, N, C).view(h.size(0), -1, C)  # ... used only as sizes
            return s.c(y)

    net = load(ShapeUser())
    assert {(p.left, p.right) for p in net.pairs} == {("b.weight", "c.weight")}


def test_guessed_pairing_is_warned():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Gated(nn.Module):  # two layers' outputs multiplied: the pairing is a guess
        def __init__(s):
            super().__init__()
            s.gate, s.up, s.down = nn.Linear(4, 8), nn.Linear(4, 8), nn.Linear(8, 4)

        def forward(s, x):
            return s.down(torch.sigmoid(s.gate(x)) * s.up(x))

    net = load(Gated())
    assert {(p.left, p.right) for p in net.pairs} == {("gate.weight", "down.weight"), ("up.weight", "down.weight")}
    assert any("guess" in w and "gate" in w and "up" in w for w in net.warnings)


def test_convnext_style_stages():
    torch = pytest.importorskip("torch")
    from timm_like import ConvNeXtLike

    torch.manual_seed(0)
    m = ConvNeXtLike().eval()
    m(torch.randn(1, 3, 32, 32))
    net = load(m)
    got = {(p.left, p.right): p.kind for p in net.pairs}
    exp = {}
    writer = "stem.0.weight"
    for s in range(3):
        if s > 0:
            ds = f"stages.{s}.downsample.1.weight"
            exp[(writer, ds + ":in")] = "residual"
            writer = ds
        for j in range(2):
            b = f"stages.{s}.blocks.{j}"
            exp[(writer, f"{b}.mlp.fc1.weight")] = "residual" if j > 0 else "sequential"
            exp[(f"{b}.mlp.fc1.weight", f"{b}.mlp.fc2.weight")] = "sequential"
            if j == 1:  # the block-0 input also reaches block 1 through block 0's residual join
                prev_in = "stem.0.weight" if s == 0 else f"stages.{s}.downsample.1.weight"
                exp[(prev_in, f"{b}.mlp.fc1.weight")] = "residual"
            writer = f"{b}.mlp.fc2.weight"
    exp[(writer, "head.3.weight")] = "residual"
    assert got == exp
    from test_convnets import _assert_depth_strictly_increases

    _assert_depth_strictly_increases(net)
    depth = {(p.left, p.right): p.depth for p in net.pairs}
    stage_first = [depth[(f"stages.{s}.blocks.0.mlp.fc1.weight", f"stages.{s}.blocks.0.mlp.fc2.weight")] for s in range(3)]
    assert stage_first == sorted(set(stage_first))  # stages never collapse onto one depth


def test_multihead_attention_module():
    import numpy as np

    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Enc(nn.Module):
        def __init__(s):
            super().__init__()
            s.inp, s.ln = nn.Linear(5, 16), nn.LayerNorm(16)
            s.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            s.fc1, s.fc2 = nn.Linear(16, 32), nn.Linear(32, 16)

        def forward(s, x):
            x = s.inp(x)
            h = s.ln(x)
            x = x + s.attn(h, h, h, need_weights=False)[0]
            return x + s.fc2(torch.relu(s.fc1(s.ln(x))))

    m = Enc().eval()
    m(torch.randn(2, 3, 5))
    net = load(m)
    (a,) = net.attention
    assert (a.heads, a.head_dim, a.o) == (4, 4, "attn.out_proj.weight")
    w = m.attn.in_proj_weight.detach().double().numpy()
    np.testing.assert_allclose(net.head_slice(a, "k", 3), w[16 + 12 : 16 + 16], rtol=1e-7)
    got = {(p.left, p.right): p.kind for p in net.pairs if p.kind != "ov"}
    assert got == {
        ("inp.weight", "attn.in_proj_weight"): "sequential",
        ("attn.out_proj.weight", "fc1.weight"): "residual",
        ("inp.weight", "fc1.weight"): "residual",
        ("fc1.weight", "fc2.weight"): "sequential",
    }
    assert sum(p.kind == "ov" for p in net.pairs) == 4
