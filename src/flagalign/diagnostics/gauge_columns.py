"""Symmetry, gauge and verdict columns of ``analyze`` (docs/theory.md §7, docs/schema.md).

:func:`prepare_gauge` turns the network into the one that is measured (the balanced
representative for ``gauge="balanced"``, eqs. (73)–(74)); :func:`gauge_columns` adds, per pair,
its group (eq. (70)), whether its angle-type numbers are gauge-dependent (eq. (75)), the GL
invariants for GL pairs (eq. (76)) and the z-scores / verdicts against the nulls
(eqs. (77)–(79)).
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.gauge import GL, check_gauge
from ..geometry.gauge import product_spectrum
from ..geometry.nulls import VERDICT_COLUMNS, commutator_null, gram_moments, pair_verdicts
from ..models.gauge import GaugePlan, balanced_network, gauge_plan, pair_gauge_dependent

__all__ = ["GAUGE_COLUMNS", "SYMMETRY_COLUMNS", "prepare_gauge", "gauge_columns", "empty_gauge_columns",
           "pair_columns", "network_columns", "factor_moments"]

#: Symmetry columns, in order: the pair's group, the gauge measured in, whether angles, overlap,
#: intersection_dim and commutator depend on the representative, and the GL invariants.
SYMMETRY_COLUMNS = ("symmetry", "gauge", "gauge_dependent", "product_rank", "product_sv_max")
#: Every column this module adds (symmetry, then the null z-scores and verdicts).
GAUGE_COLUMNS = SYMMETRY_COLUMNS + VERDICT_COLUMNS
#: Haar draws for the commutator null's sd (eq. (79)): relative error of the sd ≈ 1/√(2·16) = 18 %.
COMMUTATOR_SD_SAMPLES = 16
#: Largest r_a·r_b² + r_b³ (flops of one draw; r bounded by each matrix's smaller side) for which
#: the commutator's sd is estimated; above it ``commutator_z`` is NaN and the verdict ``n/a``
#: (docs/theory.md eq. (79)).
COMMUTATOR_SD_BUDGET = 2e8


def commutator_sd_null(W, Wn, *, seed: int = 0):
    """The Monte Carlo commutator null used only for its sd (:data:`COMMUTATOR_SD_SAMPLES` draws),
    or None above :data:`COMMUTATOR_SD_BUDGET`."""
    ra, rb = sorted((min(W.shape), min(Wn.shape)), reverse=True)  # bounds of the Gram ranks
    if ra * rb * rb + rb**3 > COMMUTATOR_SD_BUDGET:
        return None
    a = _gram_eigs(W)
    b = _gram_eigs(Wn)
    return commutator_null(a, b, int(W.shape[0]), samples=COMMUTATOR_SD_SAMPLES, seed=seed)


def _gram_eigs(x) -> np.ndarray:
    """Non-zero eigenvalues of x xᵀ (from the smaller Gram; eq. (3)-style cut at 1e-13 σ₁²)."""
    g = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    e = np.linalg.eigvalsh(g)[::-1]
    return e[e > 1e-13 * e[0]] if e.size and e[0] > 0 else e[:0]


def prepare_gauge(network, gauge):
    """(network to measure, :class:`GaugePlan` or None, gauge): for ``gauge="balanced"`` the
    balanced representative (:func:`flagalign.models.gauge.balanced_network`)."""
    gauge = check_gauge(gauge)
    if gauge != "balanced":
        return network, None, None
    plan = gauge_plan(network)
    return balanced_network(network), plan, gauge


def empty_gauge_columns(network, pair, gauge, plan: GaugePlan | None = None) -> dict:
    """The columns of a pair that could not be measured: its group and flag, everything else NaN
    / ``n/a``."""
    out = {c: math.nan for c in GAUGE_COLUMNS}
    out.update(symmetry=pair.symmetry, gauge=gauge or "stored",
               gauge_dependent=bool(pair_gauge_dependent(network, pair, gauge, plan)))  # fmt: skip
    for c in VERDICT_COLUMNS:
        if c.endswith("_verdict"):
            out[c] = "n/a"
    return out


def network_columns(network, pair, gauge, plan: GaugePlan | None = None) -> dict:
    """``gauge`` and ``gauge_dependent`` of a pair: they depend on the network around it (eq. (75)),
    ``network`` being the original (unbalanced) network."""
    return {"gauge": gauge or "stored", "gauge_dependent": bool(pair_gauge_dependent(network, pair, gauge, plan))}


def pair_columns(pair, *, W, Wn, bias, k, overlap, commutator, imbalance, rtol_w: float, rtol_n: float,
                 commutator_null=None, w_moments=None, next_moments=None) -> dict:  # fmt: skip
    """The columns of :data:`GAUGE_COLUMNS` that are functions of the pair alone: ``symmetry``, the
    GL invariants (GL pairs) and the null z-scores / verdicts; ``gauge`` / ``gauge_dependent``
    are placeholders (``stored``, True) that :func:`network_columns` replaces.

    ``w_moments``, ``next_moments``: (tr G, ‖G‖²_F) of W's and W'’s Grams (no bias) when the
    caller already has them (:func:`factor_moments`); else they are formed here."""
    out = {c: math.nan for c in GAUGE_COLUMNS}
    out.update(symmetry=pair.symmetry, gauge="stored", gauge_dependent=True)
    for c in VERDICT_COLUMNS:
        if c.endswith("_verdict"):
            out[c] = "n/a"
    # every quantity below is homogeneous in W and in W': scale each by a power of two (exact) so
    # that weights near the float64 range neither overflow nor underflow their Grams
    ew, en = _exponent(W, bias), _exponent(Wn)
    w, wn = np.ldexp(W, -ew), np.ldexp(Wn, -en)
    if pair.symmetry == GL:
        sv, rank = product_spectrum(w, wn, rtol_w, rtol_n)
        out["product_rank"] = rank
        with np.errstate(over="ignore"):  # σ₁ beyond float64 is reported as inf
            out["product_sv_max"] = float(np.ldexp(sv[0], ew + en)) if sv.size else 0.0
    if commutator_null is None:
        commutator_null = commutator_sd_null(w, wn)
    # the relative imbalance is homogeneous of degree 0 only under a common scale of W̃ and W'
    e = max(ew, en)
    b = None if bias is None else np.ldexp(bias, -e)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        wm = _scaled_moments(W, bias, e, w_moments, ew)
        nm = _scaled_moments(Wn.T, None, e, next_moments, en)
        out.update(pair_verdicts(n=int(W.shape[0]), k=int(k), overlap=overlap, commutator=commutator,
                                 commutator_null=commutator_null, imbalance=imbalance,
                                 w_moments=wm, next_moments=nm))  # fmt: skip
    return out


#: Largest |binary exponent| of a matrix whose unscaled Gram moments are used as they are (their
#: squares and fourth powers stay far inside float64's range).
_MOMENT_EXP = 200


def factor_moments(f, shape) -> tuple[float, float] | None:
    """(tr G, ‖G‖²_F) of a matrix's Gram G = WᵀW (= those of WWᵀ) from its factors, or None:
    from a :class:`~flagalign.geometry.gram.GramFactors`' Gram, or from an exact full spectrum
    (Σσ², Σσ⁴)."""
    g = getattr(f, "gram", None)
    if g is not None:
        return float(np.trace(g)), float(np.einsum("ij,ij->", g, g))
    if getattr(f, "moments", None) is not None:
        return f.moments
    s = np.asarray(getattr(f, "s", np.zeros(0)), dtype=np.float64)
    if getattr(f, "method", "") == "exact" and getattr(f, "rank", None) is None and s.size == min(shape):
        with np.errstate(over="ignore"):  # beyond float64: _scaled_moments forms the scaled Gram
            s2 = s * s
            return float(s2.sum()), float(s2 @ s2)
    return None


def _scaled_moments(x, bias, e: int, moments, ex: int) -> tuple[float, float]:
    """(tr Ã, ‖Ã‖²_F) of Ã = x̃x̃ᵀ for x̃ = 2^(−e)·[x, bias] (eq. (78)): from the unscaled Gram
    moments of x when given (scaled exactly by powers of two; tr adds ‖b‖², ‖Ã‖² adds
    2‖xᵀb‖² + ‖b‖⁴), else from the Gram of the scaled matrix. ``ex``: x's :func:`_exponent`."""
    if moments is None or abs(ex) > _MOMENT_EXP or abs(e) > _MOMENT_EXP:
        b = None if bias is None else np.ldexp(bias, -e)
        return gram_moments(np.ldexp(x, -e), b)
    tr, f2 = float(np.ldexp(moments[0], -2 * e)), float(np.ldexp(moments[1], -4 * e))
    if bias is not None:
        b = np.ldexp(np.asarray(bias, dtype=np.float64), -e)
        xb = np.ldexp(x, -e).T @ b
        bb = float(b @ b)
        tr += bb
        f2 += 2.0 * float(xb @ xb) + bb * bb
    return tr, f2


def _exponent(x, bias=None) -> int:
    """e with max |x| (and |bias|) in [2^(e−1), 2^e): x·2^(−e) has entries of order 1."""
    m = float(np.max(np.abs(x), initial=0.0))
    if bias is not None:
        m = max(m, float(np.max(np.abs(bias), initial=0.0)))
    return int(np.frexp(m)[1]) if m > 0 and np.isfinite(m) else 0


def gauge_columns(network, pair, gauge, plan, *, W, Wn, bias, k, overlap, commutator, commutator_null,
                  imbalance, rtol_w: float, rtol_n: float) -> dict:  # fmt: skip
    """The :data:`GAUGE_COLUMNS` of one measured pair.

    ``network`` is the *original* network (its metadata decides the flags); ``W``, ``Wn``,
    ``bias`` the matrices as measured (balanced or stored); ``overlap``, ``commutator`` and the
    relative ``imbalance`` the pair's measured values; ``commutator_null`` a
    :class:`~flagalign.geometry.nulls.NullEstimate` with its draws (None: computed here by
    :func:`commutator_sd_null`, within its budget); ``rtol_w``, ``rtol_n`` eq. (3)'s relative
    rank tolerances of the stored dtypes."""
    out = pair_columns(pair, W=W, Wn=Wn, bias=bias, k=k, overlap=overlap, commutator=commutator,
                       imbalance=imbalance, rtol_w=rtol_w, rtol_n=rtol_n, commutator_null=commutator_null)
    out.update(network_columns(network, pair, gauge, plan))
    return out
