"""Network-level diagnostics built on the geometry core (docs/theory.md, eq. (14)).

:func:`analyze` measures every adjacent pair of a :class:`~flagalign.models.Network` and returns
an :class:`Analysis` (pairs table, flag tables, summary). The steps live in
:mod:`flagalign.diagnostics.analysis` (plan, store, measure, table); optional sub-analyses (e.g.
``flagalign.diagnostics.heads``) plug in through the hook of
:func:`flagalign.diagnostics.analysis.run.analyze`. ``diagnostics`` never imports ``report``.
"""

from .analysis import FORMATS, PAIR_COLUMNS, Analysis, AnalysisPlan, analyze, make_plan, summarize
from .analysis.store import compute_factors

__all__ = [
    "Analysis",
    "AnalysisPlan",
    "analyze",
    "make_plan",
    "summarize",
    "FORMATS",
    "PAIR_COLUMNS",
    "compute_factors",
]
