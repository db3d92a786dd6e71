"""Conversion of user arrays (numpy, torch, any float dtype) to float64 numpy.

This is the only place that knows about torch tensors; it never imports torch.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = ["as_float64", "input_eps"]

# Machine epsilon of the *input* precision: a float16 matrix cannot be trusted beyond ~1e-3
# relative, however precisely we compute on it afterwards (docs/theory.md, eq. (3)).
_EPS = {
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,
    "float32": float(np.finfo(np.float32).eps),
    "float64": float(np.finfo(np.float64).eps),
}


def _torch_to_numpy(x, name: str = "array"):
    dtype = str(x.dtype).replace("torch.", "")
    if getattr(x, "is_complex", lambda: False)():
        raise InputError(f"{name}: complex input is not supported (got torch {dtype})")
    if dtype.startswith("float8") or dtype.startswith("float4"):
        raise InputError(f"{name}: {dtype} tensors are not supported; convert to float16/bfloat16/float32 first")
    if x.device.type == "meta":
        raise InputError(f"{name}: a meta-device tensor has no values; load the weights first")
    if str(getattr(x, "layout", "torch.strided")) != "torch.strided" or getattr(x, "is_quantized", False):
        raise InputError(f"{name}: sparse or quantized tensor (layout {x.layout}); pass a dense tensor (.to_dense())")
    t = x.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if dtype == "bfloat16" or dtype == "float16":
        t = t.float()
    try:
        arr = np.asarray(t.numpy(), dtype=np.float64)
    except (TypeError, RuntimeError) as exc:
        raise InputError(f"{name}: cannot convert torch {dtype} to float64 ({exc})") from None
    return arr, dtype


def as_float64(x, *, name: str = "array", ndim: int | None = 2) -> tuple[np.ndarray, str]:
    """Return ``(float64 ndarray, source dtype name)`` for a numpy array or torch tensor.

    Parameters
    ----------
    x : array_like or torch.Tensor
        Any real floating (or integer) array; bfloat16/float16 torch tensors are upcast.
    name : str
        Used in error messages.
    ndim : int or None
        Required number of dimensions (None: any).
    """
    if type(x).__module__.startswith("torch"):
        arr, dtype = _torch_to_numpy(x, name)
    else:
        try:
            a = np.asarray(x)
        except ValueError:  # numpy >= 1.24 refuses ragged nested lists
            raise InputError(f"{name}: ragged nested sequence; rows must all have the same length") from None
        dtype = a.dtype.name
        if a.dtype.kind == "c":
            raise InputError(f"{name}: complex input is not supported (got {dtype})")
        if a.dtype.kind not in "fiub":
            raise InputError(f"{name}: expected a real numeric array, got dtype {dtype}")
        arr = a.astype(np.float64, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr, dtype


def input_eps(dtype: str) -> float:
    """Unit roundoff of the input dtype (docs/theory.md, eq. (3)).

    GGUF block-quantized types (``q4_1``, ``q8_0``, ``q6_k``, ``iq4_nl``, ...) dequantize to
    float32: the dequantized matrix *is* the matrix the quantized model computes with, so its only
    rounding is float32's. Integer and unknown dtypes get float64's.
    """
    d = str(dtype).lower()
    if d in _EPS:
        return _EPS[d]
    if d.startswith(("q", "iq", "tq")) and any(c.isdigit() for c in d):
        return _EPS["float32"]
    return _EPS["float64"]
