"""``.gguf`` files (llama.cpp): a small header parser + per-tensor dequantization (docs/formats.md).

The header (key/values and tensor infos, GGUF v2/v3, little-endian) is parsed here: string arrays
such as the tokenizer vocabulary are skipped, not decoded, which makes opening a file ~100× faster
than ``gguf.GGUFReader``. Loading a matrix reads only that tensor's bytes and dequantizes them
with :func:`gguf.quants.dequantize`.

Orientation: GGUF lists dimensions as (ne0, ne1, ...) with ne0 the fastest-varying (the row
length), so a tensor stored with dims [ne0, ne1] is the row-major numpy array (ne1, ne0) — PyTorch
(out, in) for weight matrices. The architecture rules check every shape against the metadata
(``llama.embedding_length`` etc.).
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np

from ...errors import CorruptFileError, MissingDependencyError, UnsupportedFormatError
from .base import TensorEntry, TensorSource

__all__ = ["open_gguf"]

# Plain GGML float types get the dtype names of the other sources (so input_eps knows them);
# block-quantized types keep their lower-case GGML name (q4_1, q8_0, tq1_0, mxfp4, ...).
_FLOAT_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_INT_TYPES = ("I8", "I16", "I32", "I64")

# GGUF value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array,
# 10 u64, 11 i64, 12 f64
_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


_MAX_DEPTH = 4  # arrays of arrays nested deeper than this are refused (no real file has any)
_MAX_DIMS = 8  # GGML tensors have at most 4 dimensions


class _Buf:
    def __init__(self, path: str):
        self.path = path
        self.f = open(path, "rb")
        self.size = os.path.getsize(path)

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise CorruptFileError(f"{self.path}: truncated GGUF header; re-download the file")
        return b

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > self.size:
            raise CorruptFileError(
                f"{self.path}: corrupt GGUF header (string length {n}); re-download the file"
            )
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, depth: int = 0):
        if depth > _MAX_DEPTH:
            raise CorruptFileError(
                f"{self.path}: corrupt GGUF header (arrays nested more than {_MAX_DEPTH} deep); re-download the file"
            )
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if etype in _SCALAR:
                size = struct.calcsize(_SCALAR[etype])
                if count * size > self.size:
                    raise CorruptFileError(f"{self.path}: corrupt GGUF array; re-download the file")
                raw = self.read(count * size)
                return (
                    list(np.frombuffer(raw, dtype=np.dtype(_SCALAR[etype])))
                    if count <= 64
                    else f"<{count} values>"
                )
            if etype == 8:  # skip strings (tokenizer vocabularies) without decoding them
                for _ in range(count):
                    n = self.unpack("<Q")
                    if n > self.size - self.f.tell():
                        raise CorruptFileError(
                            f"{self.path}: corrupt GGUF header (string length {n}); re-download the file"
                        )
                    self.f.seek(n, 1)
                if self.f.tell() > self.size:
                    raise CorruptFileError(f"{self.path}: truncated GGUF header; re-download the file")
                return f"<{count} strings>"
            if count > self.size:
                raise CorruptFileError(f"{self.path}: corrupt GGUF array (count {count}); re-download the file")
            return [self.value(etype, depth + 1) for _ in range(count)]
        raise CorruptFileError(
            f"{self.path}: unknown GGUF value type {vtype}; the file is corrupt or too new"
        )


def open_gguf(path: str) -> TensorSource:
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
        from gguf.quants import dequantize
    except ImportError:  # pragma: no cover - gguf is a core dependency
        raise MissingDependencyError(
            f"{path}: reading GGUF needs the 'gguf' package: pip install gguf"
        ) from None
    buf = _Buf(path)
    try:
        if buf.size < 24 or buf.read(4) != b"GGUF":
            raise CorruptFileError(f"{path}: empty, truncated or not a GGUF file (bad magic); re-download it")
        version = buf.unpack("<I")
        if version not in (2, 3):
            raise UnsupportedFormatError(
                f"{path}: GGUF version {version} is not supported (2 or 3); re-convert it"
            )
        n_tensors, n_kv = buf.unpack("<Q"), buf.unpack("<Q")
        config = {"GGUF.version": version}
        for _ in range(n_kv):
            key = buf.string()
            config[key] = buf.value(buf.unpack("<I"))
        infos = []
        for _ in range(n_tensors):
            name = buf.string()
            nd = buf.unpack("<I")
            if nd > _MAX_DIMS:
                raise CorruptFileError(f"{path}: tensor {name!r} has {nd} dimensions; the GGUF file is corrupt")
            dims = [buf.unpack("<Q") for _ in range(nd)]
            infos.append((name, dims, buf.unpack("<I"), buf.unpack("<Q")))
        align = config.get("general.alignment", 32)
        if not isinstance(align, (int, np.integer)) or isinstance(align, bool) or not 0 < align <= 1 << 20:
            raise CorruptFileError(
                f"{path}: GGUF general.alignment = {align!r} is not a positive integer; the file is corrupt"
            )
        align = int(align)
        start = -(-buf.f.tell() // align) * align
    finally:
        buf.f.close()
    entries, where = {}, {}
    for name, dims, ttype, off in infos:
        try:
            qt = GGMLQuantizationType(ttype)
        except ValueError:
            raise UnsupportedFormatError(
                f"{path}: tensor {name!r} has unknown GGML type {ttype}; upgrade gguf"
            ) from None
        block, tsize = GGML_QUANT_SIZES[qt]
        count = math.prod(int(d) for d in dims)  # Python ints: [2**32, 2**32] must not wrap to 0
        if count % block:
            raise CorruptFileError(
                f"{path}: tensor {name!r} has {count} values, not a multiple of the {qt.name} block {block}; the file is corrupt"
            )
        nbytes = count // block * tsize
        if start + off + nbytes > buf.size:
            raise CorruptFileError(
                f"{path}: truncated: tensor {name!r} ends past the end of the file; re-download it"
            )
        shape = tuple(int(d) for d in reversed(dims))
        dtype = _FLOAT_NAMES.get(qt.name, qt.name.lower())
        entries[name] = TensorEntry(name, shape, dtype, floating=qt.name not in _INT_TYPES)
        where[name] = (start + off, nbytes, qt, shape)
    if not entries:
        raise CorruptFileError(f"{path}: GGUF file holds no tensors; nothing to analyse")

    def read(key: str) -> np.ndarray:
        off, nbytes, qt, shape = where[key]
        with open(path, "rb") as f:
            f.seek(off)
            raw = np.frombuffer(f.read(nbytes), dtype=np.uint8)
        if qt.name in ("F32", "F16", "F64"):
            arr = raw.view({"F32": "<f4", "F16": "<f2", "F64": "<f8"}[qt.name])
        elif qt.name == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            try:
                arr = dequantize(raw.reshape(shape[0] if len(shape) > 1 else 1, -1), qt)
            except NotImplementedError:
                raise UnsupportedFormatError(
                    f"{path}: tensor {key!r} uses {qt.name}, which gguf cannot dequantize; upgrade gguf"
                ) from None
        return np.asarray(arr, dtype=np.float64).reshape(shape)

    return TensorSource(path, "gguf", entries, read, config)
