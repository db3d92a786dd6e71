"""flagalign: weight-only alignment geometry between adjacent layers of deep networks.

The public API is re-exported here; see docs/theory.md for every definition.
"""

from ._version import SCHEMA_VERSION, __version__
from .errors import (
    CorruptFileError,
    FlagalignError,
    InputError,
    MissingDependencyError,
    ShapeMismatchError,
    SourceNotFoundError,
    ToleranceError,
    UnsafePickleError,
    UnsupportedFormatError,
)
from .geometry import (
    Imbalance,
    PairAlignment,
    TopSubspaces,
    commutator_norm,
    flag_intersection_dims,
    flag_table,
    gram_commutator,
    imbalance,
    intersection_dim,
    lost_dims,
    overlap_baseline,
    pair_alignment,
    principal_angles,
    relative_position,
    subspace_overlap,
    top_subspaces,
)
from .models import AttentionLayer, MatrixInfo, Network, Pair

__all__ = [
    "SCHEMA_VERSION",
    "__version__",
    # errors
    "CorruptFileError",
    "FlagalignError",
    "InputError",
    "MissingDependencyError",
    "ShapeMismatchError",
    "SourceNotFoundError",
    "ToleranceError",
    "UnsafePickleError",
    "UnsupportedFormatError",
    # geometry (docs/theory.md §1)
    "Imbalance",
    "PairAlignment",
    "TopSubspaces",
    "commutator_norm",
    "flag_intersection_dims",
    "flag_table",
    "gram_commutator",
    "imbalance",
    "intersection_dim",
    "lost_dims",
    "overlap_baseline",
    "pair_alignment",
    "principal_angles",
    "relative_position",
    "subspace_overlap",
    "top_subspaces",
    # layer graph
    "AttentionLayer",
    "MatrixInfo",
    "Network",
    "Pair",
]
