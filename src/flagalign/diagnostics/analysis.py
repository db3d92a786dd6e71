"""``flagalign.analyze``: every adjacent pair's alignment, as tables, figures and a report."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._validate import check_kinds, check_seed
from .._version import SCHEMA_VERSION, __version__
from ..errors import InputError
from .factors import FactorStore, choose_method
from .pairs import PAIR_COLUMNS, empty_row, pair_row
from .summary import jsonable, progress_bar, stored_parameters, summarize

__all__ = ["Analysis", "analyze", "FORMATS"]

log = logging.getLogger(__name__)

FORMATS = ("csv", "json", "parquet", "html")
_NUM = re.compile(r"(?:^|[._/])(\d+)(?=$|[._/])")


def _depth(pair, position: int) -> int:
    """Layer index of a pair: the first integer field of ``left`` (else of ``right``), else the
    pair's position in the network's pair list."""
    for name in (pair.left, pair.right):
        m = _NUM.search(name)
        if m:
            return int(m.group(1))
    return position


def _dtype(network, name: str) -> str:
    info = network.matrices.get(name)
    return info.dtype if info is not None else "float64"


@dataclass
class Analysis:
    """The result of :func:`analyze`.

    Attributes
    ----------
    pairs : pandas.DataFrame
        One row per pair, columns :data:`~flagalign.diagnostics.pairs.PAIR_COLUMNS`
        (docs/schema.md).
    flags : dict[str, numpy.ndarray]
        Flag table (eq. (6)) of each ok pair at its analysed k, keyed by the ``pair`` column.
    summary : dict
        Run metadata, per-kind aggregates and per-depth medians (JSON-serialisable; it is
        ``summary.json`` without the ``pairs`` records).
    network : dict
        Name, architecture, source and the layer-graph description of the analysed model.
    angles : dict[str, numpy.ndarray]
        Principal angles (degrees, ascending, float32) of each ok pair at its k (eq. (1)).
    extras : dict
        Results of optional hooks (``extras["heads"]`` from :mod:`flagalign.diagnostics.heads`).
        A DataFrame value is saved as ``<key>.csv`` next to ``pairs.csv``.
    warnings : list[str]
    """

    pairs: pd.DataFrame
    flags: dict
    summary: dict
    network: dict
    angles: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        """Rows whose status is not ``ok``."""
        return self.pairs[self.pairs["status"] != "ok"]

    def to_html(self) -> str:
        """The self-contained HTML report (figures embedded, opens offline)."""
        from ..report import render_html

        return render_html(self)

    def to_json(self) -> dict:
        """``summary.json``: the summary plus every row of :attr:`pairs`."""
        out = dict(self.summary)
        recs = self.pairs.astype(object).where(self.pairs.notna(), None).to_dict("records")
        out["pairs"] = recs
        return out

    def save(self, directory, formats=("csv", "json", "html")) -> dict:
        """Write ``pairs.csv``, ``summary.json``, ``pairs.parquet``, ``report.html`` (as
        requested by ``formats``) into ``directory``; returns {format: path}."""
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise InputError(f"unknown format {bad[0]!r}; choose from {', '.join(FORMATS)}")
        d = Path(directory)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {d}: cannot create the folder ({exc.strerror})") from None
        out = {}
        frame = self.pairs.assign(schema_version=SCHEMA_VERSION)
        if "csv" in formats:
            out["csv"] = d / "pairs.csv"
            frame.to_csv(out["csv"], index=False)
            for key, val in self.extras.items():
                if isinstance(val, pd.DataFrame):
                    val.assign(schema_version=SCHEMA_VERSION).to_csv(d / f"{key}.csv", index=False)
        if "parquet" in formats:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                from ..errors import MissingDependencyError

                raise MissingDependencyError(
                    "--format parquet needs pyarrow: pip install 'flagalign[parquet]'"
                ) from None
            out["parquet"] = d / "pairs.parquet"
            frame.to_parquet(out["parquet"], index=False)
        if "json" in formats:
            out["json"] = d / "summary.json"
            out["json"].write_text(json.dumps(self.to_json(), indent=1, default=jsonable))
        if "html" in formats:
            out["html"] = d / "report.html"
            out["html"].write_text(self.to_html(), encoding="utf-8")
        return out




def _load(source):
    """A Network as is, else ``flagalign.load(source)``."""
    from ..models.network import Network

    if isinstance(source, Network):
        return source
    try:
        from ..models import load
    except ImportError:  # the loader module before it is re-exported
        from ..models.loader import load
    return load(source)


def parse_layers(text: str) -> list[int]:
    """``"0,3,10-12"`` → ``[0, 3, 10, 11, 12]`` (the ``--layers`` option)."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise InputError(f"--layers: expected e.g. 0,3,10-12, got {text!r}")
        lo = int(m.group(1))
        out.extend(range(lo, int(m.group(2) or lo) + 1))
    return out


def _select_pairs(network, pairs, kinds, layers=None):
    """The pairs to analyse, each with its depth (see :func:`_depth`), in network order."""
    chosen = [(p, _depth(p, i)) for i, p in enumerate(network.pairs)]
    if kinds:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        known = sorted({p.kind for p in network.pairs})
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise InputError(
                f"--kinds {unknown[0]!r}: this model has pair kinds {', '.join(known) or 'none'}"
            )
        chosen = [(p, d) for p, d in chosen if p.kind in kinds]
    if layers is not None:
        want_layers = set(parse_layers(layers) if isinstance(layers, str) else layers)
        chosen = [(p, d) for p, d in chosen if d in want_layers]
        if not chosen:
            raise InputError(f"--layers {layers}: no pair of {network.name} is at these depths")
    if pairs is not None:
        want = {p if isinstance(p, str) else p.name for p in pairs}
        chosen = [(p, d) for p, d in chosen if p.name in want]
        missing = want - {p.name for p, _ in chosen}
        if missing:
            raise InputError(f"pairs: {sorted(missing)[0]!r} is not a pair of {network.name}")
    return chosen




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
        SVD of each matrix; ``auto`` is exact for matrices with ≤ 2048² entries (or when
        k ≥ min(shape)/4) and randomized top-k (eq. (13)) above — see
        :func:`~flagalign.diagnostics.factors.choose_method`. Each row's ``method`` column says
        which was used (``randomized`` if either side was).
    tol : float, optional
        Sine tolerance of intersections (eq. (5)); None: ``default_sine_tol`` of the stored
        dtype of the pair's matrices (the looser of the two).
    pairs : list of Pair or pair names, optional
        Analyse only these pairs.
    kinds : list of str, optional
        Analyse only these pair kinds (``mlp``, ``ov``, ``residual``, ``sequential``, ``conv``).
    layers : list of int or str, optional
        Analyse only pairs at these depths (the ``depth`` column), e.g. ``[0, 1]`` or
        ``"0,10-12"``.
    progress : bool
        Progress bar on stderr (never when stderr is not a TTY).
    heads : bool
        Also run the optional attention-heads hook (``flagalign.diagnostics.heads``), if
        installed.
    seed : int
        Seed of the randomized SVD.
    keep_flags : bool
        Keep each pair's flag table in :attr:`Analysis.flags`.

    Returns
    -------
    Analysis
    """
    from ..geometry import default_k, default_sine_tol, rank_rtol

    t_start = time.perf_counter()
    if k is not None and (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1):
        raise InputError(f"k must be a positive integer, got {k!r}")
    if tol is not None and not (isinstance(tol, (int, float, np.integer, np.floating)) and 0 <= tol < 1):
        raise InputError(f"tol must be a number in [0, 1), got {tol!r}")
    choose_method((1, 1), method)  # validates the name
    kinds, seed = check_kinds(kinds), check_seed(seed)
    net = _load(source_or_network)

    chosen = _select_pairs(net, pairs, kinds, layers)
    uses: Counter = Counter()
    ks: dict = {}
    for p, _ in chosen:
        lo = min(min(net.matrices[p.left].shape), min(net.matrices[p.right].shape))
        need = default_k(p.dim, lo) if k is None else min(int(k), lo)
        for name in (p.left, p.right):
            uses[name] += 1
            ks[name] = max(ks.get(name, 1), need)
    methods = {n: choose_method(net.matrices[n].shape, method, ks[n]) for n in uses}
    # which singular vectors each matrix must provide: a writer's left, a reader's right
    sides: dict = {}
    for p, _ in chosen:
        sides[p.left] = "".join(sorted(set(sides.get(p.left, "")) | {"U"}))
        sides[p.right] = "".join(sorted(set(sides.get(p.right, "")) | {"V"}))
    rtols = {n: rank_rtol(tuple(net.matrices[n].shape), _dtype(net, n)) for n in uses}
    store = FactorStore(net, uses, ks, methods, seed, sides=sides, rtols=rtols)

    rows, flags, angles = [], {}, {}
    bar = progress_bar(len(chosen), progress, "pairs")
    try:
        for p, depth in chosen:
            if bar is not None:
                bar.update(bar.task_ids[0], item=p.name[-50:])
            m = "exact" if methods[p.left] == methods[p.right] == "exact" else "randomized"
            t0 = time.perf_counter()
            try:
                row, table, ang = _one_pair(net, store, p, depth, m, k, tol, seed, keep_flags,
                                       default_sine_tol)
            except Exception as exc:  # noqa: BLE001 - one bad pair never stops the run
                log.warning("pair %s failed: %s", p.name, exc)
                row = empty_row(p, depth, m, f"error: {type(exc).__name__}: {exc}"[:200])
                table = ang = None
            store.release(p.left)
            store.release(p.right)
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if table is not None:
                flags[p.name] = table
            if ang is not None:
                angles[p.name] = ang
            if bar is not None:
                bar.advance(bar.task_ids[0])
    finally:
        if bar is not None:
            bar.stop()

    df = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    df = df.astype(
        {"dim": "int64", "depth": "int64", "k": "Int64", "intersection_dim": "Int64",
         "lost_dims": "Int64"}
    )
    seconds = time.perf_counter() - t_start
    names = sorted(uses)
    params = stored_parameters(net, names)
    info = {
        "name": net.name,
        "architecture": net.architecture,
        "source": str(net.source or ""),
        "description": net.describe(),
        "attention_layers": len(net.attention),
        "skipped": [list(s) for s in net.skipped],
        "warnings": list(net.warnings),
    }
    summary = {
        "schema_version": SCHEMA_VERSION,
        "flagalign_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": net.name,
        "architecture": net.architecture,
        "source": str(net.source or ""),
        "options": {
            "k": k,
            "method": method,
            "tol": tol,
            "tol_default": "default_sine_tol(stored dtype)" if tol is None else None,
            "seed": seed,
            "kinds": sorted({p.kind for p, _ in chosen}),
            "layers": None if layers is None else sorted({d for _, d in chosen}),
            "exact_max_entries": _exact_max_entries(),
        },
        "matrices_analysed": len(names),
        "parameters_analysed": params,
        "matrices_randomized": sum(methods[n] == "randomized" for n in names),
        "svds": store.svd_count,
        "svd_seconds": round(store.svd_seconds, 4),
        "seconds": round(seconds, 4),
    }
    summary.update(summarize(df))
    an = Analysis(df, flags, summary, info, angles=angles, warnings=list(net.warnings))
    if summary["n_failed"]:
        an.warnings.append(f"{summary['n_failed']} of {summary['n_pairs']} pairs are not ok")
    if heads:
        t_heads = time.perf_counter()
        _run_heads_hook(net, an, progress)
        an.summary["heads_seconds"] = round(time.perf_counter() - t_heads, 4)
    return an



def _one_pair(net, store, p, depth, m, k, tol, seed, keep_flags, default_sine_tol):
    for name in (p.left, p.right):
        why = store.problem(name)
        if why:
            return empty_row(p, depth, m, why), None, None
    W, Wn = store.matrix(p.left), store.matrix(p.right)
    if W.shape[0] != p.dim or Wn.shape[1] != p.dim:
        return (empty_row(p, depth, m, f"shape mismatch {W.shape} -> {Wn.shape} (dim {p.dim})"),
                None, None)
    dts = (_dtype(net, p.left), _dtype(net, p.right))
    t = tol if tol is not None else max(default_sine_tol(d) for d in dts)
    return pair_row(
        p, depth, W, Wn, store.factors(p.left), store.factors(p.right), k=k, tol=t, method=m,
        bias=net.bias(p.left), dtypes=dts, keep_flag=keep_flags,
    )


def _exact_max_entries() -> int:
    from ..geometry.svd import EXACT_MAX_ENTRIES

    return int(EXACT_MAX_ENTRIES)


def _run_heads_hook(net, analysis: Analysis, progress: bool) -> None:
    """Call ``flagalign.diagnostics.heads.analysis_hook(network, analysis, progress=...)`` if
    that module exists; its return value (if not None) goes to ``analysis.extras["heads"]``."""
    import importlib

    try:
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
