"""Run ids, file names and the set manifest of an output folder: reading manifests (never
through a link, never steering a rename out of the folder) and :func:`verify`, the read-only
check that a folder holds one complete run of a set. Nothing here writes; the writes are in
:mod:`flagalign._output.transaction`."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import stat
import uuid
from pathlib import Path

from ..errors import CorruptFileError

__all__ = ["new_run_id", "manifest_name", "verify", "LOCK_NAME", "MANIFEST_FORMAT"]

LOCK_NAME = ".flagalign.lock"
MANIFEST_FORMAT = "flagalign-output-manifest"
_RUN = r"\d{8}T\d{6}Z-[0-9a-f]{12}"
_TMP = re.compile(rf"^\.flagalign-(?P<run>{_RUN})-(?P<name>.+)\.tmp$")
_MANIFEST = re.compile(r"^run-(?P<set>[A-Za-z0-9_.-]+)\.json$")
_SET = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_MANIFEST_BYTES = 16 << 20


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-<12 hex>``: UTC time plus 48 random bits of a UUID4."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:12]}"


def manifest_name(set_name: str) -> str:
    """File name of the manifest of ``set_name`` (``run-<set>.json``)."""
    return f"run-{set_name}.json"


def _tmp_name(run_id: str, name: str) -> str:
    return f".flagalign-{run_id}-{name}.tmp"


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (never through a symlink) of at most
    ``limit`` bytes, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def _load_manifest(path: Path) -> dict | None:
    """A manifest written by this module, or None (missing, a link, not ours, unparsable)."""
    raw = _read_regular(path, _MAX_MANIFEST_BYTES)
    if raw is None:
        return None
    try:
        m = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(m, dict) and m.get("format") == MANIFEST_FORMAT
            and isinstance(m.get("run_id"), str) and re.fullmatch(_RUN, m["run_id"])
            and isinstance(m.get("files"), dict) and isinstance(m.get("remove", []), list)):
        return None
    # a planted manifest must not steer a rename or an unlink out of the folder
    if not all(_valid_name(n) for n in [*m["files"], *m.get("remove", [])]):
        return None
    return m


def _valid_name(name) -> bool:
    """A plain visible file name of this folder (no separator, no leading dot, no NUL), not a
    manifest's."""
    return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name
            and not name.startswith(".") and "\0" not in name and not _MANIFEST.match(name)
            and name not in (".", ".."))


def _manifests(folder: Path) -> dict[str, dict]:
    """Every valid manifest in ``folder`` by set name."""
    out = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return out
    for n in sorted(names):
        mm = _MANIFEST.match(n)
        if mm:
            m = _load_manifest(folder / n)
            if m is not None and m.get("set") == mm.group("set"):
                out[mm.group("set")] = m
    return out


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False



def verify(folder, set_name: str = "analyze") -> dict:
    """Check, read-only, that ``folder`` holds one complete run of ``set_name``.

    Returns ``{"run_id": ..., "files": {name: path}}`` where each path holds the bytes of the
    committed run (its final name, or its temporary name while a commit is unfinished).
    Raises CorruptFileError if the manifest is missing or a file's SHA-256 or size differs.
    """
    d = Path(folder)
    m = _load_manifest(d / manifest_name(set_name))
    if m is None:
        raise CorruptFileError(f"{d}: no valid {manifest_name(set_name)}")
    out = {}
    for name, meta in m["files"].items():
        staged = d / _tmp_name(m["run_id"], name)
        path = staged if (m.get("state") != "complete" and _is_regular(staged)) else d / name
        raw = _read_regular(path, int(meta.get("bytes", 0)))
        if raw is None or len(raw) != meta.get("bytes") \
                or hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
            raise CorruptFileError(f"{path}: not the file of run {m['run_id']} "
                                   f"({manifest_name(set_name)})")
        out[name] = path
    return {"run_id": m["run_id"], "files": out}
