"""``flagalign.analyze`` as four steps, one module each (docs/architecture.md):

* :mod:`.plan` — which pairs, which k, which SVD method (:class:`AnalysisPlan`, metadata only;
  shared by ``flagalign describe``);
* :mod:`.store` — each matrix's factors, computed once and freed after their last use;
* :mod:`.measure` — one planned pair through the one pair assembler
  (:func:`flagalign.geometry.pair.assemble_pair`);
* :mod:`.table` — the rows, their fixed columns (:data:`PAIR_COLUMNS`, docs/schema.md) and the
  aggregates of ``summary.json``;

:mod:`.run` chains them (:func:`analyze`) and :mod:`.result` holds the :class:`Analysis`.
"""

from .plan import AnalysisPlan, load_network, make_plan, parse_layers
from .result import FORMATS, Analysis
from .run import analyze
from .table import PAIR_COLUMNS, summarize

__all__ = ["Analysis", "AnalysisPlan", "FORMATS", "PAIR_COLUMNS", "analyze", "load_network",
           "make_plan", "parse_layers", "summarize"]
