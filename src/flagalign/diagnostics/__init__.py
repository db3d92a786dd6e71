"""Network-level diagnostics built on the geometry core (docs/theory.md, eq. (14)).

:func:`analyze` measures every adjacent pair of a :class:`~flagalign.models.Network` and returns
an :class:`Analysis` (pairs table, flag tables, summary, report). Optional sub-analyses (e.g.
``flagalign.diagnostics.heads``) plug in through the hook described in
:func:`flagalign.diagnostics.analysis.analyze`.
"""

from .analysis import FORMATS, Analysis, analyze, summarize
from .factors import choose_method, compute_factors
from .pairs import PAIR_COLUMNS

__all__ = [
    "Analysis",
    "analyze",
    "summarize",
    "FORMATS",
    "PAIR_COLUMNS",
    "choose_method",
    "compute_factors",
]
