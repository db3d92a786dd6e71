"""Partial flags chosen by the stable gaps of a singular spectrum (docs/theory.md, eqs. (62)–(63)).

Singular vectors inside a cluster of (nearly) equal singular values are not determined by the
matrix: only the span of the whole cluster is (the "curse of isotropy", Szwagier & Pennec,
arXiv 2307.15348). A split of the spectrum after σ_d is kept only when the gap σ_d − σ_{d+1} is
large against the perturbation δ the stored matrix is trusted to (Wedin's sin Θ theorem); the
kept splits are the flag's type and each cluster between two splits is one piece.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._arrays import as_float64, input_eps, is_quantized, storage_error
from ..errors import InputError
from .partial_flag import Flag

__all__ = ["storage_perturbation", "spectral_flag", "flag_from_spectrum", "DEFAULT_MIN_MARGIN"]

#: A split is kept when gap ≥ DEFAULT_MIN_MARGIN · δ: then Weyl keeps the perturbed gap ≥ 8δ > 0
#: and Wedin bounds the rotation of every kept member by sin Θ ≤ δ/(g − δ) ≤ 1/9 (eq. (63)).
DEFAULT_MIN_MARGIN = 10.0

_EPS64 = float(np.finfo(np.float64).eps)


def storage_perturbation(W, dtype: str | None = None, sigma1: float | None = None) -> float:
    """δ: a bound on ‖E‖₂ for the perturbation E that storing W and computing its SVD implies
    (docs/theory.md, eq. (62)).

    δ = eps(dtype)·‖W‖_F + max(shape)·eps₆₄·‖W‖₂. The first term bounds storage rounding: each
    entry is stored with relative error ≤ eps(dtype), so ‖E‖₂ ≤ ‖E‖_F ≤ eps·‖W‖_F
    (``flagalign._arrays.input_eps``: float16, bfloat16, float32, float64). For block-quantized
    GGUF types (``q4_1``, ``q8_0``, …) the first term is δ_q·(maxᵢ‖W_i,:‖ + maxⱼ‖W_:,j‖) with
    δ_q = κ/2^b (``flagalign._arrays.storage_error``), the estimate of ‖E‖₂ that eq. (3)'s rank
    tolerance uses for them (``rank_rtol(..., noise_ratio=ν)``). The second term
    is the backward error of the float64 SVD (LAPACK gesdd is backward stable with
    ‖E‖₂ ≲ p(n)·eps₆₄·‖W‖₂). Other known noise (seed-to-seed spread) is not known here: pass it
    as ``perturbation`` to :func:`spectral_flag`.

    Parameters
    ----------
    W : array_like or torch.Tensor
    dtype : str, optional
        The stored dtype; default: W's own dtype.
    sigma1 : float, optional
        ‖W‖₂ if already known (e.g. from top-k factors); otherwise computed (exact singular
        values up to 2048 on the short side, ARPACK ``svds(k=1)`` above).
    """
    a, d = as_float64(W, name="W")
    if a.size == 0:
        return 0.0
    if sigma1 is None:
        if min(a.shape) <= 2048:
            sigma1 = float(sla.svdvals(a)[0])
        else:  # pragma: no cover - large matrices only
            from scipy.sparse.linalg import svds

            sigma1 = float(svds(a, k=1, return_singular_vectors=False)[0])
    return _delta(a, dtype or d, float(sigma1))


def _storage_term(a: np.ndarray, dtype: str) -> float:
    """The storage part of eq. (62): eps(dtype)·‖W‖_F for float types; for block-quantized GGUF
    types δ_q·(maxᵢ‖W_i,:‖₂ + maxⱼ‖W_:,j‖₂), δ_q = κ/2^b of ``flagalign._arrays.storage_error``
    — the spectral-norm estimate of the quantization error behind eq. (3)'s rank tolerance."""
    if is_quantized(dtype):
        rows = float(np.max(np.linalg.norm(a, axis=1)))
        cols = float(np.max(np.linalg.norm(a, axis=0)))
        return storage_error(dtype) * (rows + cols)
    return input_eps(dtype) * float(np.linalg.norm(a))


def _delta(a: np.ndarray, dtype: str, sigma1: float) -> float:
    """eq. (62) for a float64 copy ``a`` of a matrix stored as ``dtype`` with ‖a‖₂ = sigma1."""
    return _storage_term(a, dtype) + max(a.shape) * _EPS64 * sigma1


def flag_from_spectrum(
    vectors,
    values,
    perturbation: float,
    *,
    tail: float | None = None,
    min_margin: float = DEFAULT_MIN_MARGIN,
    max_dim: int | None = None,
) -> Flag:
    """Gap-chosen partial flag from given singular vectors and values (eq. (63)).

    Parameters
    ----------
    vectors : ndarray, shape (N, k)
        Orthonormal singular vectors (one side) ordered by ``values``.
    values : ndarray, shape (k,)
        Descending singular values σ₁ ≥ … ≥ σ_k.
    perturbation : float
        δ ≥ 0, e.g. :func:`storage_perturbation`.
    tail : float, optional
        σ_{k+1} (0 when the spectrum ends at k < N): enables a split after σ_k. Without it only
        splits d < k are considered.
    min_margin : float
        Keep split d iff g_d = σ_d − σ_{d+1} ≥ min_margin · δ (and g_d > 0).
    max_dim : int, optional
        Consider splits d ≤ max_dim only.

    Returns
    -------
    Flag
        ``dims`` the kept splits, ``margins`` gᵢ/δ at them (inf when δ = 0), ``values`` the
        given spectrum.
    """
    u = np.asarray(vectors, dtype=np.float64)
    s = np.asarray(values, dtype=np.float64)
    if u.ndim != 2 or s.ndim != 1 or u.shape[1] != s.shape[0]:
        raise InputError(f"vectors {u.shape} and values {s.shape} do not match")
    if np.any(np.diff(s) > 0) or np.any(s < 0):
        raise InputError("values must be non-negative and descending")
    if not perturbation >= 0 or not min_margin > 0:
        raise InputError(f"need perturbation >= 0 and min_margin > 0, got {perturbation}, {min_margin}")
    N, k = u.shape
    ext = np.append(s, tail) if tail is not None and k < N else s
    gaps = ext[:-1] - ext[1:]  # gaps[d-1] = σ_d − σ_{d+1}
    ds = np.arange(1, gaps.size + 1)
    keep = (gaps > 0) & (gaps >= min_margin * perturbation) & (ds < N)
    if max_dim is not None:
        keep &= ds <= int(max_dim)
    dims = tuple(int(d) for d in ds[keep])
    with np.errstate(divide="ignore"):
        margins = gaps[keep] / perturbation if perturbation > 0 else np.full(len(dims), np.inf)
    return Flag(u, dims, margins, float(perturbation), s.copy())


def spectral_flag(
    W,
    side: str = "left",
    max_dim: int | None = None,
    *,
    perturbation: float | None = None,
    min_margin: float = DEFAULT_MIN_MARGIN,
    dtype: str | None = None,
) -> Flag:
    """The partial flag of W's singular vectors split only at stable gaps (eqs. (62)–(63)).

    Parameters
    ----------
    W : array_like or torch.Tensor, shape (out, in)
    side : {"left", "right"}
        ``left``: flag in ℝ^out of the left singular vectors (W's output flag); ``right``: flag in
        ℝ^in of the right singular vectors (W's input flag).
    max_dim : int, optional
        Largest member dimension considered.
    perturbation : float, optional
        δ; default :func:`storage_perturbation` of W at its own dtype.
    min_margin : float
        A split after σ_d is kept iff σ_d − σ_{d+1} ≥ min_margin · δ (default 10).
    dtype : str, optional
        The *stored* dtype when W is an upcast copy (e.g. ``Network.matrix`` returns float64 for
        float32/bfloat16 weights: pass ``net.matrices[name].dtype``). Default: W's own dtype.

    Returns
    -------
    Flag
        Type (d₁ < … < d_p), basis (singular vectors, n × d_p), margins g/δ of the kept splits,
        the singular values and δ. A cluster of singular values closer than min_margin · δ is one
        piece, whatever basis the SVD happened to return inside it: every quantity flagalign
        derives from the flag depends only on the pieces' spans.

    Notes
    -----
    Uses the exact SVD (LAPACK gesdd) of the whole matrix. Invariant under W → P W Q with P, Q
    orthogonal (the flag moves with P resp. Q, the type and margins do not); under W → cW
    (c ≠ 0) the flag, type and margins are unchanged.
    """
    if side not in ("left", "right"):
        raise InputError(f"side must be 'left' or 'right', got {side!r}")
    a, own = as_float64(W, name="W")
    dtype = dtype or own
    if a.size == 0:
        raise InputError(f"W is empty (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise InputError("W contains NaN or Inf")
    u, s, vt = sla.svd(a, full_matrices=False, lapack_driver="gesdd")
    vec = u if side == "left" else vt.T
    if perturbation is None:
        perturbation = _delta(a, dtype, float(s[0]))
    return flag_from_spectrum(
        vec, s, perturbation, tail=0.0, min_margin=min_margin, max_dim=max_dim
    )
