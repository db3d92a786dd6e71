"""The labels of a pair that outputs share: its id and its ``block``, ``layer``, ``head``.

One vocabulary across outputs (docs/schema.md): a pair is ``"<left> -> <right>"`` with the
*matrix* names of :class:`~flagalign.models.Network` (``0.weight -> 2.weight``, never the
module form ``0 -> 2``), in ``pairs.csv``, the tracker's history/JSONL/logger metric names,
``trajectory.csv``. The labels are columns so that nobody parses ``[head3]`` out of a name:

* ``block``: the repeated block that holds the writer — its matrix name up to the last purely
  numeric dotted field (``encoder.layer.3``, ``model.layers.7``, ``layer2.1``,
  ``stages.1.blocks.2``); ``""`` when the name has none (``conv1.weight``, ``fc.weight``).
* ``layer``: the attention layer of that block (``AttentionLayer.layer``, the ``layer`` column
  of the heads tables), None outside attention blocks.
* ``head``: the head of a per-head pair (the ``[headH]`` slice, else the ``[kvG]`` kv-head of a
  writer), None for whole matrices.
"""

from __future__ import annotations

import re

__all__ = ["pair_id", "block_of", "head_of", "label_pairs"]

_SUFFIX = re.compile(r"\[[^\]]*\]$")
_HEAD = re.compile(r"\[(?:head|kv)(\d+)\]$")


def pair_id(left: str, right: str) -> str:
    """The pair id shared by every output: ``"<left> -> <right>"`` (matrix names)."""
    return f"{left} -> {right}"


def block_of(name: str) -> str:
    """``encoder.layer.3.attention.self.value.weight[kv0]`` → ``encoder.layer.3``; ``""`` when
    no dotted field is a number."""
    parts = _SUFFIX.sub("", name).split(".")
    idx = [i for i, p in enumerate(parts[:-1]) if p.isdigit()]
    return ".".join(parts[: idx[-1] + 1]) if idx else ""


def head_of(left: str, right: str) -> int | None:
    """The head index of a per-head pair: ``[headH]`` of either side, else ``[kvG]``; None."""
    for name, tag in ((right, "head"), (left, "head"), (left, "kv"), (right, "kv")):
        m = _HEAD.search(name)
        if m and name[m.start() + 1:].startswith(tag):
            return int(m.group(1))
    return None


def label_pairs(pairs, attention=()) -> list:
    """``pairs`` with ``block``, ``layer`` and ``head`` set (see the module docstring)."""
    from dataclasses import replace

    layer_of = {}
    for a in attention:
        for name in (a.q, a.k, a.v, a.o):
            b = block_of(name)
            if b:
                layer_of.setdefault(b, a.layer)
    out = []
    for p in pairs:
        b = block_of(p.left)
        out.append(replace(p, block=b, layer=layer_of.get(b), head=head_of(p.left, p.right)))
    return out
