"""Names and values the training callbacks send to the frameworks' loggers.

One name per (pair, metric), the same in Lightning's loggers (TensorBoard, W&B, CSV, ...) and
the HF ``Trainer``'s ``log_history`` / ``report_to`` integrations:
``flagalign/<pair>/<metric>``, ``<pair>`` being the tracker's pair id (``TrackedPair.name``,
the id of the pair in ``tracker.history`` and the JSONL log) so logged series join those tables.
Pure Python: importing it imports no framework.
"""

from __future__ import annotations

import math

__all__ = ["PREFIX", "metric_key", "record_metrics", "rate_metrics"]

PREFIX = "flagalign"


def metric_key(pair: str, metric: str, field: str | None = None) -> str:
    """Logger name of ``metric`` of ``pair`` (``field``: ``rate`` / ``predicted`` of a fit).

    >>> metric_key("net.0.weight -> net.2.weight", "imbalance")
    'flagalign/net.0.weight -> net.2.weight/imbalance'
    >>> metric_key("net.0.weight -> net.2.weight", "imbalance_abs", "rate")
    'flagalign/net.0.weight -> net.2.weight/imbalance_abs/rate'
    """
    return "/".join(p for p in (PREFIX, pair, metric, field) if p)


def record_metrics(values: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{pair: {metric: value}}`` of one tracker record as flat logger metrics."""
    return {metric_key(pair, m): float(v) for pair, vals in values.items() for m, v in vals.items()}


def rate_metrics(table) -> dict[str, float]:
    """Fitted rates of :meth:`AlignmentTracker.fit_rates` as flat logger metrics: ``…/rate``
    for every fitted row, ``…/predicted`` where the law predicts a rate (finite)."""
    out: dict[str, float] = {}
    for row in table.itertuples(index=False):
        rate = float(row.rate)
        if math.isfinite(rate):
            out[metric_key(row.pair, row.metric, "rate")] = rate
        pred = float(row.predicted)
        if math.isfinite(pred):
            out[metric_key(row.pair, row.metric, "predicted")] = pred
    return out
