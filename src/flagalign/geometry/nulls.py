"""Random-rotation nulls of the alignment scores (docs/theory.md, eq. (50)).

A score is only informative next to what it would be by chance. The Gram commutator c_G of
eq. (10) depends on the spectra of the two Grams *and* on how their eigenbases sit relative to
each other; :func:`commutator_null` keeps both spectra and draws the relative rotation from the
Haar measure on O(n), so ``commutator / null`` is ≈ 1 for a reader rotated at random and ≈ 0 for
a pair that shares its eigenbasis. ``pairs.csv`` reports the exact, O(n²) root mean square
:func:`commutator_null_rms` (≥ the Monte Carlo mean of :func:`commutator_null` by a Jensen gap
below 1.2 %, eq. (50)).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from ..errors import InputError
from .random import haar_stiefel

__all__ = ["NullEstimate", "commutator_null", "commutator_null_sq", "commutator_null_rms",
           "commutator_null_rms_from_moments", "MIN_SAMPLES"]

#: Fewest draws before an early stop (``rel_se``) may end the Monte Carlo.
MIN_SAMPLES = 8


class NullEstimate(NamedTuple):
    """A Monte Carlo estimate of an expected score under a null distribution.

    Attributes
    ----------
    mean : float     the sample mean (the estimate of the expectation)
    se : float       its standard error, std(ddof=1)/√samples (0 when the score is constant)
    samples : int    number of independent draws
    """

    mean: float
    se: float
    samples: int


def _spectrum(x, name: str, n: int) -> np.ndarray:
    """Non-zero eigenvalues of a PSD Gram (1-D, finite, ≥ 0, at most n of them)."""
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array of eigenvalues, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise InputError(f"{name}: eigenvalues of a Gram matrix must be finite and >= 0")
    v = v[v > 0]
    if v.size > n:
        raise InputError(f"{name}: {v.size} non-zero eigenvalues exceed the dimension n={n}")
    return v


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n={n!r}: the hidden dimension must be a positive integer")
    return int(n)


def _stiefel_top_blocks(n: int, rows: int, cols: int, count: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``count`` independent top ``rows`` × ``cols`` blocks of Haar n × cols Stiefel frames
    (shape (count, rows, cols)), in O(rows·cols² + cols³) each.

    Q = G L⁻ᵀ with GᵀG = LLᵀ (Cholesky, positive diagonal) is the Q factor of a Gaussian G with
    R's diagonal made positive — the Haar frame of
    :func:`~flagalign.geometry.random.haar_stiefel` (Mezzadri 2007). Only G's top rows are drawn:
    the rest enters through G_restᵀG_rest ~ Wishart(n − rows, I), drawn by Bartlett's
    decomposition when n − rows ≥ cols (else G is drawn whole).
    """
    top = rng.standard_normal((count, rows, cols))
    m = n - rows
    if m >= cols:
        low = np.tril(rng.standard_normal((count, cols, cols)), -1)
        idx = np.arange(cols)
        low[:, idx, idx] = np.sqrt(rng.chisquare(m - idx, size=(count, cols)))
        rest = low @ low.transpose(0, 2, 1)
    else:
        g = rng.standard_normal((count, m, cols))
        rest = g.transpose(0, 2, 1) @ g
    gram = top.transpose(0, 2, 1) @ top + rest
    try:
        chol = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:  # pragma: no cover - probability 0; keep the reference path
        return np.stack([haar_stiefel(n, cols, rng)[:rows] for _ in range(count)])
    return np.stack([sla.solve_triangular(c, t.T, lower=True, check_finite=False).T
                     for c, t in zip(chol, top)])


def commutator_null(a, b, n: int, *, samples: int = 256, seed: int = 0,
                    rel_se: float | None = None) -> NullEstimate:
    """E c(A, Q B Qᵀ) over Haar-random Q ∈ O(n): the chance level of the Gram commutator (eq. (50)).

    c is the normalised commutator of eq. (9), A = W Wᵀ and B = W_nextᵀ W_next (eq. (10)); the
    null keeps both spectra and randomises the relative eigenbasis. Seeded Monte Carlo: with
    A = diag(a) and B = diag(b) (Haar invariance), ‖[A, QBQᵀ]‖²_F = 2(tr A²QB²Qᵀ − tr(AQBQᵀ)²)
    involves only the r_a × r_b block M of Q that meets the non-zero eigenvalues, and M is the
    top block of a Haar n × r_b Stiefel frame, drawn without its other n − r_a rows
    (:func:`_stiefel_top_blocks`), so a draw costs O(r_a·r_b² + r_b³) and nothing n × n — or
    even n × r — is formed (r_b ≤ r_a: the frame is put on the smaller side).

    Parameters
    ----------
    a, b : array_like, 1-D
        Eigenvalues of A and B (σ(W)² and σ(W_next)²); zeros may be omitted.
    n : int
        Hidden dimension (the size of A and B).
    samples : int
        Number of Haar draws (≥ 2); the most drawn when ``rel_se`` is given.
    seed : int
        Seed of :func:`numpy.random.default_rng`; equal inputs give equal estimates.
    rel_se : float, optional
        Stop early, checked after every batch of :data:`MIN_SAMPLES` draws, once the standard
        error is at most ``rel_se`` times the mean (deterministic for a given seed). The normalised commutator
        concentrates as the ranks grow, so large pairs stop after a few draws.

    Returns
    -------
    NullEstimate
        ``mean`` (the estimate of E c), ``se`` (its standard error) and ``samples``.
        If A or B is zero, c ≡ 0 and the estimate is exactly (0, 0).

    Raises
    ------
    InputError
        On a negative or non-finite eigenvalue, more non-zero eigenvalues than n, n < 1 or
        samples < 2.

    Notes
    -----
    Invariant under O(n) acting on either Gram (by construction) and under scaling W or W_next.
    The exact second moment is :func:`commutator_null_sq`; E c ≤ √(E c²) (Jensen).
    """
    n = _check_n(n)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise InputError(f"samples={samples!r}: need an integer >= 2")
    a, b = _spectrum(a, "a", n), _spectrum(b, "b", n)
    if a.size == 0 or b.size == 0:
        return NullEstimate(0.0, 0.0, int(samples))
    if a.size < b.size:  # c(A, QBQᵀ) and c(B, QᵀAQ) have the same law: frame on the smaller side
        a, b = b, a
    norm2 = float(np.sum(a**2) * np.sum(b**2))
    a2, b2, ra, sa, sb = a**2, b**2, a.size, np.sqrt(a), np.sqrt(b)
    rng = np.random.default_rng(seed)
    vals = np.empty(0)
    total = int(samples)
    while vals.size < total:
        count = min(MIN_SAMPLES, total - vals.size)  # batches of MIN_SAMPLES draws
        m = _stiefel_top_blocks(n, ra, b.size, count, rng)  # the r_a × r_b blocks of Q
        first = np.einsum("i,sij,j->s", a2, m * m, b2)  # tr A² Q B² Qᵀ
        nmat = sa[None, :, None] * m * sb[None, None, :]
        small = nmat.transpose(0, 2, 1) @ nmat  # r_b × r_b (r_b ≤ r_a)
        second = np.sum(small * small, axis=(1, 2))  # tr (A Q B Qᵀ)² = ‖NᵀN‖²_F
        vals = np.concatenate([vals, np.sqrt(np.maximum(2.0 * (first - second), 0.0) / norm2)])
        if rel_se is not None and vals.size >= MIN_SAMPLES:
            if vals.std(ddof=1) / np.sqrt(vals.size) <= rel_se * vals.mean():
                break
    return NullEstimate(float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(vals.size)), vals.size)


def _null_sq(p1: float, p2: float, q1: float, q2: float, n: int) -> float:
    if p2 <= 0.0 or q2 <= 0.0 or n < 2:
        return 0.0  # a zero Gram, or 1×1 matrices, commute
    e_sq = ((n + 2) * (p2 * q1**2 + p2 * q2 + p1**2 * q2)
            - (2 * p2 + p1**2) * (q1**2 + 2 * q2)) / (n * (n - 1) * (n + 2))
    return float(max(2.0 * (p2 * q2 / n - e_sq) / (p2 * q2), 0.0))


def commutator_null_sq(a, b, n: int) -> float:
    """Exact E c(A, Q B Qᵀ)² over Haar Q ∈ O(n), by orthogonal Weingarten calculus (eq. (50)).

    With p₁ = tr A, p₂ = tr A², q₁ = tr B, q₂ = tr B²:
    E tr(AQBQᵀ)² = ((n+2)(p₂q₁² + p₂q₂ + p₁²q₂) − (2p₂ + p₁²)(q₁² + 2q₂)) / (n(n−1)(n+2)),
    E tr A²QB²Qᵀ = p₂q₂/n and E c² = 2(p₂q₂/n − E tr(AQBQᵀ)²)/(p₂q₂). 0 if A or B is zero or
    n = 1. Arguments as in :func:`commutator_null`.
    """
    n = _check_n(n)
    a, b = _spectrum(a, "a", n), _spectrum(b, "b", n)
    return _null_sq(a.sum(), (a**2).sum(), b.sum(), (b**2).sum(), n)


def commutator_null_rms(A, B) -> float:
    """√(E c(A, Q B Qᵀ)²) over Haar Q ∈ O(n) for symmetric PSD n × n Grams A, B (eq. (50)).

    Exact and O(n²): only tr A, ‖A‖²_F, tr B, ‖B‖²_F enter (:func:`commutator_null_sq`). It
    exceeds the mean null E c (:func:`commutator_null`) by the Jensen gap Var(c)/(2 E c):
    measured 1.2 % at n = 8, 0.2 % at n = 32 and < 0.15 % for n ≥ 384 (docs/theory.md, eq. (50)).
    """
    n = A.shape[0]
    if A.shape != B.shape or A.ndim != 2 or A.shape[1] != n:
        raise InputError(f"commutator_null_rms needs two square matrices of one size, got "
                         f"{A.shape} and {B.shape}")
    if n == 0:
        return 0.0
    return float(np.sqrt(_null_sq(float(np.trace(A)), float(np.sum(A * A)),
                                  float(np.trace(B)), float(np.sum(B * B)), n)))


def commutator_null_rms_from_moments(tr_a: float, fro2_a: float, tr_b: float, fro2_b: float,
                                     n: int) -> float:
    """:func:`commutator_null_rms` from the four moments it uses (eq. (50)): tr A = ‖W‖²_F,
    ‖A‖²_F = ‖WᵀW‖²_F (or ‖R₁ᵀR₁‖²_F of a QR), tr B, ‖B‖²_F — so a pair whose Grams are never
    formed (docs/theory.md §1.6) gets its null in O(n·r)."""
    if n <= 0:
        return 0.0
    return float(np.sqrt(_null_sq(float(tr_a), float(fro2_a), float(tr_b), float(fro2_b), int(n))))


# -- overlap and imbalance nulls, z-scores and verdicts (docs/theory.md eqs. (77)–(79)) ----------

__all__ += ["NullMoments", "VERDICT_Z", "VERDICTS", "trace_product_moments", "overlap_null", "imbalance_null",
            "commutator_null_sd", "z_score", "verdict"]  # fmt: skip


class NullMoments(NamedTuple):
    """Exact mean and standard deviation of a score under the Haar null.

    Attributes
    ----------
    mean : float   E score
    sd : float     √Var score (the spread of one draw, not a standard error)
    """

    mean: float
    sd: float


#: |z| above which a score is called aligned / anti-aligned rather than chance (eq. (79)).
VERDICT_Z = 3.0
#: The three verdicts, plus ``n/a`` when the null is degenerate or a score is missing.
VERDICTS = ("aligned", "chance", "anti-aligned", "n/a")


def trace_product_moments(a, b, n: int) -> NullMoments:
    """Mean and sd of X = tr(A Q B Qᵀ) over Haar Q ∈ O(n) for symmetric A, B with eigenvalues
    ``a``, ``b`` (eq. (78)), from the fourth moments of Haar orthogonal entries:

    E X = p₁q₁/n,
    E X² = (p₂q₂ + p₂q₁² + p₁²q₂)/(n(n+2)) + (n+1)(p₁² − p₂)(q₁² − q₂)/(n(n−1)(n+2)),

    p_k = Σ aᵢᵏ, q_k = Σ bⱼᵏ. For two projectors of ranks a, b this is the overlap variance
    2ab(n−a)(n−b)/(n²(n−1)(n+2)) of eq. (41). ``a``, ``b`` may be any real eigenvalues (zeros
    omitted); n ≥ 2."""
    n = _check_n(n)
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size > n or b.size > n:
        raise InputError(f"more eigenvalues than the dimension n={n}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError("eigenvalues must be finite")
    return _moments_null(a.sum(), (a**2).sum(), b.sum(), (b**2).sum(), n)


def overlap_null(a: int, b: int, n: int) -> NullMoments:
    """Mean and sd of the overlap ‖Q_AᵀQ_B‖²_F / min(a, b) (eq. (2)) of a fixed a-dimensional and
    a Haar-random b-dimensional subspace of ℝⁿ (eq. (77)): mean max(a, b)/n (eq. (4)),
    variance 2ab(n−a)(n−b)/(n²(n−1)(n+2)) / min(a, b)² — :func:`trace_product_moments` of two
    projectors. For a pair at depth k: a = b = k, sd = √2 (n−k)/(n√((n−1)(n+2)))."""
    n = _check_n(n)
    a, b = int(a), int(b)
    if not (1 <= a <= n and 1 <= b <= n):
        raise InputError(f"overlap_null needs 1 <= a, b <= n, got a={a}, b={b}, n={n}")
    m = trace_product_moments(np.ones(a), np.ones(b), n)
    return NullMoments(m.mean / min(a, b), m.sd / min(a, b))


def _moments_null(p1, p2, q1, q2, n: int) -> NullMoments:
    """Mean and sd of X = tr(AQBQᵀ) from p_k = tr Aᵏ, q_k = tr Bᵏ (eq. (78))."""
    mean = p1 * q1 / n
    if n < 2:
        return NullMoments(float(mean), 0.0)
    ex2 = (p2 * q2 + p2 * q1**2 + p1**2 * q2) / (n * (n + 2)) + (n + 1) * (p1**2 - p2) * (q1**2 - q2) / (
        n * (n - 1) * (n + 2)
    )
    return NullMoments(float(mean), float(np.sqrt(max(ex2 - mean**2, 0.0))))


def imbalance_null_from_moments(p1: float, p2: float, q1: float, q2: float, n: int) -> NullMoments:
    """:func:`imbalance_null` from p₁ = tr A, p₂ = ‖A‖²_F, q₁ = tr B, q₂ = ‖B‖²_F: the null
    needs nothing else of the two spectra (eq. (78))."""
    n = _check_n(n)
    denom = (np.sqrt(p2) + np.sqrt(q2)) ** 2
    if denom == 0:
        return NullMoments(float("nan"), float("nan"))
    x = _moments_null(p1, p2, q1, q2, n)
    return NullMoments(float((p2 + q2 - 2 * x.mean) / denom), float(2 * x.sd / denom))


def gram_moments(W, bias=None) -> tuple[float, float]:
    """(tr A, ‖A‖²_F) of A = W̃W̃ᵀ, W̃ = [W, bias] (or of WᵀW: the same numbers), from the smaller
    Gram."""
    w = np.asarray(W, dtype=np.float64)
    if bias is not None:
        w = np.column_stack([w, np.asarray(bias, dtype=np.float64)])
    g = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    return float(np.trace(g)), float(np.sum(g * g))


def imbalance_null(a, b, n: int) -> NullMoments:
    """Mean and sd of the squared relative imbalance r² = ‖A − QBQᵀ‖²_F / (‖A‖_F + ‖B‖_F)² over
    Haar Q ∈ O(n), with A = W̃W̃ᵀ, B = W_nextᵀW_next of eigenvalues ``a``, ``b`` (eq. (78)).

    Exactly: E‖A − QBQᵀ‖²_F = ‖A‖²_F + ‖B‖²_F − 2 tr A tr B / n (E QBQᵀ = (tr B/n) I), and
    ‖A − QBQᵀ‖² = ‖A‖² + ‖B‖² − 2X with X of :func:`trace_product_moments`, so
    sd = 2 sd(X) / (‖A‖ + ‖B‖)². The denominator is the same for every Q. √mean is the
    root-mean-square null of eq. (11)'s ``relative`` imbalance (≥ its mean, Jensen); returns
    (nan, nan) when both Grams are zero."""
    trace_product_moments(a, b, n)  # validates
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return imbalance_null_from_moments(a.sum(), (a**2).sum(), b.sum(), (b**2).sum(), n)


def commutator_null_sd(null: NullEstimate) -> float:
    """Standard deviation of one draw of c(A, QBQᵀ) under the Haar null: the sample sd of the
    Monte Carlo draws, se·√samples. (√(E c² − (E c)²) with the exact E c² of
    :func:`commutator_null_sq` is ill-conditioned: c concentrates, so the difference of two
    nearly equal numbers carries the Monte Carlo error of the mean squared.)"""
    return float(null.se * np.sqrt(null.samples))


def z_score(value: float, mean: float, sd: float) -> float:
    """(value − mean) / sd; NaN when sd is 0 or anything is not finite."""
    if not (np.isfinite(value) and np.isfinite(mean) and np.isfinite(sd)) or sd <= 0:
        return float("nan")
    return float((value - mean) / sd)


def verdict(z: float, *, higher_is_aligned: bool, threshold: float = VERDICT_Z) -> str:
    """``aligned`` / ``chance`` / ``anti-aligned`` from a z-score against a null (eq. (79)).

    |z| ≤ threshold is ``chance``; beyond it the side decides: for the overlap a higher value is
    more aligned (``higher_is_aligned=True``), for the commutator and the imbalance a lower one.
    ``n/a`` when z is NaN (degenerate null, e.g. k = n, or a score not computed)."""
    if not np.isfinite(z):
        return "n/a"
    if abs(z) <= threshold:
        return "chance"
    return "aligned" if (z > 0) == higher_is_aligned else "anti-aligned"


#: The null / z / verdict columns of ``analyze`` (docs/schema.md), in order.
VERDICT_COLUMNS = ("overlap_z", "overlap_verdict", "commutator_z", "commutator_verdict", "imbalance_null",
                   "imbalance_ratio", "imbalance_z", "imbalance_verdict")  # fmt: skip


def pair_verdicts(*, n: int, k: int, overlap: float, commutator: float, commutator_null: NullEstimate | None,
                  imbalance: float, w_moments: tuple[float, float], next_moments: tuple[float, float],
                  threshold: float = VERDICT_Z) -> dict:  # fmt: skip
    """The :data:`VERDICT_COLUMNS` of one pair (eqs. (77)–(79)).

    ``overlap`` at depth ``k`` against :func:`overlap_null` (k, k, n); ``commutator`` against its
    Monte Carlo null (eq. (50); sd = se·√samples; NaN when not computed); the relative
    ``imbalance`` r against :func:`imbalance_null_from_moments` with ``w_moments`` = (tr W̃W̃ᵀ,
    ‖W̃W̃ᵀ‖²) and ``next_moments`` = (tr W_nextᵀW_next, ‖W_nextᵀW_next‖²) — z on r²,
    ``imbalance_ratio`` = r / √E r²."""
    out: dict = {}
    if 1 <= k < n:
        m = overlap_null(k, k, n)
        out["overlap_z"] = z_score(overlap, m.mean, m.sd)
    else:
        out["overlap_z"] = float("nan")
    out["overlap_verdict"] = verdict(out["overlap_z"], higher_is_aligned=True, threshold=threshold)
    if commutator_null is not None and commutator_null.samples >= 2:
        out["commutator_z"] = z_score(commutator, commutator_null.mean, commutator_null_sd(commutator_null))
    else:
        out["commutator_z"] = float("nan")
    out["commutator_verdict"] = verdict(out["commutator_z"], higher_is_aligned=False, threshold=threshold)
    m = imbalance_null_from_moments(*w_moments, *next_moments, n)
    out["imbalance_null"] = float(np.sqrt(m.mean)) if np.isfinite(m.mean) and m.mean >= 0 else float("nan")
    ok = np.isfinite(imbalance) and out["imbalance_null"] > 0
    out["imbalance_ratio"] = float(imbalance / out["imbalance_null"]) if ok else float("nan")
    out["imbalance_z"] = z_score(imbalance**2, m.mean, m.sd) if np.isfinite(imbalance) else float("nan")
    out["imbalance_verdict"] = verdict(out["imbalance_z"], higher_is_aligned=False, threshold=threshold)
    return {c: out[c] for c in VERDICT_COLUMNS}


__all__ += ["VERDICT_COLUMNS", "pair_verdicts", "gram_moments", "imbalance_null_from_moments"]
