"""``flagalign trajectory CHECKPOINT_DIR [--out DIR]``: alignment metrics over saved checkpoints.

Every model file or folder in CHECKPOINT_DIR that :func:`flagalign.load` reads and whose name
contains a step number (the last integer in the name: ``step_100.pt``, ``checkpoint-500/``,
``epoch=3-step=120.ckpt``...) is loaded in step order; each adjacent pair is measured as by the
:class:`~flagalign.AlignmentTracker`, and decay rates are fitted (docs/theory.md, eq. (27)).
``--lr/--weight-decay [--momentum]`` give the predicted rate (eqs. (22), (25)); the law is only
asserted for pairs whose activation you state with ``--activation``.

Writes ``trajectory.csv`` (long: step, checkpoint, pair, metric, value), ``rates.csv`` and
``trajectory.png`` under ``--out`` (default ``flagalign-out/trajectory-<dir name>``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .._progress import progress_bar
from ..errors import FlagalignError, InputError, ShapeMismatchError, SourceNotFoundError

__all__ = ["register", "run", "list_checkpoints"]

_EXTS = {".safetensors", ".gguf", ".pt", ".pth", ".bin", ".npz", ".onnx", ".ckpt"}
_INT = re.compile(r"\d+")


def list_checkpoints(folder) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoints in ``folder``, sorted by step.

    A checkpoint is a file with a model extension (.safetensors, .gguf, .pt, .pth, .bin, .npz,
    .onnx, .ckpt) or a sub-folder, whose name holds an integer; the step is the last integer.

    Raises
    ------
    SourceNotFoundError
        ``folder`` is not a directory.
    InputError
        No checkpoint found, or two share a step number.
    """
    d = Path(folder)
    if not d.is_dir():
        raise SourceNotFoundError(f"{d}: not a folder of checkpoints")
    found: dict[int, Path] = {}
    for p in sorted(d.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() not in _EXTS:
            continue
        stem = p.name if p.is_dir() else p.name[: -len(p.suffix)]
        nums = _INT.findall(stem)
        if not nums:
            continue
        step = int(nums[-1])
        if step in found:
            raise InputError(
                f"{d}: {found[step].name} and {p.name} both have step {step}; keep one checkpoint "
                "per step in the folder"
            )
        found[step] = p
    if not found:
        raise InputError(
            f"{d}: no checkpoints found (model files or folders with a step number in the name, "
            f"e.g. step_100.pt; extensions {', '.join(sorted(_EXTS))})"
        )
    return sorted(found.items())


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trajectory",
        help="alignment metrics and decay rates over a folder of checkpoints",
        description="Measure every adjacent pair of each checkpoint in CHECKPOINT_DIR (ordered by "
        "the step number in its name) and fit decay rates (docs/theory.md §2).",
    )
    p.add_argument("checkpoint_dir", type=Path, help="folder of checkpoints (files or folders)")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("-k", "--k", dest="k", type=int, default=None, help="flag depth (default: eq. (14))")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate η (for the prediction)")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 weight decay λ on every parameter")
    p.add_argument("--momentum", type=float, default=0.0, help="heavy-ball momentum β (default 0)")
    p.add_argument("--activation", choices=("linear", "homogeneous", "other", "unknown"),
                   default="unknown", help="activation between paired layers (asserts the law)")  # fmt: skip
    p.add_argument("--tail", type=float, default=0.5, help="fit on this last fraction of the steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _prediction(args):
    from ..diagnostics.dynamics.rates import Prediction, law_rate

    if args.lr is None and args.weight_decay is None:
        return Prediction(None, "no optimizer hyper-parameters: pass --lr and --weight-decay")
    if args.lr is None or args.weight_decay is None:
        raise InputError("trajectory: --lr and --weight-decay go together (plain SGD with L2 decay)")
    try:
        rate = law_rate(args.lr, args.weight_decay, args.momentum)
    except ValueError as exc:
        raise InputError(f"trajectory: {exc}") from None
    how = "heavy-ball SGD (eq. 25)" if args.momentum else "plain SGD: r = -log(1 - 2ηλ) (eq. 22)"
    return Prediction(rate, how + " from --lr/--weight-decay", lr=args.lr,
                      weight_decay=args.weight_decay, momentum=args.momentum, optimizer="SGD",
                      rate_decay_only=law_rate(args.lr, args.weight_decay, args.momentum,
                                               limit="decay-only"))  # fmt: skip


def run(args) -> int:
    if not (0 < args.tail <= 1):
        raise InputError(f"--tail must be in (0, 1], got {args.tail}")
    ckpts = list_checkpoints(args.checkpoint_dir)
    pred = _prediction(args)
    out = args.out or Path("flagalign-out") / f"trajectory-{args.checkpoint_dir.resolve().name}"
    from .._output import OutputFolder

    with OutputFolder(out, set_name="trajectory").open() as tx:  # exit 2 before the work
        return _run(args, ckpts, pred, tx)


def _run(args, ckpts, pred, tx) -> int:
    """Measure every checkpoint, then stage the outputs in ``tx`` (committed by :func:`run`)."""
    import pandas as pd

    from .. import load
    from ..diagnostics.dynamics.metrics import METRICS, pair_metrics, rate_table

    bar = progress_bar(len(ckpts), not args.quiet, "checkpoints")
    rows, ks, dtypes, shapes = [], {}, {}, {}
    for step, path in ckpts:
        try:
            net = load(str(path))
        except FlagalignError as exc:  # name the checkpoint, not just the file inside it
            raise type(exc)(f"checkpoint {path}: {exc}") from None
        if not net.pairs:
            raise InputError(f"{path}: no adjacent pairs found in this checkpoint")
        for pair in net.pairs:
            name = pair.name
            shp = (net.matrices[pair.left].shape, net.matrices[pair.right].shape)
            first = shapes.setdefault(name, (shp, path))
            if first[0] != shp:
                raise ShapeMismatchError(
                    f"checkpoint {path}: pair {name} has shapes {shp[0]}, {shp[1]}, but checkpoint "
                    f"{first[1]} has {first[0][0]}, {first[0][1]}; trajectory needs one architecture"
                )
            try:
                vals, k = pair_metrics(net.matrix(pair.left), net.matrix(pair.right),
                                       net.bias(pair.left), k=ks.get(name, args.k))  # fmt: skip
            except FlagalignError as exc:
                raise type(exc)(f"checkpoint {path}: pair {name}: {exc}") from None
            ks[name] = k
            dtypes[name] = net.matrices[pair.left].dtype
            rows.extend((step, path.name, name, m, float(vals[m])) for m in METRICS)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    hist = pd.DataFrame(rows, columns=["step", "checkpoint", "pair", "metric", "value"])
    from .._arrays import input_eps

    rates = rate_table(
        hist[["step", "pair", "metric", "value"]],
        {p: pred for p in ks},
        {p: args.activation for p in ks},
        eps={p: input_eps(dt) for p, dt in dtypes.items()},
        tail=args.tail,
    )
    files = [tx.write_csv("trajectory.csv", hist), tx.write_csv("rates.csv", rates),
             _figure(hist, rates, tx, "trajectory.png")]
    print(f"{len(ckpts)} checkpoints (steps {ckpts[0][0]}..{ckpts[-1][0]}), {len(ks)} pairs")
    show = rates[rates.metric.isin(["imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs"])]
    cols = ["pair", "metric", "rate", "stderr", "predicted", "ratio", "applicable"]
    from ._table import print_frame

    print_frame(show, columns=cols, max_rows=200)
    print(f"prediction: {pred.reason}")
    for f in files:
        print(f"wrote {f}")
    return 0


def _figure(hist, rates, tx, name: str) -> Path:
    """``trajectory.png``: per pair the norm of D the law applies to (‖D‖, or ‖diag D‖ across a
    ReLU, eq. (23)) with the fitted and predicted slopes — the RateTable figure."""
    from ..diagnostics.dynamics.fit_table import RateTable
    from ..report.dynamics_figures import rates_figure  # deferred: matplotlib (heavy)

    fig = rates_figure(RateTable.of(rates, hist[["step", "pair", "metric", "value"]]))
    return tx.write_figure(name, fig, dpi=110)
