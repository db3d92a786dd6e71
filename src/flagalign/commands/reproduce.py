"""``flagalign reproduce NAME [--quick] [--seeds N] [--jobs J] [--model SRC] [--loss L] [--out DIR] [--quiet]``: run a registered experiment.

Prints the experiment's markdown table and a pass/fail summary. Exit 0 when every pass
criterion held, 1 when one failed, 2 on bad input (unknown name).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from ..experiments.framework import names

    p = subparsers.add_parser(
        "reproduce",
        help="run a paper experiment and check its pass criteria",
        description="Run a registered experiment (" + ", ".join(names()) + "), print its table and "
        "pass/fail summary. Exit 0 when every criterion passed, 3 when one failed (1 is an "
        "internal error, 2 bad input, as for analyze). `hierarchy` "
        "replaces `collapse` (the old protocol, kept and documented: its ReLU net never "
        "reached collapse). Every experiment writes verdict.json.",
    )
    p.add_argument("name", help="experiment name: " + ", ".join(names())
                   + " (collapse: old protocol, superseded by hierarchy)")
    p.add_argument("--quick", action="store_true", help="reduced run (minutes, used by the tests)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: flagalign-out/NAME)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds (experiments that take it: hierarchy, resnet, lm-heads)")
    p.add_argument("--jobs", type=int, default=1,
                   help="parallel worker processes (hierarchy; results do not depend on it)")
    p.add_argument("--model", action="append", default=None, metavar="SRC",
                   help="lm-heads: a model to analyse (alias, path or HF folder; repeatable; "
                   "default: the packaged minilm and smollm2)")
    p.add_argument("--loss", choices=("mse", "ce"), default=None,
                   help="hierarchy: ce runs the secondary cross-entropy table (default mse)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..experiments.framework import get

    runner = get(args.name)  # InputError (exit 2) for an unknown name
    out = args.out if args.out is not None else Path("flagalign-out") / args.name
    t0 = time.perf_counter()
    import inspect

    accepted = inspect.signature(runner).parameters
    kwargs = {}
    if args.model is not None:
        if "models" not in accepted:
            raise InputError(f"--model: not supported by experiment {args.name!r}")
        kwargs["models"] = list(args.model)
    if args.loss is not None:
        if "loss" not in accepted:
            raise InputError(f"--loss: not supported by experiment {args.name!r}")
        kwargs["loss"] = args.loss
    for key in ("seeds", "jobs"):
        value = getattr(args, key)
        if value is None or (key == "jobs" and value == 1):
            continue
        if key not in accepted:
            raise InputError(f"--{key}: not supported by experiment {args.name!r}")
        if value < 1:
            raise InputError(f"--{key}: must be a positive integer, got {value}")
        kwargs[key] = value
    result = runner(out, quick=bool(args.quick), progress=not args.quiet, **kwargs)
    elapsed = time.perf_counter() - t0
    print(result.table_markdown)
    print()
    for f in result.files:
        print(f"wrote {f}")
    verdict = "PASSED" if result.passed else "FAILED"
    print(f"{args.name}: {verdict} ({elapsed:.0f} s{', quick' if args.quick else ''})")
    if not result.passed:
        print(f"flagalign: {args.name}: a pass criterion failed (see the checks column)",
              file=sys.stderr)  # fmt: skip
    return 0 if result.passed else 3  # ran, but a criterion failed (as analyze --strict)
