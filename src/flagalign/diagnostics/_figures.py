"""The one registry of figures, figure files and HTML of diagnostics results.

``diagnostics`` sits below ``report`` and never imports it (nor matplotlib), yet results offer
``.plot()``, ``save(figures=True)``, ``to_html()`` and ``_repr_html_``. Whatever draws them lives
in ``report``; ``flagalign/__init__.py`` (above both) registers one function per *family*
here, each importing its ``report`` module when first called (matplotlib is heavy). Families:

======================  ==========================================================
``analysis``            ``(Analysis, **opts) -> Figure`` (``Analysis.plot``)
``analysis.html``       ``(Analysis, full=True) -> str`` (``Analysis.to_html``)
``heads``               ``(HeadOverlap | Composition, **opts) -> Figure``
``heads.files``         ``(HeadOverlap | Composition, out_dir, **opts) -> [Path]``
``rates``               ``(RateTable, **opts) -> Figure`` (dynamics fit tables)
======================  ==========================================================

:func:`html_card` builds the notebook fragment: a ``<div>`` with inline styles only (no global
CSS, no ``<html>``/``<body>``) holding a summary, a small table and the figure as an inline PNG
data URI.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Callable

from ..errors import FlagalignError

__all__ = ["register_drawer", "draw", "drawer", "png_data_uri", "html_card", "spread"]

_DRAWERS: dict[str, Callable] = {}


def register_drawer(family: str, fn: Callable) -> None:
    """Register ``fn`` for ``family`` (see the module docstring for the families and the
    signature each expects); a later registration replaces the earlier."""
    _DRAWERS[family] = fn


def drawer(family: str) -> Callable:
    """The function registered for ``family``."""
    fn = _DRAWERS.get(family)
    if fn is None:
        raise FlagalignError(f"nothing registered to draw {family!r}: import flagalign")
    return fn


def draw(family: str, result, /, *args, **options):
    """Call the function registered for ``family`` on ``result`` (a Figure, None when there
    is nothing to draw, written paths or HTML, by family)."""
    return drawer(family)(result, *args, **options)


def png_data_uri(fig, dpi: int = 72) -> str:
    """``data:image/png;base64,…`` of a matplotlib Figure (drawn by its own canvas: no pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.3g}"
    return html.escape(str(v))


def html_card(title: str, summary: str, table=None, fig=None, *, max_rows: int = 12) -> str:
    """An embeddable HTML fragment: bold ``title``, a ``summary`` line, the first ``max_rows``
    rows of ``table`` (a pandas DataFrame) and ``fig`` as an inline PNG (all text escaped)."""
    parts = [f'<div style="font-family:sans-serif;font-size:12px">'
             f"<b>{html.escape(title)}</b><br>{html.escape(summary)}"]
    if table is not None and len(table.columns):
        td = 'style="padding:1px 6px;text-align:right"'
        head = "".join(f"<th {td}>{html.escape(str(c))}</th>" for c in table.columns)
        body = "".join("<tr>" + "".join(f"<td {td}>{_cell(v)}</td>" for v in row) + "</tr>"
                       for row in table.head(max_rows).itertuples(index=False))
        more = len(table) - max_rows
        parts.append(f'<table style="border-collapse:collapse;margin:4px 0"><tr>{head}</tr>'
                     f"{body}</table>" + (f"<i>… {more} more rows</i>" if more > 0 else ""))
    if fig is not None:
        parts.append(f'<br><img alt="{html.escape(title)}" style="max-width:100%" '
                     f'src="{png_data_uri(fig)}">')
    parts.append("</div>")
    return "".join(parts)


def spread(values) -> str:
    """``median m (range a–b)`` of the finite ``values`` (``n/a`` if none), for summaries."""
    import numpy as np

    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return "n/a"
    return f"median {np.median(v):.3g} (range {v.min():.3g}–{v.max():.3g})"
