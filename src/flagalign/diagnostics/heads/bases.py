"""Orthonormal bases of attention-head subspaces in ℝ^{d_model}, from factored forms.

Every head subspace is computed from the head's (head_dim × d_model) or (d_model × head_dim)
slices without ever forming a d_model × d_model matrix. For a product of two thin factors
M = A B (A: n×r, B: r×m) the exact SVD is (TransformerLens' ``FactoredMatrix`` trick)

    A = Q_A R_A,  Bᵀ = Q_B R_B  (thin QR),   R_A R_Bᵀ = U Σ Vᵀ  (r×r SVD)
    ⇒  M = (Q_A U) Σ (Q_B V)ᵀ,

docs/theory.md, eq. (44). Cost O((n+m) r²) instead of O(n m r).
"""

from __future__ import annotations

import numpy as np

from ..._arrays import input_eps
from ...errors import InputError
from ..._validate import check_k
from ...geometry._basis import rank_from_singular_values
from ...models.loader import load
from ...models.network import AttentionLayer, Network

__all__ = [
    "SUBSPACES",
    "slice_basis",
    "factored_svd",
    "head_slices",
    "layer_head_bases",
    "shared_mask",
    "as_network",
]

SUBSPACES = ("q", "k", "v", "o", "qk", "ov")


def as_network(source) -> Network:
    """``source`` itself if it is a :class:`Network`, else ``flagalign.load(source)``."""
    if isinstance(source, Network):
        return source
    return load(source)


def _rtol(shape: tuple[int, int], eps: float) -> float:
    """Relative rank threshold max(m, n)·ε_input of eq. (3); ε_input is at least float64's (an
    unknown dtype, ``eps = 0``, counts as float64)."""
    return max(shape) * max(eps, np.finfo(np.float64).eps)


def slice_basis(M: np.ndarray, side: str, eps: float = 0.0) -> np.ndarray:
    """Orthonormal basis (columns) of the column space (``side="col"``) or row space
    (``side="row"``) of a head slice M, truncated at its numerical rank (docs/theory.md, eq. (3)).

    The same subspace and rank rule as :func:`flagalign.geometry.orthonormal_basis`, for
    thin matrices: a tall M is first reduced by QR (M = Q R, then the SVD of the small R), which
    gives the same singular values and subspace as a full SVD at a fraction of the cost; the row
    space is available without transposing the caller's slice; ``eps`` is the input dtype's unit
    roundoff.
    """
    M = np.asarray(M, dtype=np.float64)
    T = M if side == "col" else M.T  # the wanted space is the column space of T
    if T.shape[0] > T.shape[1]:
        Q, R = np.linalg.qr(T)
        u, s, _ = np.linalg.svd(R)
        U = Q @ u
    else:
        U, s, _ = np.linalg.svd(T, full_matrices=False)
    return U[:, : rank_from_singular_values(s, _rtol(M.shape, eps))]


def factored_svd(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact thin SVD ``(U, s, V)`` of M = A B from its factors (docs/theory.md, eq. (44)).

    Parameters
    ----------
    A : ndarray, shape (n, r)
    B : ndarray, shape (r, m)

    Returns
    -------
    U : (n, w) left singular vectors, s : (w,) descending, V : (m, w) right singular vectors,
    w = min(n, r, m).
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.shape[1] != B.shape[0]:
        raise InputError(f"factored_svd: inner dimensions differ, {A.shape} @ {B.shape}")
    Qa, Ra = np.linalg.qr(A)
    Qb, Rb = np.linalg.qr(B.T)
    u, s, vt = np.linalg.svd(Ra @ Rb.T, full_matrices=False)
    return Qa @ u, s, Qb @ vt.T


def head_slices(network: Network, attn: AttentionLayer, which: str) -> list[np.ndarray]:
    """All heads' slices of one projection, loading the matrix once.

    Equal to ``[network.head_slice(attn, which, h) for h in range(attn.heads)]`` (q/k/v:
    (head_dim, d_model) rows, k/v by GQA group; o: (d_model, head_dim) columns).
    """
    d = attn.head_dim
    if which == "q":
        W = network.matrix(attn.q)
        _check(W, (attn.heads * d, attn.d_model), attn, "q")
        return [W[h * d : (h + 1) * d] for h in range(attn.heads)]
    if which in ("k", "v"):
        W = network.matrix(getattr(attn, which))
        _check(W, (attn.kv_heads * d, attn.d_model), attn, which)
        return [W[attn.kv_group(h) * d : (attn.kv_group(h) + 1) * d] for h in range(attn.heads)]
    if which == "o":
        W = network.matrix(attn.o)
        _check(W, (attn.d_model, attn.heads * d), attn, "o")
        return [W[:, h * d : (h + 1) * d] for h in range(attn.heads)]
    raise InputError(f"head_slices: 'which' must be q, k, v or o, got {which!r}")


def _check(W: np.ndarray, shape: tuple[int, int], attn: AttentionLayer, which: str) -> None:
    if W.shape != shape:
        raise InputError(
            f"attention layer {attn.layer}: {which} matrix {getattr(attn, which)!r} has shape "
            f"{W.shape}, expected {shape} from heads={attn.heads}, kv_heads={attn.kv_heads}, "
            f"head_dim={attn.head_dim}, d_model={attn.d_model}"
        )


def _eps(network: Network, name: str) -> float:
    info = network.matrices.get(name)
    return input_eps(info.dtype) if info is not None else 0.0


def layer_head_bases(
    network: Network, attn: AttentionLayer, subspace: str, k: int | None = None
) -> list[np.ndarray]:
    """Orthonormal bases (d_model × r_h) of every head's subspace in one attention layer.

    ``q``/``k``/``v``: row space of the head's slice (what it reads); ``o``: column space of
    W_O^h (what it writes); ``qk``: top-k right singular (key-side, row) space of
    W_Q^hᵀ W_K^h; ``ov``: top-k left singular (column) space of W_O^h W_V^h; k defaults to
    head_dim. Bases are truncated at numerical rank (docs/theory.md, eqs. (3), (40), (44)).
    """
    if subspace not in SUBSPACES:
        raise InputError(f"subspace must be one of {', '.join(SUBSPACES)}; got {subspace!r}")
    kk = attn.head_dim if k is None else check_k(k)
    if subspace in ("q", "k", "v"):
        eps = _eps(network, getattr(attn, subspace))
        return [slice_basis(S, "row", eps) for S in head_slices(network, attn, subspace)]
    if subspace == "o":
        eps = _eps(network, attn.o)
        return [slice_basis(S, "col", eps) for S in head_slices(network, attn, "o")]
    if subspace == "qk":
        pairs = zip(head_slices(network, attn, "q"), head_slices(network, attn, "k"))
        eps = max(_eps(network, attn.q), _eps(network, attn.k))
        out = []
        for Q, K in pairs:
            _, s, V = factored_svd(Q.T, K)  # W_Qᵀ W_K = (W_Qᵀ)(W_K)
            r = min(kk, rank_from_singular_values(s, _rtol((Q.shape[1],) * 2, eps)))
            out.append(V[:, :r])
        return out
    pairs = zip(head_slices(network, attn, "o"), head_slices(network, attn, "v"))
    eps = max(_eps(network, attn.o), _eps(network, attn.v))
    out = []
    for O, Vh in pairs:
        U, s, _ = factored_svd(O, Vh)  # W_O W_V
        r = min(kk, rank_from_singular_values(s, _rtol((O.shape[0],) * 2, eps)))
        out.append(U[:, :r])
    return out


def shared_mask(attn: AttentionLayer, subspace: str, k: int | None = None) -> np.ndarray:
    """H×H boolean: True where two distinct heads share their subspace by construction (GQA).

    ``k``/``v`` slices are literally the same rows for heads of one kv group; ``qk`` at
    k ≥ head_dim is the row space of W_K^h (docs/theory.md, eq. (45)), hence shared too.
    """
    H = attn.heads
    mask = np.zeros((H, H), dtype=bool)
    full_qk = subspace == "qk" and (k is None or k >= attn.head_dim)
    if attn.kv_heads < H and (subspace in ("k", "v") or full_qk):
        g = np.array([attn.kv_group(h) for h in range(H)])
        mask = g[:, None] == g[None, :]
        np.fill_diagonal(mask, False)
    return mask
