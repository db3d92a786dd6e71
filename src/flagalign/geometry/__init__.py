"""Pure float64 numpy/scipy geometry of subspaces and flags (no torch). docs/theory.md §1.

Never imports ``diagnostics``, ``report`` or ``models``: everything above builds on it.
"""

from ._basis import (
    default_sine_tol,
    numerical_rank,
    orthonormal_basis,
    rank_from_singular_values,
    rank_rtol,
)
from .angles import (
    intersection_dim,
    overlap_baseline,
    principal_angles,
    principal_cosines_sines,
    subspace_overlap,
)
from .commutator import commutator_norm, gram_commutator
from .flags import flag_intersection_dims, flag_table, relative_position
from .imbalance import Imbalance, imbalance, imbalance_matrix
from .nulls import NullEstimate, commutator_null, commutator_null_sq
from .pair import PairAlignment, assemble_pair, default_k, lost_dims, pair_alignment
from .svd import TopSubspaces, choose_method, top_subspaces

__all__ = [
    "Imbalance",
    "NullEstimate",
    "PairAlignment",
    "TopSubspaces",
    "assemble_pair",
    "choose_method",
    "commutator_norm",
    "commutator_null",
    "commutator_null_sq",
    "default_k",
    "default_sine_tol",
    "flag_intersection_dims",
    "flag_table",
    "gram_commutator",
    "imbalance",
    "imbalance_matrix",
    "intersection_dim",
    "lost_dims",
    "numerical_rank",
    "orthonormal_basis",
    "overlap_baseline",
    "pair_alignment",
    "principal_angles",
    "principal_cosines_sines",
    "rank_from_singular_values",
    "rank_rtol",
    "relative_position",
    "subspace_overlap",
    "top_subspaces",
]
