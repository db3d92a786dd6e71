"""The result of ``flagalign.analyze``: tables, summary, and writing them to files."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import pandas as pd

from ..._json import jsonable
from ..._version import SCHEMA_VERSION
from ...errors import InputError, MissingDependencyError
from .._figures import draw, html_card

__all__ = ["Analysis", "FORMATS"]

FORMATS = ("csv", "json", "parquet", "html")

#: What :meth:`Analysis.plot` can draw (``which=``).
PLOTS = ("overlap", "angles", "flags", "commutator")


@dataclass
class Analysis:
    """The result of :func:`~flagalign.analyze`.

    Attributes
    ----------
    pairs : pandas.DataFrame
        One row per pair, columns :data:`~flagalign.diagnostics.analysis.table.PAIR_COLUMNS`
        (docs/schema.md).
    flag_tables : dict[str, numpy.ndarray]
        Flag table (eq. (6)) of each ok pair at its analysed k, keyed by the ``pair`` column.
        (Was ``flags``; renamed so as not to collide with ``Network.flags``, the NaN/Inf report.)
    summary : dict
        Run metadata, per-kind aggregates and per-depth medians (JSON-serialisable; it is
        ``summary.json`` without the ``pairs`` records).
    network : dict
        Name, architecture, source and the layer-graph description of the analysed model.
    angles : dict[str, numpy.ndarray]
        Principal angles (degrees, ascending, float32) of each ok pair at its k (eq. (1)).
    extras : dict
        Results of optional hooks (``extras["heads"]`` from :mod:`flagalign.diagnostics.heads`).
        A DataFrame value is saved as ``<key>.csv`` next to ``pairs.csv``.
    warnings : list[str]
    """

    pairs: pd.DataFrame
    flag_tables: dict
    summary: dict
    network: dict
    angles: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def flags(self) -> dict:
        """Deprecated name of :attr:`flag_tables` (it collided with ``Network.flags``)."""
        warnings.warn("Analysis.flags is renamed Analysis.flag_tables", DeprecationWarning,
                      stacklevel=2)
        return self.flag_tables

    @property
    def failed(self) -> pd.DataFrame:
        """Rows whose status is not ``ok``."""
        return self.pairs[self.pairs["status"] != "ok"]

    def to_html(self, full: bool = True) -> str:
        """The self-contained HTML report (figures embedded, opens offline), or with ``full``
        False the same content as an embeddable ``<div>`` fragment (no ``<html>``/``<body>``,
        its CSS scoped to the fragment). Rendered by :func:`flagalign.report.render_html`
        (registered in :mod:`flagalign.diagnostics._figures`)."""
        return draw("analysis.html", self, full=full)

    def plot(self, which: str = "overlap"):
        """A :class:`matplotlib.figure.Figure` of the report: ``overlap`` (overlap vs depth
        with the k/n null, the key figure), ``angles``, ``flags`` or ``commutator``; None when
        no pair could be measured."""
        if which not in PLOTS:
            raise InputError(f"plot: which={which!r}; choose from {', '.join(PLOTS)}")
        return draw("analysis", self, which=which)

    def _by_kind(self) -> pd.DataFrame:
        ok = self.pairs[self.pairs["status"] == "ok"]
        g = ok.groupby("kind", sort=False)
        cols = [c for c in ("overlap_ratio", "commutator_ratio", "imbalance") if c in ok]
        t = g[cols].median().add_prefix("median ")
        return t.assign(pairs=g.size()).reset_index()[["kind", "pairs", *t.columns]]

    def __repr__(self) -> str:
        s = self.summary
        t = self._by_kind()
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in zip(t["kind"], t["median overlap_ratio"]))
        return (f"<Analysis {s.get('model')!s}: {s.get('n_ok')}/{s.get('n_pairs')} pairs ok; "
                f"median overlap_ratio by kind: {kinds or 'n/a'}>")

    def _repr_html_(self) -> str:
        """Notebook view: a summary line, the per-kind medians and the overlap-vs-depth figure
        (a ``<div>`` with inline styles; no ``<html>``/``<body>``, no global CSS)."""
        s = self.summary
        line = (f"{s.get('n_ok')}/{s.get('n_pairs')} pairs ok · overlap_ratio: 1 = chance "
                "(k/n), n/k = identical subspaces · commutator_ratio: 1 = chance, 0 = shared "
                "eigenbasis · .plot(), .to_html(), .save(dir)")
        try:
            fig = self.plot("overlap")
        except Exception:  # noqa: BLE001 - a notebook view must render without its figure
            fig = None
        return html_card(f"flagalign analysis · {s.get('model')}", line, self._by_kind(), fig)

    def to_json(self) -> dict:
        """``summary.json``: the summary plus every row of :attr:`pairs`."""
        out = dict(self.summary)
        recs = self.pairs.astype(object).where(self.pairs.notna(), None).to_dict("records")
        out["pairs"] = recs
        return out

    def save(self, directory, formats=("csv", "json", "html")) -> dict:
        """Write ``pairs.csv``, ``summary.json``, ``pairs.parquet``, ``report.html`` (as
        requested by ``formats``) into ``directory`` as one run; returns {format: path}.

        ``directory`` is a path or an open :class:`flagalign._output.OutputFolder`. The files
        are written atomically under the folder's lock, each carries the run id, and the
        previous run's files this one does not produce are removed (docs/security.md)."""
        from ..._output import output_folder

        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise InputError(f"unknown format {bad[0]!r}; choose from {', '.join(FORMATS)}")
        if "parquet" in formats:
            try:
                import pyarrow  # noqa: F401  (deferred: optional dependency, checked only here)
            except ImportError:
                raise MissingDependencyError(
                    "--format parquet needs pyarrow: pip install 'flagalign[parquet]'"
                ) from None
        out = {}
        frame = self.pairs.assign(schema_version=SCHEMA_VERSION)
        with output_folder(directory, set_name="analyze") as tx:
            if "csv" in formats:
                out["csv"] = tx.write_csv("pairs.csv", frame)
                for key, val in self.extras.items():
                    if isinstance(val, pd.DataFrame):
                        tx.write_csv(f"{key}.csv", val.assign(schema_version=SCHEMA_VERSION))
            if "parquet" in formats:
                out["parquet"] = tx.write_parquet("pairs.parquet", frame)
            run = replace(self, summary={**self.summary, "run_id": tx.run_id})
            if "json" in formats:
                out["json"] = tx.write_json("summary.json", run.to_json(), default=jsonable)
            if "html" in formats:
                out["html"] = tx.write_text("report.html", run.to_html())
        return out
