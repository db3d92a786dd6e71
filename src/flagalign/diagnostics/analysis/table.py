"""The pairs table of ``analyze``: its fixed columns (docs/schema.md), rows and aggregates.

Columns never depend on options: a value that does not apply is NaN and ``status`` says why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..._json import clean
from ..gauge_columns import GAUGE_COLUMNS

__all__ = ["PAIR_COLUMNS", "empty_row", "pair_row", "pairs_frame", "summarize",
           "stored_parameters"]

#: The columns of ``Analysis.pairs`` / ``pairs.csv``, in order (docs/schema.md).
PAIR_COLUMNS = (
    "pair",
    "kind",
    "left",
    "right",
    "dim",
    "depth",
    "block",
    "layer",
    "head",
    "k",
    "overlap",
    "baseline",
    "overlap_ratio",
    "angle_min_deg",
    "angle_median_deg",
    "angle_max_deg",
    "intersection_dim",
    "lost_dims",
    "commutator",
    "commutator_null",
    "commutator_ratio",
    "imbalance",
    "imbalance_diag",
    "imbalance_offdiag",
    "imbalance_abs",
    *GAUGE_COLUMNS,  # symmetry, gauge, gauge_dependent, GL invariants, nulls and verdicts (§7)
    "method",
    "status",
    "seconds",
    # gap-chosen flags of the pair (docs/theory.md §5, eqs. (63)–(66))
    "flag_type_left",
    "flag_type_right",
    "flag_splits_left",
    "flag_splits_right",
    "flag_distance",
    "flag_distance_baseline",
    "flag_distance_ratio",
    "soft_relative_position",
    "soft_relative_position_baseline",
)

_IDENTITY = ("pair", "kind", "left", "right", "dim", "depth", "block", "layer", "head")
_RUN = ("method", "status", "seconds")
_TEXT = ("flag_type_left", "flag_type_right")
#: Symmetry and verdict columns that are text or flags, not numbers (docs/schema.md).
_LABELS = ("symmetry", "gauge", "gauge_dependent", "overlap_verdict", "commutator_verdict",
           "imbalance_verdict")  # fmt: skip
#: Columns that hold measured numbers (NaN when a pair cannot be measured).
_NUMERIC = tuple(c for c in PAIR_COLUMNS if c not in _IDENTITY + _RUN + _TEXT + _LABELS)
#: Integer columns (nullable ``Int64`` in ``Analysis.pairs``).
_INTEGER = ("layer", "head", "k", "intersection_dim", "lost_dims", "flag_splits_left",
            "flag_splits_right", "product_rank")


def _identity(pair, depth: int) -> dict:
    """The columns that name a pair (the same whether or not it could be measured)."""
    return {"pair": pair.name, "kind": pair.kind, "left": pair.left, "right": pair.right,
            "dim": int(pair.dim), "depth": int(depth), "block": getattr(pair, "block", ""),
            "layer": getattr(pair, "layer", None), "head": getattr(pair, "head", None)}


def empty_row(pair, depth: int, method: str, status: str, seconds: float = 0.0) -> dict:
    """A row with every measurement NaN and ``status`` saying why."""
    row = {**_identity(pair, depth), "method": method, "status": status, "seconds": float(seconds)}
    row.update({c: math.nan for c in _NUMERIC + _TEXT})
    row.update(_labels(pair))
    return {c: row[c] for c in PAIR_COLUMNS}


def _labels(pair) -> dict:
    """Placeholders of the label columns (``analyze`` fills them for its gauge, §7)."""
    return {"symmetry": getattr(pair, "symmetry", "unknown"), "gauge": "stored", "gauge_dependent": True,
            "overlap_verdict": "n/a", "commutator_verdict": "n/a", "imbalance_verdict": "n/a"}


def pair_row(pair, depth: int, pa, method: str, seconds: float = 0.0) -> dict:
    """The row of a measured pair: its identity plus :meth:`PairAlignment.scalars`."""
    row = {**_identity(pair, depth), "method": method, "status": "ok", "seconds": float(seconds)}
    row.update({c: math.nan for c in GAUGE_COLUMNS})
    row.update(_labels(pair))
    row.update(pa.scalars())
    return {c: row[c] for c in PAIR_COLUMNS}


def pairs_frame(rows: list) -> pd.DataFrame:
    """``Analysis.pairs``: the rows in :data:`PAIR_COLUMNS` order with the schema's dtypes."""
    df = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    return df.astype({"dim": "int64", "depth": "int64", "gauge_dependent": "bool",
                      **{c: "Int64" for c in _INTEGER}})  # fmt: skip


def summarize(df: pd.DataFrame) -> dict:
    """Per-kind aggregates and per-depth medians of a pairs table."""
    ok = df[df["status"] == "ok"]
    by_kind = {}
    for kind, g in df.groupby("kind", sort=False):
        gok = g[g["status"] == "ok"]
        by_kind[kind] = {
            "n": int(len(g)),
            "n_ok": int(len(gok)),
            "median_overlap": clean(gok["overlap"].median()),
            "median_baseline": clean(gok["baseline"].median()),
            "median_overlap_ratio": clean(gok["overlap_ratio"].median()),
            "mean_overlap_ratio": clean(gok["overlap_ratio"].mean()),
            "median_angle_median_deg": clean(gok["angle_median_deg"].median()),
            "median_commutator": clean(gok["commutator"].median()),
            "median_imbalance": clean(gok["imbalance"].median()),
            "total_intersection_dim": clean(gok["intersection_dim"].sum()),
            "total_lost_dims": clean(gok["lost_dims"].sum()),
            "median_flag_distance_ratio": clean(gok["flag_distance_ratio"].median()),
            "median_soft_relative_position": clean(gok["soft_relative_position"].median()),
        }
    by_depth = []
    for (depth, kind), g in ok.groupby(["depth", "kind"], sort=True):
        by_depth.append(
            {
                "depth": int(depth),
                "kind": kind,
                "n": int(len(g)),
                "median_overlap_ratio": clean(g["overlap_ratio"].median()),
                "median_commutator": clean(g["commutator"].median()),
                "median_imbalance": clean(g["imbalance"].median()),
            }
        )
    ranked = ok.sort_values("overlap_ratio", ascending=False)
    return {
        "n_pairs": int(len(df)),
        "n_ok": int(len(ok)),
        "n_failed": int(len(df) - len(ok)),
        "failures": [
            {"pair": r.pair, "status": r.status} for r in df[df["status"] != "ok"].itertuples()
        ][:100],
        "by_kind": by_kind,
        "by_depth": by_depth,
        "most_aligned": ranked["pair"].head(5).tolist(),
        "least_aligned": ranked["pair"].tail(5).iloc[::-1].tolist(),
    }


def stored_parameters(net, names) -> int:
    """Entries of the distinct *stored* tensors behind the analysed matrices: a head slice or a
    stacked Q/K/V counts its parent tensors once (via ``MatrixInfo.source_key``)."""
    by_key = {(i.source_key or i.name): i for i in net.matrices.values() if not i.derived}
    keys, extra = set(), 0
    for n in names:
        info = net.matrices[n]
        if not info.derived:
            keys.add(info.source_key or info.name)
            continue
        parents = [k.strip() for k in (info.source_key or "").split(" + ")]
        if parents and all(k in by_key for k in parents):
            keys.update(parents)
        else:
            extra += int(np.prod(info.shape))
    return int(sum(int(np.prod(by_key[k].shape)) for k in keys) + extra)
