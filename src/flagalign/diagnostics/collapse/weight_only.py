"""What Neural Collapse geometry can be read from weights alone (docs/theory.md, eq. (39)).

Without data there are no class means, so NC1/NC3/NC4 are undefined. What remains, and is
labelled ``source="weight-only"``:

* NC2-style simplex-ETF geometry of the classifier's centred rows W̄ = (I − 11ᵀ/C)W (eqs. (32),
  (33) applied to W̄ instead of M; at collapse W̄ ∝ M, so they agree);
* a Level-2 proxy: principal angles between the top-k right singular subspace of W̄ and the
  top-k *left* singular subspace of the layer before the classifier, A (d×·), i.e. where A
  writes into the penultimate space ℝ^d, k = min(C − 1, d). Only meaningful when nothing but
  the identity sits between A and W: across a ReLU plus bias the features σ(Ax + b) are not in
  col(A), so for ``activation`` other than linear the proxy is NaN and ``level2_note`` says why;
* a Level-3 proxy: the Gram commutator commutator_norm(ÃÃᵀ, W̄ᵀW̄) with Ã = [A, b] (A's output
  bias as an extra column, as in eqs. (11), (26)) and the centred classifier. For a linear net
  at a ridge stationary point ÃÃᵀ = WᵀW (eq. (11)) so it is 0; without the bias it is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...errors import InputError, ShapeMismatchError
from ...geometry import commutator_norm, principal_angles
from .metrics import TOL_COMMUTATOR, TOL_SINE, angle_summary, centre_rows, etf_distance, nc2

__all__ = ["WeightOnlyCollapse", "weight_only", "weight_only_arrays"]


@dataclass(frozen=True)
class WeightOnlyCollapse:
    """Weight-only collapse proxies (docs/theory.md, eq. (39)); ``source`` is "weight-only"."""

    source: str
    classifier: str
    penultimate: str
    num_classes: int
    dim: int
    etf: float
    equinorm: float
    equiangular: float
    maxangle: float
    level2_k: int
    level2_overlap: float
    level2_baseline: float
    level2_overlap_ratio: float
    level2_max_sine: float
    level2_intersection_dim: int
    level3_commutator: float
    level2: bool
    level3: bool
    tol_sine: float
    tol_commutator: float
    activation: str = "unknown"
    level2_note: str = ""
    bias_included: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def to_frame(self):
        """One-row :class:`pandas.DataFrame`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


#: activation names under which the Level-2 proxy compares the right spaces (no σ between A, W)
_LINEAR = ("linear", "identity")
_NOTE_UNKNOWN = ("assumes the identity between the two layers (eq. (39)); across a ReLU plus bias "
                 "col(A) is not where the features live: pass activation=")
_NOTE_NONLINEAR = ("not applicable: a {act} plus bias sits between the layers, the features "
                   "σ(Ax + b) are not in col(A) (eq. (39))")


def weight_only_arrays(
    W,
    A=None,
    *,
    bias=None,
    activation: str | None = None,
    classifier: str = "classifier",
    penultimate: str = "penultimate",
    tol_sine: float = TOL_SINE,
    tol_commutator: float = TOL_COMMUTATOR,
) -> WeightOnlyCollapse:
    """Weight-only proxies from a classifier W (C×d) and the layer A (d×·) that feeds it.

    Without ``A`` only the ETF fields are filled (Level-2/3 proxies NaN, levels False).

    Parameters
    ----------
    bias : array_like (d,), optional
        A's output bias b; the Level-3 proxy uses Ã = [A, b] (eq. (39)).
    activation : str, optional
        What sits between A and W: ``"linear"`` (the Level-2 proxy applies), anything else
        (``"relu"``, ``"gelu"``, ...: Level-2 proxy NaN, ``level2`` False, reason in
        ``level2_note``), or None (unknown: computed, with a caveat in ``level2_note``).
    """
    from ..._arrays import as_float64

    W, _ = as_float64(W, name=classifier, ndim=2)
    C, d = W.shape
    if C < 2:
        raise InputError(f"{classifier}: a classifier needs at least 2 output rows, got {C}")
    Wc = centre_rows(W)
    eqn, eqa, maxa = nc2(Wc)
    k = min(C - 1, d)
    nan = float("nan")
    overlap = base = max_sine = comm = nan
    inter = 0
    act = "unknown" if activation is None else str(activation).lower()
    linear = act in _LINEAR
    note = ""
    if A is not None and not linear:
        note = _NOTE_UNKNOWN + "'linear' or the activation" if act == "unknown" else _NOTE_NONLINEAR.format(act=act)
    if A is not None:
        A, _ = as_float64(A, name=penultimate, ndim=2)
        if A.shape[0] != d:
            raise ShapeMismatchError(
                f"{penultimate}: writes {A.shape[0]} dims but {classifier} reads {d}; "
                "pass the layer directly before the classifier"
            )
        _, _, vt = np.linalg.svd(Wc, full_matrices=False)
        u, _, _ = np.linalg.svd(A, full_matrices=False)
        kk = min(k, u.shape[1])
        if linear or act == "unknown":
            angles = principal_angles(vt[:kk].T, u[:, :kk])
            overlap, base, max_sine, inter = angle_summary(angles, kk, d, tol_sine)
        At = A
        if bias is not None:
            b, _ = as_float64(bias, name=f"{penultimate} bias", ndim=1)
            if b.shape != (d,):
                raise ShapeMismatchError(f"{penultimate} bias: expected shape ({d},), got {b.shape}")
            At = np.hstack([A, b[:, None]])
        comm = float(commutator_norm(At @ At.T, Wc.T @ Wc))
        k = kk
    l2 = bool(A is not None and (linear or act == "unknown") and inter == k)
    return WeightOnlyCollapse(
        source="weight-only",
        classifier=classifier,
        penultimate=penultimate if A is not None else "",
        num_classes=C,
        dim=d,
        etf=etf_distance(Wc),
        equinorm=eqn,
        equiangular=eqa,
        maxangle=maxa,
        level2_k=k,
        level2_overlap=overlap,
        level2_baseline=base,
        level2_overlap_ratio=overlap / base if A is not None and base > 0 else nan,
        level2_max_sine=max_sine,
        level2_intersection_dim=inter,
        level3_commutator=comm,
        level2=l2,
        level3=bool(l2 and comm <= tol_commutator),
        tol_sine=float(tol_sine),
        tol_commutator=float(tol_commutator),
        activation=act,
        level2_note=note,
        bias_included=bool(A is not None and bias is not None),
    )


def weight_only(
    network,
    classifier: str | None = None,
    penultimate: str | None = None,
    *,
    activation: str | None = None,
    tol_sine: float = TOL_SINE,
    tol_commutator: float = TOL_COMMUTATOR,
) -> WeightOnlyCollapse:
    """Weight-only collapse proxies of a :class:`~flagalign.models.network.Network`.

    The penultimate layer's output bias (``network.bias(penultimate)``) enters the Level-3
    proxy; ``activation`` is what sits between the two layers (see :func:`weight_only_arrays`).

    Parameters
    ----------
    network : Network
    classifier : str, optional
        Name of the classifier matrix (C×d). Default: the ``right`` of the last pair.
    penultimate : str, optional
        Name of the matrix that writes ℝ^d for the classifier. Default: the ``left`` of the
        last pair whose ``right`` is the classifier.
    """
    if classifier is None:
        if not network.pairs:
            raise InputError(
                f"{network.name}: has no adjacent pairs; pass classifier= (and penultimate=)"
            )
        classifier = network.pairs[-1].right
    if penultimate is None:
        feeding = [p for p in network.pairs if p.right == classifier]
        penultimate = feeding[-1].left if feeding else None
    W = network.matrix(classifier)
    A = network.matrix(penultimate) if penultimate is not None else None
    bias = network.bias(penultimate) if penultimate is not None else None
    return weight_only_arrays(
        W,
        A,
        bias=bias,
        activation=activation,
        classifier=classifier,
        penultimate=penultimate or "",
        tol_sine=tol_sine,
        tol_commutator=tol_commutator,
    )
