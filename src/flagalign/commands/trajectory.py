"""``flagalign trajectory CHECKPOINT_DIR [--out DIR]``: alignment metrics over saved checkpoints.

Every model file or folder in CHECKPOINT_DIR that :func:`flagalign.load` reads and whose name
contains a step number (the last integer in the name: ``step_100.pt``, ``checkpoint-500/``,
``epoch=3-step=120.ckpt``...) is loaded in step order; each adjacent pair is measured as by the
:class:`~flagalign.AlignmentTracker`, and decay rates are fitted (docs/theory.md, eq. (27)).
``--lr/--weight-decay [--momentum]`` give the predicted rate (eqs. (22), (25)); the law is only
asserted for pairs whose activation you state with ``--activation``.

Each checkpoint is one task on the ``analyze`` engine (one factor task per matrix, the one pair
assembler), run in ``--jobs`` worker processes (one BLAS thread each) or on a Dask cluster
(``--scheduler``); each completed checkpoint is appended at once to ``trajectory.jsonl`` under
``--out``, and a rerun with the same ``--out`` and ``--k`` skips the checkpoints already there
(``--fresh`` starts over), so a long run that was stopped resumes.

Writes ``trajectory.jsonl`` (one record per checkpoint), ``trajectory.csv`` (long: step,
checkpoint, pair, metric, value), ``rates.csv`` and ``trajectory.png`` under ``--out`` (default
``flagalign-out/trajectory-<dir name>``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .._progress import progress_bar
from ..errors import InputError, ShapeMismatchError, SourceNotFoundError

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
    p.add_argument("--k", type=int, default=None, help="flag depth (default: eq. (14))")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate η (for the prediction)")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 weight decay λ on every parameter")
    p.add_argument("--momentum", type=float, default=0.0, help="heavy-ball momentum β (default 0)")
    p.add_argument("--activation", choices=("linear", "homogeneous", "other", "unknown"),
                   default="unknown", help="activation between paired layers (asserts the law)")  # fmt: skip
    p.add_argument("--tail", type=float, default=0.5, help="fit on this last fraction of the steps")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes, one checkpoint each (default: physical cores)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the checkpoints on a Dask cluster (docs/scaling.md)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore checkpoints already in OUT/trajectory.jsonl (default: resume)")
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
    from .._parallel import check_jobs

    if not (0 < args.tail <= 1):
        raise InputError(f"--tail must be in (0, 1], got {args.tail}")
    jobs = check_jobs(getattr(args, "jobs", None))
    ckpts = list_checkpoints(args.checkpoint_dir)
    pred = _prediction(args)
    out = args.out or Path("flagalign-out") / f"trajectory-{args.checkpoint_dir.resolve().name}"
    from .._output import OutputFolder

    with OutputFolder(out, set_name="trajectory").open() as tx:  # exit 2 before the work
        return _run(args, ckpts, pred, tx, jobs, Path(out))


def _run(args, ckpts, pred, tx, jobs, out) -> int:
    """Measure every checkpoint (records appended to ``trajectory.jsonl`` as they complete, kept
    across runs: the resume log, outside the transaction), then stage the outputs in ``tx``
    (committed by :func:`run`)."""
    import pandas as pd

    from ..diagnostics.analysis.checkpoints import FORMAT, read_records
    from ..diagnostics.dynamics.metrics import METRICS, rate_table

    jsonl = out / "trajectory.jsonl"
    header = {"format": FORMAT, "k": args.k}
    if getattr(args, "fresh", False) and jsonl.exists():
        jsonl.unlink()
    try:
        done = read_records(jsonl, header)
    except ValueError as exc:
        raise InputError(f"{exc}; pass --fresh or another --out") from None
    names = {s: p.name for s, p in ckpts}
    done = {s: r for s, r in done.items() if names.get(s) == r["checkpoint"]}
    records = _run_checkpoints(ckpts, done, args, jobs, jsonl, header)
    shapes: dict = {}
    rows, ks, dtypes = [], {}, {}
    for step, path in ckpts:
        rec = records[step]
        for pr in rec["pairs"]:
            name = pr["pair"]
            shp = tuple(tuple(x) for x in pr["shapes"])
            first = shapes.setdefault(name, (shp, path))
            if first[0] != shp:
                raise ShapeMismatchError(
                    f"checkpoint {path}: pair {name} has shapes {shp[0]}, {shp[1]}, but checkpoint "
                    f"{first[1]} has {first[0][0]}, {first[0][1]}; trajectory needs one architecture"
                )
            ks.setdefault(name, pr["k"])
            dtypes[name] = pr["dtype"]
            rows.extend((step, path.name, name, m, float(pr["values"][m])) for m in METRICS)
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
    show = rates[rates.metric.isin(["imbalance", "imbalance_diag", "imbalance_offdiag"])]
    cols = ["pair", "metric", "rate", "stderr", "predicted", "ratio", "applicable"]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(show[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"prediction: {pred.reason}")
    print(f"wrote {jsonl}")
    for f in files:
        print(f"wrote {f}")
    return 0


def _run_checkpoints(ckpts, done, args, jobs, jsonl, header) -> dict:
    """{step: record} for every checkpoint: those in ``done`` as read, the first one (which fixes
    each pair's k) first, the rest in a pool when ``--jobs`` > 1 or ``--scheduler``; each record
    is appended to ``jsonl`` as soon as it completes."""
    from ..diagnostics.analysis.checkpoints import append_record, checkpoint_job

    records = dict(done)
    bar = progress_bar(len(ckpts), not args.quiet, "checkpoints")
    if bar is not None and records:
        bar.update(len(records))

    def finish(rec):
        append_record(jsonl, rec, header)
        records[rec["step"]] = rec
        if bar is not None:
            bar.update(1)

    try:
        step0, path0 = ckpts[0]
        if step0 not in records:
            finish(checkpoint_job(path0, step0, None, args.k))
        ks = {p["pair"]: p["k"] for p in records[step0]["pairs"]}
        todo = [(s, p) for s, p in ckpts if s not in records]
        scheduler = getattr(args, "scheduler", None)
        if todo and (scheduler is not None or (jobs > 1 and len(todo) > 1)):
            from .._parallel import make_pool

            pool = make_pool(jobs, scheduler)
            try:
                inflight, it = {}, iter(todo)
                cap = 2 * pool.workers
                while True:
                    for s, p in it:
                        inflight[pool.submit(checkpoint_job, str(p), s, ks, args.k)] = s
                        if len(inflight) >= cap:
                            break
                    if not inflight:
                        break
                    for fut in pool.wait_first(inflight):
                        inflight.pop(fut)
                        finish(fut.result())
            finally:
                pool.close()
        else:
            for s, p in todo:
                finish(checkpoint_job(p, s, ks, args.k))
    finally:
        if bar is not None:
            bar.close()
    return records


def _figure(hist, rates, tx, name: str) -> Path:
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy); no pyplot state
    import numpy as np

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for i, (pair, sub) in enumerate(hist[hist.metric == "imbalance"].groupby("pair", sort=False)):
        if i >= 10:
            break
        sub = sub.sort_values("step")
        ax.semilogy(sub.step, sub.value.clip(lower=1e-300), "-o", ms=3, color=f"C{i}", label=pair)
        pr = rates[(rates.pair == pair) & (rates.metric == "imbalance")].predicted
        if len(pr) and np.isfinite(pr.iloc[0]) and len(sub) > 1:
            s0, v0 = float(sub.step.iloc[0]), float(sub.value.iloc[0])
            xs = np.array([s0, float(sub.step.iloc[-1])])
            ax.semilogy(xs, v0 * np.exp(-pr.iloc[0] * (xs - s0)), "--", color=f"C{i}", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("‖D‖_F (dashed: predicted)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return tx.write_figure(name, fig, dpi=110)
