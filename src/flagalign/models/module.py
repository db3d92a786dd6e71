"""``torch.nn.Module`` sources (docs/formats.md, "nn.Module").

The module's ``state_dict()`` is read through the same architecture rules as a file when its
names match a known family. Otherwise the data flow comes from ``torch.fx`` symbolic tracing:
each Linear/Conv call is paired with the nearest Linear/Conv calls upstream of it (through
activations, norms, pooling, reshapes, depthwise convs, additions); a path through an addition
(``+``, ``torch.add``, ``Tensor.add``/``add_``) at which at least two summands carry upstream
layers makes the pair ``residual`` (adding a parameter or constant does not). Modules that do
not trace fall back to the order of ``named_modules()`` (the execution order of
``nn.Sequential``) with a warning. A BatchNorm applied directly to a Linear/Conv output (its only
user in the traced graph; the next module in the fallback order) is folded into it when
``fold_norms``; any other BatchNorm is named in a warning.
"""

from __future__ import annotations

from ..errors import InputError
from .architectures import build_network, detect_architecture
from .graph import GraphBuilder
from .network import Network
from .sources.torch_file import tensors_to_source

__all__ = ["load_module"]

_ADD = {"add", "add_", "iadd", "__add__", "__iadd__"}


def _param_modules(module):
    import torch.nn as nn

    out = {}
    for n, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if isinstance(m, nn.Linear) or m.groups == 1:
                out[n] = m
    return out


def _batchnorms(module) -> dict:
    import torch.nn as nn

    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    return {n: m for n, m in module.named_modules() if n and isinstance(m, kinds)}


def _out_size(m) -> int:
    return m.out_features if hasattr(m, "out_features") else m.out_channels


def _bn_in_order(module, mods, bns) -> dict:
    """{layer: BatchNorm} where the BatchNorm is the next leaf module after the layer."""
    leaves = [n for n, m in module.named_modules() if not any(True for _ in m.children())]
    out = {}
    for a, c in zip(leaves, leaves[1:]):
        if a in mods and c in bns and bns[c].num_features == _out_size(mods[a]):
            out[a] = c
    return out


def _traced_pairs(module, mods, bns):
    """([(upstream, downstream, through_add)], {layer: BatchNorm applied to its output}) from
    torch.fx, or None if the module does not trace."""
    import torch.fx as fx

    try:
        gm = fx.symbolic_trace(module)
    except Exception:
        return None
    ups: dict = {}
    pairs = []
    bn_after: dict = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target in mods:
            users = list(node.users)
            bn = (
                users[0].target
                if len(users) == 1 and users[0].op == "call_module" and users[0].target in bns
                else None
            )
            # a layer called twice with different followers gets no BatchNorm
            bn_after[node.target] = bn if bn_after.get(node.target, bn) == bn else None
        src = set()
        is_add = node.op == "call_function" and getattr(node.target, "__name__", "") in _ADD
        is_add |= node.op == "call_method" and node.target in _ADD
        # a residual join: at least two summands carry upstream layers (not x + bias/constant)
        through_add = is_add and sum(1 for a in node.all_input_nodes if ups.get(a)) >= 2
        for a in node.all_input_nodes:
            for up, res in ups.get(a, set()):
                src.add((up, res or through_add))
        if node.op == "call_module" and node.target in mods:
            for up, res in src:
                pairs.append((up, node.target, res))
            ups[node] = {(node.target, False)}
        else:
            ups[node] = src
    return pairs, {k: v for k, v in bn_after.items() if v is not None}


def load_module(
    module,
    *,
    fold_norms: bool = True,
    name: str | None = None,
    architecture: str | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> Network:
    if not hasattr(module, "state_dict"):
        raise InputError(f"load: {type(module).__name__} is not a torch.nn.Module")
    name = name or type(module).__name__
    src = tensors_to_source(dict(module.state_dict()), f"<{type(module).__name__}>", "module")
    cfg = getattr(module, "config", None)  # Hugging Face modules carry their config
    if hasattr(cfg, "to_dict"):
        src.config.update(cfg.to_dict())
    arch = architecture or detect_architecture(src)
    from .config_check import check_config

    check_config(src, arch, heads, kv_heads)
    if arch not in ("sequential", "generic"):
        return build_network(
            src, name=name, fold_norms=fold_norms, architecture=arch, heads=heads, kv_heads=kv_heads
        )
    mods = _param_modules(module)
    bns = _batchnorms(module)
    traced = _traced_pairs(module, mods, bns)
    from .architectures.convlayers import add_conv, bn_scale_shift

    b = GraphBuilder(name, "traced" if traced is not None else "sequential", src.path, fold_norms)
    bn_after = traced[1] if traced is not None else _bn_in_order(module, mods, bns)
    names, folded = {}, set()
    for n in mods:
        key = f"{n}.weight" if n else "weight"
        bias = f"{n}.bias" if n else "bias"
        bn = bn_after.get(n)
        eps = float(bns[bn].eps) if bn else 1e-5
        names[n] = add_conv(b, src, key, bias_key=bias, name=key, bn=bn, eps=eps)
        if bn and fold_norms and bn_scale_shift(src, bn, eps) is not None:
            folded.add(bn)
    if fold_norms and set(bns) - folded:
        b.warnings.append(
            "BatchNorm not folded (not applied directly to a Linear/Conv output, or no affine/running "
            "statistics): " + ", ".join(sorted(set(bns) - folded))
        )
    if traced is None:
        b.warnings.append(
            "torch.fx could not trace the module: paired Linear/Conv layers in named_modules() order"
        )
        order = list(mods)
        traced = [(a, c, False) for a, c in zip(order, order[1:])]
    else:
        traced = traced[0]
    for up, down, res in traced:
        conv = mods[up].weight.dim() > 2 and mods[down].weight.dim() > 2
        kind = "residual" if res else ("conv" if conv else "sequential")
        b.pair(
            names[up][0],
            names[down][1],
            kind,
            note="torch.fx data flow" if b.architecture == "traced" else "module order",
        )
    if not b.pairs:
        b.warnings.append("no adjacent pairs found: nothing for the pair diagnostics to analyse")
    return b.build()
