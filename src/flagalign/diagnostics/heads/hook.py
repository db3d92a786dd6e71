"""The heads part of ``flagalign analyze``: :func:`analysis_hook` and its ``heads.csv`` table.

:func:`flagalign.diagnostics.analysis.analyze` calls
``flagalign.diagnostics.heads.analysis_hook(network, analysis, progress=...)`` for networks with
attention layers; the report's "Attention heads" section
(:mod:`flagalign.report.heads_section`) reads what it stores in ``analysis.extras``.
"""

from __future__ import annotations

import pandas as pd

from ...models.network import Network
from .controls import mixed_heads
from .overlap import HeadOverlap, head_overlap

__all__ = ["analysis_hook", "heads_table"]


def analysis_hook(network: Network, analysis=None, progress: bool = True) -> pd.DataFrame:
    """Hook called by :func:`flagalign.analyze` for networks with attention.

    Runs ``head_overlap(network, "v", control="random-init")`` and the mixed-heads control;
    stores the :class:`HeadOverlap` in ``analysis.extras["heads_overlap"]`` and the mixed-heads
    result in ``analysis.extras["heads_overlap_mixed"]`` (for the report's heads section) and
    returns the per-layer table of trained and control rows (column ``model``), which
    ``Analysis.save`` writes as ``heads.csv``.
    """
    res = head_overlap(network, "v", control="random-init", quiet=not progress)
    mixed = head_overlap(mixed_heads(network), "v", quiet=not progress)
    if analysis is not None:
        analysis.extras["heads_overlap"] = res
        analysis.extras["heads_overlap_mixed"] = mixed
    return heads_table(res, mixed)


def heads_table(res: HeadOverlap, mixed: HeadOverlap | None = None) -> pd.DataFrame:
    """Per-layer rows of ``res``, its control (and a mixed-heads result) stacked, with a
    ``model`` column (``trained``, ``random-init``, ``mixed-heads``)."""
    parts = [res.layers.assign(model="trained")]
    if res.control is not None:
        parts.append(res.control.layers.assign(model=res.control_kind or "control"))
    if mixed is not None:
        parts.append(mixed.layers.assign(model="mixed-heads"))
    return pd.concat(parts, ignore_index=True)
