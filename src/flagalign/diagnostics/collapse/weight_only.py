"""What Neural Collapse geometry can be read from weights alone (docs/theory.md, eq. (39)).

Without data there are no class means, so NC1/NC3/NC4 are undefined. What remains, and is
labelled ``source="weight-only"``:

* NC2-style simplex-ETF geometry of the classifier's centred rows W̄ = (I − 11ᵀ/C)W (eqs. (32),
  (33) applied to W̄ instead of M; at collapse W̄ ∝ M, so they agree);
* a Level-2 proxy: principal angles between the top-k right singular subspace of W̄ and the
  top-k *left* singular subspace of the layer before the classifier, A (d×·), i.e. where A
  writes into the penultimate space ℝ^d, k = min(C − 1, d);
* a Level-3 proxy: the Gram commutator commutator_norm(A Aᵀ, W̄ᵀW̄) (docs/theory.md, eq. (10),
  with the centred classifier).
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

    def to_dict(self) -> dict:
        return asdict(self)

    def to_frame(self):
        """One-row :class:`pandas.DataFrame`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def weight_only_arrays(
    W,
    A=None,
    *,
    classifier: str = "classifier",
    penultimate: str = "penultimate",
    tol_sine: float = TOL_SINE,
    tol_commutator: float = TOL_COMMUTATOR,
) -> WeightOnlyCollapse:
    """Weight-only proxies from a classifier W (C×d) and the layer A (d×·) that feeds it.

    Without ``A`` only the ETF fields are filled (Level-2/3 proxies NaN, levels False).
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
        angles = principal_angles(vt[:kk].T, u[:, :kk])
        overlap, base, max_sine, inter = angle_summary(angles, kk, d, tol_sine)
        comm = float(commutator_norm(A @ A.T, Wc.T @ Wc))
        k = kk
    l2 = bool(A is not None and inter == k)
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
    )


def weight_only(
    network,
    classifier: str | None = None,
    penultimate: str | None = None,
    *,
    tol_sine: float = TOL_SINE,
    tol_commutator: float = TOL_COMMUTATOR,
) -> WeightOnlyCollapse:
    """Weight-only collapse proxies of a :class:`~flagalign.models.network.Network`.

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
    return weight_only_arrays(
        W,
        A,
        classifier=classifier,
        penultimate=penultimate or "",
        tol_sine=tol_sine,
        tol_commutator=tol_commutator,
    )
