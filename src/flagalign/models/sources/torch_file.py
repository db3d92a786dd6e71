"""PyTorch state-dict files ``.pt/.pth/.bin``: only ``torch.load(..., weights_only=True)``.

A pickle that is not a plain (possibly nested) state dict is refused by ``weights_only`` and
reported as :class:`~flagalign.errors.UnsafePickleError`; flagalign never unpickles arbitrary
objects. Zip-format checkpoints are memory-mapped (``mmap=True``) so tensors are paged in on
demand.
"""

from __future__ import annotations

import pickle
import zipfile

import numpy as np

from ...errors import CorruptFileError, MissingDependencyError, UnsafePickleError, UnsupportedFormatError
from .base import TensorEntry, TensorSource

__all__ = ["open_torch_file", "tensors_to_source"]

_NESTED = ("state_dict", "model_state_dict", "model", "module", "net", "weights")


def _unwrap(obj, path):
    for _ in range(3):
        if isinstance(obj, dict) and not any(_is_tensor(v) for v in obj.values()):
            for k in _NESTED:
                if isinstance(obj.get(k), dict):
                    obj = obj[k]
                    break
            else:
                break
    if not isinstance(obj, dict):
        raise UnsupportedFormatError(
            f"{path}: holds a {type(obj).__name__}, not a state dict; save model.state_dict() instead"
        )
    return obj


def _is_tensor(v) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "shape") and hasattr(v, "dtype")


def tensors_to_source(sd: dict, path: str, fmt: str = "torch") -> TensorSource:
    """A :class:`TensorSource` over an in-memory mapping of names to torch tensors."""
    tensors = {k: v for k, v in sd.items() if _is_tensor(v)}
    if not tensors:
        raise UnsupportedFormatError(f"{path}: state dict holds no tensors; nothing to analyse")
    entries = {
        k: TensorEntry(k, tuple(int(s) for s in v.shape), str(v.dtype).replace("torch.", ""))
        for k, v in tensors.items()
    }

    def read(key: str) -> np.ndarray:
        t = tensors[key].detach()
        if not t.is_floating_point():
            return t.cpu().numpy().astype(np.float64)
        if t.dtype.itemsize < 4 or str(t.dtype).startswith("torch.float8"):
            t = t.float()
        return t.cpu().numpy().astype(np.float64)

    return TensorSource(path, fmt, entries, read, {})


def open_torch_file(path: str) -> TensorSource:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            f"{path}: reading .pt/.pth/.bin needs torch: pip install torch (or convert to safetensors)"
        ) from None
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc).splitlines()[0][:120] if str(exc) else "refused"
        raise UnsafePickleError(
            f"{path}: not a plain state dict, refused by torch.load(weights_only=True) ({msg}); save model.state_dict() instead"
        ) from None
    except Exception as exc:  # torch raises many types on damaged files (KeyError, EOFError, ...)
        raise CorruptFileError(
            f"{path}: cannot read as a PyTorch state dict ({type(exc).__name__}: {str(exc)[:80]}); the file is empty, truncated or not a checkpoint"
        ) from None
    return tensors_to_source(_unwrap(obj, path), path)
