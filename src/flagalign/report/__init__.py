"""The self-contained HTML report of an :class:`~flagalign.diagnostics.Analysis`.

The report is a list of **sections**, rendered in ``order``; each section is a function
``render(analysis) -> str | None`` returning an HTML fragment (or None to leave it out). Figures
are embedded as PNG ``data:`` URIs, the CSS and the table-sorting script are inline, there is no external link,
so ``report.html`` opens offline and can be mailed as one file.

Adding a section (e.g. attention heads)
---------------------------------------
In a module of ``report`` (for heads: ``flagalign/report/heads_section.py``) imported with the
built-in sections (:mod:`flagalign.report.sections`), so it exists whenever a report is
rendered::

    from flagalign.report import Section, figure, register_section, table

    def _heads_html(analysis):
        res = analysis.extras.get("heads")          # what your analysis_hook returned
        if res is None:
            return None                             # section left out
        fig = ...                                   # a matplotlib Figure
        return figure(fig, "caption") + table(res.head(20))

    register_section(Section("heads", "Attention heads", _heads_html, order=55))

The run header (model, method, k, tolerances, schema version, run time) always comes first.
Built-in orders: 20 overlap vs depth, 30 principal angles, 40 flag tables, 45 relative position
of the flags (report/position_section.py),
50 commutator and imbalance, 60 per-kind summary, 70 most/least aligned, 80 failed pairs,
90 all pairs. ``html.escape`` anything that comes from a model (matrix names, messages).
"""

from __future__ import annotations

from html import escape

from . import sections as _builtin  # noqa: F401 - registers the built-in sections
from .html import figure, page, table
from .registry import SECTIONS, Section, register_section

__all__ = ["Section", "SECTIONS", "register_section", "render_html", "figure", "table"]


def render_html(analysis, full: bool = True) -> str:
    """The whole report as one HTML string; ``full`` False: an embeddable ``<div>`` fragment
    (no ``<html>``/``<body>``, its CSS scoped to the fragment)."""
    parts = []
    for sec in sorted(SECTIONS.values(), key=lambda s: (s.order, s.key)):
        try:
            body = sec.render(analysis)
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the report
            body = f'<p class="bad">section failed: {escape(type(exc).__name__)}: {escape(str(exc))}</p>'
        if body:
            parts.append((sec, body))
    return page(analysis, parts, full=full)
