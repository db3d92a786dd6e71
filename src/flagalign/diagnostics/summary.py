"""Aggregates of a pairs table (``summary.json``) and small run helpers of :func:`analyze`."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["summarize", "stored_parameters", "progress_bar", "jsonable", "clean"]


def jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, Path):
        return str(x)
    return str(x)


def clean(v):
    """JSON-friendly scalar (NaN → None)."""
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def progress_bar(total: int, enabled: bool, label: str):
    """A rich progress bar on stderr, or a no-op when disabled or stderr is not a TTY."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    p = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[item]}"),
        console=Console(file=sys.stderr),
        transient=True,
    )
    p.start()
    p.add_task(label, total=total, item="")
    return p


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
