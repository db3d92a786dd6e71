"""Neural Collapse NC1–NC4 and the Level-1/2/3 alignment hierarchy (docs/theory.md, §3).

:func:`metrics` turns penultimate features (or an :class:`~.accumulator.Accumulator`) and a
classifier W (C×d) into one frozen :class:`CollapseReport`. Every quantity is defined once, in
docs/theory.md eqs. (30)–(38); the level decisions use the documented tolerances
``TOL_NC1``, ``TOL_SINE`` and ``TOL_COMMUTATOR`` (eq. (38)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..._arrays import as_float64
from ...errors import InputError, ShapeMismatchError
from ...geometry import (
    commutator_norm,
    overlap_baseline,
    principal_angles,
    rank_from_singular_values,
)
from .accumulator import Accumulator

__all__ = [
    "CollapseReport",
    "metrics",
    "TOL_NC1",
    "TOL_SINE",
    "TOL_COMMUTATOR",
    "nc1",
    "cdnv",
    "nc2",
    "etf_distance",
    "nc3",
    "level2",
    "centre_rows",
    "nc1_baseline",
    "cdnv_baseline",
    "etf_distance_baseline",
    "class_mean_rank",
]

#: Level 1 (variability collapse) is reached when NC1 ≤ TOL_NC1 and rank M = C − 1 (eq. (38)).
TOL_NC1 = 0.1
#: Level 2 (subspace alignment) is reached when every principal angle has sin θ ≤ TOL_SINE.
TOL_SINE = 0.1
#: Level 3 (basis alignment) is reached when Level 2 is and the commutator ≤ TOL_COMMUTATOR.
TOL_COMMUTATOR = 0.05

_EPS = float(np.finfo(np.float64).eps)


# -- building blocks (each one equation) ---------------------------------------------------------
def centre_rows(X: np.ndarray) -> np.ndarray:
    """(I − 11ᵀ/C) X: subtract the mean row (eq. (30) for M, eq. (36) for W̄)."""
    return X - X.mean(axis=0, keepdims=True)


def _svd_rank(M: np.ndarray, scale: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """SVD of the centred means M (C×d) and its numerical rank (docs/theory.md, eqs. (3), (31)):
    s_i > max(C, d)·ε·max(s_1, scale), capped at C − 1 (the rows of M sum to zero).

    ``scale`` is the size of the uncentred means M was computed from (max ‖μ_c‖): M's
    rounding error is ε·scale, not ε·s_1, when the features share a large offset.
    """
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return s, vt, 0
    r = rank_from_singular_values(s, max(M.shape) * _EPS, scale=max(s[0], scale))
    return s, vt, min(r, M.shape[0] - 1)


def nc1(sigma_w: np.ndarray, M: np.ndarray, scale: float = 0.0) -> float:
    """NC1 = Tr(Σ_W Σ_B⁺)/C with Σ_B = MᵀM/C (docs/theory.md, eq. (31)).

    Computed as Σ_k v_kᵀ Σ_W v_k / s_k² over the numerically nonzero singular triplets of M
    (see :func:`_svd_rank` for the tolerance and ``scale``), which is the same number without
    forming a d×d pseudo-inverse. ``inf`` if M = 0.

    Each v_kᵀ Σ_W v_k is taken from Σ_W's eigendecomposition with the eigenvalues clipped at 0
    (the nearest PSD matrix): Σ_W is PSD, but an accumulated one is so only up to rounding
    (≈ d·ε·‖Σ_W‖), and divided by a small s_k² that rounding made NC1 negative (e.g. −46 on a
    linear net trained with cross-entropy, whose class means span a nearly degenerate direction).
    The clipped value is ≥ 0 and differs from the exact one by at most that rounding / s_k².
    """
    s, vt, r = _svd_rank(M, scale)
    if r == 0:
        return float("inf")
    v = vt[:r]
    lam, q = np.linalg.eigh((sigma_w + sigma_w.T) / 2.0)
    proj = ((v @ q) ** 2) @ np.clip(lam, 0.0, None)
    return float(np.sum(proj / s[:r] ** 2))


def class_mean_rank(M: np.ndarray, scale: float = 0.0) -> int:
    """Numerical rank of the centred class means M (C×d), at most C − 1 (eqs. (3), (31)).

    NC1 uses Σ_B⁺, which ignores the directions of ℝ^d the class means do not span: features
    that *discard* class directions (rank < C − 1) can have a small NC1 without collapse, so
    Level 1 requires rank = C − 1 (eq. (38)).
    """
    return _svd_rank(M, scale)[2]


def nc1_baseline(num_classes: int, dim: int, per_class: float) -> float:
    """E NC1 for isotropic Gaussian features, ``per_class`` = n samples in each of C classes
    (docs/theory.md, eq. (38)): (C − 1)(n − 1)/(d − C), exact for d > C; NaN for d ≤ C (no finite
    mean). With unequal classes pass n = N/C (then it is an approximation).

    Derivation: Σ_W ~ Wishart(N − C, σ²I)/N, independent of M; MMᵀ restricted to 1⊥ is
    Wishart_{C−1}(d, σ²/n I), and E tr W⁻¹ = p/((d − p − 1)σ²/n) for p = C − 1, so
    E NC1 = σ²(n − 1)/n · n(C − 1)/(σ²(d − C)).
    """
    C, d, n = int(num_classes), int(dim), float(per_class)
    if C < 2 or d <= C:
        return float("nan")
    return (C - 1) * (n - 1) / (d - C)


def cdnv_baseline(dim: int, per_class: float) -> float:
    """E CDNV for isotropic Gaussian features with n samples per class (eq. (38)):
    d(n − 1)/(2(d − 2)) for d > 2 (Var_c is independent of the means and
    E[1/χ²_d] = 1/(d − 2)); NaN for d ≤ 2."""
    d, n = int(dim), float(per_class)
    return float("nan") if d <= 2 else d * (n - 1) / (2 * (d - 2))


def etf_distance_baseline(num_classes: int, dim: int, samples: int = 2000, seed: int = 0):
    """Monte Carlo (mean, standard error) of nc2_etf (eq. (33)) for isotropic Gaussian class
    means in ℝ^d (eq. (38)); it does not depend on n or σ (nc2_etf is scale-invariant).

    No closed form is known to us: the first-order value √((C − 2)(C + 1)/((C − 1)d)) is
    biased (C = 5, d = 60: 0.274 against 0.256 ± 0.001). Seeded, hence deterministic.
    """
    C, d = int(num_classes), int(dim)
    if C < 2 or d < 1 or samples < 2:
        raise InputError("etf_distance_baseline: needs C ≥ 2, d ≥ 1 and samples ≥ 2")
    rng = np.random.default_rng(seed)
    vals = np.array([etf_distance(centre_rows(rng.standard_normal((C, d)))) for _ in range(samples)])
    return float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(samples))


def cdnv(class_vars: np.ndarray, means: np.ndarray) -> float:
    """Mean class-distance normalised variance over pairs c < c' (eq. (31), Galanti et al.):
    (Var_c + Var_c') / (2 ‖μ_c − μ_c'‖²) with the *squared* distance. ``inf`` on equal means."""
    C = means.shape[0]
    i, j = np.triu_indices(C, k=1)
    d2 = np.sum((means[i] - means[j]) ** 2, axis=1)
    num = class_vars[i] + class_vars[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(d2 > 0, num / np.where(d2 > 0, 2.0 * d2, 1.0), np.inf)
    return float(np.mean(v))


def nc2(M: np.ndarray) -> tuple[float, float, float]:
    """NC2 on the rows of M (eq. (32)): (equinorm, equiangular, max-angle).

    equinorm = std_c ‖m_c‖ / mean_c ‖m_c‖ (population std); equiangular = std of the cosines
    cos(m_c, m_c') over pairs c < c'; max-angle = mean_{c<c'} |cos(m_c, m_c') + 1/(C−1)|.
    """
    C = M.shape[0]
    norms = np.linalg.norm(M, axis=1)
    mean_norm = norms.mean()
    equinorm = float(norms.std() / mean_norm) if mean_norm > 0 else float("nan")
    safe = np.where(norms > 0, norms, 1.0)
    U = M / safe[:, None]
    i, j = np.triu_indices(C, k=1)
    cos = np.einsum("kd,kd->k", U[i], U[j])
    return equinorm, float(cos.std()), float(np.mean(np.abs(cos + 1.0 / (C - 1))))


def etf_distance(M: np.ndarray) -> float:
    """‖MMᵀ/‖MMᵀ‖_F − (I − 11ᵀ/C)/√(C−1)‖_F, distance to the simplex-ETF Gram (eq. (33))."""
    C = M.shape[0]
    G = M @ M.T
    g = np.linalg.norm(G)
    if g == 0:
        return float("nan")
    ideal = (np.eye(C) - np.ones((C, C)) / C) / np.sqrt(C - 1)
    return float(np.linalg.norm(G / g - ideal))


def nc3(W: np.ndarray, M: np.ndarray) -> float:
    """Self-duality ‖W/‖W‖_F − M/‖M‖_F‖_F (eq. (34), Papyan et al.); W as given (C×d)."""
    w, m = np.linalg.norm(W), np.linalg.norm(M)
    if w == 0 or m == 0:
        return float("nan")
    return float(np.linalg.norm(W / w - M / m))


def _top_rows(X: np.ndarray, k: int) -> np.ndarray:
    """Top-k right singular vectors of X as columns (d×k)."""
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    return vt[:k].T


def level2(W: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, int]:
    """Principal angles between the top-k right singular subspaces of W̄ = (I − 11ᵀ/C)W and
    of M, k = min(C − 1, d) (eq. (36)). Returns (angles ascending, k)."""
    C, d = M.shape
    k = min(C - 1, d)
    return principal_angles(_top_rows(centre_rows(W), k), _top_rows(M, k)), k


def angle_summary(angles: np.ndarray, k: int, d: int, tol_sine: float):
    """(overlap, baseline, max sine, intersection dim) of Level-2 principal angles (eq. (36)):
    mean cos², the random baseline k/d (eq. (4)), max sin θ and #{sin θ ≤ tol_sine} (eq. (5))."""
    sines = np.sin(angles)
    overlap = float(np.mean(np.cos(angles) ** 2)) if angles.size else float("nan")
    base = float(overlap_baseline(k, k, d))
    max_sine = float(sines.max()) if sines.size else 0.0
    return overlap, base, max_sine, int(np.sum(sines <= tol_sine))


def level3(W: np.ndarray, M: np.ndarray) -> float:
    """commutator_norm(W̄ᵀW̄, MᵀM) with W̄ = (I − 11ᵀ/C)W (eq. (37))."""
    Wc = centre_rows(W)
    return float(commutator_norm(Wc.T @ Wc, M.T @ M))


# -- the report ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CollapseReport:
    """NC1–NC4 and Levels 1–3 from data (docs/theory.md, eqs. (30)–(38)).

    Classifier-dependent fields (nc3, nc4, level2_*, level3_commutator) are NaN (and
    ``level2``/``level3`` False) when no classifier was given; nc4 is NaN when the NCC second
    pass was not run on an :class:`Accumulator`. ``level`` is the highest level reached (0:
    none). Level 3 requires Level 2 by definition (eq. (38)); Level 1 (NC1) is a property of
    the features alone and is reported independently, so ``level`` may be 2 or 3 while
    ``level1`` is False.
    """

    num_classes: int
    dim: int
    num_samples: int
    nc1: float
    cdnv: float
    nc2_equinorm: float
    nc2_equiangular: float
    nc2_maxangle: float
    nc2_etf: float
    nc3: float
    nc4: float
    level2_k: int
    level2_overlap: float
    level2_baseline: float
    level2_overlap_ratio: float
    level2_max_sine: float
    level2_intersection_dim: int
    level2_angles: tuple[float, ...]
    level3_commutator: float
    level1: bool
    level2: bool
    level3: bool
    level: int
    tol_nc1: float
    tol_sine: float
    tol_commutator: float
    nc1_rank: int = -1
    nc1_baseline: float = float("nan")
    cdnv_baseline: float = float("nan")

    def to_dict(self) -> dict:
        """Scalar fields as a plain dict (``level2_angles`` omitted)."""
        d = asdict(self)
        d.pop("level2_angles")
        return d

    def to_frame(self):
        """One-row :class:`pandas.DataFrame` of the scalar fields."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def _classifier(classifier, bias, C: int, d: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if classifier is None:
        if bias is not None:
            raise InputError("bias: given without a classifier; pass classifier=W as well")
        return None, None
    if hasattr(classifier, "weight") and not hasattr(classifier, "shape"):  # an nn.Linear
        if bias is None and getattr(classifier, "bias", None) is not None:
            bias = classifier.bias
        classifier = classifier.weight
    W, _ = as_float64(classifier, name="classifier", ndim=2)
    if W.shape != (C, d):
        raise ShapeMismatchError(
            f"classifier: expected shape ({C}, {d}) (classes × feature dim), got {W.shape}"
        )
    b = None
    if bias is not None:
        b, _ = as_float64(bias, name="bias", ndim=1)
        if b.shape != (C,):
            raise ShapeMismatchError(f"bias: expected shape ({C},), got {b.shape}")
    return W, b


def metrics(
    acc_or_features,
    labels=None,
    classifier=None,
    bias=None,
    *,
    num_classes: int | None = None,
    tol_nc1: float = TOL_NC1,
    tol_sine: float = TOL_SINE,
    tol_commutator: float = TOL_COMMUTATOR,
) -> CollapseReport:
    """Neural Collapse metrics and alignment levels (docs/theory.md, eqs. (30)–(38)).

    Parameters
    ----------
    acc_or_features : Accumulator or array_like (N, d)
        A filled :class:`Accumulator`, or penultimate features (numpy or torch).
    labels : array_like (N,), optional
        Integer classes; required with features, ignored with an Accumulator.
    classifier : array_like (C, d) or torch.nn.Linear, optional
        Last-layer weights W (an ``nn.Linear`` also supplies its bias).
    bias : array_like (C,), optional
        Classifier bias b, used only for the NC4 decisions argmax(W h + b).
    num_classes : int, optional
        C; defaults to the classifier's rows, else max(label) + 1.
    tol_nc1, tol_sine, tol_commutator : float
        Level tolerances (eq. (38)); defaults ``TOL_NC1``, ``TOL_SINE``, ``TOL_COMMUTATOR``.

    Returns
    -------
    CollapseReport
    """
    if isinstance(acc_or_features, Accumulator):
        acc = acc_or_features
        if labels is not None:
            raise InputError("labels: not used with an Accumulator (it already holds them)")
        C, d = acc.num_classes, acc.dim
        W, b = _classifier(classifier, bias, C, d)
        nc4_value = acc.nc4()
    else:
        H, _ = as_float64(acc_or_features, name="features", ndim=2)
        if labels is None:
            raise InputError("labels: required when passing features (or pass an Accumulator)")
        if num_classes is None:
            if classifier is not None:
                shape = getattr(classifier, "shape", None) or classifier.weight.shape
                num_classes = int(shape[0])
            else:
                y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
                num_classes = int(y.max()) + 1 if y.size else 0
        acc = Accumulator(num_classes, H.shape[1]).update(H, labels)
        C, d = acc.num_classes, acc.dim
        W, b = _classifier(classifier, bias, C, d)
        nc4_value = float("nan")
        if W is not None:
            acc.freeze()
            logits = H @ W.T + (0.0 if b is None else b)
            nc4_value = acc.update_decisions(H, logits).nc4()
    for name, tol in (("tol_nc1", tol_nc1), ("tol_sine", tol_sine), ("tol_commutator", tol_commutator)):
        if not tol >= 0:
            raise InputError(f"{name}: must be a non-negative number, got {tol}")

    means = acc.class_means()
    M = acc.centred_means()
    scale = float(np.max(np.linalg.norm(means, axis=1)))
    nc1_value = nc1(acc.within_cov(), M, scale)
    rank = class_mean_rank(M, scale)
    eqn, eqa, maxa = nc2(M)
    nan = float("nan")
    if W is not None:
        angles, k = level2(W, M)
        overlap, base, max_sine, inter = angle_summary(angles, k, d, tol_sine)
        comm = level3(W, M)
        nc3_value = nc3(W, M)
    else:
        angles, k, overlap, base, inter, comm, nc3_value, max_sine = (
            np.array([]), min(C - 1, d), nan, nan, 0, nan, nan, nan)
    l1 = bool(nc1_value <= tol_nc1 and rank == C - 1)  # eq. (38): Σ_B⁺ must see every class direction
    l2 = bool(W is not None and inter == k)
    l3 = bool(l2 and comm <= tol_commutator)
    level = 3 if l3 else 2 if l2 else 1 if l1 else 0  # eq. (38): highest level reached
    return CollapseReport(
        num_classes=C,
        dim=d,
        num_samples=acc.total,
        nc1=nc1_value,
        cdnv=cdnv(acc.class_variances(), means),
        nc2_equinorm=eqn,
        nc2_equiangular=eqa,
        nc2_maxangle=maxa,
        nc2_etf=etf_distance(M),
        nc3=nc3_value,
        nc4=nc4_value,
        level2_k=k,
        level2_overlap=overlap,
        level2_baseline=base,
        level2_overlap_ratio=overlap / base if W is not None and base > 0 else nan,
        level2_max_sine=max_sine,
        level2_intersection_dim=inter,
        level2_angles=tuple(float(a) for a in angles),
        level3_commutator=comm,
        level1=l1,
        level2=l2,
        level3=l3,
        level=level,
        tol_nc1=float(tol_nc1),
        tol_sine=float(tol_sine),
        tol_commutator=float(tol_commutator),
        nc1_rank=rank,
        nc1_baseline=nc1_baseline(C, d, acc.total / C) if C else float("nan"),
        cdnv_baseline=cdnv_baseline(d, acc.total / C) if C else float("nan"),
    )
