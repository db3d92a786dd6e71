"""Builders of planted geometric structure shared by the geometry tests."""

from __future__ import annotations

import numpy as np


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def planted_pair(angles, n: int, rng: np.random.Generator, extra_a: int = 0):
    """Orthonormal U (n×(m+extra_a)), V (n×m) whose principal angles are exactly ``angles``.

    Uses the canonical form U = Q[e₁…e_m, …], V = Q[cos θᵢ eᵢ + sin θᵢ e_{m+i}], moved by a random
    orthogonal Q; needs n ≥ 2m + extra_a.
    """
    angles = np.asarray(angles, dtype=float)
    m = angles.size
    assert n >= 2 * m + extra_a
    e = np.eye(n)
    u = e[:, : m + extra_a].copy()
    # the extra directions of U are e_{2m}…, orthogonal to everything V uses
    if extra_a:
        u[:, m:] = e[:, 2 * m : 2 * m + extra_a]
    v = e[:, :m] * np.cos(angles) + e[:, m : 2 * m] * np.sin(angles)
    q = random_orthogonal(n, rng)
    return q @ u, q @ v


def well_conditioned(n: int, rng: np.random.Generator, cond: float = 20.0) -> np.ndarray:
    """A random invertible n×n matrix with condition number ``cond``."""
    s = np.geomspace(1.0, cond, n)
    return random_orthogonal(n, rng) @ np.diag(s) @ random_orthogonal(n, rng)


def mp_principal_angles(A: np.ndarray, B: np.ndarray, dps: int = 40) -> np.ndarray:
    """Independent high-precision reference: principal angles (ascending) of full-column-rank
    A, B from mpmath QR + SVD at ``dps`` digits, via arccos (exact enough at that precision)."""
    import mpmath as mp

    with mp.workdps(dps):
        qa = mp.qr(mp.matrix(A.tolist()))[0][:, : A.shape[1]]
        qb = mp.qr(mp.matrix(B.tolist()))[0][:, : B.shape[1]]
        cos = mp.svd_r(qa.T * qb, compute_uv=False)
        m = min(A.shape[1], B.shape[1])
        vals = sorted((min(mp.mpf(1), c) for c in cos), reverse=True)[:m]
        return np.array([float(mp.acos(c)) for c in vals])
