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
from .diagnostics._figures import register_drawer as _register_drawer

# `flagalign.collapse` *is* the package flagalign.diagnostics.collapse (Neural Collapse and the
# Level-1/2/3 hierarchy, docs/theory.md §3): one module object under its documented short name,
# so `import flagalign.collapse` and `from flagalign.collapse import metrics` work.
_sys.modules[__name__ + ".collapse"] = collapse
for _sub in ("accumulator", "metrics", "record", "weight_only"):  # `import flagalign.collapse.metrics`
    _sys.modules[f"{__name__}.collapse.{_sub}"] = _sys.modules[f"{collapse.__name__}.{_sub}"]
del _sub


# Figures, figure files and HTML of diagnostics results: diagnostics never imports report (report
# sits above it), so the package root, above both, registers them in the one registry
# (flagalign.diagnostics._figures). Each import below is deferred to the first call because
# report needs matplotlib (heavy) and `import flagalign` must stay light.
def _analysis_figure(analysis, **options):
    """``Analysis.plot`` / ``_repr_html_``."""
    from .report.figures import analysis_figure

    return analysis_figure(analysis, **options)


def _analysis_html(analysis, full: bool = True) -> str:
    """``Analysis.to_html``: the report page (``full``) or an embeddable fragment."""
    from .report import render_html

    return render_html(analysis, full=full)


def _heads_figure(result, **options):
    """``HeadOverlap.plot`` / ``Composition.plot`` / their ``_repr_html_``."""
    from .report.heads_figures import figure

    return figure(result, **options)


def _heads_files(result, out_dir, **options):
    """``HeadOverlap.save`` / ``Composition.save`` figures (PNG files)."""
    from .report.heads_figures import save_figures

    return save_figures(result, out_dir, **options)


def _rates_figure(table, **options):
    """``RateTable.plot`` / ``_repr_html_`` (tracker fit tables)."""
    from .report.dynamics_figures import rates_figure

    return rates_figure(table, **options)


for _family, _fn in (("analysis", _analysis_figure), ("analysis.html", _analysis_html),
                     ("heads", _heads_figure), ("heads.files", _heads_files),
                     ("rates", _rates_figure)):
    _register_drawer(_family, _fn)

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
