"""``.safetensors`` files and sharded folders, read without torch (docs/formats.md, "Sources").

The header (8-byte little-endian length + JSON) is parsed here and every tensor is read in
chunks straight into a float64 array, so loading one matrix never maps or copies the rest of
the file and peak memory stays near the size of that one float64 result (bench/load_memory.py).
bfloat16 is widened bit-exactly (upper half of a float32).
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from ...errors import CorruptFileError, UnsupportedFormatError
from .base import TensorEntry, TensorSource

__all__ = ["open_safetensors", "open_safetensors_files"]

_DTYPES = {
    "F64": ("float64", np.dtype("<f8")),
    "F32": ("float32", np.dtype("<f4")),
    "F16": ("float16", np.dtype("<f2")),
    "BF16": ("bfloat16", np.dtype("<u2")),
    "I64": ("int64", np.dtype("<i8")),
    "I32": ("int32", np.dtype("<i4")),
    "I16": ("int16", np.dtype("<i2")),
    "I8": ("int8", np.dtype("i1")),
    "U8": ("uint8", np.dtype("u1")),
    "BOOL": ("bool", np.dtype("?")),
}
_CHUNK = 1 << 24  # bytes read at a time
_MAX_DIMS = 16  # more dimensions than any real tensor: refused as corrupt


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _valid_entry(code, shape, b, e) -> bool:
    """A header entry is usable: dtype a string, integer dims >= 0, integer offsets 0 <= b <= e."""
    return (
        isinstance(code, str)
        and shape is not None
        and len(shape) <= _MAX_DIMS
        and all(_is_int(d) and d >= 0 for d in shape)
        and _is_int(b)
        and _is_int(e)
        and 0 <= b <= e
    )


def _header(path: str) -> tuple[dict, int]:
    size = os.path.getsize(path)
    if size < 8:
        raise CorruptFileError(
            f"{path}: empty or truncated safetensors file ({size} bytes); re-download or re-save it"
        )
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8 or n > 100_000_000:
            raise CorruptFileError(
                f"{path}: truncated or not a safetensors file (header length {n} > file size {size}); re-save it"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptFileError(
            f"{path}: safetensors header is not valid JSON; the file is corrupt or not safetensors"
        ) from None
    except RecursionError:
        raise CorruptFileError(f"{path}: safetensors header is nested too deeply; the file is corrupt") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path}: safetensors header is not a JSON object; the file is corrupt")
    return header, 8 + n


def _entries(path: str) -> tuple[dict[str, TensorEntry], dict[str, tuple], dict]:
    header, start = _header(path)
    size = os.path.getsize(path)
    meta = header.pop("__metadata__", None) or {}
    entries, where = {}, {}
    for key, h in header.items():
        try:
            code, shape, (b, e) = h["dtype"], tuple(h["shape"]), h["data_offsets"]
        except (KeyError, TypeError, ValueError):
            code = shape = b = e = None
        if not _valid_entry(code, shape, b, e):
            raise CorruptFileError(
                f"{path}: malformed header entry for tensor {key!r} (dtype, shape or data_offsets); the file is corrupt"
            )
        name, np_dtype = _DTYPES.get(code, (code.lower(), None))
        if start + e > size:
            raise CorruptFileError(
                f"{path}: truncated: tensor {key!r} ends at byte {start + e} > file size {size}; re-download or re-save it"
            )
        # Python ints: a numpy product of [2**32, 2**32] wraps to 0 and would match empty data.
        if np_dtype is not None and (e - b) != math.prod(shape) * np_dtype.itemsize:
            raise CorruptFileError(
                f"{path}: tensor {key!r} byte range does not match its shape {shape}; the file is corrupt"
            )
        entries[key] = TensorEntry(key, shape, name)
        where[key] = (start + b, start + e, np_dtype)
    _no_overlap(path, where)
    return entries, where, meta


def _no_overlap(path: str, where: dict[str, tuple]) -> None:
    """Refuse two tensors whose (non-empty) byte ranges overlap: one would alias the other."""
    spans = sorted((b, e, k) for k, (b, e, _) in where.items() if e > b)
    for (b0, e0, k0), (b1, e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise CorruptFileError(
                f"{path}: tensors {k0!r} and {k1!r} overlap in the file (bytes {b1}..{min(e0, e1)}); "
                "the file is corrupt or crafted"
            )


def _same_bytes(a: tuple, b: tuple) -> bool:
    """Equal stored bytes of two (path, begin, end) ranges, compared chunk by chunk."""
    (pa, ba, ea), (pb, bb, eb) = a, b
    if ea - ba != eb - bb:
        return False
    with open(pa, "rb") as fa, open(pb, "rb") as fb:
        fa.seek(ba)
        fb.seek(bb)
        left = ea - ba
        while left:
            m = min(left, _CHUNK)
            if fa.read(m) != fb.read(m):
                return False
            left -= m
    return True


def _read(path: str, begin: int, end: int, np_dtype, bf16: bool, shape, key: str) -> np.ndarray:
    count = (end - begin) // np_dtype.itemsize
    out = np.empty(count, dtype=np.float64)
    step = max(1, _CHUNK // np_dtype.itemsize)
    buf = bytearray(min(count, step) * np_dtype.itemsize)
    with open(path, "rb") as f:
        f.seek(begin)
        for i in range(0, count, step):
            m = min(step, count - i)
            view = memoryview(buf)[: m * np_dtype.itemsize]
            if f.readinto(view) != len(view):
                raise CorruptFileError(f"{path}: truncated while reading tensor {key!r}; re-download it")
            part = np.frombuffer(view, dtype=np_dtype)
            if bf16:  # bfloat16: upper half of a float32
                part = (part.astype(np.uint32) << 16).view(np.float32)
            out[i : i + m] = part
    return out.reshape(shape)


def open_safetensors_files(paths: list[str], label: str, config: dict | None = None) -> TensorSource:
    """One :class:`TensorSource` over one or several safetensors shards."""
    entries, where = {}, {}
    metadata: dict = {}
    for p in paths:
        e, w, meta = _entries(p)
        metadata.update(meta)
        for k in e:
            if k in where:
                q, qb, qe, _ = where[k]
                same = entries[k].shape == e[k].shape and entries[k].dtype == e[k].dtype
                if not (same and _same_bytes((q, qb, qe), (p, w[k][0], w[k][1]))):
                    raise CorruptFileError(
                        f"{label}: tensor {k!r} is defined differently in two shards, {q} and {p}; "
                        "remove the stale shard"
                    )
                continue  # the same tensor twice: keep the first
            where[k] = (p, *w[k])
            entries[k] = e[k]
    if not entries:
        raise CorruptFileError(f"{label}: safetensors file holds no tensors; nothing to analyse")

    def reader(key: str) -> np.ndarray:
        p, b, e, dt = where[key]
        ent = entries[key]
        if dt is None or ent.dtype == "bool":
            raise UnsupportedFormatError(
                f"{p}: tensor {key!r} has unsupported dtype {ent.dtype}; convert it to float32/float16/bfloat16"
            )
        return _read(p, b, e, dt, ent.dtype == "bfloat16", ent.shape, key)

    cfg = dict(config or {})
    cfg.setdefault("__metadata__", metadata)
    return TensorSource(label, "safetensors", entries, reader, cfg)


def open_safetensors(path: str, config: dict | None = None) -> TensorSource:
    """A single ``.safetensors`` file."""
    return open_safetensors_files([path], path, config)
