"""Gram observables of a pair from power-of-two-scaled weights (docs/theory.md, eqs. (10), (11)).

Float64 weights near 1e300 overflow W Wᵀ (and tiny ones underflow it). Dividing by a power of
two changes no mantissa, so the scaled Grams are the exact Grams times 2^(-2e); the commutator
(eq. (10)) is invariant under separate positive scalings of its two Grams, and D (eq. (11))
scales by c² under one common scale c, so its norms are rescaled afterwards (to inf when the true
norm exceeds float64's range — honestly, rather than NaN from inf − inf).
"""

from __future__ import annotations

import numpy as np

from .._arrays import as_bias
from .commutator import commutator_norm
from .imbalance import Imbalance, imbalance_from_grams

__all__ = ["pow2_scale", "gram_observables"]


def pow2_scale(*arrays) -> float:
    """The power of two nearest above max |entry| (1.0 for all-zero): dividing by it is exact."""
    m = max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0)
    return float(np.ldexp(1.0, int(np.frexp(m)[1]))) if m > 0 else 1.0


def gram_observables(w: np.ndarray, wn: np.ndarray, bias) -> tuple[float, Imbalance]:
    """Commutator (eq. (10)) and imbalance (eq. (11)) from Grams of power-of-two-scaled weights.

    Weights near 1e300 overflow W Wᵀ; dividing by a power of two is exact, the commutator is
    invariant under separate scalings of the two Grams, and D scales by c² under a common scale c,
    so its norms are rescaled (to inf when the true norm exceeds float64's range).
    """
    n = w.shape[0]
    b = as_bias(bias, n)
    c = pow2_scale(w, wn, *(() if b is None else (b,)))
    cw, cn = w / c, wn / c
    g_w, g_next = cw @ cw.T, cn.T @ cn
    g_in = g_w if b is None else g_w + np.outer(b / c, b / c)
    imb = imbalance_from_grams(g_in, g_next)
    if c / pow2_scale(w) > 2.0**200 or c / pow2_scale(wn) > 2.0**200:  # one side's Gram would underflow
        sw, sn = w / pow2_scale(w), wn / pow2_scale(wn)
        g_w, g_next = sw @ sw.T, sn.T @ sn
    commutator = commutator_norm(g_w, g_next)
    with np.errstate(over="ignore"):
        c2 = c * c
        imb = Imbalance(full=imb.full * c2, diag=imb.diag * c2, offdiag=imb.offdiag * c2, relative=imb.relative)
    return commutator, imb
