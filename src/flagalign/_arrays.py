"""Conversion of user arrays (numpy, torch, any float dtype) to float64 numpy.

This is the only place that knows about torch tensors; it never imports torch.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError, ShapeMismatchError

__all__ = ["as_float64", "as_bias", "input_eps", "storage_error", "is_low_precision", "is_quantized"]

# Machine epsilon ε of the *input* precision (the gap between 1 and the next representable
# number; the unit roundoff is u = ε/2): a float16 matrix cannot be trusted beyond ~1e-3 relative,
# however precisely we compute on it afterwards (docs/theory.md, eq. (3)).
_EPS = {
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,
    "float32": float(np.finfo(np.float32).eps),
    "float64": float(np.finfo(np.float64).eps),
    "float8_e4m3fn": 2.0**-3,
    "float8_e4m3fnuz": 2.0**-3,
    "float8_e5m2": 2.0**-2,
    "float8_e5m2fnuz": 2.0**-2,
}

# Block-quantized GGUF types: δ_q, a bound on the RMS of the per-entry quantization error relative
# to the RMS of the weights (docs/theory.md, eq. (3)): a b-bit block quantizer rounds each entry to a
# grid of step d = amax_B / 2^(b−1) (symmetric) or range_B / (2^b − 1) (affine), so |e| ≤ d/2 ≈
# κ · rms_B / 2^b with κ = 2.4 ≥ amax/rms of a 32-entry Gaussian block (measured: √3 × the relative
# Frobenius error of quantizing Gaussian data, Q8_0 0.0094, Q4_0 0.149, Q4_1 0.135; the block
# scale/2 bound of the packaged SmolLM2 Q4_1 file: 0.143). Types without an entry use κ / 2^b with
# b the first digit of the name.
_KAPPA = 2.4
_QUANT_DELTA = {
    "mxfp4": 0.2,  # e2m1 elements with a shared power-of-two scale: √3 × 0.115 (measured)
    "tq1_0": 1.4,  # ternary: √3 × 0.81 (measured) — no direction survives the worst case
    "tq2_0": 1.4,
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
    """Machine epsilon ε = 2u of the input dtype (docs/theory.md, eq. (3)).

    GGUF block-quantized types (``q4_1``, ``q8_0``, ``q6_k``, ``iq4_nl``, ...) dequantize to
    float32, so the arithmetic on them is float32's; the error of *storing* them is
    :func:`storage_error`. Integer and unknown dtypes get float64's.
    """
    d = str(dtype).lower()
    if d in _EPS:
        return _EPS[d]
    if _is_quant(d):
        return _EPS["float32"]
    return _EPS["float64"]


def is_quantized(dtype: str) -> bool:
    """True for block-quantized GGUF type names (``q4_1``, ``q6_k``, ``iq4_nl``, ``tq1_0``, ``mxfp4``)."""
    return _is_quant(str(dtype).lower())


def _is_quant(d: str) -> bool:
    return d in _QUANT_DELTA or (d.startswith(("q", "iq", "tq")) and any(c.isdigit() for c in d))


def storage_error(dtype: str) -> float:
    """δ: bound on the per-entry error of *storing* a matrix in ``dtype`` (docs/theory.md, eq. (3)).

    Float types: the unit roundoff u = ε/2 (|fl(w) − w| ≤ u|w| for normal numbers), so
    ‖E‖_F ≤ u‖W‖_F. Block-quantized GGUF types: δ_q ≈ κ/2^b (an RMS bound relative to the
    weights' RMS, see ``_QUANT_DELTA``), so ‖E‖_F ≲ δ_q‖W‖_F. Unknown and integer dtypes: float64's u.
    """
    d = str(dtype).lower()
    if d in _EPS:
        return _EPS[d] / 2.0
    if _is_quant(d):
        if d in _QUANT_DELTA:
            return _QUANT_DELTA[d]
        bits = int(next(c for c in d if c.isdigit()))
        return _KAPPA / 2.0**bits
    return _EPS["float64"] / 2.0


def is_low_precision(dtype: str) -> bool:
    """True when the storage error of ``dtype`` (not the float64 arithmetic) sets eq. (3)'s
    tolerance: 16-bit and 8-bit floats and block-quantized types."""
    d = str(dtype).lower()
    return d in _EPS and d not in ("float32", "float64") or _is_quant(d)


def as_bias(bias, n: int) -> np.ndarray | None:
    """A writer's output bias as a float64 vector of length ``n`` (None stays None)."""
    if bias is None:
        return None
    b, _ = as_float64(bias, name="bias", ndim=1)
    if b.shape[0] != n:
        raise ShapeMismatchError(f"bias has {b.shape[0]} entries, W has {n} outputs")
    return b
