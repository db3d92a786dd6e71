"""The one table style of the commands (``analyze``, ``heads``, ``trajectory``, ``compare``):
a rich table on stdout, numbers right-aligned and short, the width of the terminal (200 columns
when stdout is a file or a pipe)."""

from __future__ import annotations

import math
import numbers
import sys

__all__ = ["print_frame", "cell"]


def cell(v) -> str:
    """Short text of one value: 4 significant digits, ``–`` for NaN/None."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        v = float(v)
        return "–" if math.isnan(v) else f"{v:.4g}"
    try:
        import pandas as pd  # deferred: pandas only when a frame is printed

        if v is pd.NA:
            return "–"
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def print_frame(df, title: str | None = None, columns=None, max_rows: int | None = None,
                file=None) -> None:
    """Print the DataFrame ``df`` (``columns`` or all, at most ``max_rows`` rows) as a rich
    table."""
    from rich.console import Console  # deferred: rich (heavy), only to print
    from rich.markup import escape
    from rich.table import Table

    cols = list(columns or df.columns)
    t = Table(title=title, title_justify="left")
    sub = df[cols]
    for c in cols:
        num = sub[c].dtype.kind in "iufb"
        t.add_column(str(c), justify="right" if num else "left", no_wrap=True,
                     overflow="fold")
    rows = sub if max_rows is None else sub.head(max_rows)
    for rec in rows.itertuples(index=False):
        t.add_row(*(escape(cell(v)) for v in rec))
    out = file or sys.stdout
    Console(file=out, soft_wrap=False, width=None if out.isatty() else 200).print(t)
    if max_rows is not None and len(sub) > max_rows:
        print(f"… {len(sub) - max_rows} more rows", file=out)
