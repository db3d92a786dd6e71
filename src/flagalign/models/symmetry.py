"""Hidden-layer symmetry groups of adjacent pairs (docs/theory.md §7, eqs. (70)–(74)).

Every :class:`~flagalign.models.network.Pair` carries ``symmetry``: the group of hidden
reparameterizations (W, W_next) → (G W, W_next G⁻¹) of its shared hidden space that leave the
network function unchanged, read off the layer graph and the operations between the two
matrices. The values:

=====================  ================================================================
``GL``                 any invertible G: nothing nonlinear between the two matrices (a
                       linear bottleneck; attention's value → output inside a head)
``O``                  orthogonal G: the pre-norm residual stream read through
                       RMSNorm/LayerNorm whose gains are folded into the readers (LayerNorm:
                       the orthogonal maps that fix the all-ones direction)
``nonzero-diag×perm``  nonzero diagonal scalings and permutations: the up → down space of a
                       gated MLP (SwiGLU, GeGLU), whose up branch enters linearly
``pos-diag×perm``      positive diagonal scalings and permutations: ReLU, leaky ReLU, PReLU,
                       max-pooling (positively homogeneous, elementwise)
``signed-perm``        permutations and sign flips: odd elementwise σ (tanh, hardtanh, softsign)
``perm``               permutations only: any other elementwise σ (GELU, SiLU, sigmoid, ReLU6)
``unknown``            flagalign cannot tell (activation not known from the source): never
                       guessed silently
=====================  ================================================================

A group whose elements are all orthogonal (``O``, ``perm``, ``signed-perm``) moves the column
space of W and the row space of W_next by the same orthogonal map, so principal angles, overlap,
intersection dimension and the Gram commutator of the pair are invariant under it; under the
other groups they are not (eq. (15)).
"""

from __future__ import annotations

__all__ = [
    "GL", "O", "NONZERO_DIAG", "POS_DIAG", "SIGNED_PERM", "PERM", "UNKNOWN", "SYMMETRIES",
    "ORTHOGONAL_GROUPS", "DIAGONAL_GROUPS", "meet", "op_symmetry", "path_symmetry",
    "activation_symmetry", "pair_symmetry",
]  # fmt: skip

from ..geometry.gauge import (  # noqa: F401  (re-exported: the group names)
    DIAGONAL_GROUPS,
    GL,
    NONZERO_DIAG,
    O,
    ORTHOGONAL_GROUPS,
    PERM,
    POS_DIAG,
    SIGNED_PERM,
    SYMMETRIES,
    UNKNOWN,
)

# Each group as the set of its "generators": permutations, sign flips, positive diagonal
# scalings, rotations, general linear maps. Intersection of groups = intersection of these sets
# for every pair of groups of the table (all contain the permutations).
_GENERATORS = {
    GL: frozenset({"perm", "sign", "pos", "orth", "gl"}),
    O: frozenset({"perm", "sign", "orth"}),
    NONZERO_DIAG: frozenset({"perm", "sign", "pos"}),
    POS_DIAG: frozenset({"perm", "pos"}),
    SIGNED_PERM: frozenset({"perm", "sign"}),
    PERM: frozenset({"perm"}),
}
_BY_GENERATORS = {v: k for k, v in _GENERATORS.items()}


def meet(*groups: str) -> str:
    """The largest group of the table contained in every one of ``groups`` (their intersection):
    what survives a chain of operations, each of which commutes only with its own group.
    ``unknown`` absorbs everything; no argument gives ``GL`` (nothing between the matrices)."""
    gens = _GENERATORS[GL]
    for g in groups:
        if g not in _GENERATORS:
            return UNKNOWN
        gens = gens & _GENERATORS[g]
    if gens in _BY_GENERATORS:
        return _BY_GENERATORS[gens]
    return PERM if "perm" in gens else UNKNOWN  # pragma: no cover - the table is closed


# Operation names (torch module class names, torch.nn.functional / torch / Tensor method names,
# Hugging Face ``hidden_act`` strings), lower-cased, to the group they commute with.
_OPS = {
    # linear and channel-wise linear: commute with every G acting on channels
    GL: {"identity", "dropout", "dropout1d", "dropout2d", "dropout3d", "alphadropout",
         "featurealphadropout", "alpha_dropout", "feature_alpha_dropout", "flatten", "unflatten",
         "reshape", "view", "contiguous", "squeeze", "unsqueeze", "avgpool1d", "avgpool2d",
         "avgpool3d", "adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d", "avg_pool1d",
         "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
         "adaptive_avg_pool3d", "add", "add_", "iadd", "__add__",
         "__iadd__", "getitem", "clone", "to", "float", "type_as"},
    POS_DIAG: {"relu", "relu_", "leakyrelu", "leaky_relu", "leaky_relu_", "prelu", "rrelu",
               "maxpool1d", "maxpool2d", "maxpool3d", "max_pool1d", "max_pool2d", "max_pool3d",
               "adaptivemaxpool1d", "adaptivemaxpool2d", "adaptivemaxpool3d", "adaptive_max_pool1d",
               "adaptive_max_pool2d", "adaptive_max_pool3d"},
    SIGNED_PERM: {"tanh", "tanh_", "hardtanh", "hardtanh_", "softsign", "tanhshrink", "softshrink",
                  "hardshrink"},
    PERM: {"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "gelu_accurate",
           "silu", "silu_", "swish", "sigmoid", "sigmoid_", "elu", "elu_", "selu", "celu",
           "softplus", "mish", "hardswish", "hardsigmoid", "relu6", "logsigmoid", "relu2"},
}
_OP_GROUP = {name: g for g, names in _OPS.items() for name in names}


def op_symmetry(name: str) -> str:
    """The group an elementwise/channel-wise operation named ``name`` commutes with (a torch
    module class name such as ``ReLU``, a function or method name such as ``gelu``, or a Hugging
    Face ``hidden_act`` string); ``unknown`` for anything not in the table (norms, softmax,
    products of two branches, concatenation, ...)."""
    return _OP_GROUP.get(str(name).lower(), UNKNOWN)


def path_symmetry(ops) -> str:
    """:func:`meet` of :func:`op_symmetry` over the operations between two matrices."""
    return meet(*(op_symmetry(o) for o in ops))


def activation_symmetry(act) -> str:
    """The group of one hidden space whose elementwise activation is ``act`` (a name, or None
    when it is not known: ``unknown``)."""
    return UNKNOWN if act is None else op_symmetry(act)


def pair_symmetry(network, pair) -> str:
    """``pair.symmetry``, checked against the table (the function form of the attribute)."""
    del network  # the attribute is set from the layer graph when the network is built
    s = getattr(pair, "symmetry", UNKNOWN)
    return s if s in SYMMETRIES else UNKNOWN
