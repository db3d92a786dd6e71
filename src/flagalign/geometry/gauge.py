"""Hidden-layer symmetry groups and the balanced gauge of one pair (docs/theory.md §7).

The names of the groups live here (the lowest layer) so that :func:`~.pair.pair_alignment`
can take ``symmetry=``; :mod:`flagalign.models.symmetry` sets them on every pair of a network
and :mod:`flagalign.models.gauge` balances a whole network at once.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = [
    "GL", "O", "NONZERO_DIAG", "POS_DIAG", "SIGNED_PERM", "PERM", "UNKNOWN", "SYMMETRIES",
    "ORTHOGONAL_GROUPS", "DIAGONAL_GROUPS", "GAUGES", "check_symmetry", "check_gauge",
    "angles_gauge_dependent", "diagonal_balance", "gl_balance", "balance_pair", "product_spectrum",
]  # fmt: skip

GL = "GL"
O = "O"
NONZERO_DIAG = "nonzero-diag×perm"
POS_DIAG = "pos-diag×perm"
SIGNED_PERM = "signed-perm"
PERM = "perm"
UNKNOWN = "unknown"

#: Every value ``Pair.symmetry`` can take (eq. (70)).
SYMMETRIES = (GL, O, NONZERO_DIAG, POS_DIAG, SIGNED_PERM, PERM, UNKNOWN)
#: Groups of orthogonal maps only: pair angles, overlap, commutator are invariant under them.
ORTHOGONAL_GROUPS = frozenset({O, SIGNED_PERM, PERM})
#: Groups with non-orthogonal diagonal scalings: canonicalised by ``gauge="balanced"`` (eq. (74)).
DIAGONAL_GROUPS = frozenset({NONZERO_DIAG, POS_DIAG})
#: Accepted ``gauge=`` values: None (the stored weights) or ``"balanced"``.
GAUGES = (None, "balanced")


def check_symmetry(symmetry) -> str:
    """``symmetry`` if it is one of :data:`SYMMETRIES` (None → ``unknown``), else InputError."""
    if symmetry is None:
        return UNKNOWN
    if symmetry not in SYMMETRIES:
        raise InputError(f"symmetry={symmetry!r} is not one of {', '.join(SYMMETRIES)}")
    return symmetry


def check_gauge(gauge) -> str | None:
    """``gauge`` if it is None or ``"balanced"`` (``"stored"`` is accepted for None)."""
    if gauge == "stored":
        return None
    if gauge not in GAUGES:
        raise InputError(f"gauge={gauge!r}: use None (the stored weights) or 'balanced'")
    return gauge


def angles_gauge_dependent(symmetry: str, gauge: str | None) -> bool:
    """True when the pair's angles, overlap, intersection_dim and commutator change under its own
    hidden-layer group in this gauge (eq. (75)): always for ``GL`` and ``unknown``; for the
    diagonal groups unless balanced; never for the orthogonal groups."""
    if symmetry in ORTHOGONAL_GROUPS:
        return False
    if symmetry in DIAGONAL_GROUPS:
        return gauge != "balanced"
    return True


def diagonal_balance(in_sq: np.ndarray, out_sq: np.ndarray) -> np.ndarray:
    """Per-neuron scalings s with s²·in_sq = out_sq/s², i.e. s = (out_sq/in_sq)^{1/4} (eq. (74)).

    ``in_sq[i]`` = ‖row i of W̃‖² (in-weights with the bias), ``out_sq[i]`` = ‖column i of
    W_next‖². A neuron with a zero side (dead, or never read) has no balancing scale: s = 1."""
    in_sq = np.asarray(in_sq, dtype=np.float64)
    out_sq = np.asarray(out_sq, dtype=np.float64)
    ok = (in_sq > 0) & (out_sq > 0)
    s = np.ones_like(in_sq)
    s[ok] = (out_sq[ok] / in_sq[ok]) ** 0.25
    return s


def _sym_pow(a: np.ndarray, p: float) -> np.ndarray:
    """a^p for a symmetric positive definite a (eigh); InputError if a is singular."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    if w[0] <= w[-1] * a.shape[0] * np.finfo(np.float64).eps or w[-1] <= 0:
        raise InputError("gauge='balanced' for a GL pair needs both Grams positive definite (full-rank W, W_next)")
    return (v * w**p) @ v.T


def gl_balance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The symmetric positive definite G with G A Gᵀ = G⁻ᵀ B G⁻¹ (eq. (73)).

    A = W̃W̃ᵀ, B = W_nextᵀW_next (n×n, positive definite). G = P^{1/2} with
    P = A^{-1/2}(A^{1/2} B A^{1/2})^{1/2}A^{-1/2}, the unique SPD solution of P A P = B (the
    matrix geometric mean A⁻¹ # B); (G W, W_next G⁻¹) is the minimum of ‖GW̃‖²_F + ‖W_next G⁻¹‖²_F
    over GL(n), unique up to an orthogonal factor on the left of G."""
    ah = _sym_pow(A, 0.5)
    aih = _sym_pow(A, -0.5)
    p = aih @ _sym_pow(ah @ B @ ah, 0.5) @ aih
    return _sym_pow(p, 0.5)


def balance_pair(w: np.ndarray, wn: np.ndarray, bias: np.ndarray | None, symmetry: str):
    """(W, W_next, bias) moved to the balanced point of their own hidden layer's orbit.

    Diagonal groups: the closed-form per-neuron balance ‖row i of S W̃‖ = ‖column i of W_next S⁻¹‖
    (eq. (74)); GL: eq. (73); orthogonal groups and ``unknown``: unchanged (nothing to balance,
    resp. nothing known)."""
    if symmetry in DIAGONAL_GROUPS:
        in_sq = np.einsum("ij,ij->i", w, w) + (0.0 if bias is None else bias**2)
        out_sq = np.einsum("ij,ij->j", wn, wn)
        s = diagonal_balance(in_sq, out_sq)
        return s[:, None] * w, wn / s[None, :], None if bias is None else s * bias
    if symmetry == GL:
        wt = w if bias is None else np.column_stack([w, bias])
        g = gl_balance(wt @ wt.T, wn.T @ wn)
        gw = g @ w
        return gw, np.linalg.solve(g.T, wn.T).T, None if bias is None else g @ bias
    return w, wn, bias


def product_spectrum(w: np.ndarray, wn: np.ndarray, rtol_w: float, rtol_n: float) -> tuple[np.ndarray, int]:
    """Singular values of W_next W (descending) and its rank: the GL(n) invariants of a pair
    (eq. (76)). A singular value counts when it exceeds max(rtol_w, rtol_n)·σ₁(W)·σ₁(W_next) —
    rounding either stored factor (eq. (3)'s relative tolerances) moves σᵢ(W_next W) by about that."""
    import scipy.linalg as sla

    n, m = w.shape[0], min(wn.shape[0], w.shape[1])
    if 0 < n < m:  # thin hidden layer (an OV head): W' = Q₁R₁, Wᵀ = Q₂R₂, W'W = Q₁(R₁R₂ᵀ)Q₂ᵀ
        r1 = sla.qr(wn, mode="r", check_finite=False)[0][:n]
        r2 = sla.qr(w.T, mode="r", check_finite=False)[0][:n]
        s = np.concatenate([sla.svdvals(r1 @ r2.T, check_finite=False), np.zeros(m - n)])
        s1 = float(sla.svdvals(r1, check_finite=False)[0] * sla.svdvals(r2, check_finite=False)[0])
    else:
        s = sla.svdvals(wn @ w)
        s1 = float(sla.norm(w, 2) * sla.norm(wn, 2)) if s.size else 0.0
    return s, (int(np.count_nonzero(s > max(rtol_w, rtol_n) * s1)) if s1 > 0 else 0)
