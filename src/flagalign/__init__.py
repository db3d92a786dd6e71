"""flagalign: weight-only alignment geometry between adjacent layers of deep networks.

The public API is re-exported here; see docs/theory.md for every definition.
"""

import sys as _sys

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
    Flag,
    flag_distance,
    flag_mean,
    flag_median,
    soft_relative_position,
    spectral_flag,
    subspace_distance,
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
from .models import AttentionLayer, MatrixInfo, Network, Pair, balanced_network, load
from .diagnostics import Analysis, analyze
from .diagnostics import collapse
from .diagnostics.heads import Composition, HeadOverlap, composition, head_overlap
from .diagnostics.heads import register_figure_writer as _register_heads_figure_writer
from .diagnostics._figures import register_drawer as _register_drawer

# `flagalign.collapse` *is* the package flagalign.diagnostics.collapse (Neural Collapse and the
# Level-1/2/3 hierarchy, docs/theory.md §3): one module object under its documented short name,
# so `import flagalign.collapse` and `from flagalign.collapse import metrics` work.
_sys.modules[__name__ + ".collapse"] = collapse


def _save_heads_figures(result, out_dir, **options):
    """``HeadOverlap.save`` / ``Composition.save`` figures: diagnostics never imports report, so
    the package root (above both) wires them; deferred because report needs matplotlib (heavy)."""
    from .report.heads_figures import save_figures

    return save_figures(result, out_dir, **options)


_register_heads_figure_writer(_save_heads_figures)


def _heads_figure(result, **options):
    """``HeadOverlap.plot`` / ``Composition.plot`` / their ``_repr_html_``: wired here like the
    writer above; deferred because report needs matplotlib."""
    from .report.heads_figures import figure

    return figure(result, **options)


def _rates_figure(table, **options):
    """``RateTable.plot`` / ``_repr_html_`` (tracker fit tables); deferred as above."""
    from .report.dynamics_figures import rates_figure

    return rates_figure(table, **options)


_register_drawer("heads", _heads_figure)
_register_drawer("rates", _rates_figure)
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
    # partial flags (docs/theory.md §5)
    "Flag",
    "flag_distance",
    "flag_mean",
    "flag_median",
    "soft_relative_position",
    "spectral_flag",
    "subspace_distance",
    # layer graph
    "AttentionLayer",
    "MatrixInfo",
    "Network",
    "Pair",
    "load",
    "balanced_network",
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
