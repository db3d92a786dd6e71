"""Which hidden layers the balanced gauge balances, and which pair measures depend on the gauge
(docs/theory.md §7): :class:`GaugePlan`, :func:`gauge_plan`, :func:`pair_gauge_dependent`.

A pair's hidden layer is balanced when it is not a residual stream (a stream is shared with skip
connections that are not pairs), its symmetry is diagonal, its writer is not the gate of a gated
MLP, and no other pair with the same writer or reader makes the layer's group smaller. Everything
is decided from metadata. The transform itself is :func:`flagalign.models.gauge.balanced_network`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..geometry.gauge import DIAGONAL_GROUPS, GL, ORTHOGONAL_GROUPS
from .network import Network, Pair

__all__ = ["GaugePlan", "gauge_plan", "pair_gauge_dependent"]


@dataclass
class GaugePlan:
    """What :func:`balanced_network` balances (metadata only).

    Attributes
    ----------
    spaces : dict[str, tuple[str, list[str]]]
        {writer: (symmetry, readers)}: diagonal hidden layers balanced jointly.
    heads : list
        (AttentionLayer) whose value → output heads are balanced by eq. (73).
    qk : list
        (AttentionLayer, rotary) whose query/key gauge is balanced: GL(d_head) by eq. (73)
        without rotary embeddings; per rotary 2-plane positive scalings with them.
    skipped : list[tuple[str, str]]
        (pair name, why its hidden layer is not balanced).
    """

    spaces: dict = field(default_factory=dict)
    heads: list = field(default_factory=list)
    qk: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def balanced(self, pair: Pair) -> bool:
        """True when ``pair``'s own hidden layer is moved to its balanced point."""
        if pair.kind == "ov" and pair.symmetry == GL:
            return any(_part_of(pair.right, a.o) or _part_of(pair.left, a.v) for a in self.heads)
        return pair.left in self.spaces and pair.right in self.spaces[pair.left][1]


def _part_of(name: str, base: str) -> bool:
    """``name`` is ``base`` or a slice of it (``base[...]``)."""
    return name == base or name.startswith(base + "[")


def gauge_plan(network: Network) -> GaugePlan:
    """The hidden layers :func:`balanced_network` balances, and why the others are not."""
    plan = GaugePlan()
    by_left: dict[str, list[Pair]] = {}
    by_right: dict[str, list[Pair]] = {}
    for p in network.pairs:
        by_left.setdefault(p.left, []).append(p)
        by_right.setdefault(p.right, []).append(p)
    for p in network.pairs:
        if p.symmetry not in DIAGONAL_GROUPS:
            if p.symmetry not in ORTHOGONAL_GROUPS and not (p.kind == "ov" and p.symmetry == GL):
                plan.skipped.append((p.name, f"symmetry {p.symmetry}: not balanced"))
            continue
        why = None
        if p.kind == "residual":
            why = "residual stream (shared with skip connections): not balanced"
        elif network.matrices[p.left].role == "gate":
            why = "gate of a gated MLP: its rows are not rescaled (the up branch is)"
        elif any(q.symmetry != p.symmetry or q.kind == "residual" for q in by_left[p.left]):
            why = "the writer also feeds a pair of another symmetry"
        if why is None:
            others = [q for r in (x.right for x in by_left[p.left]) for q in by_right[r]]
            scaled = {q.left for q in others if q.symmetry in DIAGONAL_GROUPS
                      and network.matrices[q.left].role != "gate"}  # fmt: skip
            if len(scaled) > 1:
                why = "the reader also reads another rescaled writer"
        if why is not None:
            plan.skipped.append((p.name, why))
            continue
        plan.spaces.setdefault(p.left, (p.symmetry, []))[1].append(p.right)
    ov = {(p.left, p.right) for p in network.pairs if p.kind == "ov" and p.symmetry == GL}
    for a in network.attention:
        if any(r.startswith(a.o + "[") or r == a.o for _, r in ov) and a.v in network.matrices:
            plan.heads.append(a)
        rotary = _QK_GROUP.get(network.architecture)
        if rotary is not None and a.q in network.matrices and a.k in network.matrices:
            plan.qk.append((a, rotary))
    return plan


# query/key gauge per family: full GL(d_head) with absolute positions, per-2-plane scalings with
# rotary embeddings (HF rotate_half layout: dims i and i + d/2 form a plane); other graphs
# (traced attention) are not balanced: the positional scheme is not known
_QK_GROUP = {"gpt2": False, "bert": False, "llama": True}


def pair_gauge_dependent(network: Network, pair: Pair, gauge: str | None, plan: GaugePlan | None = None) -> bool:
    """Whether ``pair``'s angles, overlap, intersection_dim and commutator depend on a choice of
    representative of the network's symmetry orbit in this gauge (eq. (75)).

    Three groups move the pair's subspaces: its own hidden layer's; the one of the hidden layer
    W *reads* (it acts on W's columns, so on W's left singular vectors); the one of the hidden
    layer W_next *writes* (on W_next's rows). The pair is gauge-dependent when one of them has
    non-orthogonal elements that the gauge does not fix: with the stored weights, every such
    group; balanced, the GL(n) of the pair itself (only its invariants are reported), residual
    streams and other layers :func:`gauge_plan` does not balance, and attention's query/key
    gauge (never balanced) for the matrix that reads the stream with Q and K.
    """
    balanced = gauge == "balanced"
    if balanced and plan is None:
        plan = gauge_plan(network)

    def fixed(q: Pair) -> bool:  # is q's hidden layer canonical in this gauge?
        if q.symmetry in ORTHOGONAL_GROUPS:
            return True
        if not balanced or q.symmetry not in DIAGONAL_GROUPS | {GL}:
            return False
        if q.symmetry == GL:
            return q.kind == "ov" and plan.balanced(q)
        return any(plan.balanced(x) for x in network.pairs if x.right == q.right)

    if pair.symmetry == GL or not fixed(pair):
        return True
    qk_fixed = {id(a) for a, _ in plan.qk} if balanced else set()
    for a in network.attention:  # the query/key gauge acts on the rows of Q and K
        if id(a) in qk_fixed:
            continue
        if _same_layer(network, a.q, pair.right) or _same_layer(network, a.k, pair.right):
            return True
    for q in network.pairs:
        if q is pair:
            continue
        reads = _same_layer(network, q.right, pair.left)  # q's layer acts on W's columns
        writes = _same_layer(network, q.left, pair.right) and network.matrices[q.left].role != "gate"
        if (reads or writes) and not fixed(q):
            return True
    return False


def _same_layer(network: Network, a: str, b: str) -> bool:
    """a and b are views of one weight (same source key, or one a slice/stack part of the other)."""
    if a == b:
        return True
    ia, ib = network.matrices.get(a), network.matrices.get(b)
    if ia is None or ib is None:
        return False
    ka, kb = set(ia.source_key.split(" + ")) | {a}, set(ib.source_key.split(" + ")) | {b}
    return bool(ka & kb)
