"""``torch.nn.Module`` sources (docs/formats.md, "nn.Module").

The module's ``state_dict()`` is read through the same architecture rules as a file when its
names match a known family. Otherwise the data flow comes from ``torch.fx`` symbolic tracing:
each Linear/Conv call is paired with the nearest Linear/Conv calls upstream of it (through
activations, norms, pooling, reshapes, depthwise convs, additions); a path through an addition
(``+``, ``torch.add``, ``Tensor.add``/``add_``) at which at least two summands carry upstream
layers makes the pair ``residual`` (adding a parameter or constant does not); see
:mod:`.traced` for the rules (metadata reads, identity branches, guesses) and
:mod:`.traced_attention` for fused-QKV attention (heads and ``ov`` pairs). Modules that do
not trace fall back to the order of ``named_modules()`` (the execution order of
``nn.Sequential``) with a warning. A BatchNorm applied directly to a Linear/Conv output (its only
user in the traced graph; the next module in the fallback order) is folded into it when
``fold_norms``; any other BatchNorm is named in a warning.
"""

from __future__ import annotations

from ..errors import InputError, UnsupportedFormatError
from .architectures import build_network, detect_architecture
from .graph import GraphBuilder
from .network import Network
from .sources.torch_file import tensors_to_source
from .traced import trace_flow
from .traced_attention import add_fused_attention, find_fused_attention

__all__ = ["load_module", "module_pairs", "linear_module_pairs"]


def _param_modules(module, skip=()):
    """{name: Linear/Conv module} (depthwise convs and modules under ``skip`` prefixes left out)."""
    import torch.nn as nn

    out = {}
    for n, m in module.named_modules():
        if any(n.startswith(f"{p}.") for p in skip):
            continue
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


def _module_source(module):
    """The module's ``state_dict()`` as a TensorSource (with a Hugging Face module's config)."""
    src = tensors_to_source(dict(module.state_dict()), f"<{type(module).__name__}>", "module")
    cfg = getattr(module, "config", None)  # Hugging Face modules carry their config
    if hasattr(cfg, "to_dict"):
        src.config.update(cfg.to_dict())
    return src


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
    src = _module_source(module)
    arch = architecture or detect_architecture(src)
    from .config_check import check_config

    check_config(src, arch, heads, kv_heads)
    if arch not in ("sequential", "generic"):
        return build_network(
            src, name=name, fold_norms=fold_norms, architecture=arch, heads=heads, kv_heads=kv_heads
        )
    attention = find_fused_attention(module)
    leaves = {a.name: a for a in attention if a.leaf}
    mods = _param_modules(module, skip=leaves)
    bns = _batchnorms(module)
    traced = trace_flow(module, set(mods) | set(leaves), bns, leaves)
    from .architectures.convlayers import add_conv, bn_scale_shift

    b = GraphBuilder(name, "traced" if traced is not None else "sequential", src.path, fold_norms)
    bn_after = traced.bn_after if traced is not None else _bn_in_order(module, mods, bns)
    names, folded = {}, set()
    for n in mods:
        key = f"{n}.weight" if n else "weight"
        bias = f"{n}.bias" if n else "bias"
        bn = bn_after.get(n)
        eps = float(bns[bn].eps) if bn else 1e-5
        names[n] = add_conv(b, src, key, bias_key=bias, name=key, bn=bn, eps=eps)
        if bn and fold_norms and bn_scale_shift(src, bn, eps) is not None:
            folded.add(bn)
    for n, att in leaves.items():  # nn.MultiheadAttention: reads with in_proj, writes with out_proj
        o = add_conv(b, src, f"{att.o_module}.weight", bias_key=f"{att.o_module}.bias")[0]
        names[n] = (o, add_conv(b, src, att.qkv_key, bias_key=att.qkv_bias)[0])
    if fold_norms and set(bns) - folded:
        b.warnings.append(
            "BatchNorm not folded (not applied directly to a Linear/Conv output, or no affine/running "
            "statistics): " + ", ".join(sorted(set(bns) - folded))
        )
    internal = set()  # fused QKV -> output projection: joined by the attention pattern, not paired
    if traced is not None:
        for i, att in enumerate(attention):
            qkv = names[att.name][1] if att.leaf else att.qkv_key
            o = names[att.name][0] if att.leaf else f"{att.o_module}.weight"
            add_fused_attention(b, i, att, qkv, o)
            if not att.leaf:
                internal.add((att.qkv_key[: -len(".weight")], att.o_module))
    if traced is None:
        b.warnings.append(
            "torch.fx could not trace the module: paired Linear/Conv layers in named_modules() order"
        )
        order = list(mods)
        flow = [(a, c, False) for a, c in zip(order, order[1:])]
    else:
        flow = [p for p in traced.pairs if (p[0], p[1]) not in internal]
        if traced.guesses:
            b.warnings.append(
                "traced data flow: different layers combine in operations other than an addition "
                "(the pairs through them are a guess; pass architecture= or check describe()): "
                + "; ".join(traced.guesses[:5])
                + (f"; ... ({len(traced.guesses)} in all)" if len(traced.guesses) > 5 else "")
            )
    for up, down, res in flow:
        conv = up in mods and down in mods and mods[up].weight.dim() > 2 and mods[down].weight.dim() > 2
        kind = "residual" if res else ("conv" if conv else "sequential")
        b.pair(
            names[up][0],
            names[down][1],
            kind,
            note="torch.fx data flow" if b.architecture == "traced" else "module order",
            symmetry=_traced_symmetry(traced.ops.get((up, down), ()), folded) if traced else "unknown",
        )
    if not b.pairs:
        b.warnings.append("no adjacent pairs found: nothing for the pair diagnostics to analyse")
    net = b.build()
    net.pairs.sort(key=lambda p: p.depth)  # data-flow order (stable: ties keep the trace order)
    return net


def _traced_symmetry(ops, folded: set) -> str:
    """The hidden-layer group of a traced pair from the operations between its two layers
    (:func:`~flagalign.models.symmetry.path_symmetry`): a BatchNorm folded into the writer is not
    between them any more; an unfolded one (``bn:<name>``) makes it ``unknown``."""
    from .symmetry import path_symmetry

    return path_symmetry(o for o in ops if not (o.startswith("bn:") and o[3:] in folded))


def module_pairs(module) -> list | None:
    """The layer-graph pairs of ``flagalign.load(module)`` when the module's weights match an
    architecture family (``bert``, ``gpt2``, ``llama``, ``resnet``, ...); None when no family
    rule applies (the data flow would be traced or guessed from the module order).

    Used by :class:`~flagalign.diagnostics.dynamics.tracker.AlignmentTracker` so that a live
    model is paired exactly as :func:`flagalign.load` pairs it (see :func:`linear_module_pairs`).
    """
    try:
        src = _module_source(module)
    except UnsupportedFormatError:  # no tensors at all
        return None
    if detect_architecture(src) in ("sequential", "generic"):
        return None
    return load_module(module, fold_norms=False).pairs


def linear_module_pairs(module, pairs) -> list[tuple[str, str, str]]:
    """``(left module, right module, kind)`` for each of ``pairs`` whose two matrices are whole
    ``nn.Linear`` weights of ``module`` (``<module name>.weight``); pairs of derived matrices
    (per-head ``ov`` slices, the stacked Q/K/V reader, conv views) are left out."""
    mods = dict(module.named_modules())

    def linear(name: str) -> str | None:
        m = mods.get(name[: -len(".weight")]) if name.endswith(".weight") else None
        ok = type(m).__name__ == "Linear" and getattr(getattr(m, "weight", None), "ndim", 0) == 2
        return name[: -len(".weight")] if ok else None

    out = []
    for p in pairs:
        a, c = linear(p.left), linear(p.right)
        if a is not None and c is not None:
            out.append((a, c, p.kind))
    return out
