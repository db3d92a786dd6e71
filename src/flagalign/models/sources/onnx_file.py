"""``.onnx`` files: initializers as tensors, best effort (docs/formats.md, "ONNX").

Initializers used as the B input of ``MatMul`` (stored (in, out)) or of ``Gemm`` with
``transB=0`` are transposed to (out, in) and renamed in node order as ``<initializer>``; the
result is handed to the generic rule (graph nodes are topologically sorted, so name order is
replaced by node order here). External-data files are not read.
"""

from __future__ import annotations

import numpy as np

from ...errors import CorruptFileError, MissingDependencyError
from .base import TensorEntry, TensorSource

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

    def read(key: str) -> np.ndarray:
        n = lookup[key]
        a = np.asarray(numpy_helper.to_array(inits[n]), dtype=np.float64)
        return a.T if (n in transpose and a.ndim == 2) else a

    return TensorSource(path, "onnx", entries, read, {})
