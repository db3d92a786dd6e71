"""Neural Collapse NC1–NC4 and the Level-1/2/3 alignment hierarchy (docs/theory.md, §3).

* :class:`Accumulator` — streaming float64 class statistics over batches (eq. (30)).
* :func:`metrics` → :class:`CollapseReport` — NC1–NC4 and Levels 1–3 with data (eqs. (31)–(38)).
* :func:`weight_only` → :class:`WeightOnlyCollapse` — the proxies readable without data (eq. (39)).
* :func:`record` — two-pass, hook-based recording from a torch model and a loader;
  :class:`CollapseRecorder` calls it every N steps of a training loop.
"""

from .accumulator import Accumulator
from .metrics import (
    TOL_COMMUTATOR,
    TOL_NC1,
    TOL_SINE,
    CollapseReport,
    cdnv,
    cdnv_baseline,
    class_mean_rank,
    etf_distance,
    etf_distance_baseline,
    metrics,
    nc1,
    nc1_baseline,
    nc2,
    nc3,
)
from .record import CollapseRecorder, record
from .weight_only import WeightOnlyCollapse, weight_only, weight_only_arrays

__all__ = [
    "Accumulator",
    "CollapseReport",
    "WeightOnlyCollapse",
    "metrics",
    "weight_only",
    "weight_only_arrays",
    "record",
    "CollapseRecorder",
    "nc1",
    "cdnv",
    "nc2",
    "etf_distance",
    "nc3",
    "nc1_baseline",
    "cdnv_baseline",
    "etf_distance_baseline",
    "class_mean_rank",
    "TOL_NC1",
    "TOL_SINE",
    "TOL_COMMUTATOR",
]
