"""The transaction of an output folder (protocol in :mod:`flagalign._output`): the lock, the
``O_EXCL | O_NOFOLLOW`` temporary files, the manifest replace that is the commit point, and
the roll-forward (:func:`recover`) of a commit a killed run left half done. Every mutating
system call of the package (write, fsync, replace, unlink) is made here."""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import io
import json
import os
from pathlib import Path

from ..errors import InputError
from .csv_cells import neutralise_csv_cells
from .manifest import (LOCK_NAME, MANIFEST_FORMAT, _SET, _TMP, _is_regular, _manifests,
                       _tmp_name, _valid_name, manifest_name, new_run_id)

__all__ = ["OutputFolder", "output_folder", "recover", "MIN_FREE_BYTES"]

#: A folder with less free space than this is refused before computing ("disk full").
MIN_FREE_BYTES = 1 << 20


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
            from .._version import __version__

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
