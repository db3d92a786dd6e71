"""``flagalign compare A B [--k K] [--out DIR]``: how far training rotated each matrix's flags.

For every matrix present in both checkpoints with the same shape: principal angles (eq. (1))
between A's and B's top-k left singular subspaces (output flag) and between their top-k right
singular subspaces (input flag), the mean cos² overlaps (eq. (2)) and the relative change
‖B − A‖_F / ‖A‖_F. Writes ``compare.csv`` under ``--out`` (default
``flagalign-out/compare-<A>-<B>``) and prints the table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..diagnostics.compare import compare_networks
from ..models import load

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="principal angles between two checkpoints' singular subspaces, per matrix",
        description="For two checkpoints of one architecture, the principal angles between each "
        "matrix's top-k singular subspaces in A and in B (how far fine-tuning rotated each flag).",
    )
    p.add_argument("a", help="first checkpoint (path or alias)")
    p.add_argument("b", help="second checkpoint (path or alias)")
    p.add_argument("--k", type=int, default=None, help="subspace dimension (default: eq. (14))")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("--threads", type=_threads_arg, default=1,
                   help="BLAS threads (default 1, fastest for many factorizations)")
    p.set_defaults(func=run)


def _threads_arg(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def run(args) -> int:
    from .._output import OutputFolder

    net_a, net_b = load(args.a), load(args.b)
    safe = lambda s: re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-.") or "model"  # noqa: E731
    out = args.out or Path("flagalign-out") / f"compare-{safe(net_a.name)}-{safe(net_b.name)}"
    with OutputFolder(out, set_name="compare").open() as tx:  # exit 2 before the work
        table, skipped = compare_networks(net_a, net_b, k=args.k, threads=args.threads)
        tx.write_csv("compare.csv", table)  # atomic, run_id column, cells neutralised
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if skipped:
        print(f"skipped {len(skipped)} matrices not in both with the same shape: "
              + ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else ""))  # fmt: skip
    print(f"wrote {out / 'compare.csv'}")
    return 0
