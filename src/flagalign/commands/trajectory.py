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

Writes ``trajectory.jsonl`` (one record per checkpoint; each checkpoint's flags in
``trajectory-flags/step_<N>.npz``), ``trajectory.csv`` (long: step, checkpoint, pair, metric,
value), ``rates.csv``, ``flags.csv`` (each matrix's output / input flag distance to the previous
checkpoint and to the flag mean over checkpoints, eqs. (66)–(67);
:mod:`flagalign.diagnostics.flag_drift`) and ``trajectory.png`` under ``--out`` (default
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
    p.add_argument("-k", "--k", dest="k", type=int, default=None, help="flag depth (default: eq. (14))")
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
    from ..diagnostics.dynamics.rates import Prediction, damping, law_rate

    if args.lr is None and args.weight_decay is None:
        return Prediction(None, "no optimizer hyper-parameters: pass --lr and --weight-decay")
    if args.lr is None or args.weight_decay is None:
        raise InputError("trajectory: --lr and --weight-decay go together (plain SGD with L2 decay)")
    try:
        rate = law_rate(args.lr, args.weight_decay, args.momentum)
    except ValueError as exc:
        raise InputError(f"trajectory: {exc}") from None
    if args.momentum and damping(args.lr, args.weight_decay, args.momentum) == "underdamped":
        # eq. (25): complex roots, D oscillates; a log-linear fit has no rate to compare with
        return Prediction(None, "no prediction: underdamped heavy-ball momentum "
                          "(2ηλ > (1-√β)², eq. 25) — D oscillates, only its envelope decays",
                          lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum,
                          optimizer="SGD")  # fmt: skip
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
    flags_dir = out / "trajectory-flags"
    if getattr(args, "fresh", False):
        if jsonl.exists():
            jsonl.unlink()
        import shutil

        shutil.rmtree(flags_dir, ignore_errors=True)
    try:
        done = read_records(jsonl, header)
    except ValueError as exc:
        raise InputError(f"{exc}; pass --fresh or another --out") from None
    names = {s: p.name for s, p in ckpts}
    done = {s: r for s, r in done.items() if names.get(s) == r["checkpoint"]
            and (flags_dir / f"step_{s}.npz").exists()}
    records = _run_checkpoints(ckpts, done, args, jobs, jsonl, header, flags_dir)
    shapes: dict = {}
    rows, ks, dtypes = [], {}, {}
    from ..diagnostics.analysis.checkpoints import load_flags
    from ..diagnostics.flag_drift import FlagHistory

    drift = FlagHistory(k=args.k)
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
        drift.add_flags(step, path.name, load_flags(flags_dir / f"step_{step}.npz"))
    hist = pd.DataFrame(rows, columns=["step", "checkpoint", "pair", "metric", "value"])
    from .._arrays import input_eps

    rates = rate_table(
        hist[["step", "pair", "metric", "value"]],
        {p: pred for p in ks},
        {p: args.activation for p in ks},
        eps={p: input_eps(dt) for p, dt in dtypes.items()},
        tail=args.tail,
    )
    flags = drift.table()
    files = [tx.write_csv("trajectory.csv", hist), tx.write_csv("rates.csv", rates),
             tx.write_csv("flags.csv", flags), _figure(hist, rates, tx, "trajectory.png")]
    print(f"{len(ckpts)} checkpoints (steps {ckpts[0][0]}..{ckpts[-1][0]}), {len(ks)} pairs")
    show = rates[rates.metric.isin(["imbalance_abs", "imbalance_diag_abs", "imbalance_offdiag_abs"])]
    cols = ["pair", "metric", "rate", "stderr", "predicted", "ratio", "applicable"]
    from ._table import print_frame

    print_frame(show, columns=cols, max_rows=200)
    print(f"prediction: {pred.reason}")
    _print_flags(flags, pd)
    print(f"wrote {jsonl}")
    for f in files:
        print(f"wrote {f}")
    return 0


def _run_checkpoints(ckpts, done, args, jobs, jsonl, header, flags_dir) -> dict:
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
        todo = [(s, p) for s, p in ckpts if s not in records]
        scheduler = getattr(args, "scheduler", None)
        if todo and (scheduler is not None or (jobs > 1 and len(todo) > 1)):
            _run_pool(todo, records, step0, args, jobs, scheduler, flags_dir, finish)
        else:
            if step0 not in records:
                finish(checkpoint_job(path0, step0, None, args.k, str(flags_dir)))
            ks = _first_ks(records[step0])
            for s, p in todo:
                if s != step0:
                    finish(checkpoint_job(p, s, ks, args.k, str(flags_dir)))
    finally:
        if bar is not None:
            bar.close()
    return records


def _first_ks(record) -> dict:
    """Each pair's k in the first checkpoint's record: every later checkpoint uses it."""
    return {p["pair"]: p["k"] for p in record["pairs"]}


def _run_pool(todo, records, step0, args, jobs, scheduler, flags_dir, finish) -> None:
    """The checkpoints of ``todo`` in parallel, all started at once. Locally the main process is
    one of the ``jobs`` workers (it has everything imported: it starts on the first checkpoint
    while the ``jobs − 1`` pool processes start up); on a Dask ``scheduler`` every checkpoint goes
    to the cluster. Until the first checkpoint (which fixes each pair's k) is done, the others run
    *speculatively* with the default k; a speculative record is kept when every pair's k equals
    the first checkpoint's (then it is exactly the record computed with those k's: ``choose_k``
    returns the same k and nothing else depends on it), else that checkpoint is run again."""
    from .._parallel import make_pool
    from ..diagnostics.analysis.checkpoints import checkpoint_job

    state = {"ks": _first_ks(records[step0]) if step0 in records else None}
    held: dict = {}  # speculative records waiting for the first checkpoint's k's
    queue = list(todo)

    def job(s, p):
        ks = state["ks"] if s != step0 else None
        return (str(p), s, ks, args.k, str(flags_dir)), state["ks"] is not None or s == step0

    def handle(s, p, final, rec):
        if final:
            finish(rec)
            if s == step0:
                state["ks"] = _first_ks(rec)
                for s2, (p2, r2) in sorted(held.items()):
                    _keep_or_redo(r2, s2, p2, state["ks"], finish, queue)
                held.clear()
        elif state["ks"] is None:
            held[s] = (p, rec)
        else:
            _keep_or_redo(rec, s, p, state["ks"], finish, queue)

    local = scheduler is None
    pool = make_pool(max(1, jobs - 1) if local else jobs, scheduler)
    try:
        inflight: dict = {}
        cap = 2 * pool.workers
        while True:
            mine = queue.pop(0) if local and queue else None
            while queue and len(inflight) < cap:
                s, p = queue.pop(0)
                a, final = job(s, p)
                inflight[pool.submit(checkpoint_job, *a)] = (s, p, final)
            if mine is not None:
                a, final = job(*mine)
                handle(mine[0], mine[1], final, checkpoint_job(*a))
                ready = [f for f in inflight if f.done()]
            elif inflight:
                ready = list(pool.wait_first(inflight))
            else:
                break
            for fut in ready:
                s, p, final = inflight.pop(fut)
                handle(s, p, final, fut.result())
    finally:
        pool.close()


def _keep_or_redo(rec, step, path, ks, finish, queue) -> None:
    """Keep a speculative record whose k's equal the first checkpoint's, else queue it again."""
    if {p["pair"]: p["k"] for p in rec["pairs"]} == ks:
        finish(rec)
    else:
        queue.append((step, path))


def _print_flags(flags, pd) -> None:
    """Per matrix and side: the largest step-to-step flag distance and distance to the mean
    flag, next to the random-flag baseline (eq. (66))."""
    if flags.empty:
        return
    g = flags.groupby(["matrix", "side"], sort=False).agg(
        common_type=("common_type", "first"), max_to_prev=("distance_prev", "max"),
        max_to_mean=("distance_mean", "max"), baseline=("baseline", "first")).reset_index()
    print("flag distances (chordal, eq. 66; on the type all checkpoints share):")
    with pd.option_context("display.width", 200, "display.max_rows", 40):
        print(g.head(40).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def _figure(hist, rates, tx, name: str) -> Path:
    """``trajectory.png``: per pair the norm of D the law applies to (‖D‖, or ‖diag D‖ across a
    ReLU, eq. (23)) with the fitted and predicted slopes — the RateTable figure."""
    from ..diagnostics.dynamics.fit_table import RateTable
    from ..report.dynamics_figures import rates_figure  # deferred: matplotlib (heavy)

    fig = rates_figure(RateTable.of(rates, hist[["step", "pair", "metric", "value"]]))
    return tx.write_figure(name, fig, dpi=110)
