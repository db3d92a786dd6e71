"""torchvision-style ResNet (basic and bottleneck blocks) → conv layer graph (docs/formats.md).

Keys: stem ``conv1``/``bn1``; blocks ``layer{i}.{j}.conv{1,2[,3]}`` with ``bn{1,2[,3]}`` and an
optional projection shortcut ``downsample.0`` (conv) / ``downsample.1`` (BN); classifier ``fc``.

Pairs, in data-flow order:

* ``conv``     inside a block: conv1 → conv2 (→ conv3), on ℝ^{planes};
* ``residual`` on the residual stream: every writer of the stream entering a block (the stem, or
  the previous block's last conv and its ``downsample`` conv) → every reader of it (the block's
  conv1 and its ``downsample`` conv); the last block's writers → ``fc`` (through avg-pooling,
  which is per channel).
"""

from __future__ import annotations

import re

from ..graph import GraphBuilder
from ..sources.base import TensorSource
from .convlayers import add_conv
from ..symmetry import POS_DIAG, UNKNOWN
from .registry import Family

__all__ = ["build_resnet", "FAMILY"]

_BLOCK = re.compile(r"^(.*?)layer(\d+)\.(\d+)\.conv1\.weight$")


def build_resnet(b: GraphBuilder, src: TensorSource, cfg: dict | None = None, **_) -> None:
    found = sorted(
        {(m.group(1), int(m.group(2)), int(m.group(3))) for k in src.entries if (m := _BLOCK.match(k))},
        key=lambda t: (t[1], t[2]),
    )
    p = found[0][0]
    # ReLU after every folded BatchNorm (and after each residual addition; max- and average-pooling
    # commute with positive scalings): positive diagonal × permutation (docs/theory.md eq. (71)).
    # An unfolded BatchNorm between the matrices absorbs scalings on each side separately: unknown.
    sym = POS_DIAG if b.fold_norms else UNKNOWN
    writers: list[str] = []
    if f"{p}conv1.weight" in src:
        writers = [add_conv(b, src, f"{p}conv1.weight", bn=f"{p}bn1")[0]]
    else:
        b.skip("stem", "no conv1.weight: the stem is not paired")
    for _, i, j in found:
        L = f"{p}layer{i}.{j}"
        convs = []
        for c in (1, 2, 3):
            if f"{L}.conv{c}.weight" in src:
                convs.append(add_conv(b, src, f"{L}.conv{c}.weight", bn=f"{L}.bn{c}"))
        readers = [convs[0][1]]
        new_writers = [convs[-1][0]]
        if f"{L}.downsample.0.weight" in src:
            ds = add_conv(b, src, f"{L}.downsample.0.weight", bn=f"{L}.downsample.1")
            readers.append(ds[1])
            new_writers.append(ds[0])
        for w in writers:
            for r in readers:
                b.pair(w, r, "residual", note=f"stream into layer{i}.{j}", symmetry=sym)
        for (wa, _), (_, rb) in zip(convs, convs[1:]):
            b.pair(wa, rb, "conv", note=f"inside layer{i}.{j}", symmetry=sym)
        writers = new_writers
    if f"{p}fc.weight" in src:
        fc = add_conv(b, src, f"{p}fc.weight", bias_key=f"{p}fc.bias")[0]
        for w in writers:
            b.pair(w, fc, "residual", note="stream into the classifier (after average pooling)", symmetry=sym)


FAMILY = Family(
    "resnet", build_resnet, (re.compile(r"(^|\.)layer\d+\.\d+\.conv1\.weight$"),), "layer1.0.conv1.weight"
)
