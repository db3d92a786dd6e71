"""``flagalign describe SOURCE``: a dry run of ``analyze`` — what would be analysed, no SVDs."""

from __future__ import annotations

import sys
from collections import Counter

from ..diagnostics.analysis import load_network, make_plan
from .analyze import _positive_int, parse_list

__all__ = ["register", "run", "plan_rows"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "describe",
        help="dry run: the layer graph and the pairs analyze would measure (no SVDs)",
        description="Show the layer graph of a model and the pairs `flagalign analyze` would "
        "measure, with the SVD method and k each would use. Reads only metadata.",
    )
    p.add_argument("source", help="model file, folder or alias")
    p.add_argument("-k", "--k", dest="k", type=_positive_int, default=None, help="flag depth k (as for analyze)")
    p.add_argument("--method", choices=("auto", "exact", "randomized"), default="auto")
    p.add_argument("--kinds", default=None, help="only these pair kinds, comma-separated")
    p.add_argument("--layers", default=None, help="only pairs at these depths, e.g. 0,3,10-12")
    p.add_argument("--all", action="store_true", help="list every pair (default: 10 per kind)")
    p.set_defaults(func=run)


def plan_rows(net, k=None, method="auto", kinds=None, layers=None) -> list[dict]:
    """One dict per pair of the :class:`~flagalign.diagnostics.AnalysisPlan` that ``analyze``
    would run: kind, names, shapes, dim, the k bound and SVD method (the k actually used can be
    lower: it is capped at the numerical rank, known only after the SVD)."""
    plan = make_plan(net, k, method, kinds=kinds, layers=layers)
    rows = []
    for r, t in zip(plan.rows(), plan.pairs):
        ls, rs = net.matrices[t.pair.left].shape, net.matrices[t.pair.right].shape
        rows.append({"kind": r["kind"], "pair": r["pair"], "left_shape": f"{ls[0]}x{ls[1]}",
                     "right_shape": f"{rs[0]}x{rs[1]}", "dim": r["dim"], "k": r["k"],
                     "method": r["method"]})
    return rows


def run(args) -> int:
    from rich.console import Console  # deferred: rich is only needed to print (heavy import)
    from rich.markup import escape  # (rich: deferred, only to print)
    from rich.table import Table

    net = load_network(args.source)
    kinds = parse_list(args.kinds, "--kinds") or None
    rows = plan_rows(net, k=args.k, method=args.method, kinds=kinds, layers=args.layers)
    con = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 240)
    con.print(net.describe(), markup=False, highlight=False)
    by_kind = Counter(r["kind"] for r in rows)
    n_rand = sum(r["method"] == "randomized" for r in rows)
    con.print(
        f"would analyse {len(rows)} pairs ({', '.join(f'{k}={n}' for k, n in by_kind.items())}); "
        f"{n_rand} use a randomized SVD",
        markup=False,
        highlight=False,
    )
    t = Table(show_lines=False)
    for col in ("kind", "dim", "k≤", "method", "left", "right", "pair"):
        t.add_column(col, no_wrap=True, overflow="fold" if col == "pair" else "ellipsis")
    shown: Counter = Counter()
    for r in rows:
        shown[r["kind"]] += 1
        if not args.all and shown[r["kind"]] > 10:
            continue
        t.add_row(r["kind"], str(r["dim"]), str(r["k"]), r["method"], r["left_shape"],
                  r["right_shape"], escape(r["pair"]))
    con.print(t)
    hidden = sum(max(0, n - 10) for n in shown.values()) if not args.all else 0
    if hidden:
        con.print(f"... {hidden} more pairs (use --all)", markup=False, highlight=False)
    return 0
