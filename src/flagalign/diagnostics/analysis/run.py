"""``flagalign.analyze``: plan → factors (store) → one assembler per pair → table → Analysis."""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import time

from ..._progress import cut as _cut, progress_bar
from ..._version import SCHEMA_VERSION, __version__
from ...geometry.svd import EXACT_MAX_ENTRIES
from ..._parallel import check_jobs
from .device import resolve_device
from .engine import PARALLEL_MIN_FLOPS, run_pairs, serial_flops, source_spec
from ..gauge_columns import empty_gauge_columns, network_columns, prepare_gauge
from ...geometry.gauge import check_gauge
from .measure import measure_task
from .plan import _check_options, load_network, make_plan
from .result import Analysis
from .store import FactorStore
from .table import empty_row, pairs_frame, stored_parameters, summarize

__all__ = ["analyze"]

log = logging.getLogger(__name__)


def analyze(
    source_or_network,
    k: int | None = None,
    method: str = "auto",
    tol: float | None = None,
    pairs=None,
    *,
    kinds=None,
    layers=None,
    progress: bool = True,
    heads: bool = True,
    seed: int = 0,
    keep_flags: bool = True,
    fold_norms: bool = True,
    jobs: int | None = None,
    scheduler=None,
    device: str | None = None,
    precision: str = "float64",
    gauge: str | None = None,
) -> Analysis:
    """Measure the alignment of every adjacent pair of a network (docs/theory.md, eq. (14)).

    Parameters
    ----------
    source_or_network : str, path or flagalign.models.Network
        Anything :func:`flagalign.load` accepts (file, folder, alias such as ``minilm``).
    k : int, optional
        Dimension of the compared top subspaces; None uses ``default_k`` (eq. (14)). Capped at
        the numerical rank of each side (the ``k`` column holds the value used).
    method : {"auto", "exact", "randomized"}
        Factors of each matrix; ``auto`` (= ``exact``) takes the exact top-k factors at every
        size — from the smaller Gram with a certified rank, else an exact SVD (eq. (13)) —
        which is both exact and faster than the randomized sketch (one 1.1B-shape block:
        14 s against 41 s, docs/benchmarks.md); ``randomized`` (eq. (13)) only on request. Each
        row's ``method`` column says which was used (``randomized`` if either side was).
    tol : float, optional
        Sine tolerance of intersections (eq. (5)); None: ``default_sine_tol`` of the stored
        dtype of the pair's matrices (the looser of the two).
    pairs : list of Pair or pair names, optional
        Analyse only these pairs.
    kinds : list of str, optional
        Analyse only these pair kinds (``mlp``, ``ov``, ``residual``, ``sequential``, ``conv``).
    layers : list of int or str, optional
        Analyse only pairs at these depths (the ``depth`` column), e.g. ``[0, 1]`` or
        ``"0,10-12"``; a depth outside the model's range is an InputError.
    progress : bool
        Progress bar on stderr (never when stderr is not a TTY).
    heads : bool
        Also run the optional attention-heads hook (``flagalign.diagnostics.heads``).
    seed : int
        Seed of the randomized SVD.
    keep_flags : bool
        Keep each pair's flag table in :attr:`Analysis.flag_tables`.
    fold_norms : bool
        Fold normalisation gains into the adjacent matrices when loading ``source_or_network``
        (:func:`flagalign.load`); False measures the stored weights (``analyze --raw``). Ignored
        for a :class:`~flagalign.models.Network`, which is measured as it is.
    gauge : {None, "balanced"}
        None measures the stored weights. ``"balanced"`` first moves the network to the canonical
        representative of its symmetry orbit — every hidden layer at once
        (:func:`flagalign.models.gauge.balanced_network`, docs/theory.md eqs. (73)–(74)) — so that
        angles, overlap, intersection_dim and commutator no longer depend on the
        parameterization; the ``gauge_dependent`` column says, per pair, whether they still do
        (eq. (75)).

    Returns
    -------
    Analysis
    """
    t_start = time.perf_counter()
    _check_options(k, tol, seed, method)  # before loading: bad options fail fast
    n_jobs = check_jobs(jobs)
    dev = resolve_device(device, precision)
    gauge = check_gauge(gauge)
    net0 = load_network(source_or_network, fold_norms=fold_norms)
    net, gplan, gauge = prepare_gauge(net0, gauge)
    plan = make_plan(net, k, method, tol, pairs, kinds=kinds, layers=layers, seed=seed)
    use_pool = dev is None and (scheduler is not None or (
        n_jobs > 1 and len(plan.pairs) > 1
        and (jobs is not None or serial_flops(net, plan) >= PARALLEL_MIN_FLOPS)))
    gauge_info = (net0, gplan, gauge)
    if use_pool:
        # a re-gauged network exists only here: ship its arrays; else workers read the source
        src = source_or_network if net is net0 else None
        rows, tables, angles, store = _run_pool(src, fold_norms, net, plan, n_jobs, scheduler, k,
                                                 keep_flags, seed, progress, gauge_info)
    else:
        rows, tables, angles, store = _run_local(net, plan, k, keep_flags, seed, progress, dev,
                                                 gauge_info)
    df = pairs_frame(rows)
    an = Analysis(df, tables, _summary(net, plan, store, df, time.perf_counter() - t_start),
                  _network_info(net), angles=angles, warnings=list(net.warnings))
    an.summary["workers"] = 1 if not use_pool else ("dask" if scheduler is not None else n_jobs)
    if dev is not None:
        an.summary["device"] = {"device": dev.name, "precision": dev.precision}
    an.summary["options"]["gauge"] = gauge or "stored"
    if getattr(net, "gauge_summary", None) is not None:  # what the balanced gauge did (§7)
        an.summary["gauge"] = {k: v for k, v in net.gauge_summary.items() if k != "line"}
    if an.summary["n_failed"]:
        an.warnings.append(f"{an.summary['n_failed']} of {an.summary['n_pairs']} pairs are not ok")
    if heads:
        t_heads = time.perf_counter()
        _run_heads_hook(net, an, progress)
        an.summary["heads_seconds"] = round(time.perf_counter() - t_heads, 4)
    return an


def _run_pool(source, fold_norms, net, plan, n_jobs, scheduler, k, keep_flags, seed, progress,
              gauge_info):
    from ..._parallel import make_pool

    bar = progress_bar(len(plan.pairs), progress, "pairs")
    spec = source_spec(source, fold_norms) if source is not None else ("arrays", None, None, None)
    pool = make_pool(n_jobs, scheduler)

    def on_row(task):
        if bar is not None:
            bar.set_postfix_str(_cut(task.pair.name, 50), refresh=False)
            bar.update()

    try:
        rows, tables, angles, stats = run_pairs(net, plan, spec, pool,
                                                k_user=k, keep_flag=keep_flags, seed=seed,
                                                on_row=on_row)
    finally:
        pool.close()
        if bar is not None:
            bar.close()
    net0, gplan, gauge = gauge_info
    for t, row in zip(plan.pairs, rows):  # the gauge columns (§7), as _measure adds them
        try:
            if row["status"] == "ok":
                row.update(network_columns(net0, t.pair, gauge, gplan))
            else:
                row.update(empty_gauge_columns(net0, t.pair, gauge, gplan))
        except Exception as exc:  # noqa: BLE001 - as _measure: the row records the failure
            row.update(empty_row(t.pair, t.depth, t.method,
                                 f"error: {type(exc).__name__}: {exc}"[:200]))
    return rows, tables, angles, stats


def _run_local(net, plan, k, keep_flags, seed, progress, dev=None, gauge_info=None):
    fn = None
    if dev is not None:
        from functools import partial

        from .device import factors

        fn = partial(factors, dev)
    store = FactorStore(net, plan.matrices, seed, factor_fn=fn)
    rows, tables, angles = [], {}, {}
    bar = progress_bar(len(plan.pairs), progress, "pairs")
    try:
        for task in plan.pairs:
            if bar is not None:
                bar.set_postfix_str(_cut(task.pair.name, 50), refresh=False)
            rows.append(_measure(net, store, task, k, keep_flags, tables, angles, gauge_info,
                                 dev))
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return rows, tables, angles, store


def _measure(net, store, task, k, keep_flags, tables, angles, gauge_info, dev=None) -> dict:
    """One pair through the store and :func:`measure_task`; a failure becomes the row's status.
    ``gauge_info`` = (original network, gauge plan, gauge) for the symmetry columns (§7)."""
    p, t0 = task.pair, time.perf_counter()
    net0, gplan, gauge = gauge_info
    try:
        why = store.problem(p.left) or store.problem(p.right)
        if why:
            row, table, ang = empty_row(p, task.depth, task.method, why), None, None
        else:
            W, Wn, bias = store.matrix(p.left), store.matrix(p.right), net.bias(p.left)
            row, table, ang = measure_task(
                task, W, Wn, store.factors(p.left),
                store.factors(p.right), k_user=k, bias=bias, keep_flag=keep_flags, device=dev)
            if row["status"] == "ok":
                row.update(network_columns(net0, p, gauge, gplan))  # gauge, gauge_dependent (§7)
        if row["status"] != "ok":
            row.update(empty_gauge_columns(net0, p, gauge, gplan))
    except Exception as exc:  # noqa: BLE001 - one bad pair never stops the run
        log.warning("pair %s failed: %s", p.name, exc)
        row = empty_row(p, task.depth, task.method, f"error: {type(exc).__name__}: {exc}"[:200])
        table = ang = None
    store.release(p.left)
    store.release(p.right)
    row["seconds"] = time.perf_counter() - t0
    if table is not None:
        tables[p.name] = table
    if ang is not None:
        angles[p.name] = ang
    return row


def _network_info(net) -> dict:
    return {
        "name": net.name,
        "architecture": net.architecture,
        "source": str(net.source or ""),
        "description": net.describe(),
        "attention_layers": len(net.attention),
        "skipped": [list(s) for s in net.skipped],
        "warnings": list(net.warnings),
    }


def _summary(net, plan, store, df, seconds: float) -> dict:
    names = sorted(plan.matrices)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "flagalign_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": net.name,
        "architecture": net.architecture,
        "source": str(net.source or ""),
        "options": {
            "k": plan.k,
            "method": plan.method,
            "tol": plan.tol,
            "tol_default": "default_sine_tol(stored dtype)" if plan.tol is None else None,
            "seed": plan.seed,
            "kinds": plan.options["kinds"],
            "layers": plan.options["layers"],
            "exact_max_entries": None if plan.method == "auto" else int(EXACT_MAX_ENTRIES),
        },
        "matrices_analysed": len(names),
        "parameters_analysed": stored_parameters(net, names),
        "matrices_randomized": sum(plan.matrices[n].method == "randomized" for n in names),
        "svds": store.svd_count,
        "svd_seconds": round(store.svd_seconds, 4),
        "seconds": round(seconds, 4),
    }
    summary.update(summarize(df))
    return summary


def _run_heads_hook(net, analysis: Analysis, progress: bool) -> None:
    """Call ``flagalign.diagnostics.heads.analysis_hook(network, analysis, progress=...)`` if
    that module exists; its return value (if not None) goes to ``analysis.extras["heads"]``."""
    try:  # by name: an optional plug-in that may be absent (and imports this package itself)
        mod = importlib.import_module("flagalign.diagnostics.heads")
    except ModuleNotFoundError as exc:
        if exc.name == "flagalign.diagnostics.heads":
            return
        analysis.warnings.append(f"heads analysis unavailable: {type(exc).__name__}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - a broken optional hook must not lose the pairs
        log.warning("cannot import the heads hook: %s", exc)
        analysis.warnings.append(f"heads analysis unavailable: {type(exc).__name__}: {exc}")
        return
    hook = getattr(mod, "analysis_hook", None)
    if hook is None or not net.attention:
        return
    try:
        res = hook(net, analysis, progress=progress)
    except Exception as exc:  # noqa: BLE001 - the pair table is still valid
        log.warning("heads hook failed: %s", exc)
        analysis.warnings.append(f"heads analysis failed: {type(exc).__name__}: {exc}")
        return
    if res is not None:
        analysis.extras["heads"] = res
