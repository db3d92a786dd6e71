"""The result of ``flagalign.analyze``: tables, summary, and writing them to files."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..._json import jsonable
from ..._version import SCHEMA_VERSION
from ...errors import FlagalignError, InputError, MissingDependencyError

__all__ = ["Analysis", "FORMATS", "register_html_renderer"]

FORMATS = ("csv", "json", "parquet", "html")

# ``diagnostics`` never imports ``report`` (report sits above it). The HTML renderer is
# registered from above instead: ``flagalign/__init__.py`` registers a function that imports
# ``flagalign.report`` when first called (see docs/architecture.md).
_HTML_RENDERER = None


def register_html_renderer(render) -> None:
    """Set the function ``render(analysis) -> str`` behind :meth:`Analysis.to_html`."""
    global _HTML_RENDERER
    _HTML_RENDERER = render


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

    def to_html(self) -> str:
        """The self-contained HTML report (figures embedded, opens offline); rendered by
        :func:`flagalign.report.render_html`."""
        if _HTML_RENDERER is None:
            raise FlagalignError("no HTML renderer registered: import flagalign.report")
        return _HTML_RENDERER(self)

    def to_json(self) -> dict:
        """``summary.json``: the summary plus every row of :attr:`pairs`."""
        out = dict(self.summary)
        recs = self.pairs.astype(object).where(self.pairs.notna(), None).to_dict("records")
        out["pairs"] = recs
        return out

    def save(self, directory, formats=("csv", "json", "html")) -> dict:
        """Write ``pairs.csv``, ``summary.json``, ``pairs.parquet``, ``report.html`` (as
        requested by ``formats``) into ``directory``; returns {format: path}."""
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise InputError(f"unknown format {bad[0]!r}; choose from {', '.join(FORMATS)}")
        d = Path(directory)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {d}: cannot create the folder ({exc.strerror})") from None
        out = {}
        frame = self.pairs.assign(schema_version=SCHEMA_VERSION)
        if "csv" in formats:
            out["csv"] = d / "pairs.csv"
            frame.to_csv(out["csv"], index=False)
            for key, val in self.extras.items():
                if isinstance(val, pd.DataFrame):
                    val.assign(schema_version=SCHEMA_VERSION).to_csv(d / f"{key}.csv", index=False)
        if "parquet" in formats:
            try:
                import pyarrow  # noqa: F401  (deferred: optional dependency, checked only here)
            except ImportError:
                raise MissingDependencyError(
                    "--format parquet needs pyarrow: pip install 'flagalign[parquet]'"
                ) from None
            out["parquet"] = d / "pairs.parquet"
            frame.to_parquet(out["parquet"], index=False)
        if "json" in formats:
            out["json"] = d / "summary.json"
            out["json"].write_text(json.dumps(self.to_json(), indent=1, default=jsonable))
        if "html" in formats:
            out["html"] = d / "report.html"
            out["html"].write_text(self.to_html(), encoding="utf-8")
        return out
