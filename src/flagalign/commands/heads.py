"""``flagalign heads SOURCE``: attention-head subspace overlap per layer, with a random-init
control and (optionally) head-to-head composition scores (docs/heads.md)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..errors import InputError

__all__ = ["register", "run"]


def _layers(text):
    """``--layers`` with the syntax of ``flagalign analyze`` (e.g. ``0,3,10-12``); None: all."""
    from ..diagnostics.analysis import parse_layers

    return None if text is None else parse_layers(text)


def register(subparsers) -> None:
    from ..diagnostics.heads import SUBSPACES

    p = subparsers.add_parser(
        "heads",
        help="attention-head subspace overlap per layer (with a random-init control)",
        description="For every attention layer, the head x head overlap of the heads' "
        "subspaces, its random-subspace baseline and standard error, and the effective number "
        "of distinct heads (docs/theory.md eqs. (40)-(47)).",
    )
    p.add_argument("source", help="model file, folder or alias (anything flagalign.load reads)")
    p.add_argument("--subspace", choices=SUBSPACES, default="v",
                   help="head subspace: q/k/v (what it reads), o (what it writes), qk, ov "
                   "(default v)")
    p.add_argument("-k", "--k", dest="k", type=int, default=None,
                   help="top-k of the qk/ov subspaces (default head_dim)")
    p.add_argument("--control", choices=("random-init", "mixed-heads", "none"),
                   default="random-init",
                   help="also analyse a seeded control: random-init (fresh nn.Linear init), "
                   "mixed-heads (each layer's head blocks re-cut by a random rotation), none "
                   "(default random-init)")
    p.add_argument("--seed", type=int, default=0, help="seed of the control")
    p.add_argument("--layers", default=None,
                   help="attention layer ids, e.g. 0,3,10-12 (default all)")
    p.add_argument("--composition", default=None,
                   help="also composition scores of these kinds, comma-separated from q,k,v")
    p.add_argument("--null", choices=("gaussian", "rotation"), default="gaussian",
                   help="composition null: Gaussian heads of the same shapes (default) or a "
                   "random rotation of each source layer's output space (2x cost)")
    p.add_argument("--raw", action="store_true",
                   help="do not fold norm gains into q/k/v readers "
                   "(flagalign.load(fold_norms=False))")
    p.add_argument("--out", type=Path, default=None,
                   help="write CSVs and figures into this folder")
    p.add_argument("--no-figures", action="store_true", help="CSVs only")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..diagnostics.heads import KINDS
    from ..models.loader import load

    kinds = []
    if args.composition:
        kinds = [t.strip() for t in args.composition.split(",")]
        bad = [t for t in kinds if t not in KINDS]
        if bad:
            raise InputError(f"--composition {bad[0]!r}: choose from q, k, v")
    if args.k is not None and args.k < 1:
        raise InputError(f"-k: expected a positive integer, got {args.k}")
    if args.seed < 0:
        raise InputError(f"--seed: expected a non-negative integer, got {args.seed}")
    net = load(args.source, fold_norms=not args.raw)
    if not net.attention:
        raise InputError(f"{args.source}: no attention layers found (flagalign describe "
                         f"{args.source} shows what was recognised)")
    tx = None
    if args.out is not None:  # before the work: exit 2 now if --out is unusable or in use
        from .._output import OutputFolder

        tx = OutputFolder(args.out, set_name="heads").open()
    with tx if tx is not None else contextlib.nullcontext():
        return _run(args, net, kinds, tx)


def _run(args, net, kinds, tx) -> int:
    from ..diagnostics.heads import composition, head_overlap

    control = None if args.control == "none" else args.control
    res = head_overlap(net, args.subspace, _layers(args.layers), k=args.k, control=control,
                       seed=args.seed, quiet=args.quiet)
    comps = [composition(net, kd, _layers(args.layers), seed=args.seed, null=args.null,
                         quiet=args.quiet) for kd in kinds]
    if not args.quiet:
        from ._table import print_frame

        print_frame(res.summary_table(), title=f"{net.name}: head overlap ({args.subspace})")
        for c in comps:
            t = c.layers
            (bm, bs), = list(c.baseline.values())[:1] or [(float("nan"), float("nan"))]
            print(f"\n# {c.kind}-composition: mean {t['mean'].mean():.4f}, max "
                  f"{t['max'].max():.4f}; Gaussian baseline {bm:.4f} ± {bs:.4f}; "
                  f"{(c.scores.score > bm + 3 * bs).mean():.1%} of head pairs above +3 sd")
            if "null_score" in c.scores:
                ns = c.scores.null_score
                print(f"#   rotation null: {ns.mean():.4f} ± {ns.std():.4f}; "
                      f"{(c.scores.score > ns.mean() + 3 * ns.std()).mean():.1%} above +3 sd")
    if tx is not None:  # one atomic set, committed when run() leaves its with block
        files = res.save(tx, figures=not args.no_figures)
        for c in comps:
            files += c.save(tx, figures=not args.no_figures)
        if not args.quiet:
            print(f"\nwrote {len(files)} files to {args.out}", file=sys.stderr)
    return 0
