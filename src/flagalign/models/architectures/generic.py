"""Sequential and generic rules for sources with no known architecture (docs/formats.md).

* ``sequential``: every weight key is ``<prefix>.<i>.weight`` (an ``nn.Sequential`` or plain MLP
  state dict, e.g. ``layers.0.weight``, ``layers.1.weight``): the layers are taken in numeric
  order of i (2 before 10), which is the data-flow order of ``nn.Sequential``; consecutive
  Linear layers pair as ``sequential`` (conv layers as ``conv``) when the first's output size
  equals the second's input size. Biases ``<prefix>.<i>.bias`` are attached. A BatchNorm
  ``<prefix>.<i+1>`` (it has ``running_var``) right after layer i is folded into it when
  ``fold_norms`` (the ``nn.Sequential(conv, bn, ...)`` layout); any other BatchNorm is named in a
  warning.
* ``generic``: anything else with 2-D (or conv) weights: natural order of the names, the same
  chaining test, and a warning that lists what was paired and what was not: a guess is never
  silent.
"""

from __future__ import annotations

import re

from ..graph import GraphBuilder
from ..sources.base import TensorSource, natural_key
from .convlayers import add_conv, bn_scale_shift
from .registry import Family

__all__ = ["build_generic", "is_sequential", "SEQUENTIAL", "GENERIC"]

_SEQ = re.compile(r"^(.*?)(\d+)\.weight$")


def _weights(src: TensorSource) -> list[str]:
    out = []
    for k, e in src.entries.items():
        if not e.is_float or len(e.shape) not in (2, 4, 3, 5):
            continue
        if k.endswith(".bias"):
            continue
        out.append(k)
    return sorted(out, key=natural_key)


def is_sequential(src: TensorSource) -> bool:
    ws = _weights(src)
    ms = [_SEQ.match(k) for k in ws]
    return bool(ws) and all(ms) and len({m.group(1) for m in ms}) == 1


def _bias_key(key: str) -> str | None:
    if key.endswith(".weight"):
        return key[: -len("weight")] + "bias"
    return None


def _next_bn(src: TensorSource, key: str) -> str | None:
    """``<prefix>.<i+1>`` when it is a BatchNorm over the outputs of ``<prefix>.<i>.weight``."""
    m = _SEQ.match(key)
    if not m:
        return None
    bn = f"{m.group(1)}{int(m.group(2)) + 1}"
    rv = f"{bn}.running_var"
    return bn if rv in src and src.shape(rv) == (src.shape(key)[0],) else None


def build_generic(b: GraphBuilder, src: TensorSource, sequential: bool) -> None:
    names = []
    folded = set()
    for k in _weights(src):
        shp = src.shape(k)
        if len(shp) > 2 and shp[1] == 1 and shp[0] > 1:
            b.skip(k, "depthwise conv (C,1,kh,kw): per-channel, not paired by the generic rule")
            continue
        bn = _next_bn(src, k)
        names.append((k, *add_conv(b, src, k, bias_key=_bias_key(k), bn=bn)))
        if bn and b.fold_norms and bn_scale_shift(src, bn) is not None:
            folded.add(bn)
    bns = {k[: -len(".running_var")] for k in src.entries if k.endswith(".running_var")}
    if b.fold_norms and bns - folded:
        b.warnings.append(
            "BatchNorm not folded (no Linear/Conv right before it in the layer order, or no "
            "affine/running statistics): " + ", ".join(sorted(bns - folded, key=natural_key))
        )
    for k, e in src.entries.items():
        if k.rpartition(".")[0] in folded:
            continue  # a folded BatchNorm's tensors: used, see the layer's note
        if len(e.shape) < 2 and not k.endswith(".bias") and e.is_float:
            b.skip(k, f"{len(e.shape)}-D tensor (norm/scale/buffer): not a matrix")
        elif not e.is_float:
            b.skip(k, f"non-float tensor ({e.dtype})")
    unpaired = set(n for n, _, _ in names)
    for (a, wa, _), (c, _, rc) in zip(names, names[1:]):
        kind = "conv" if len(src.shape(a)) > 2 and len(src.shape(c)) > 2 else "sequential"
        if b.pair(
            wa,
            rc,
            kind,
            note="numeric layer order" if sequential else "generic: name order + matching shapes",
        ):
            unpaired.discard(a)
            unpaired.discard(c)
    if not sequential:
        paired = ", ".join(p.name for p in b.pairs) or "nothing"
        b.warnings.append(
            f"unknown architecture: paired consecutive weights in name order with matching shapes: {paired}"
        )
    if unpaired and len(names) > 1:
        b.warnings.append("not paired (shapes do not chain): " + ", ".join(sorted(unpaired, key=natural_key)))


SEQUENTIAL = Family("sequential", lambda b, src, cfg, **_: build_generic(b, src, sequential=True))
GENERIC = Family("generic", lambda b, src, cfg, **_: build_generic(b, src, sequential=False))
