"""The parallel runner of ``analyze``: the plan's matrix tasks and pair tasks in worker processes
(or on a Dask cluster), with the same pure functions as the in-process path
(:func:`~.store.matrix_factors`, :func:`~.measure.measure_task`), hence the same numbers.

Where the matrices come from (a :data:`Spec`):

* ``("source", path, fold_norms, architecture)`` — the network was loaded from a file, folder or
  alias (a :class:`~flagalign.models.Network` remembers its ``source``): every
  worker loads it itself (metadata only, cached per process) and reads the tensors it needs
  lazily, so no weight crosses a process boundary and a Dask worker reads from shared storage;
* ``("arrays", None, None, None)`` — an in-memory :class:`~flagalign.models.Network`: the parent reads
  each matrix and passes the array.

Memory stays bounded as in :class:`~.store.FactorStore`: matrix tasks are submitted in order of
first use, at most a window of them is held or in flight, and a matrix's factors are dropped
once its last pair has been submitted. Rows come back in plan order.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict

import numpy as np

from ..._parallel import init_worker
from .measure import measure_task
from .store import matrix_factors
from .table import empty_row

__all__ = ["run_pairs", "source_spec", "factor_job", "pair_job", "serial_flops", "PARALLEL_MIN_FLOPS"]

log = logging.getLogger(__name__)

#: Below this many SVD-type flops (Σ m·n·min(m, n) over the plan's matrices) ``jobs=None`` runs in
#: process: starting workers costs ≈ 1 s, about what 5e9 flops cost on one core.
PARALLEL_MIN_FLOPS = 5e9

_NETS: dict = {}
_MATS: OrderedDict = OrderedDict()
_MAT_CACHE = 4


def serial_flops(network, plan) -> float:
    """Σ m·n·min(m, n) over the plan's matrices: the order of the factor work."""
    tot = 0.0
    for name in plan.matrices:
        m, n = network.matrices[name].shape[:2]
        tot += float(m) * float(n) * float(min(m, n))
    return tot


def source_spec(source_or_network, fold_norms: bool = True):
    """The :data:`Spec` of a source or network: its path when the tensors can be re-read from
    disk by a worker (a path or alias, or a Network loaded from an existing file or folder),
    else ``("arrays", ...)``."""
    import os

    from ...models.network import Network

    if isinstance(source_or_network, Network):
        src = source_or_network.source
        if src and os.path.exists(src):
            return ("source", os.path.abspath(src), bool(source_or_network.fold_norms),
                    source_or_network.architecture)
        return ("arrays", None, None, None)
    if isinstance(source_or_network, (str, os.PathLike)):
        src = os.fspath(source_or_network)
        if os.path.exists(src):
            src = os.path.abspath(src)
        return ("source", src, bool(fold_norms), None)
    return ("arrays", None, None, None)


def _network(spec):
    key = tuple(spec)
    net = _NETS.get(key)
    if net is None:
        from ...models import load

        _NETS.clear()  # one network per worker at a time
        _MATS.clear()
        net = _NETS[key] = load(spec[1], fold_norms=spec[2], architecture=spec[3])
    return net


def _load(spec, name, array=None):
    """(float64 matrix or None, problem or None) — the checks of :meth:`FactorStore.matrix`."""
    if spec[0] == "arrays":
        return array, None
    key = (*spec, name)
    got = _MATS.get(key)
    if got is not None:
        _MATS.move_to_end(key)
        return got
    net = _network(spec)
    try:
        w = net.matrix(name)
    except Exception as exc:  # noqa: BLE001 - becomes the pair's status
        got = (None, f"cannot load {name}: {type(exc).__name__}: {exc}"[:200])
    else:
        if not np.all(np.isfinite(w)):
            got = (None, f"non-finite values in {name}")
        elif not np.any(w):
            got = (None, net.zero_reason(name) or f"{name} is all zeros")
        else:
            got = (w, None)
    _MATS[key] = got
    while len(_MATS) > _MAT_CACHE:
        _MATS.popitem(last=False)
    return got


def factor_job(spec, task, seed, array=None):
    """A matrix task in a worker: ``(factors or None, problem or None, seconds)``."""
    init_worker()
    w, why = _load(spec, task.name, array)
    if why:
        return None, why, 0.0
    t = time.perf_counter()
    f = matrix_factors(task, w, seed)
    return f, None, time.perf_counter() - t


def pair_job(spec, task, lf, rf, k_user, keep_flag, arrays=None):
    """A pair task in a worker: ``(row, flag_table, angles)``, a failure as the row's status
    (as the in-process runner does)."""
    init_worker()
    p, t0 = task.pair, time.perf_counter()
    try:
        if spec[0] == "arrays":
            W, Wn, bias = arrays
        else:
            W, _ = _load(spec, p.left)
            Wn, _ = _load(spec, p.right)
            bias = _network(spec).bias(p.left)
        row, table, ang = measure_task(task, W, Wn, lf, rf, k_user=k_user, bias=bias,
                                       keep_flag=keep_flag)
    except Exception as exc:  # noqa: BLE001 - one bad pair never stops the run
        row = empty_row(p, task.depth, task.method, f"error: {type(exc).__name__}: {exc}"[:200])
        table = ang = None
    row["seconds"] = time.perf_counter() - t0
    return row, table, ang


class _Stats:
    svd_count = 0
    svd_seconds = 0.0


def run_pairs(net, plan, spec, pool, *, k_user, keep_flag, seed, on_row=None):
    """Every pair of ``plan`` on ``pool``; returns (rows, tables, angles, stats) in plan order.
    ``on_row(task)`` is called as each pair completes (the progress bar)."""
    pairs = plan.pairs
    uses = Counter()
    order: list[str] = []
    for t in pairs:
        for name in (t.pair.left, t.pair.right):
            if name not in uses:
                order.append(name)
            uses[name] += 1
    cap = 2 * pool.workers + 2  # tasks in flight
    hold = 2 * pool.workers + 4  # factors held or computing
    done_f: dict = {}  # name -> (factors, problem)
    computing: set = set()
    inflight: dict = {}
    results: dict = {}
    stats = _Stats()
    next_pair = next_mat = 0
    arrays_mode = spec[0] == "arrays"

    def array_of(name):
        try:
            return net.matrix(name)
        except Exception as exc:  # noqa: BLE001 - the worker reports it
            return exc

    while len(results) < len(pairs):
        # pairs whose two factors are known, in plan order
        while next_pair < len(pairs) and len(inflight) < cap:
            t = pairs[next_pair]
            l, r = t.pair.left, t.pair.right
            if l not in done_f or r not in done_f:
                break
            why = done_f[l][1] or done_f[r][1]
            if why:
                row = empty_row(t.pair, t.depth, t.method, why)
                row["seconds"] = 0.0
                results[next_pair] = (row, None, None)
                if on_row:
                    on_row(t)
            else:
                arrays = (net.matrix(l), net.matrix(r), net.bias(l)) if arrays_mode else None
                fut = pool.submit(pair_job, spec, t, done_f[l][0], done_f[r][0], k_user,
                                  keep_flag, arrays)
                inflight[fut] = ("p", next_pair)
            for name in (l, r):
                uses[name] -= 1
                if uses[name] <= 0:
                    done_f.pop(name, None)
            next_pair += 1
        # matrix tasks in order of first use, within the memory window
        need = set()
        if next_pair < len(pairs):
            need = {pairs[next_pair].pair.left, pairs[next_pair].pair.right}
        while next_mat < len(order) and len(inflight) < cap and (
                len(done_f) + len(computing) < hold or order[next_mat] in need):
            name = order[next_mat]
            task = plan.matrices[name]
            arr = None
            if arrays_mode:
                arr = array_of(name)
                if isinstance(arr, Exception):
                    done_f[name] = (None, f"cannot load {name}: {type(arr).__name__}: {arr}"[:200])
                    next_mat += 1
                    continue
                if not np.all(np.isfinite(arr)):
                    done_f[name] = (None, f"non-finite values in {name}")
                    next_mat += 1
                    continue
                if not np.any(arr):
                    done_f[name] = (None, net.zero_reason(name) or f"{name} is all zeros")
                    next_mat += 1
                    continue
            fut = pool.submit(factor_job, spec, task, seed, arr)
            inflight[fut] = ("f", name)
            computing.add(name)
            next_mat += 1
        if not inflight:
            continue  # progress was made synchronously (problem rows / problem matrices)
        for fut in pool.wait_first(inflight):
            kind, key = inflight.pop(fut)
            if kind == "f":
                computing.discard(key)
                try:
                    f, why, dt = fut.result()
                except Exception as exc:  # noqa: BLE001 - a failed task becomes the status
                    f, why, dt = None, f"error: {type(exc).__name__}: {exc}"[:200], 0.0
                if f is not None:
                    stats.svd_count += 1
                    stats.svd_seconds += dt
                done_f[key] = (f, why)
            else:
                try:
                    results[key] = fut.result()
                except Exception as exc:  # noqa: BLE001
                    t = pairs[key]
                    row = empty_row(t.pair, t.depth, t.method,
                                    f"error: {type(exc).__name__}: {exc}"[:200])
                    row["seconds"] = 0.0
                    results[key] = (row, None, None)
                if on_row:
                    on_row(pairs[key])
    rows, tables, angles = [], {}, {}
    for i, t in enumerate(pairs):
        row, table, ang = results[i]
        rows.append(row)
        if table is not None:
            tables[t.pair.name] = table
        if ang is not None:
            angles[t.pair.name] = ang
    return rows, tables, angles, stats
