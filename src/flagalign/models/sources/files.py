"""What a model reader may open: regular files only, and nothing outside the model's folder.

Every reader goes through :func:`regular_file` before it opens a path, so a FIFO, a device, a
socket or a directory with a model-like name is refused (exit 2) instead of blocking or failing
with an internal error, and a symlink loop is reported as such. :func:`inside_folder` is the
containment rule for files a model folder refers to (safetensors shards, ONNX external data):
after resolving every symlink the file must lie in that folder (docs/security.md).
"""

from __future__ import annotations

import errno
import os
import stat

from ...errors import InputError, SourceNotFoundError

__all__ = ["regular_file", "inside_folder", "require_inside"]


def regular_file(path: str, what: str = "model file") -> os.stat_result:
    """``os.stat`` of ``path`` when it is a regular file (symlinks followed); else an error.

    Raises
    ------
    InputError
        A symlink loop, a directory, FIFO, socket or device.
    SourceNotFoundError
        Nothing there (or a dangling symlink).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symlink loop; point at the real {what}") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise SourceNotFoundError(f"{path}: no such {what} (or a dangling symlink)") from None
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a directory"
            if stat.S_ISDIR(st.st_mode)
            else "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device or other special file"
        )
        raise InputError(f"{path}: is {kind}, not a regular file; flagalign reads only regular files")
    return st


def _hf_cache_blob(folder: str, real: str) -> bool:
    """True for the Hugging Face hub cache layout: ``<repo>/snapshots/<rev>/f -> <repo>/blobs/<h>``."""
    snap = os.path.dirname(folder)
    if os.path.basename(snap) != "snapshots":
        return False
    blobs = os.path.join(os.path.dirname(snap), "blobs")
    return os.path.dirname(real) == blobs


def inside_folder(folder: str, path: str) -> bool:
    """True when ``path`` (all symlinks resolved) lies in ``folder`` (resolved) or below it."""
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep) or _hf_cache_blob(root, real)


def require_inside(folder: str, path: str, what: str) -> None:
    """Refuse (:class:`InputError`) a ``path`` that resolves outside ``folder``."""
    if not inside_folder(folder, path):
        raise InputError(
            f"{path}: {what} resolves outside the model folder {folder} "
            f"(to {os.path.realpath(path)}); flagalign reads nothing outside the model's folder"
        )
