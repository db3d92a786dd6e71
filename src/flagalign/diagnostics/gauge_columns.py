"""Symmetry, gauge and verdict columns of ``analyze`` (docs/theory.md §6, docs/schema.md).

:func:`prepare_gauge` turns the network into the one that is measured (the balanced
representative for ``gauge="balanced"``, eqs. (73)–(74)); :func:`gauge_columns` adds, per pair,
its group (eq. (70)), whether its angle-type numbers are gauge-dependent (eq. (75)), the GL
invariants for GL pairs (eq. (76)) and the z-scores / verdicts against the nulls
(eqs. (77)–(79)).
"""

from __future__ import annotations

import math

from ..geometry.gauge import GL, check_gauge
from ..geometry.gauge import product_spectrum
from ..geometry.nulls import VERDICT_COLUMNS, gram_moments, pair_verdicts
from ..models.gauge import GaugePlan, balanced_network, gauge_plan, pair_gauge_dependent

__all__ = ["GAUGE_COLUMNS", "SYMMETRY_COLUMNS", "prepare_gauge", "gauge_columns", "empty_gauge_columns"]

#: Symmetry columns, in order: the pair's group, the gauge measured in, whether angles, overlap,
#: intersection_dim and commutator depend on the representative, and the GL invariants.
SYMMETRY_COLUMNS = ("symmetry", "gauge", "gauge_dependent", "product_rank", "product_sv_max")
#: Every column this module adds (symmetry, then the null z-scores and verdicts).
GAUGE_COLUMNS = SYMMETRY_COLUMNS + VERDICT_COLUMNS


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


def gauge_columns(network, pair, gauge, plan, *, W, Wn, bias, k, overlap, commutator, commutator_null,
                  imbalance, rtol_w: float, rtol_n: float) -> dict:  # fmt: skip
    """The :data:`GAUGE_COLUMNS` of one measured pair.

    ``network`` is the *original* network (its metadata decides the flags); ``W``, ``Wn``,
    ``bias`` the matrices as measured (balanced or stored); ``overlap``, ``commutator``,
    ``commutator_null`` (a :class:`~flagalign.geometry.nulls.NullEstimate` or None) and the
    relative ``imbalance`` the pair's measured values; ``rtol_w``, ``rtol_n`` eq. (3)'s relative
    rank tolerances of the stored dtypes."""
    out = empty_gauge_columns(network, pair, gauge, plan)
    if pair.symmetry == GL:
        sv, rank = product_spectrum(W, Wn, rtol_w, rtol_n)
        out["product_rank"] = rank
        out["product_sv_max"] = float(sv[0]) if sv.size else 0.0
    out.update(pair_verdicts(n=int(W.shape[0]), k=int(k), overlap=overlap, commutator=commutator,
                             commutator_null=commutator_null, imbalance=imbalance,
                             w_moments=gram_moments(W, bias), next_moments=gram_moments(Wn.T)))  # fmt: skip
    return out
