"""The imbalance matrix D of an adjacent pair (docs/theory.md §1.3, eq. (11))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._arrays import as_float64
from ..errors import ShapeMismatchError

__all__ = ["Imbalance", "imbalance", "imbalance_from_grams", "imbalance_matrix"]


@dataclass(frozen=True)
class Imbalance:
    """Norms of D = W_nextᵀW_next − W̃W̃ᵀ (eq. (11)).

    Attributes
    ----------
    full : float
        ‖D‖_F.
    diag : float
        ‖diag D‖₂ — per-neuron (out-norm² − in-norm²); conserved by gradient flow in ReLU nets.
    offdiag : float
        ‖D − diag D‖_F.
    relative : float
        ‖D‖_F / (‖W̃W̃ᵀ‖_F + ‖W_nextᵀW_next‖_F), in [0, 1]; NaN for two zero matrices.
    """

    full: float
    diag: float
    offdiag: float
    relative: float


def _grams(W, W_next, bias=None) -> tuple[np.ndarray, np.ndarray]:
    """(W̃W̃ᵀ, W_nextᵀW_next) on the shared space, W̃ = [W, bias]."""
    w, _ = as_float64(W, name="W")
    wn, _ = as_float64(W_next, name="W_next")
    if w.shape[0] != wn.shape[1]:
        raise ShapeMismatchError(f"W has {w.shape[0]} outputs but W_next reads {wn.shape[1]} inputs")
    if bias is not None:
        b, _ = as_float64(bias, name="bias", ndim=1)
        if b.shape[0] != w.shape[0]:
            raise ShapeMismatchError(f"bias has {b.shape[0]} entries, W has {w.shape[0]} outputs")
        w = np.column_stack([w, b])
    return w @ w.T, wn.T @ wn


def imbalance_matrix(W, W_next, bias=None) -> np.ndarray:
    """D = W_nextᵀW_next − W̃W̃ᵀ with W̃ = [W, bias] (eq. (11)); shape (n, n)."""
    g_in, g_out = _grams(W, W_next, bias)
    return g_out - g_in


def imbalance(W, W_next, bias=None) -> Imbalance:
    """Norms of the imbalance D of an adjacent pair (eq. (11)).

    Parameters
    ----------
    W : array_like, shape (n, in)
        The writer (PyTorch (out, in) orientation).
    W_next : array_like, shape (out, n)
        The reader.
    bias : array_like, shape (n,), optional
        W's output bias, taken as an extra input column of W̃ = [W, b]: with it the per-neuron
        law diag D ← (1−ηλ)² diag D holds exactly for ReLU nets (eq. (21)).

    Returns
    -------
    Imbalance
    """
    return imbalance_from_grams(*_grams(W, W_next, bias))


def imbalance_from_grams(g_in: np.ndarray, g_out: np.ndarray) -> Imbalance:
    """:class:`Imbalance` of D = g_out − g_in from the two Gram matrices W̃W̃ᵀ and W_nextᵀW_next."""
    d = g_out - g_in
    full = float(np.linalg.norm(d))
    dg = float(np.linalg.norm(np.diag(d)))
    off = float(np.linalg.norm(d - np.diag(np.diag(d))))
    denom = float(np.linalg.norm(g_in) + np.linalg.norm(g_out))
    rel = full / denom if denom > 0 else float("nan")
    return Imbalance(full=full, diag=dg, offdiag=off, relative=rel)
