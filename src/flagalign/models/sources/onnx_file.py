"""``.onnx`` files: initializers as tensors, best effort (docs/formats.md, "ONNX").

Initializers used as the B input of ``MatMul`` (stored (in, out)) or of ``Gemm`` with
``transB=0`` are transposed to (out, in) and renamed in node order as ``<initializer>``; the
result is handed to the generic rule (graph nodes are topologically sorted, so name order is
replaced by node order here).

External data (``location`` in an initializer's ``external_data``) is read relative to the model
file's folder only, never the current directory: an absolute location, a ``..`` component or a
symlink that resolves outside that folder is refused (docs/security.md).
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import CorruptFileError, InputError, MissingDependencyError
from .base import TensorEntry, TensorSource
from .files import regular_file, require_inside

__all__ = ["open_onnx"]


def open_onnx(path: str) -> TensorSource:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise MissingDependencyError(
            f"{path}: reading ONNX needs the 'onnx' package: pip install onnx"
        ) from None
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise CorruptFileError(f"{path}: not a readable ONNX model ({str(exc)[:80]}); re-export it") from None
    inits = {i.name: i for i in model.graph.initializer}
    transpose, order = set(), []
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
            tb = next((a.i for a in node.attribute if a.name == "transB"), 0)
            if node.op_type == "MatMul" or not tb:
                transpose.add(node.input[1])
            order.append(node.input[1])
        elif node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            order.append(node.input[1])
    names = order + [n for n in inits if n not in order]
    entries = {}
    for i, n in enumerate(names):
        dims = tuple(int(d) for d in inits[n].dims)
        if n in transpose and len(dims) == 2:
            dims = dims[::-1]
        key = f"{i:04d}.{n}"
        entries[key] = TensorEntry(key, dims, "float32")
    lookup = {f"{i:04d}.{n}": n for i, n in enumerate(names)}

    folder = os.path.dirname(os.path.abspath(path))
    for init in inits.values():
        _check_external(path, folder, init)

    def read(key: str) -> np.ndarray:
        n = lookup[key]
        t = inits[n]
        if _is_external(t):  # read into a copy, so the model proto does not keep every tensor
            c = onnx.TensorProto()
            c.CopyFrom(t)
            try:
                arr = numpy_helper.to_array(c, base_dir=folder)
            except (OSError, ValueError) as exc:
                raise CorruptFileError(
                    f"{path}: external data of initializer {n!r} is unreadable ({str(exc)[:80]})"
                ) from None
        else:
            arr = numpy_helper.to_array(t)
        a = np.asarray(arr, dtype=np.float64)
        return a.T if (n in transpose and a.ndim == 2) else a

    return TensorSource(path, "onnx", entries, read, {})


def _is_external(t) -> bool:
    return getattr(t, "data_location", 0) == 1  # onnx.TensorProto.EXTERNAL


def _check_external(path: str, folder: str, t) -> None:
    """Refuse external data that would be read from outside the model file's folder."""
    if not _is_external(t):
        return
    loc = next((e.value for e in t.external_data if e.key == "location"), None)
    if not loc:
        raise CorruptFileError(f"{path}: initializer {t.name!r} has external data without a location")
    parts = loc.replace("\\", "/").split("/")
    if os.path.isabs(loc) or loc.startswith(("/", "\\")) or ".." in parts or (len(loc) > 1 and loc[1] == ":"):
        raise InputError(
            f"{path}: initializer {t.name!r} names external data {loc!r} outside the model's folder "
            "(absolute path or '..'); flagalign reads external data only beside the model"
        )
    full = os.path.join(folder, loc)
    regular_file(full, "ONNX external data file")
    require_inside(folder, full, "ONNX external data")
