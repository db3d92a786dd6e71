"""Data flow of a ``torch.nn.Module`` from ``torch.fx`` (docs/formats.md §6).

:func:`trace_flow` walks the traced graph once and tells, for every Linear/Conv call (and every
fused attention unit), which layer calls are its nearest upstream writers:

* every non-parametric operation passes its inputs' writers on (activations, norms, pooling,
  reshapes, depthwise convs, scaling by a parameter), except **metadata reads**
  (``x.shape``, ``x.size()``, ``x.dim()``, ``x.dtype``, ...): a shape is not data, so
  ``B, N, C = x.shape`` followed by ``y.reshape(B, N, C)`` does not make x's writer y's;
* an **addition** at which at least two summands carry writers is a residual join: what passes
  it is ``residual``; writers that already passed an earlier join (the identity branch of a
  residual block) are dropped when a summand brings a writer that did not — so a reader is
  paired with the last writers into the residual stream (as the family rules do), not with
  every earlier writer;
* any other operation where writers of *different* layers meet (``cat``, ``mul`` of two layer
  outputs, ``matmul``) is a place where the pairing is a guess: it is returned in ``guesses``.

For every pair it also records ``ops``: the names of the operations on the paths from the
upstream layer to the downstream one (module class names such as ``ReLU``, function or method
names such as ``gelu``, ``bn:<name>`` for a BatchNorm module), from which
:func:`flagalign.models.symmetry.path_symmetry` reads the pair's hidden-layer group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TraceResult", "trace_flow"]

_ADD = {"add", "add_", "iadd", "__add__", "__iadd__"}
_META_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"}
_META_METHODS = {"size", "dim", "numel", "type", "get_device", "ndimension", "nelement"}
_META_FUNCS = {"len", "numel"}


@dataclass
class TraceResult:
    """``pairs``: (upstream layer, downstream layer, residual); ``bn_after``: {layer: BatchNorm
    applied to its output}; ``guesses``: descriptions of nodes where different layers combine;
    ``ops``: {(upstream, downstream): names of the operations between them}."""

    pairs: list[tuple[str, str, bool]] = field(default_factory=list)
    bn_after: dict[str, str] = field(default_factory=dict)
    guesses: list[str] = field(default_factory=list)
    ops: dict[tuple[str, str], frozenset] = field(default_factory=dict)


def _op_label(node, module, bns) -> str:
    """Name of the operation a traced node applies (see :class:`TraceResult`)."""
    if node.op == "call_module":
        if node.target in bns:
            return f"bn:{node.target}"
        try:
            return type(module.get_submodule(node.target)).__name__
        except AttributeError:  # pragma: no cover - fx only calls existing submodules
            return str(node.target)
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def _is_meta_read(node) -> bool:
    name = getattr(node.target, "__name__", "")
    if node.op == "call_function" and name == "getattr" and len(node.args) > 1:
        return node.args[1] in _META_ATTRS
    if node.op == "call_function" and name in _META_FUNCS:
        return True
    return node.op == "call_method" and node.target in _META_METHODS


def _is_add(node) -> bool:
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") in _ADD
    return node.op == "call_method" and node.target in _ADD


def trace_flow(module, layers, bns, leaves=()) -> TraceResult | None:
    """Trace ``module``; ``layers``: names of the Linear/Conv modules (and of fused attention
    units in ``leaves``, traced as single calls); ``bns``: BatchNorm module names. None if the
    module does not trace."""
    import torch.fx as fx

    leaves = set(leaves)

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return qualname in leaves or super().is_leaf_module(m, qualname)

    try:
        graph = _Tracer().trace(module)
    except Exception:
        return None
    out = TraceResult()
    bn_after: dict = {}
    # per node: {(layer, passed_a_residual_join)}
    ups: dict = {}
    # per node: {layer: names of the operations since that layer}
    opsets: dict = {}
    for node in graph.nodes:
        is_layer = node.op == "call_module" and node.target in layers
        if is_layer:
            users = list(node.users)
            bn = (
                users[0].target
                if len(users) == 1 and users[0].op == "call_module" and users[0].target in bns
                else None
            )
            # a layer called twice with different followers gets no BatchNorm
            bn_after[node.target] = bn if bn_after.get(node.target, bn) == bn else None
        if _is_meta_read(node):
            ups[node] = set()
            opsets[node] = {}
            continue
        seen: dict = {}
        for a in node.all_input_nodes:
            for up, names in opsets.get(a, {}).items():
                seen[up] = seen.get(up, frozenset()) | names
        carriers = [a for a in node.all_input_nodes if ups.get(a)]
        src: set = set()
        if _is_add(node) and len(carriers) >= 2:
            fresh = any(not via for a in carriers for _, via in ups[a])
            src = {(up, True) for a in carriers for up, via in ups[a] if not (fresh and via)}
        else:
            for a in carriers:
                src |= ups[a]
            groups = {frozenset(up for up, _ in ups[a]) for a in carriers}
            if len(groups) >= 2 and not is_layer and node.op != "output":
                met = sorted({up for g in groups for up in g})
                op = getattr(node.target, "__name__", node.target)
                more = ", ..." if len(met) > 4 else ""
                out.guesses.append(f"{node.name} ({op}) combines {', '.join(met[:4])}{more}")
        if is_layer:
            merged: dict = {}
            for up, via in src:
                merged[up] = merged.get(up, False) or via
            out.pairs.extend((up, node.target, merged[up]) for up in sorted(merged))
            for up in merged:
                out.ops[(up, node.target)] = out.ops.get((up, node.target), frozenset()) | seen.get(up, frozenset())
            ups[node] = {(node.target, False)}
            opsets[node] = {node.target: frozenset()}
        else:
            ups[node] = src
            if node.op in ("call_module", "call_function", "call_method"):
                label = _op_label(node, module, bns)
                opsets[node] = {up: names | {label} for up, names in seen.items()}
            else:
                opsets[node] = seen
    out.bn_after = {k: v for k, v in bn_after.items() if v is not None}
    return out
