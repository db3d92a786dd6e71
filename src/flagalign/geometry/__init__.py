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
from .distances import flag_distance, flag_distance_baseline, subspace_distance
from .flag_mean import flag_mean, flag_median
from .flag_position import (
    RelativePosition,
    piece_overlaps,
    soft_relative_position,
    soft_relative_position_baseline,
)
from .factored import PairProducts, pair_products
from .flags import flag_intersection_dims, flag_table, relative_position
from .imbalance import Imbalance, imbalance, imbalance_matrix
from .partial_flag import Flag
from .spectral_flag import flag_from_spectrum, spectral_flag, storage_perturbation
from .nulls import NullEstimate, commutator_null, commutator_null_sq
from .pair import PairAlignment, assemble_pair, default_k, lost_dims, pair_alignment
from .svd import TopSubspaces, choose_method, top_subspaces

__all__ = [
    # partial flags (docs/theory.md §5)
    "Flag",
    "RelativePosition",
    "flag_distance",
    "flag_distance_baseline",
    "flag_from_spectrum",
    "flag_mean",
    "flag_median",
    "piece_overlaps",
    "soft_relative_position",
    "soft_relative_position_baseline",
    "spectral_flag",
    "storage_perturbation",
    "subspace_distance",
    "Imbalance",
    "NullEstimate",
    "PairAlignment",
    "PairProducts",
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
    "pair_products",
    "principal_angles",
    "principal_cosines_sines",
    "rank_from_singular_values",
    "rank_rtol",
    "relative_position",
    "subspace_overlap",
    "top_subspaces",
]
