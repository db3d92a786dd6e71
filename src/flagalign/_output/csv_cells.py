"""CSV neutralisation: string cells a spreadsheet would run as a formula get a leading quote
(OWASP, "CSV Injection"); every CSV an :class:`~flagalign._output.OutputFolder` writes goes
through :func:`neutralise_csv_cells`."""

from __future__ import annotations

import re

__all__ = ["neutralise_csv_cells"]

#: OWASP CSV injection: cells starting with these are formulas in spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise_csv_cells(frame):
    """A copy of ``frame`` whose string cells (and string column labels) that a spreadsheet
    would run as a formula — starting with ``=``, ``+``, ``-``, ``@``, tab or CR (OWASP, "CSV
    Injection") — are prefixed with a single quote. Numbers are never touched: numeric columns
    are skipped, and so are strings that are plain decimal literals (``"-0.5"``, ``"-1e-3"``;
    not ``"-inf"``, which a spreadsheet would evaluate as a name)."""
    import pandas as pd

    def fix(v):
        if isinstance(v, str) and v.startswith(_FORMULA_START) and not _NUMBER.match(v):
            return "'" + v
        return v

    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
            out[col] = s.map(fix)
    out.columns = [fix(c) for c in out.columns]
    return out
