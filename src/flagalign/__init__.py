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
from .models import AttentionLayer, MatrixInfo, Network, Pair, load
from .diagnostics import Analysis, analyze
from .diagnostics.composition import Composition, composition
from .diagnostics.heads import HeadOverlap, head_overlap
from . import collapse  # Neural Collapse & Level-1/2/3 hierarchy (docs/theory.md §3)
from .diagnostics.analysis import register_html_renderer as _register_html_renderer


def _render_html(analysis) -> str:
    """``Analysis.to_html``: diagnostics never imports report, so the package root (above both)
    wires them; the import is deferred because report needs matplotlib (heavy)."""
    from .report import render_html

    return render_html(analysis)


_register_html_renderer(_render_html)

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
    "load",
    # network analysis (docs/schema.md)
    "Analysis",
    "analyze",
    # attention heads (docs/theory.md §4, docs/heads.md)
    "Composition",
    "HeadOverlap",
    "composition",
    "head_overlap",
    # Neural Collapse (docs/theory.md §3): flagalign.collapse.metrics, .Accumulator, ...
    "collapse",
]

# Training dynamics (docs/theory.md §2): imported lazily so that `import flagalign` stays torch-free.
__all__ += ["AlignmentTracker"]


def __getattr__(name):
    if name == "AlignmentTracker":
        from .diagnostics.dynamics import AlignmentTracker

        return AlignmentTracker
    raise AttributeError(f"module 'flagalign' has no attribute {name!r}")
