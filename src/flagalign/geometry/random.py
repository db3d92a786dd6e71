"""Haar-random orthogonal matrices and orthonormal frames (docs/theory.md, random baselines).

The one place flagalign draws random rotations: the random-subspace baselines, the commutator
null and the random-init / mixed-heads controls all use these. Each function takes a
:class:`numpy.random.Generator`, so callers keep their own seeding (and their results).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["haar_orthogonal", "haar_stiefel"]


def haar_stiefel(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """An n×k matrix with orthonormal columns, Haar-distributed on the Stiefel manifold V_k(ℝⁿ).

    QR of an n×k standard Gaussian with the signs of R's diagonal moved into Q (Mezzadri 2007,
    "How to generate random matrices from the classical compact groups"); without the sign fix
    the distribution is not Haar.

    Parameters
    ----------
    n, k : int
        Ambient dimension and number of columns, ``0 <= k <= n``.
    rng : numpy.random.Generator
        Source of randomness (the caller's seeding is kept).
    """
    if not 0 <= k <= n:
        raise InputError(f"need 0 <= k <= n, got n={n}, k={k}")
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """An n×n Haar-random orthogonal matrix (:func:`haar_stiefel` with k = n)."""
    return haar_stiefel(n, n, rng)
