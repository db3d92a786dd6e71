"""Append-only, crash-safe JSONL log of tracked alignment metrics (docs/theory.md §2).

One JSON object per line:

* the first line is a header ``{"type": "meta", "schema": ..., "pairs": [...], ...}``;
* every other line is one record ``{"type": "record", "step": s, "time": t,
  "values": {pair: {metric: value}}}``.

Each line is written with one ``write`` call, flushed and ``os.fsync``-ed before the call returns,
so a run killed with SIGKILL (or a power cut after the fsync) loses at most the record being
written. :func:`read_log` tolerates a truncated last line and reports it.

Parquet is an optional *export* (``pyarrow``): it cannot be appended safely, so the crash-safe
log is always JSONL and :func:`write_parquet` writes the long table at the end of a run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from ...errors import CorruptFileError, InputError, MissingDependencyError, SourceNotFoundError

__all__ = ["JsonlLog", "read_log", "records_to_frame", "write_parquet", "LOG_SCHEMA"]

LOG_SCHEMA = "flagalign.dynamics/1"
_log = logging.getLogger(__name__)


def _clean(v):
    """JSON-safe value: NaN/inf -> None, numpy scalars -> python, containers recursively."""
    if v is None:
        return None
    if isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return None
    if float(f).is_integer() and type(v).__name__.startswith("int"):
        return int(f)
    return f


def _drop_partial_last_line(path: Path) -> None:
    """Before a resumed run appends: cut a killed run's unfinished last line (it never completed,
    so no record is lost), so the new lines start on a line of their own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        content = fh.read()
        fh.truncate(content.rfind(b"\n") + 1)


class JsonlLog:
    """Append-only JSONL writer; every line is flushed and fsync-ed.

    Parameters
    ----------
    path : str or Path
        Created (with parent folders) if absent; appended to otherwise — a resumed run continues
        the same file (a second header line is written; :func:`read_log` keeps the first).
    meta : dict
        Header fields (pairs, optimizer hyper-parameters, prediction, ...).
    fsync : bool
        Call ``os.fsync`` after every line (default). False only trades crash-safety against
        power loss for speed; a killed *process* still loses at most one line.
    """

    def __init__(self, path, meta: dict | None = None, *, fsync: bool = True):
        self.path = Path(path)
        if self.path.suffix == ".parquet":
            raise InputError(
                f"log={self.path}: the crash-safe log is JSONL; use a .jsonl path and "
                "write_parquet() at the end of the run"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        _drop_partial_last_line(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")
        header = {"type": "meta", "schema": LOG_SCHEMA, "created": time.time()}
        header.update(meta or {})
        self._write(header)

    def _write(self, obj: dict) -> None:
        line = json.dumps(obj, default=_clean, allow_nan=False, separators=(",", ":")) + "\n"
        self._fh.write(line)
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def append(self, step: int, values: dict[str, dict[str, float]], **extra) -> None:
        """Write one record: ``values[pair][metric] = value`` at ``step``."""
        clean = {p: {m: _clean(x) for m, x in d.items()} for p, d in values.items()}
        rec = {"type": "record", "step": int(step), "time": time.time(), "values": clean}
        rec.update({k: _clean(v) for k, v in extra.items()})
        self._write(rec)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_log(path) -> tuple[dict, list[dict]]:
    """Read a log written by :class:`JsonlLog`.

    Returns
    -------
    meta : dict
        The first header line (``{}`` if the file holds none), plus ``"truncated": True`` when the
        last line was cut short (a killed run) and skipped.
    records : list of dict
        Every complete record, in file order.

    Raises
    ------
    SourceNotFoundError
        The file does not exist.
    CorruptFileError
        A line other than the last is not valid JSON (the file was edited or is not a log).
    """
    p = Path(path)
    if not p.is_file():
        raise SourceNotFoundError(f"{p}: no such log file")
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    meta: dict = {}
    records: list[dict] = []
    truncated = False
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    for i, line in enumerate(lines[: last + 1]):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if i == last:
                truncated = True
                _log.warning("%s: last line is truncated (killed run?); skipped", p)
                break
            raise CorruptFileError(
                f"{p}: line {i + 1} is not valid JSON; not a flagalign dynamics log?"
            ) from None
        if not isinstance(obj, dict):
            raise CorruptFileError(f"{p}: line {i + 1} is not a JSON object")
        if obj.get("type") == "meta":
            if not meta:
                meta = obj
        elif obj.get("type") == "record":
            records.append(obj)
    # A line that parses but lacks its newline was still fully written by one write() call.
    meta = dict(meta)
    if truncated:
        meta["truncated"] = True
    return meta, records


def records_to_frame(records: list[dict]):
    """Long DataFrame (step, pair, metric, value) of log records."""
    import pandas as pd

    rows = [
        (r["step"], pair, metric, float("nan") if v is None else float(v))
        for r in records
        for pair, d in r.get("values", {}).items()
        for metric, v in d.items()
    ]
    return pd.DataFrame(rows, columns=["step", "pair", "metric", "value"])


def write_parquet(frame, path) -> Path:
    """Write a history DataFrame as Parquet (needs ``pyarrow``: ``pip install 'flagalign[parquet]'``)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "writing Parquet needs pyarrow; pip install 'flagalign[parquet]' or use the JSONL log"
        ) from exc
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(p, index=False)
    return p
