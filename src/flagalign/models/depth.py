"""Data-flow depth of every pair: the position of its left matrix's layer in the layer graph.

A *layer* is a weight and all matrices derived from it: conv writer/reader views (same
``source_key``), per-head slices (``source_key`` = the sliced matrix), the stacked Q/K/V reader
(``source_key`` = ``"q + k + v"``) and the row blocks of a fused matrix (GPT-2 ``c_attn``, timm
``qkv``: same ``source_key``). The pairs are the edges of a directed graph on layers; the depth
of a layer is its longest-path level — 0 for a layer no pair writes into, else one more than the
deepest layer writing into it — so depth strictly increases along every data-flow path
(``depth(a -> b) < depth(b -> c)``), parallel branches (a ResNet block's conv1 and its
downsample, Q/K/V) share a level, and a stage boundary never resets it. A pair's depth is the
depth of its left layer. Rules may set depths themselves (the transformer families use the block
index, which is monotone, not strict, along the data flow); only unset depths (-1) are computed.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import replace
from typing import Mapping

# MatrixInfo and Pair (models/network.py, which imports this module) appear in annotations only.

__all__ = ["layer_of", "assign_depths"]


def layer_of(matrices: Mapping[str, MatrixInfo]) -> dict[str, str]:
    """{matrix name: name of its layer's representative} (union of the rules in the docstring)."""
    parent = {n: n for n in matrices}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    first_with_key: dict[str, str] = {}
    for n, info in matrices.items():
        key = info.source_key or n
        parts = key.split(" + ") if info.role == "stacked" else [key]
        for k in parts:
            if k in parent:
                union(k, n)
            elif k in first_with_key:
                union(first_with_key[k], n)
            else:
                first_with_key[k] = n
    return {n: find(n) for n in matrices}


def assign_depths(matrices: Mapping[str, MatrixInfo], pairs: list[Pair]) -> list[Pair]:
    """``pairs`` with every unset depth (< 0) replaced by the left layer's longest-path level."""
    if all(p.depth >= 0 for p in pairs):
        return list(pairs)
    layer = layer_of(matrices)
    node = lambda name: layer.get(name, name)  # noqa: E731
    succ: dict[str, set[str]] = defaultdict(set)
    indeg: dict[str, int] = defaultdict(int)
    nodes: list[str] = []
    for p in pairs:
        a, b = node(p.left), node(p.right)
        for n in (a, b):
            if n not in indeg:
                indeg[n] = 0
                nodes.append(n)
        if a != b and b not in succ[a]:
            succ[a].add(b)
            indeg[b] += 1
    level = {n: 0 for n in nodes}
    queue = deque(n for n in nodes if indeg[n] == 0)
    done = set()
    while queue or len(done) < len(nodes):
        if not queue:  # a cycle (a layer called twice): release the first unfinished node
            queue.append(next(n for n in nodes if n not in done))
        n = queue.popleft()
        if n in done:
            continue
        done.add(n)
        for m in succ[n]:
            level[m] = max(level[m], level[n] + 1)
            indeg[m] -= 1
            if indeg[m] == 0:
                queue.append(m)
    return [p if p.depth >= 0 else replace(p, depth=level[node(p.left)]) for p in pairs]
