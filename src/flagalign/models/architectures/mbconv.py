"""Inverted-residual conv nets (MobileNetV2, EfficientNet-Lite0) → conv layer graph.

Both are a stem conv, a chain of blocks [expand 1×1] → depthwise k×k → project 1×1 (each with
BatchNorm), a head 1×1 conv and a Linear classifier. Key layouts:

=================  ===========================  ===========================================
part               torchvision MobileNetV2       EfficientNet-Lite (lukemelas naming)
=================  ===========================  ===========================================
stem               features.0.0 / .0.1 (BN)      _conv_stem / _bn0
block (expand)     features.N.conv.0.0 / .0.1    _blocks.N._expand_conv / _bn0
block depthwise    features.N.conv.1.0 / .1.1    _blocks.N._depthwise_conv / _bn1
block project      features.N.conv.2 / .3        _blocks.N._project_conv / _bn2
head               features.18.0 / .18.1         _conv_head / _bn1
classifier         classifier.1                  _fc
=================  ===========================  ===========================================

(a block without expansion has depthwise at conv.0 and project at conv.1/conv.2 in torchvision.)

A block adds its input to its output (residual) iff its input and output channel counts are equal
(torchvision: ``use_res_connect = stride == 1 and inp == oup``; in both standard configurations
every block with inp == oup has stride 1). Pairs:

* ``conv``     expand → project inside a block, on ℝ^{expanded}; the depthwise conv (+ BN) is
  folded into project's input channels (docs/formats.md), never paired;
* between blocks, the previous writer (stem or previous project) → the block's reader (expand,
  or project with the depthwise folded in when there is no expansion): ``residual`` when that
  tensor takes part in a residual addition (either block is residual), else ``conv``;
* last project → head (same test), head → classifier (``conv``).
"""

from __future__ import annotations

import re

from ..graph import GraphBuilder
from ..sources.base import TensorSource
from .convlayers import add_conv, depthwise_diag
from ..symmetry import GL, PERM, UNKNOWN
from .registry import Family

__all__ = ["build_mbconv", "MOBILENETV2", "EFFICIENTNET"]


def _mobilenet_layout(src: TensorSource):
    idx = sorted({int(m.group(1)) for k in src.entries if (m := re.match(r"^features\.(\d+)\.", k))})
    stem = ("features.0.0.weight", "features.0.1")
    blocks = []
    for n in idx:
        F = f"features.{n}.conv"
        if f"{F}.0.0.weight" not in src:
            continue
        if src.shape(f"{F}.0.0.weight")[1] == 1:  # no expansion: dw, project
            blocks.append((n, None, (f"{F}.0.0.weight", f"{F}.0.1"), (f"{F}.1.weight", f"{F}.2")))
        else:
            blocks.append(
                (
                    n,
                    (f"{F}.0.0.weight", f"{F}.0.1"),
                    (f"{F}.1.0.weight", f"{F}.1.1"),
                    (f"{F}.2.weight", f"{F}.3"),
                )
            )
    last = idx[-1]
    head = (f"features.{last}.0.weight", f"features.{last}.1")
    fc = ("classifier.1.weight", "classifier.1.bias")
    return stem, blocks, head, fc


def _efficientnet_layout(src: TensorSource):
    idx = sorted({int(m.group(1)) for k in src.entries if (m := re.match(r"^_blocks\.(\d+)\.", k))})
    blocks = []
    for n in idx:
        B = f"_blocks.{n}"
        exp = (f"{B}._expand_conv.weight", f"{B}._bn0") if f"{B}._expand_conv.weight" in src else None
        blocks.append(
            (n, exp, (f"{B}._depthwise_conv.weight", f"{B}._bn1"), (f"{B}._project_conv.weight", f"{B}._bn2"))
        )
    return ("_conv_stem.weight", "_bn0"), blocks, ("_conv_head.weight", "_bn1"), ("_fc.weight", "_fc.bias")


def build_mbconv(b: GraphBuilder, src: TensorSource, arch: str) -> None:
    stem, blocks, head, fc = (_mobilenet_layout if arch == "mobilenetv2" else _efficientnet_layout)(src)
    fold = b.fold_norms
    eps = 1e-3 if arch == "efficientnet" else 1e-5  # BatchNorm eps of each reference implementation
    writer = add_conv(b, src, stem[0], bn=stem[1], eps=eps)[0]
    prev_res = False
    # symmetries (docs/theory.md eq. (71)): ReLU6 / swish after the stem, the expansion and the
    # head admit permutations only; the linear bottleneck written by a project conv (BatchNorm
    # folded, no activation) admits GL(C) — unless an unfolded BatchNorm sits in it (unknown)
    bottleneck = GL if fold else UNKNOWN
    from_stem = True
    for n, exp, dw, proj in blocks:
        c_in = src.shape(exp[0])[1] if exp else src.shape(dw[0])[0]
        residual = c_in == src.shape(proj[0])[0]
        diag = depthwise_diag(src, dw[0], dw[1], fold, eps) if fold else None
        b.skip(
            dw[0],
            (
                "depthwise conv: per-channel map, folded into the next reader"
                if fold
                else "depthwise conv: per-channel map, omitted (fold_norms=False)"
            ),
        )
        pw = add_conv(b, src, proj[0], bn=proj[1], in_diag=diag, eps=eps)[0]
        reader = add_conv(b, src, exp[0], bn=exp[1], eps=eps)[0] if exp else pw
        kind = "residual" if (residual or prev_res) else "conv"
        # no expansion: the reader is project with the depthwise conv (and its activation) folded
        sym = PERM if (from_stem or not exp) else bottleneck
        b.pair(writer, reader, kind, note=f"into block {n}", symmetry=sym)
        if exp:
            b.pair(
                reader,
                pw,
                "conv",
                note=f"inside block {n} (depthwise folded)" if fold else f"inside block {n}",
                symmetry=PERM,
            )
        writer, prev_res, from_stem = pw, residual, False
    h = add_conv(b, src, head[0], bn=head[1], eps=eps)[0]
    b.pair(writer, h, "residual" if prev_res else "conv", note="into the head conv",
           symmetry=PERM if from_stem else bottleneck)  # fmt: skip
    if fc[0] in src:
        b.pair(
            h, add_conv(b, src, fc[0], bias_key=fc[1])[0], "conv", note="head -> classifier (after pooling)",
            symmetry=PERM,
        )


MOBILENETV2 = Family(
    "mobilenetv2",
    lambda b, src, cfg, **_: build_mbconv(b, src, "mobilenetv2"),
    (re.compile(r"(^|\.)features\.\d+\.conv\.\d+\.weight$"),),
    "features.2.conv.2.weight",
)
EFFICIENTNET = Family(
    "efficientnet",
    lambda b, src, cfg, **_: build_mbconv(b, src, "efficientnet"),
    (re.compile(r"(^|\.)_blocks\.\d+\._project_conv\.weight$"),),
    "_blocks.0._project_conv.weight",
)
