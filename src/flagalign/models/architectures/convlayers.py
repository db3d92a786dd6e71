"""Conv kernels as matrices, BatchNorm and depthwise folding (docs/formats.md, "Conv nets").

A kernel K of shape (C_out, C_in, kh, kw) has two matrix views:

* writer view ``name``: (C_out, C_in·kh·kw), output side in ℝ^{C_out} (rows = output channels);
* reader view ``name:in``: (C_out·kh·kw, C_in), K permuted to (C_out, kh, kw, C_in), so its input
  side lives in ℝ^{C_in}. For 1×1 kernels both views are the same matrix and no ``:in`` is added.

Folding (``fold_norms=True``): the BatchNorm after a conv is the per-channel affine map
y = s⊙x + t with s = γ/√(σ²+ε), t = β − s⊙μ; it is folded into the conv's rows
(W ← diag(s)·W, b ← s⊙b + t). A depthwise conv (C, 1, kh, kw) (with its BatchNorm) does not mix
channels; between two pairs it is folded into the next reader as the diagonal
d_c = s_c·‖K_c‖_F (its gain on white-noise input), W_reader ← W_reader·diag(d).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..graph import GraphBuilder
from ..sources.base import TensorSource

__all__ = ["bn_scale_shift", "add_conv", "depthwise_diag", "add_linear", "zero_gain_reason", "zero_gain_message"]


def bn_scale_shift(src: TensorSource, bn: str, eps: float = 1e-5) -> tuple[Callable, Callable] | None:
    """Loaders of (s, t) for BatchNorm prefix ``bn`` (None if its tensors are absent)."""
    need = [f"{bn}.{x}" for x in ("weight", "bias", "running_mean", "running_var")]
    if not all(k in src for k in need):
        return None

    def scale() -> np.ndarray:
        return src.load(need[0]) / np.sqrt(src.load(need[3]) + eps)

    def shift() -> np.ndarray:
        return src.load(need[1]) - scale() * src.load(need[2])

    return scale, shift


def zero_gain_reason(src: TensorSource, key: str, gain_key: str, what: str) -> Callable[[], str | None]:
    """Explainer for a folded matrix that is all zeros because the folded gain ``gain_key`` is
    zero while the stored weight ``key`` is not (see :meth:`Network.zero_reason`)."""

    def reason() -> str | None:
        if gain_key not in src or np.any(src.load(gain_key)) or not np.any(src.load(key)):
            return None
        return zero_gain_message(key, gain_key.rpartition(".")[0], what)

    return reason


def zero_gain_message(key: str, norm: str, what: str) -> str:
    """One line: the folded map of ``key`` is zero because norm ``norm`` has gain 0 (``what``)."""
    return (
        f"the folded map of {key} is zero because the gain γ = 0 in {norm} ({what}); the stored "
        "weight is not zero: load with fold_norms=False (flagalign analyze --raw) to measure the raw weights"
    )


def depthwise_diag(
    src: TensorSource, key: str, bn: str | None, fold: bool, eps: float = 1e-5
) -> Callable[[], np.ndarray]:
    """Loader of the diagonal d (length C) that stands for depthwise kernel ``key`` (+ BN)."""
    ss = bn_scale_shift(src, bn, eps) if (bn and fold) else None

    def diag() -> np.ndarray:
        k = src.load(key)
        d = np.linalg.norm(k.reshape(k.shape[0], -1), axis=1)
        return d * ss[0]() if ss else d

    return diag


def add_conv(
    b: GraphBuilder,
    src: TensorSource,
    key: str,
    *,
    bn: str | None = None,
    bias_key: str | None = None,
    in_diag: Callable[[], np.ndarray] | None = None,
    name: str | None = None,
    eps: float = 1e-5,
) -> tuple[str, str]:
    """Add writer (and, for k > 1, reader) views of conv/linear ``key``; return (writer, reader).

    ``bn`` is folded into the rows when ``b.fold_norms``; ``in_diag`` (a folded depthwise map in
    front of this conv) scales the input channels of both views.
    """
    ent = src.entries[key]
    shp = ent.shape
    c_out, c_in = shp[0], shp[1]
    ksz = int(np.prod(shp[2:])) if len(shp) > 2 else 1
    ss = bn_scale_shift(src, bn, eps) if (bn and b.fold_norms) else None
    name = name or key
    notes = []
    if ss:
        notes.append(f"folded {bn}")
    if in_diag is not None:
        notes.append("folded preceding depthwise conv")

    def kernel() -> np.ndarray:
        k = src.load(key).reshape(c_out, c_in, ksz)
        if ss:
            k = k * ss[0]()[:, None, None]
        if in_diag is not None:
            k = k * in_diag()[None, :, None]
        return k

    bias = None
    if ss or (bias_key and bias_key in src):

        def bias() -> np.ndarray:
            bb = src.load(bias_key).reshape(-1) if (bias_key and bias_key in src) else np.zeros(c_out)
            return bb * ss[0]() + ss[1]() if ss else bb

    role = "conv" if len(shp) > 2 else "linear"
    note = "; ".join(notes)
    why = zero_gain_reason(src, key, f"{bn}.weight", "zero-initialised residual BatchNorm") if ss else None
    b.add(
        name,
        (c_out, c_in * ksz),
        lambda: kernel().reshape(c_out, c_in * ksz),
        dtype=ent.dtype,
        role=role,
        source_key=key,
        note=note,
        bias=bias,
        zero_reason=why,
    )
    if ksz == 1:
        return name, name
    rname = f"{name}:in"
    b.add(
        rname,
        (c_out * ksz, c_in),
        lambda: kernel().transpose(0, 2, 1).reshape(c_out * ksz, c_in),
        dtype=ent.dtype,
        role="conv_in",
        source_key=key,
        derived=True,
        note=(note + "; " if note else "") + "reader view (C_out*kh*kw, C_in)",
        zero_reason=why,
    )
    return name, rname


def add_linear(
    b: GraphBuilder,
    src: TensorSource,
    key: str,
    bias_key: str | None = None,
    in_diag: Callable[[], np.ndarray] | None = None,
) -> str:
    return add_conv(b, src, key, bias_key=bias_key, in_diag=in_diag)[0]
