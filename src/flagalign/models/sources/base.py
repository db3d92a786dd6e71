"""The tensor-source protocol: names, shapes and dtypes without data; one tensor on demand.

Every file format (docs/formats.md, "Sources") is read through a :class:`TensorSource`, so the
architecture rules never know where a tensor came from. ``load`` returns float64 in the *file's*
layout (numpy order); architecture rules reorient to PyTorch (out, in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["TensorEntry", "TensorSource", "natural_key", "FLOAT_DTYPES"]

FLOAT_DTYPES = {"float64", "float32", "float16", "bfloat16"}


@dataclass(frozen=True)
class TensorEntry:
    """Metadata of one stored tensor: numpy-order ``shape`` and storage ``dtype`` name.

    ``floating`` is set by sources that know it exactly (GGUF: every GGML type but I8/I16/I32/I64
    is a float or a block-quantized float); when None it is inferred from the dtype name.
    """

    key: str
    shape: tuple[int, ...]
    dtype: str
    floating: bool | None = None

    @property
    def is_float(self) -> bool:
        if self.floating is not None:
            return self.floating
        return self.dtype in FLOAT_DTYPES or self.dtype.startswith(("q", "iq", "f"))


@dataclass
class TensorSource:
    """A lazily read collection of named tensors.

    Attributes
    ----------
    path : str
        What was opened (file, folder or a description).
    format : str
        ``safetensors``, ``gguf``, ``torch``, ``npz``, ``onnx`` or ``module``.
    entries : dict[str, TensorEntry]
        Tensor metadata in file order.
    config : dict
        Architecture metadata (HF ``config.json``, GGUF key/values, ...), possibly empty.
    reader : callable
        ``reader(key) -> ndarray`` (float64, numpy order); called only by :meth:`load`.
    """

    path: str
    format: str
    entries: dict[str, TensorEntry]
    reader: Callable[[str], np.ndarray] = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    def load(self, key: str) -> np.ndarray:
        """Tensor ``key`` as float64 in the file's numpy layout (read now, never cached)."""
        return self.reader(key)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def shape(self, key: str) -> tuple[int, ...]:
        return self.entries[key].shape


def natural_key(name: str) -> list:
    """Sort key that orders ``layers.2`` before ``layers.10`` (numeric parts compared as ints)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
