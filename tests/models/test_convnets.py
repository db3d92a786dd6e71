"""Conv layer graphs: MobileNetV2 and EfficientNet-Lite0 (packaged), a torchvision-style
ResNet-18 built here, BatchNorm/depthwise folding, torch.fx data flow (docs/formats.md)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from flagalign import load
from flagalign.models import aliases

torch = pytest.importorskip("torch")
nn = torch.nn


def _need(alias):
    try:
        aliases.alias_path(alias)
    except Exception:
        pytest.skip(f"packaged model for {alias} not installed")


def _pairs(net):
    return [(p.left, p.right, p.kind, p.dim) for p in net.pairs]


def _mbconv_expected(settings, stem_c, names, residual_rule):
    """Pairs from the published block configuration (not from the weights)."""
    out, writer, c_in, prev_res, idx = [], names["stem"], stem_c, False, names["first"]
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            res = residual_rule(stride, c_in, c)
            exp = c_in * t
            proj = names["project"](idx, t)
            reader = names["expand"](idx) if t != 1 else proj
            out.append((writer, reader, "residual" if res or prev_res else "conv", c_in))
            if t != 1:
                out.append((reader, proj, "conv", exp))
            writer, prev_res, c_in, idx = proj, res, c, idx + 1
    out.append((writer, names["head"], "residual" if prev_res else "conv", c_in))
    out.append((names["head"], names["fc"], "conv", 1280))
    return out


@pytest.mark.realmodel
def test_mobilenetv2_pairs():
    _need("mobilenetv2")
    net = load("mobilenetv2")
    # torchvision MobileNetV2 inverted_residual_setting (t, c, n, s); use_res_connect = s == 1 and inp == oup
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    names = {
        "stem": "features.0.0.weight",
        "first": 1,
        "head": "features.18.0.weight",
        "fc": "classifier.1.weight",
        "expand": lambda i: f"features.{i}.conv.0.0.weight",
        "project": lambda i, t: f"features.{i}.conv.2.weight" if t != 1 else f"features.{i}.conv.1.weight",
    }
    assert _pairs(net) == _mbconv_expected(settings, 32, names, lambda s, i, o: s == 1 and i == o)
    assert Counter(p.kind for p in net.pairs) == {"conv": 20, "residual": 15}


@pytest.mark.realmodel
def test_efficientnet_lite0_pairs():
    _need("efficientnet-lite0")
    net = load("efficientnet-lite0")
    # EfficientNet-Lite0 block args (expand t, out c, repeats n, stride s); skip iff s == 1 and in == out
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 40, 2, 2),
        (6, 80, 3, 2),
        (6, 112, 3, 1),
        (6, 192, 4, 2),
        (6, 320, 1, 1),
    ]
    names = {
        "stem": "_conv_stem.weight",
        "first": 0,
        "head": "_conv_head.weight",
        "fc": "_fc.weight",
        "expand": lambda i: f"_blocks.{i}._expand_conv.weight",
        "project": lambda i, t: f"_blocks.{i}._project_conv.weight",
    }
    assert _pairs(net) == _mbconv_expected(settings, 32, names, lambda s, i, o: s == 1 and i == o)


@pytest.mark.realmodel
def test_batchnorm_and_depthwise_folding():
    _need("mobilenetv2")
    from flagalign.models.aliases import alias_path

    sd = torch.load(alias_path("mobilenetv2"), weights_only=True)
    net = load("mobilenetv2")
    # expand conv + BN (eval) == folded matrix @ x + folded bias
    conv, bn = "features.2.conv.0.0", "features.2.conv.0.1"
    x = torch.randn(1, 16, 1, 1, dtype=torch.float64)
    ref = torch.nn.functional.batch_norm(
        torch.nn.functional.conv2d(x, sd[f"{conv}.weight"].double()),
        sd[f"{bn}.running_mean"].double(),
        sd[f"{bn}.running_var"].double(),
        sd[f"{bn}.weight"].double(),
        sd[f"{bn}.bias"].double(),
        False,
        0.0,
        1e-5,
    )
    ours = net.matrix(f"{conv}.weight") @ x.numpy().reshape(16) + net.bias(f"{conv}.weight")
    np.testing.assert_allclose(ours, ref.numpy().reshape(-1), rtol=1e-10, atol=1e-12)
    # project reads through the depthwise conv: columns scaled by s_c * ||K_c||_F of the depthwise + BN
    dw, dbn, proj, pbn = (
        "features.2.conv.1.0",
        "features.2.conv.1.1",
        "features.2.conv.2",
        "features.2.conv.3",
    )
    sd = {k: v.double() for k, v in sd.items()}  # reference computed in float64 throughout
    s_dw = sd[f"{dbn}.weight"] / torch.sqrt(sd[f"{dbn}.running_var"] + 1e-5)
    d = s_dw * sd[f"{dw}.weight"].double().flatten(1).norm(dim=1)
    s_p = sd[f"{pbn}.weight"] / torch.sqrt(sd[f"{pbn}.running_var"] + 1e-5)
    want = s_p[:, None] * sd[f"{proj}.weight"].double().reshape(24, 96) * d[None, :]
    np.testing.assert_allclose(net.matrix(f"{proj}.weight"), want.numpy(), rtol=1e-10)
    raw = load("mobilenetv2", fold_norms=False)
    np.testing.assert_array_equal(
        raw.matrix(f"{proj}.weight"), sd[f"{proj}.weight"].double().reshape(24, 96).numpy()
    )


class _Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + idt)


class _ResNet18(nn.Module):
    """torchvision.models.resnet18's module names and block layout, random weights."""

    def __init__(self, width=(64, 128, 256, 512), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width[0])
        cin = width[0]
        for i, w in enumerate(width, start=1):
            setattr(self, f"layer{i}", nn.Sequential(_Basic(cin, w, 1 if i == 1 else 2), _Basic(w, w, 1)))
            cin = w
        self.fc = nn.Linear(width[-1], classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3)))


def test_resnet18_module_pairs(tmp_path):
    torch.manual_seed(0)
    model = _ResNet18(width=(8, 16, 32, 64)).eval()
    net = load(model)
    assert net.architecture == "resnet"
    blocks = [(i, j) for i in range(1, 5) for j in range(2)]
    has_ds = {(i, 0) for i in (2, 3, 4)}
    width = {1: 8, 2: 16, 3: 32, 4: 64}
    exp, writers, wdim = [], ["conv1.weight"], 8
    for i, j in blocks:
        L = f"layer{i}.{j}"
        readers = [f"{L}.conv1.weight:in"] + ([f"{L}.downsample.0.weight"] if (i, j) in has_ds else [])
        exp += [(w, r, "residual", wdim) for w in writers for r in readers]
        exp.append((f"{L}.conv1.weight", f"{L}.conv2.weight:in", "conv", width[i]))
        writers = [f"{L}.conv2.weight"] + ([f"{L}.downsample.0.weight"] if (i, j) in has_ds else [])
        wdim = width[i]
    exp += [(w, "fc.weight", "residual", 64) for w in writers]
    assert _pairs(net) == exp
    assert Counter(p.kind for p in net.pairs) == {"residual": 15, "conv": 8}
    # the same rules from a state-dict file (weights_only torch.load)
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    assert _pairs(load(path)) == exp
    # the reader view has the next conv's input channels as columns: (C_out*kh*kw, C_in)
    k = model.layer1[0].conv2.weight.detach().double()
    bn = model.layer1[0].bn2
    s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + 1e-5)
    want = (k * s[:, None, None, None]).permute(0, 2, 3, 1).reshape(8 * 9, 8)
    np.testing.assert_allclose(net.matrix("layer1.0.conv2.weight:in"), want.numpy(), rtol=1e-12)


class _SkipMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.fc1, self.fc2, self.fc3 = (
            nn.Linear(4, 6),
            nn.Linear(6, 9),
            nn.Linear(9, 6),
            nn.Linear(6, 3),
        )

    def forward(self, x):
        h = self.fc0(x)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(h)))) + h)


def test_fx_traced_data_flow_with_skip():
    model = _SkipMLP()
    net = load(model)
    assert net.architecture == "traced"
    got = sorted((p.left, p.right, p.kind) for p in net.pairs)
    assert got == sorted(
        [
            ("fc0.weight", "fc1.weight", "sequential"),
            ("fc1.weight", "fc2.weight", "sequential"),
            ("fc2.weight", "fc3.weight", "residual"),
            ("fc0.weight", "fc3.weight", "residual"),
        ]
    )
    np.testing.assert_array_equal(net.bias("fc3.weight"), model.fc3.bias.detach().double().numpy())


def test_sequential_module_not_traceable_falls_back():
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 5), nn.Linear(5, 2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return self.b(self.a(x))
            return self.b(self.a(-x))

    net = load(Untraceable())
    assert [(p.left, p.right, p.kind) for p in net.pairs] == [("a.weight", "b.weight", "sequential")]
    assert any("could not trace" in w for w in net.warnings)


def _conv_bn_seq():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    with torch.no_grad():
        seq[1].weight.uniform_(0.5, 3)
        seq[1].bias.normal_()
        seq[1].running_var.uniform_(0.1, 4)
        seq[1].running_mean.normal_()
    return torch, seq


def _check_folded(net, seq, torch):
    bn = seq[1]
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    t = bn.bias.detach().double().numpy() - s * bn.running_mean.double().numpy()
    raw = seq[0].weight.detach().double().numpy().reshape(8, -1)
    b0 = seq[0].bias.detach().double().numpy()
    np.testing.assert_allclose(net.matrix("0.weight"), s[:, None] * raw, rtol=1e-6)
    np.testing.assert_allclose(net.bias("0.weight"), s * b0 + t, rtol=1e-6, atol=1e-6)
    # the folded conv reproduces conv -> BN on a real input
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        ref = seq[1](seq[0](x))[0, :, 0, 0].double().numpy()
    patch = x[0, :, :3, :3].double().numpy().reshape(-1)
    np.testing.assert_allclose(net.matrix("0.weight") @ patch + net.bias("0.weight"), ref, atol=1e-5)


def test_batchnorm_folded_on_traced_module_path():
    torch, seq = _conv_bn_seq()
    net = load(seq, fold_norms=True)
    assert net.architecture == "traced" and net.fold_norms
    _check_folded(net, seq, torch)
    assert not any("BatchNorm" in w for w in net.warnings)
    raw = load(seq, fold_norms=False)
    w0 = seq[0].weight.detach().double().numpy().reshape(8, -1)
    np.testing.assert_array_equal(raw.matrix("0.weight"), w0)


def test_batchnorm_folded_on_sequential_file_path(tmp_path):
    torch, seq = _conv_bn_seq()
    p = str(tmp_path / "seq.pt")
    torch.save(seq.state_dict(), p)
    net = load(p)
    assert net.architecture == "sequential"
    _check_folded(net, seq, torch)
    assert not any("BatchNorm" in w for w in net.warnings)


def test_batchnorm_not_after_a_layer_is_warned():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    m = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    net = load(m)
    assert any("BatchNorm not folded" in w and w.endswith(": 0") for w in net.warnings)


# ---------------------------------------------------------------- data-flow depth, zero-γ BatchNorm


def _assert_depth_strictly_increases(net):
    """For every two chained pairs a -> b, b' -> c (b, b' views of one layer): depth grows."""
    from flagalign.models.depth import layer_of

    layer = layer_of(net.matrices)
    by_left: dict = {}
    for p in net.pairs:
        by_left.setdefault(layer[p.left], []).append(p)
    chained = 0
    for p in net.pairs:
        for q in by_left.get(layer[p.right], []):
            assert p.depth < q.depth, (p.name, p.depth, q.name, q.depth)
            chained += 1
    assert chained >= len(net.pairs) // 2  # the check really walked the data flow
    return chained


def test_resnet18_depth_is_data_flow_position():
    from timm_like import ResNet18Like

    net = load(ResNet18Like().eval())
    assert net.architecture == "resnet" and len(net.pairs) == 23
    _assert_depth_strictly_increases(net)
    depth = {p.name: p.depth for p in net.pairs}
    # stage-major: a later stage is deeper, whatever the block index inside the stage
    d = lambda i, j: depth[f"layer{i}.{j}.conv1.weight -> layer{i}.{j}.conv2.weight:in"]  # noqa: E731
    assert d(1, 0) < d(1, 1) < d(2, 0) < d(2, 1) < d(3, 0) < d(3, 1) < d(4, 0) < d(4, 1)
    assert depth["conv1.weight -> layer1.0.conv1.weight:in"] == 0
    assert depth["layer4.1.conv2.weight -> fc.weight"] == max(depth.values())
    # the downsample branch sits beside conv1: same level, as the stream they both read
    assert depth["layer2.0.downsample.0.weight -> layer2.1.conv1.weight:in"] == d(2, 0)


def test_zero_gamma_batchnorm_explained_and_raw_loads_nonzero():
    from timm_like import ResNet18Like

    torch.manual_seed(0)
    m = ResNet18Like(zero_init_residual=True).eval()
    net = load(m)
    w = "layer1.0.conv2.weight"
    assert not np.any(net.matrix(w)) and not np.any(net.matrix(f"{w}:in"))
    for name in (w, f"{w}:in"):
        why = net.zero_reason(name)
        assert "folded map" in why and "layer1.0.bn2" in why and "fold_norms=False" in why and "--raw" in why
    assert "layer1.0.bn2" in net.flags[w]  # recorded when read, shown by describe()
    assert net.zero_reason("layer1.0.conv1.weight") is None  # γ ≠ 0: no excuse invented
    raw = load(m, fold_norms=False)
    np.testing.assert_allclose(
        raw.matrix(w), m.layer1[0].conv2.weight.detach().double().numpy().reshape(8, -1), rtol=1e-7
    )
    assert raw.zero_reason(w) is None


def test_stored_zero_weight_is_not_blamed_on_the_norm():
    from timm_like import ResNet18Like

    m = ResNet18Like(zero_init_residual=True).eval()
    with torch.no_grad():
        m.layer1[0].conv2.weight.zero_()
    assert load(m).zero_reason("layer1.0.conv2.weight") is None


def test_analyze_raw_flag(tmp_path, capsys):
    pytest.importorskip("threadpoolctl")
    from timm_like import ResNet18Like

    from flagalign.cli import main

    torch.manual_seed(0)
    path = tmp_path / "resnet.pt"
    torch.save(ResNet18Like(zero_init_residual=True).state_dict(), path)
    import pandas as pd

    main(["analyze", str(path), "--out", str(tmp_path / "folded"), "--format", "csv", "-q", "--no-heads"])
    folded = pd.read_csv(tmp_path / "folded" / "pairs.csv")
    assert (folded["status"] != "ok").sum() == 19  # every pair touching a conv2 (γ = 0)
    main(["analyze", str(path), "--raw", "--out", str(tmp_path / "raw"), "--format", "csv", "-q", "--no-heads"])
    raw = pd.read_csv(tmp_path / "raw" / "pairs.csv")
    assert len(raw) == 23 and (raw["status"] == "ok").all()
