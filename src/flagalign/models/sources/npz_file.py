"""``.npz`` archives: each array is a tensor (read per key on demand by numpy)."""

from __future__ import annotations

import zipfile

import numpy as np

from ...errors import CorruptFileError
from .base import TensorEntry, TensorSource

__all__ = ["open_npz"]


def _npy_meta(z: zipfile.ZipFile, member: str):
    from numpy.lib import format as npf

    with z.open(member) as f:
        version = npf.read_magic(f)
        read = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(shape), np.dtype(dtype).name


def open_npz(path: str) -> TensorSource:
    try:
        z = zipfile.ZipFile(path)
        members = [m for m in z.namelist() if m.endswith(".npy")]
        entries = {}
        for m in members:
            shape, dtype = _npy_meta(z, m)
            entries[m[:-4]] = TensorEntry(m[:-4], shape, dtype)
        z.close()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CorruptFileError(
            f"{path}: not a readable .npz archive ({str(exc)[:80]}); re-save it with numpy.savez"
        ) from None
    if not entries:
        raise CorruptFileError(f"{path}: .npz archive holds no arrays; nothing to analyse")

    def read(key: str) -> np.ndarray:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data[key], dtype=np.float64)

    return TensorSource(path, "npz", entries, read, {})
