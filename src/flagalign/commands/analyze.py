"""``flagalign analyze SOURCE``: every adjacent pair's alignment → pairs.csv, summary.json,
report.html (docs/schema.md)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .._threads import blas_threads
from ..diagnostics import FORMATS, analyze
from ..diagnostics.analysis import load_network
from ..errors import InputError

__all__ = ["register", "run", "parse_list", "default_out"]


def parse_list(text: str | None, name: str) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]`` (error on an empty item)."""
    if text is None:
        return []
    items = [t.strip() for t in text.split(",")]
    if not items or any(not t for t in items):
        raise InputError(f"{name}: expected a comma-separated list, got {text!r}")
    return items


def default_out(model_name: str) -> Path:
    """``flagalign-out/<model-name>/`` with the name made safe for a folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-.") or "model"
    return Path("flagalign-out") / safe


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _tol(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return v


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        aliases=["analyse"],
        help="measure every adjacent pair; write pairs.csv, summary.json and report.html",
        description="Measure the alignment geometry of every adjacent layer pair of a model "
        "(weights only) and write a table, a JSON summary and a self-contained HTML report.",
    )
    p.add_argument("source", help="model file, folder or alias (anything flagalign.load reads)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: flagalign-out/<model-name>/)")
    p.add_argument("-k", "--k", dest="k", type=_positive_int, default=None,
                   help="flag depth k (default: min(64, n/4, rank) per pair)")
    p.add_argument("--method", choices=("auto", "exact", "randomized"), default="auto",
                   help="factors (auto = exact at every size, from certified Grams; randomized on request)")
    p.add_argument("--tol", type=_tol, default=None,
                   help="sine tolerance of intersections (default: max(1e-6, 10·eps(dtype)))")
    p.add_argument("--kinds", default=None,
                   help="only these pair kinds, comma-separated (e.g. mlp,ov)")
    p.add_argument("--layers", default=None,
                   help="only pairs at these depths (the depth column), e.g. 0,3,10-12")
    p.add_argument("--format", default="csv,json,html",
                   help="outputs, comma-separated from csv,json,parquet,html (default csv,json,html)")
    p.add_argument("--seed", type=int, default=0, help="seed of the randomized SVD")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="BLAS threads (default: the BLAS default; needs threadpoolctl)")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None,
                   help="worker processes, one BLAS thread each (default: physical cores; "
                   "1: in process)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run on a Dask cluster (pip install 'flagalign[dask]'; docs/scaling.md)")
    p.add_argument("--device", choices=("cpu", "cpu-torch", "cuda"), default="cpu",
                   help="where factors and pair products are computed: numpy on the CPU "
                   "(default), torch.linalg on a CUDA GPU, or the torch code on the CPU")
    p.add_argument("--precision", choices=("float64", "float32"), default="float64",
                   help="compute precision of --device cuda/cpu-torch (default float64)")
    p.add_argument("--gauge", choices=("stored", "balanced"), default="stored",
                   help="stored: measure the weights as stored; balanced: first move the network to "
                        "the canonical representative of its hidden-layer symmetries (docs/theory.md "
                        "§7), so that angles no longer depend on the parameterization")
    p.add_argument("--raw", action="store_true",
                   help="do not fold norms (BatchNorm, LayerNorm/RMSNorm gains) into the adjacent "
                   "matrices: measure the stored weights (flagalign.load(fold_norms=False))")
    p.add_argument("--no-heads", action="store_true",
                   help="skip the attention-heads analysis (if installed)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")
    p.add_argument("--strict", action="store_true",
                   help="exit 3 when any pair could not be measured")
    p.set_defaults(func=run)


def run(args) -> int:
    formats = parse_list(args.format, "--format")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"--format {bad[0]!r}: choose from {', '.join(FORMATS)}")
    kinds = parse_list(args.kinds, "--kinds") or None
    net = load_network(args.source, fold_norms=not args.raw)  # metadata only: fails fast
    out_dir = args.out if args.out is not None else default_out(net.name)
    from .._output import OutputFolder

    # before the work: exit 2 now if --out is not creatable/writable, full or in use
    tx = OutputFolder(out_dir, set_name="analyze").open()
    # commits after the whole run has computed; on an error the old set stays
    with tx, blas_threads(args.threads):
        an = analyze(
            net,
            k=args.k,
            method=args.method,
            tol=args.tol,
            kinds=kinds,
            layers=args.layers,
            progress=not args.quiet,
            heads=not args.no_heads,
            seed=args.seed,
            jobs=args.jobs,
            scheduler=args.scheduler,
            device=None if args.device == "cpu" else args.device,
            precision=args.precision,
            gauge=None if args.gauge == "stored" else args.gauge,
        )
        paths = an.save(tx, formats=formats)
    for w in an.warnings:
        print(f"flagalign: warning: {w}", file=sys.stderr)
    if not args.quiet:
        _print_table(an)
    for fmt in ("html", "csv", "json", "parquet"):
        if fmt in paths:
            label = "report" if fmt == "html" else fmt
            print(f"{label}: {paths[fmt]}")
    if args.strict and an.summary["n_failed"]:
        return 3
    return 0


def _print_table(an, n: int = 5) -> None:
    """The most and least aligned pairs (by ``overlap_ratio``) as a rich table on stdout: the
    full pair id (as in pairs.csv, joinable) and the ratios to the null the report shows."""
    from rich.console import Console  # deferred: rich (heavy), only to print
    from rich.markup import escape
    from rich.table import Table

    ok = an.pairs[an.pairs["status"] == "ok"].sort_values("overlap_ratio", ascending=False)
    s = an.summary
    t = Table(
        title=f"{s['model']}: {s['n_ok']}/{s['n_pairs']} pairs in {s['seconds']:.1f} s "
              "(ratios: 1 = chance)",
        title_justify="left",
    )
    for col, just in (("", "left"), ("pair", "left"), ("kind", "left"), ("k/n", "right"),
                      ("overlap_ratio", "right"), ("commutator_ratio", "right"),
                      ("median θ°", "right"), ("∩dim", "right"), ("imbalance", "right")):
        t.add_column(col, justify=just, no_wrap=col != "pair", overflow="fold")
    top = ok.head(n)
    bottom = ok.tail(min(n, max(0, len(ok) - n))).iloc[::-1]
    for label, part in (("most", top), ("least", bottom)):
        for i, r in enumerate(part.itertuples()):
            t.add_row(label if i == 0 else "", escape(r.pair), r.kind, f"{r.k}/{r.dim}",
                      f"{r.overlap_ratio:.2f}", f"{r.commutator_ratio:.2f}",
                      f"{r.angle_median_deg:.1f}", str(r.intersection_dim), f"{r.imbalance:.3f}")
        if label == "most" and len(bottom):
            t.add_section()
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(t)
