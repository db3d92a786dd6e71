"""The fit table of the ridge law (:meth:`AlignmentTracker.fit_rates`) as a notebook object.

:class:`RateTable` *is* the pandas DataFrame :func:`.metrics.rate_table` builds (same columns,
every DataFrame operation works and keeps the type), plus the history it was fitted on, a
``plot()`` returning a :class:`matplotlib.figure.Figure` (decay curves with the fitted and the
predicted slopes, eq. (27)) and a ``_repr_html_`` (summary line, table, that figure inline).
The figure is drawn by :mod:`flagalign.report.dynamics_figures`, registered from the package
root (:mod:`flagalign.diagnostics._figures`; diagnostics never imports report).
"""

from __future__ import annotations

import pandas as pd

from .._figures import draw, html_card, spread

__all__ = ["RateTable"]


class RateTable(pd.DataFrame):
    """Fitted vs predicted decay rates per pair and metric (columns of :func:`.rate_table`).

    Attributes
    ----------
    history : pandas.DataFrame or None
        The long table (step, pair, metric, value) the rates were fitted on; what
        :meth:`plot` draws. Kept through DataFrame operations (pandas ``_metadata``).
    """

    _metadata = ["history"]
    history = None

    @property
    def _constructor(self):
        return RateTable

    @classmethod
    def of(cls, table: pd.DataFrame, history: pd.DataFrame | None = None) -> "RateTable":
        """Wrap ``table`` (a :func:`.rate_table` result) with the ``history`` it came from."""
        out = cls(table)
        out.history = history
        return out

    def plot(self, metric: str | None = None):
        """A :class:`matplotlib.figure.Figure` (no pyplot state): per pair, ``metric`` vs step
        on a log scale with the fitted slope over the fit window and the predicted slope
        (eqs. (22), (27)); without a history, fitted ± stderr vs predicted rate per pair.
        ``metric`` None: per pair the norm of D the law applies to (‖D‖, or ‖diag D‖ across a
        homogeneous activation, eq. (23))."""
        return draw("rates", self, metric=metric)

    def _repr_html_(self) -> str:
        """Notebook view: summary, table, the decay figure (inline PNG)."""
        n_pairs = self["pair"].nunique() if "pair" in self else 0
        ok = self[self["applicable"].astype(bool)] if "applicable" in self else self.iloc[:0]
        summary = f"{n_pairs} pairs, {len(self)} fits; law applicable to {len(ok)}"
        if len(ok):
            summary += f"; fitted / predicted {spread(ok['ratio'])}"
        cols = [c for c in ("pair", "metric", "rate", "stderr", "predicted", "ratio",
                            "applicable", "regime", "n_points") if c in self]
        fig = self.plot() if len(self) else None
        return html_card("Decay rates (ridge law, eq. (27))", summary, pd.DataFrame(self[cols]),
                         fig)
