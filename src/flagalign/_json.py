"""JSON-friendly scalars: NaN → null, numpy scalars → Python numbers (summary.json, logs)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["clean", "jsonable"]


def clean(v):
    """A JSON-friendly scalar: NaN/Inf → None, numpy integers/floats → int/float."""
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def jsonable(x):
    """``json.dumps(default=jsonable)``: numpy scalars as numbers (NaN → None), anything else str."""
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, Path):
        return str(x)
    return str(x)
