"""One checkpoint of a ``trajectory`` as one task, on the ``analyze`` engine (plan →
:class:`~.store.FactorStore` → :func:`~.measure.align_task` → the one pair assembler).

:func:`checkpoint_job` is a pure, picklable function of (path, step, per-pair k): a local worker
process or a Dask worker loads the checkpoint itself (from shared storage), measures every pair
with one BLAS thread and returns a JSON-ready record, which the parent appends to
``trajectory.jsonl`` as soon as it completes (:func:`append_record`), so a long run resumes from
the checkpoints already on disk (:func:`read_records`).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np

from ..._parallel import init_worker
from ...errors import FlagalignError
from .measure import align_task
from .plan import make_plan
from .store import FactorStore, truncate

__all__ = ["network_values", "checkpoint_job", "checkpoint_flags", "save_flags", "load_flags",
           "read_records", "append_record", "FORMAT"]

#: First line of ``trajectory.jsonl`` (with the options that change the numbers).
FORMAT = "flagalign-trajectory/1"


def network_values(net, ks: dict | None = None, k_user: int | None = None,
                   flags: dict | None = None) -> list[dict]:
    """Every pair of ``net`` measured as ``analyze`` does (one factor task per matrix, freed after
    its last pair): ``[{"pair", "k", "dtype", "shapes", "values"}]`` in network order. ``ks``
    fixes a pair's k (the first checkpoint's), else ``k_user`` / eq. (14)'s default. A pair with
    an all-zero side goes through :func:`~flagalign.diagnostics.dynamics.metrics.pair_metrics`
    (its NaN flag observables); a non-finite matrix is an InputError.

    ``flags``: a dict filled with each matrix's (output, input) flags (:func:`checkpoint_flags`)
    from the same factors — the factor tasks then ask for both sides at the flags' depth too, so
    no matrix is factorised twice."""
    from ..dynamics.metrics import alignment_metrics, pair_metrics

    ks = ks or {}
    plan = make_plan(net, k=k_user)
    tasks = plan.matrices
    if flags is not None:
        tasks = {n: replace(t, sides="UV", k=max(t.k, _flag_k(net.matrices[n].shape, k_user)))
                 for n, t in tasks.items()}
    store = FactorStore(net, tasks, 0)
    out = []
    for task in plan.pairs:
        p = task.pair
        shapes = [list(net.matrices[p.left].shape), list(net.matrices[p.right].shape)]
        k = ks.get(p.name, k_user)
        why = store.problem(p.left) or store.problem(p.right)
        W, Wn, bias = store.matrix(p.left), store.matrix(p.right), net.bias(p.left)
        if flags is not None:
            for name, m in ((p.left, W), (p.right, Wn)):
                if name not in flags and m is not None:
                    flags[name] = _flags_from_factors(net, name, m, store.factors(name), k_user)
        pa = None
        if not why:
            pa, why = align_task(task, W, Wn, store.factors(p.left), store.factors(p.right),
                                 k_user=k, bias=bias)
        if pa is not None:
            vals, kk = alignment_metrics(pa, W, Wn, bias), pa.k
        else:  # zero side / rank 0 / unreadable: the reference path says why (or raises)
            vals, kk = pair_metrics(net.matrix(p.left), net.matrix(p.right), bias, k=k)
        store.release(p.left)
        store.release(p.right)
        out.append({"pair": p.name, "k": int(kk), "dtype": str(net.matrices[p.left].dtype),
                    "shapes": shapes, "values": {m: float(v) for m, v in vals.items()}})
    return out


def checkpoint_job(path, step: int, ks: dict | None, k_user: int | None,
                   flags_dir=None) -> dict:
    """A checkpoint task: load ``path`` (lazily), measure every pair; a JSON-ready record
    ``{"step", "checkpoint", "pairs": [...]}``. With ``flags_dir``, each matrix's output/input
    flags (as :meth:`~flagalign.diagnostics.flag_drift.FlagHistory.add` computes them) are first
    written to ``flags_dir/step_<step>.npz`` (:func:`save_flags`). Errors name the checkpoint."""
    from ...models import load

    init_worker()
    try:
        net = load(str(path))
        if not net.pairs:
            from ...errors import InputError

            raise InputError("no adjacent pairs found in this checkpoint")
        flags = {} if flags_dir is not None else None
        pairs = network_values(net, ks, k_user, flags)
        if flags_dir is not None:
            save_flags(os.path.join(str(flags_dir), f"step_{int(step)}.npz"),
                       checkpoint_flags(net, k_user, flags))
    except FlagalignError as exc:
        raise type(exc)(f"checkpoint {path}: {exc}") from None
    return {"step": int(step), "checkpoint": os.path.basename(os.path.normpath(str(path))),
            "pairs": pairs}


def _flag_k(shape, k=None) -> int:
    """The depth of a matrix's flags: the user's k (capped at min(shape)) or eq. (14)'s default."""
    from ...geometry import default_k

    lo = min(shape)
    return min(int(k), lo) if k else default_k(lo, lo)


def _flags_from_factors(net, name, m, f, k=None):
    """:func:`~flagalign.diagnostics.flag_drift.matrix_flags` from the factors the pairs already
    computed (top-k of both sides); :data:`_MISSING` when they do not hold both sides to the flags'
    depth (a rank below it: :func:`checkpoint_flags` then takes the SVD)."""
    from ..flag_drift import matrix_flags

    kk = _flag_k(m.shape, k)
    if f is None or f.U is None or f.V is None or f.s.shape[0] < kk:
        return _MISSING
    return matrix_flags(truncate(f, kk), m, str(net.matrices[name].dtype))


#: Marks a matrix whose flags could not be read off its factors.
_MISSING = object()


def checkpoint_flags(net, k=None, known: dict | None = None) -> dict:
    """{matrix: (output flag, input flag) or None} of every matrix in ``net``'s pairs: eq. (63) on
    the matrix's exact top-k factors, as :meth:`FlagHistory.add
    <flagalign.diagnostics.flag_drift.FlagHistory.add>` computes them (its ``auto`` SVD is exact
    up to 2048² entries). ``known``: flags already read off the pairs' factors
    (:func:`network_values`); the others get their own SVD."""
    from ...geometry import top_subspaces
    from ..flag_drift import matrix_flags

    known = known or {}
    out = {}
    for name in dict.fromkeys(n for p in net.pairs for n in (p.left, p.right)):
        if known.get(name, _MISSING) is not _MISSING:
            out[name] = known[name]
            continue
        m = net.matrix(name)
        kk = _flag_k(m.shape, k)
        flags = None
        if np.all(np.isfinite(m)) and np.any(m):
            flags = matrix_flags(top_subspaces(m, kk, method="exact", seed=0), m,
                                 str(net.matrices[name].dtype))
        out[name] = flags
    return out


_FLAG_FIELDS = ("basis", "dims", "margins", "perturbation", "values")


def save_flags(path, flags: dict) -> None:
    """Write {matrix: (Flag, Flag) or None} to an ``.npz`` (no pickle), atomically."""
    arrays = {"names": np.array(list(flags), dtype=str)}
    for i, (name, fl) in enumerate(flags.items()):
        if fl is None:
            continue
        for side, f in zip(("out", "in"), fl):
            for fld in _FLAG_FIELDS:
                v = getattr(f, fld)
                if v is not None:
                    arrays[f"{i}/{side}/{fld}"] = np.asarray(v)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_flags(path) -> dict:
    """Inverse of :func:`save_flags`."""
    from ...geometry.partial_flag import Flag

    with np.load(path, allow_pickle=False) as z:
        names = [str(x) for x in z["names"]]
        out = {}
        for i, name in enumerate(names):
            if f"{i}/out/basis" not in z:
                out[name] = None
                continue
            sides = []
            for side in ("out", "in"):
                kw = {fld: z[f"{i}/{side}/{fld}"] for fld in _FLAG_FIELDS
                      if f"{i}/{side}/{fld}" in z}
                kw["dims"] = tuple(int(d) for d in kw["dims"])
                if "perturbation" in kw:
                    kw["perturbation"] = float(kw["perturbation"])
                sides.append(Flag(**kw))
            out[name] = tuple(sides)
    return out


def read_records(path, header: dict) -> dict:
    """{step: record} of the checkpoints already in ``path`` (``trajectory.jsonl``), written with
    the same ``header``; a last line cut by a kill is dropped (and cut from the file). Returns
    {} for a missing file. Raises ValueError when the file was written with other options."""
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as fh:
        raw = fh.read()
    lines = raw.split(b"\n")
    good_end = 0
    done: dict = {}
    pos = 0
    for i, line in enumerate(lines):
        end = pos + len(line) + 1
        if not line.strip():
            pos = end
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            break  # a torn last line: everything after it is dropped
        if end > len(raw):  # no newline yet: not known to be complete
            break
        if i == 0:
            if rec != header:
                raise ValueError(f"{path} was written with {rec}, this run is {header}")
        else:
            done[int(rec["step"])] = rec
        good_end = end
        pos = end
    if good_end < len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    if good_end == 0:
        return {}
    return done


def append_record(path, record: dict, header: dict) -> None:
    """Append one record (one line, flushed and fsynced) to ``path``, writing ``header`` first
    when the file is new."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", encoding="utf-8") as fh:
        if new:
            fh.write(json.dumps(header) + "\n")
        fh.write(json.dumps(record, allow_nan=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


