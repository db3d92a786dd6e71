"""Training dynamics: the ridge law measured live (:class:`AlignmentTracker`) and from
checkpoints (``flagalign trajectory``). docs/theory.md §2, eqs. (20)–(29).

Importing this package does not import torch.
"""

from .fit_table import RateTable
from .log import JsonlLog, read_log, records_to_frame, write_parquet
from .metrics import METRICS, pair_metrics, rate_table
from .rates import Prediction, RateFit, applicability, fit_rate, law_rate, predict_from_optimizer
from .tracker import AlignmentTracker, TrackedPair, discover_pairs

__all__ = [
    "AlignmentTracker",
    "TrackedPair",
    "discover_pairs",
    "JsonlLog",
    "read_log",
    "records_to_frame",
    "write_parquet",
    "METRICS",
    "pair_metrics",
    "rate_table",
    "RateTable",
    "Prediction",
    "RateFit",
    "applicability",
    "fit_rate",
    "law_rate",
    "predict_from_optimizer",
]
