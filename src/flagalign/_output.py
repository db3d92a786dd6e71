"""Output folders written as one transaction: atomic, locked, symlink-safe, one run per set.

Every file flagalign writes (``analyze``, ``heads``, ``compare``, ``trajectory``,
``reproduce``, :meth:`Analysis.save <flagalign.diagnostics.Analysis.save>`, the ``save``
methods of the heads results) goes through an :class:`OutputFolder`. This module sits below
``diagnostics``, ``report``, ``commands`` and ``experiments`` (it imports only
:mod:`flagalign.errors` and :mod:`flagalign._version`), so any layer may use it.

The protocol (docs/security.md, "What it writes and how")
----------------------------------------------------------
1. :meth:`OutputFolder.open` (before any computing): create the folder, refuse a folder that is
   not a directory, take an exclusive ``fcntl.flock`` on ``.flagalign.lock`` in it (a second
   run on the same folder fails at once with :class:`~flagalign.errors.InputError`, exit 2;
   nothing waits), probe that a file can be created there and that the disk is not full, and
   finish any commit a killed run left half done (:func:`recover`). Every failure names the
   option (``--out``) and exits 2 before the work starts.
2. ``write_*`` calls (while or after computing): each output goes to a hidden temporary file
   ``.flagalign-<run id>-<name>.tmp`` in the same folder, created with
   ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never through a planted link), then ``fsync``-ed. No
   final name is opened for writing, ever.
3. :meth:`OutputFolder.commit` (after the whole run has computed): the *set manifest*
   ``run-<set>.json`` (run id, time, flagalign version, every file with its SHA-256 and size,
   the previous run's files to remove) is written to a temporary file and ``os.replace``-d
   into place: **that replace is the commit point**. Then every temporary file is
   ``os.replace``-d onto its final name (a symlink there is replaced by the regular file; its
   target is never opened), the previous run's files that this run does not produce are
   unlinked (only names listed in the previous manifest, only regular files), and the
   manifest is rewritten with ``"state": "complete"``. Directory entries are ``fsync``-ed at
   each step.
4. On an exception (bad input, ``Ctrl-C``, a full disk) :meth:`OutputFolder.abort` removes the
   temporary files: the previous set is untouched.

Guarantee
---------
At every instant the committed manifest names one run whose every file is present in full:
before the commit point it is the previous run (the new bytes exist only under hidden temporary
names), after it the new run — each file either under its name or, in the window of the
commit's renames (a few ``rename`` calls, no data written), under its temporary name, which
:func:`recover` (run by the next :meth:`OutputFolder.open` on that folder) moves into place.
:func:`verify` checks a folder read-only: it resolves those temporary names and compares every
file's SHA-256 with the manifest. Each file also carries the run id in its content: the
``run_id`` key of a JSON object, a ``run_id`` column of every CSV (no comment lines), a
``flagalign-run-id`` text chunk in PNGs, the report header — so a reader who only has the
files can tell that they are one run.

Sets
----
A folder may hold several *sets*, each with its own manifest (``run-analyze.json``,
``run-heads.json``, ``run-ridge.json``, ...): a new run of a set replaces only that set's
files, so ``flagalign heads --out X`` does not delete the ``pairs.csv`` that ``analyze`` wrote
there. A name written by a set is taken over from any other set's manifest that listed it.

API for writers (commands, experiments, ``save`` methods)
---------------------------------------------------------
::

    from flagalign._output import output_folder

    with output_folder(out_dir, set_name="ridge") as out:   # exit 2 now if out_dir is unusable
        ... compute ...
        out.write_csv("ridge_rates.csv", frame)      # + run_id column, cells neutralised
        out.write_text("ridge.md", markdown)
        out.write_json("summary.json", {...})         # + "run_id" key
        out.write_figure("ridge.png", fig, dpi=110)   # PNG text chunk flagalign-run-id
        out.path("ridge.md")                          # the final path, for messages
    # committed here; on an exception nothing of this run is left

``output_folder`` also accepts an open :class:`OutputFolder` (then it neither opens nor
commits: the owner does), so a ``save(directory)`` method can take either a path or the
command's transaction.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import io
import json
import os
import re
import stat
import uuid
from pathlib import Path

from .errors import CorruptFileError, InputError

__all__ = [
    "OutputFolder",
    "output_folder",
    "verify",
    "recover",
    "new_run_id",
    "neutralise_csv_cells",
    "manifest_name",
    "LOCK_NAME",
    "MIN_FREE_BYTES",
]

LOCK_NAME = ".flagalign.lock"
#: A folder with less free space than this is refused before computing ("disk full").
MIN_FREE_BYTES = 1 << 20
MANIFEST_FORMAT = "flagalign-output-manifest"
_RUN = r"\d{8}T\d{6}Z-[0-9a-f]{12}"
_TMP = re.compile(rf"^\.flagalign-(?P<run>{_RUN})-(?P<name>.+)\.tmp$")
_MANIFEST = re.compile(r"^run-(?P<set>[A-Za-z0-9_.-]+)\.json$")
_SET = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_MANIFEST_BYTES = 16 << 20
#: OWASP CSV injection: cells starting with these are formulas in spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-<12 hex>``: UTC time plus 48 random bits of a UUID4."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:12]}"


def manifest_name(set_name: str) -> str:
    """File name of the manifest of ``set_name`` (``run-<set>.json``)."""
    return f"run-{set_name}.json"


def _tmp_name(run_id: str, name: str) -> str:
    return f".flagalign-{run_id}-{name}.tmp"


def neutralise_csv_cells(frame):
    """A copy of ``frame`` whose string cells (and string column labels) that a spreadsheet
    would run as a formula — starting with ``=``, ``+``, ``-``, ``@``, tab or CR (OWASP, "CSV
    Injection") — are prefixed with a single quote. Numbers are never touched: numeric columns
    are skipped, and so are strings that are plain decimal literals (``"-0.5"``, ``"-1e-3"``;
    not ``"-inf"``, which a spreadsheet would evaluate as a name)."""
    import pandas as pd

    def fix(v):
        if isinstance(v, str) and v.startswith(_FORMULA_START) and not _NUMBER.match(v):
            return "'" + v
        return v

    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
            out[col] = s.map(fix)
    out.columns = [fix(c) for c in out.columns]
    return out


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the renames still happened
        pass
    finally:
        os.close(fd)


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


def _write_file(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist; never follows a link), write ``data``, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_json(folder: Path, name: str, obj: dict, run_id: str) -> None:
    tmp = folder / _tmp_name(run_id, name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    _write_file(tmp, (json.dumps(obj, indent=1) + "\n").encode("utf-8"))
    os.replace(tmp, folder / name)
    _fsync_dir(folder)


def _finish(folder: Path, set_name: str, m: dict, others: dict[str, dict]) -> None:
    """Roll a committed manifest forward: staged files into place, the previous run's files
    removed, state ``complete``. Idempotent; called under the lock."""
    run_id = m["run_id"]
    moved = False
    for name in m["files"]:
        staged = folder / _tmp_name(run_id, name)
        if _is_regular(staged):
            os.replace(staged, folder / name)
            moved = True
    if moved:
        _fsync_dir(folder)
    claimed = set(m["files"])
    for other in others.values():
        if other is not m:
            claimed |= set(other.get("files", {}))
    for name in m.get("remove", []):
        if name not in claimed and _is_regular(folder / name):
            os.unlink(folder / name)
    if m.get("state") != "complete":
        done = {k: v for k, v in m.items() if k != "remove"}
        done["state"] = "complete"
        _atomic_json(folder, manifest_name(set_name), done, run_id)


def _recover_locked(folder: Path) -> None:
    ms = _manifests(folder)
    for set_name, m in ms.items():
        if m.get("state") != "complete":
            _finish(folder, set_name, m, ms)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for n in names:  # orphans of killed runs: under the lock no other run is writing
        if _TMP.match(n) and _is_regular(folder / n):
            with contextlib.suppress(OSError):
                os.unlink(folder / n)


class OutputFolder:
    """One run's outputs in one folder, written as a transaction (see the module docstring).

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder (created with its parents). The folder itself may be a symlink the
        user named; entries inside it are never written through.
    set_name : str
        Which set of files this run replaces (the manifest is ``run-<set_name>.json``).
    option : str
        How error messages name the folder (``--out``).

    Attributes
    ----------
    folder : pathlib.Path
    run_id : str
        Written into every file of the run and into the manifest.
    """

    def __init__(self, folder, *, set_name: str = "analyze", option: str = "--out"):
        if not _SET.match(set_name):
            raise InputError(f"output set name must match [A-Za-z0-9_-]+, got {set_name!r}")
        self.folder = Path(folder)
        self.set_name = set_name
        self.option = option
        self.run_id = new_run_id()
        self._lock_fd: int | None = None
        self._staged: dict[str, dict] = {}
        self._done = False

    # -- opening --------------------------------------------------------------------------
    def _fail(self, what: str, exc: OSError | None = None) -> InputError:
        why = f" ({exc.strerror or exc})" if exc is not None else ""
        return InputError(f"{self.option} {self.folder}: {what}{why}")

    def open(self) -> "OutputFolder":
        """Create and lock the folder, check it is writable and not full, recover a killed
        run's commit. Raises InputError (exit 2) naming the option on any problem."""
        d = self.folder
        try:
            d.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise self._fail("exists and is not a folder") from None
        except OSError as exc:
            raise self._fail("cannot create the folder", exc) from None
        if not d.is_dir():
            raise self._fail("exists and is not a folder")
        import fcntl

        try:
            fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._fail(f"{LOCK_NAME} is a symbolic link; remove it") from None
            raise self._fail("the folder is not writable", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._fail("another flagalign run is writing this folder; wait for it "
                                 "or choose another folder") from None
            raise self._fail("cannot lock the folder", exc) from None
        self._lock_fd = fd
        try:
            probe = d / _tmp_name(self.run_id, "probe")
            try:
                _write_file(probe, b"")
                os.unlink(probe)
            except OSError as exc:
                what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
                    else "the folder is not writable"
                raise self._fail(what, exc) from None
            try:
                st = os.statvfs(d)
                free = st.f_bavail * st.f_frsize
            except (OSError, AttributeError):
                free = None
            if free is not None and free < MIN_FREE_BYTES:
                raise self._fail(f"the disk is full ({free} bytes free)")
            try:
                _recover_locked(d)
            except OSError as exc:
                raise self._fail("cannot finish an interrupted earlier run", exc) from None
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Release the lock (the lock file stays: removing it would race with a waiter)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __enter__(self) -> "OutputFolder":
        return self if self._lock_fd is not None else self.open()

    def __exit__(self, typ, exc, tb) -> None:
        try:
            if typ is None:
                self.commit()
            else:
                self.abort()
        finally:
            self.close()

    # -- writing --------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """The final path of output ``name``."""
        return self.folder / name

    def _check_name(self, name: str) -> None:
        if not _valid_name(name):
            raise InputError(f"output file name {name!r} is not a plain visible file name")

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Stage ``data`` as output ``name`` (published at :meth:`commit`); the final path."""
        if self._lock_fd is None or self._done:
            raise InputError("OutputFolder: open() it first (and write before commit)")
        self._check_name(name)
        tmp = self.folder / _tmp_name(self.run_id, name)
        if name in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        try:
            _write_file(tmp, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
                else f"cannot write {name}"
            raise self._fail(f"{what}; the previous files are unchanged", exc) from None
        self._staged[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        return self.path(name)

    def write_text(self, name: str, text: str) -> Path:
        """Stage UTF-8 ``text`` as output ``name``."""
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj, *, default=None, indent=1) -> Path:
        """Stage ``obj`` as JSON; a dict gets a ``run_id`` key (first)."""
        if isinstance(obj, dict):
            obj = {"run_id": self.run_id, **{k: v for k, v in obj.items() if k != "run_id"}}
        return self.write_text(name, json.dumps(obj, indent=indent, default=default))

    def write_csv(self, name: str, frame, **to_csv) -> Path:
        """Stage a DataFrame as CSV (``index=False`` unless given) with a ``run_id`` column
        appended and formula-like string cells neutralised (:func:`neutralise_csv_cells`)."""
        to_csv.setdefault("index", False)
        safe = neutralise_csv_cells(frame.assign(run_id=self.run_id))
        return self.write_text(name, safe.to_csv(**to_csv))

    def write_parquet(self, name: str, frame, **to_parquet) -> Path:
        """Stage a DataFrame as Parquet (``index=False`` unless given) with a ``run_id``
        column."""
        to_parquet.setdefault("index", False)
        buf = io.BytesIO()
        frame.assign(run_id=self.run_id).to_parquet(buf, **to_parquet)
        return self.write_bytes(name, buf.getvalue())

    def write_figure(self, name: str, fig, **savefig) -> Path:
        """Stage a matplotlib figure (format from the name's suffix); a PNG gets the run id as
        its ``flagalign-run-id`` text chunk."""
        fmt = Path(name).suffix.lstrip(".").lower() or "png"
        savefig.setdefault("format", fmt)
        if fmt == "png":
            savefig["metadata"] = {**savefig.get("metadata", {}), "flagalign-run-id": self.run_id}
        buf = io.BytesIO()
        fig.savefig(buf, **savefig)
        return self.write_bytes(name, buf.getvalue())

    # -- finishing ------------------------------------------------------------------------
    def abort(self) -> None:
        """Remove this run's temporary files; the folder keeps the previous set."""
        for name in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(self.folder / _tmp_name(self.run_id, name))
        self._staged = {}
        self._done = True

    def commit(self) -> list[Path]:
        """Publish the staged files as the set's new run (see the module docstring); returns
        their final paths."""
        if self._lock_fd is None or self._done:
            raise InputError("OutputFolder: commit() needs an open, uncommitted folder")
        d, files = self.folder, dict(self._staged)
        try:
            for name in files:  # a folder at a final name would fail after the commit point
                if os.path.isdir(d / name) and not os.path.islink(d / name):
                    raise self._fail(f"{name} is a folder; cannot replace it with a file")
            ms = _manifests(d)
            prev = ms.get(self.set_name)
            remove = []
            if prev is not None:
                remove = sorted(n for n in set(prev["files"]) | set(prev.get("remove", []))
                                if isinstance(n, str) and n not in files)
            for other_set, other in ms.items():  # take over names other sets listed
                if other_set == self.set_name:
                    continue
                taken = set(other["files"]) & set(files)
                if taken:
                    other = {**other, "files": {k: v for k, v in other["files"].items()
                                                if k not in taken}}
                    ms[other_set] = other
                    _atomic_json(d, manifest_name(other_set), other, self.run_id)
            from ._version import __version__

            manifest = {
                "format": MANIFEST_FORMAT,
                "version": 1,
                "set": self.set_name,
                "run_id": self.run_id,
                "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "flagalign_version": __version__,
                "state": "committing",
                "files": files,
                "remove": remove,
            }
            _atomic_json(d, manifest_name(self.set_name), manifest, self.run_id)  # commit point
        except OSError as exc:
            self.abort()
            raise self._fail("cannot write the manifest; the previous files are unchanged",
                             exc) from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        ms[self.set_name] = manifest
        try:
            _finish(d, self.set_name, manifest, ms)
        except OSError as exc:
            raise self._fail("the run is committed but could not be moved into place (the "
                             "next run on this folder finishes it)", exc) from None
        return [self.path(n) for n in files]


@contextlib.contextmanager
def output_folder(target, *, set_name: str = "analyze", option: str = "--out"):
    """Context manager: an opened :class:`OutputFolder` on ``target``, committed when the block
    ends normally, aborted on an exception. ``target`` may be an :class:`OutputFolder` already
    open (then this neither opens, commits nor aborts it: its owner does)."""
    if isinstance(target, OutputFolder):
        yield target
        return
    tx = OutputFolder(target, set_name=set_name, option=option).open()
    with tx:
        yield tx


def recover(folder, *, option: str = "--out") -> None:
    """Finish a commit that a killed run left half done and remove its temporary files (under
    the folder's lock; InputError if another run holds it)."""
    if not Path(folder).is_dir():
        return
    tx = OutputFolder(folder, option=option)
    tx.open()  # open() recovers
    tx.close()


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
