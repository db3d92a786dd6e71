"""Normalised commutators of symmetric matrices (docs/theory.md §1.3)."""

from __future__ import annotations

import numpy as np

from .._arrays import as_float64
from ..errors import ShapeMismatchError

__all__ = ["commutator_norm", "gram_commutator", "commutator_factored"]


def commutator_norm(A, B) -> float:
    """‖AB − BA‖_F / (‖A‖_F ‖B‖_F) for symmetric A, B (eq. (9)).

    Lies in [0, √2] for any inputs (Böttcher & Wenzel 2008: ‖XY − YX‖_F ≤ √2 ‖X‖_F ‖Y‖_F; attained
    by symmetric indefinite matrices) and in [0, 1/√2] for positive semidefinite ones such as
    Grams (eq. (9); attained by two rank-1 projectors at 45°). 0 exactly when the two matrices
    share an eigenbasis. Returns 0.0 when A or B is zero. For symmetric inputs AB − BA = C − Cᵀ
    with C = AB, so one product suffices.
    """
    a, _ = as_float64(A, name="A")
    b, _ = as_float64(B, name="B")
    if a.shape != b.shape or a.shape[0] != a.shape[1]:
        raise ShapeMismatchError(f"commutator_norm needs square matrices of one size, got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        return 0.0
    c = a @ b
    return float(np.linalg.norm(c - b @ a) / (na * nb))


def gram_commutator(W, W_next) -> float:
    """Gram commutator of an adjacent pair on its shared hidden space ℝⁿ (eq. (10)).

    ``commutator_norm(W Wᵀ, W_nextᵀ W_next)`` for y = W_next σ(W x), W of shape (n, in) and
    W_next of shape (out, n) (PyTorch orientation); in [0, 1/√2] (eq. (9), PSD Grams). Zero exactly
    when the output Gram of W and the input Gram of W_next share an eigenbasis. That is *not* by
    itself basis (Level-3) alignment: W Wᵀ = diag(9, 4, 1) and W_nextᵀW_next = diag(1, 4, 9)
    commute while the output flag of W and the input flag of W_next are in the opposite (generic)
    relative position; basis alignment also needs the relative position (eq. (8)) to be the
    identity (eq. (10)). Not invariant under GL(n) or positive diagonal rescalings of the hidden
    layer; invariant under orthogonal ones (eq. (15)).
    """
    w, _ = as_float64(W, name="W")
    wn, _ = as_float64(W_next, name="W_next")
    if w.shape[0] != wn.shape[1]:
        raise ShapeMismatchError(
            f"W has {w.shape[0]} outputs but W_next reads {wn.shape[1]} inputs"
        )
    return commutator_norm(w @ w.T, wn.T @ wn)


def commutator_factored(W: np.ndarray, Wn: np.ndarray, g_w: np.ndarray, g_next: np.ndarray) -> float:
    """Gram commutator ‖AB − BA‖_F / (‖A‖_F‖B‖_F) with A = WWᵀ, B = W'ᵀW' (eq. (10)).

    For symmetric A, B, BA = (AB)ᵀ, so one product C = AB suffices; C is formed as
    W · ((W'W)ᵀ · W') when n²·i + 2·o·n·i < n³ (n hidden, i = W's inputs, o = W''s outputs) and as
    A @ B otherwise. Both are exact products (no cancellation), unlike trace identities.
    """
    return commutator_and_product(W, Wn, g_w, g_next)[0]


def commutator_and_product(W, Wn, g_w, g_next, m=None):
    """(commutator, M) with M = W'W when the factored order formed it (else ``m`` as given)."""
    na, nb = np.linalg.norm(g_w), np.linalg.norm(g_next)
    if na == 0.0 or nb == 0.0:
        return 0.0, m
    n, i = W.shape
    o = Wn.shape[0]
    if n * n * i + 2 * o * n * i < n**3:
        if m is None:
            m = Wn @ W
        c = W @ (m.T @ Wn)
    else:
        c = g_w @ g_next
    return float(np.linalg.norm(c - c.T) / (na * nb)), m
