"""``flagalign compare A B [--k K] [--out DIR]``: how far training rotated each matrix's flags.

For every matrix present in both checkpoints with the same shape: principal angles (eq. (1))
between A's and B's top-k left singular subspaces (output flag) and between their top-k right
singular subspaces (input flag), the mean cos² overlaps (eq. (2)) and the relative change
‖B − A‖_F / ‖A‖_F, and the chordal distance between A's and B's gap-chosen flags (eqs. (63),
(66); ``out_flag_distance``, ``in_flag_distance``). Writes ``compare.csv`` and ``report.html``
(angle spectra per matrix) under ``--out`` (default
``flagalign-out/compare-<A>-<B>``) and prints the table.
"""

from __future__ import annotations

import re
from pathlib import Path

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
    p.add_argument("-k", "--k", dest="k", type=_threads_arg, default=None, help="subspace dimension (default: eq. (14))")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")
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
    from ._table import print_frame

    net_a, net_b = load(args.a), load(args.b)
    safe = lambda s: re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-.") or "model"  # noqa: E731
    out = args.out or Path("flagalign-out") / f"compare-{safe(net_a.name)}-{safe(net_b.name)}"
    angles: dict = {}
    with OutputFolder(out, set_name="compare").open() as tx:  # exit 2 before the work
        table, skipped = compare_networks(net_a, net_b, k=args.k, threads=args.threads,
                                          progress=not args.quiet, angles=angles)
        tx.write_csv("compare.csv", table)  # atomic, run_id column, cells neutralised
        from ..report.compare_report import render_compare_html  # deferred: matplotlib (heavy)

        tx.write_text("report.html",
                      render_compare_html(table, angles, net_a.name, net_b.name, skipped))
    if not args.quiet:
        brief = [c for c in table.columns if not c.endswith(("_flag_type", "_flag_baseline"))]
        print_frame(table.sort_values("out_overlap"), title=f"{net_a.name} vs {net_b.name}: "
                    f"{len(table)} matrices, least similar output flags first (flag types and "
                    "random-flag baselines in compare.csv)", columns=brief)
    if skipped:
        print(f"skipped {len(skipped)} matrices not in both with the same shape: "
              + ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else ""))  # fmt: skip
    print(f"report: {out / 'report.html'}")
    print(f"csv: {out / 'compare.csv'}")
    return 0
