"""The partial flag object: nested subspaces of a given type (docs/theory.md §5, eq. (60)).

A flag of type d = (d₁ < … < d_p) in ℝⁿ is a chain F₁ ⊂ … ⊂ F_p with dim Fᵢ = dᵢ. It is stored
as one orthonormal n×d_p matrix whose consecutive column blocks are its *pieces*
Vᵢ = Fᵢ ⊖ Fᵢ₋₁ (sizes nᵢ = dᵢ − dᵢ₋₁); the complement V_{p+1} = F_p^⊥ is implicit. Only the
spans of the pieces are meant: any rotation inside a piece gives the same flag, and every
function of :mod:`flagalign.geometry` that takes a :class:`Flag` is invariant under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._arrays import as_float64, input_eps
from ..errors import InputError

__all__ = ["Flag", "as_flag"]


def _check_orthonormal(x: np.ndarray, dtype: str, name: str) -> None:
    err = np.max(np.abs(x.T @ x - np.eye(x.shape[1]))) if x.shape[1] else 0.0
    limit = max(1e-8, 1e3 * input_eps(dtype))
    if not err <= limit:
        raise InputError(
            f"{name}: columns are not orthonormal (max |XᵀX − I| = {err:.2e} > {limit:.0e}); "
            "pass e.g. the U or V factor of an SVD"
        )


@dataclass(frozen=True, eq=False)
class Flag:
    """A partial flag of ℝⁿ (docs/theory.md, eq. (60)).

    Attributes
    ----------
    basis : ndarray, shape (n, dims[-1])
        Orthonormal columns; columns ``dims[i-1]:dims[i]`` span piece i. The basis *inside* a
        piece is arbitrary (an isotropic cluster has no preferred basis).
    dims : tuple of int
        The type d₁ < d₂ < … < d_p, 1 ≤ dᵢ < n (ℝⁿ itself is implicit; () is the trivial flag).
    margins : ndarray, shape (p,)
        For a flag chosen from a spectrum (eq. (63)): the gap at each split divided by the
        perturbation ``perturbation``, gᵢ/δ. ``inf`` where the flag was given exactly.
    perturbation : float
        δ, the spectral-norm size of the perturbation the input is trusted to (eq. (62)); 0 for
        exactly given flags.
    values : ndarray or None
        The singular values the flag was chosen from (descending), if any.
    """

    basis: np.ndarray
    dims: tuple[int, ...]
    margins: np.ndarray = field(default=None)  # type: ignore[assignment]
    perturbation: float = 0.0
    values: np.ndarray | None = None

    def __post_init__(self):
        b, dtype = as_float64(self.basis, name="Flag basis")
        b = np.array(b, dtype=np.float64)  # own copy (made read-only below)
        n = b.shape[0]
        dims = tuple(int(d) for d in self.dims)
        if any(d < 1 for d in dims) or any(b2 <= b1 for b1, b2 in zip(dims, dims[1:])):
            raise InputError(f"flag type must be strictly increasing positive dims, got {dims}")
        if dims and dims[-1] == n:  # ℝⁿ itself is implicit
            dims = dims[:-1]
        if dims and dims[-1] > n:
            raise InputError(f"flag type {dims} does not fit in ℝ^{n}")
        top = dims[-1] if dims else 0
        if b.shape[1] < top:
            raise InputError(f"flag type {dims} needs {top} basis columns, got {b.shape[1]}")
        b = b[:, :top]
        _check_orthonormal(b, dtype, "Flag basis")
        m = self.margins
        m = np.full(len(dims), np.inf) if m is None else np.asarray(m, dtype=np.float64)
        if m.shape[0] < len(dims):
            raise InputError(f"margins must have one entry per split, got {m.shape} for {dims}")
        m = m[: len(dims)]
        b.setflags(write=False)
        m.setflags(write=False)
        object.__setattr__(self, "basis", b)
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "margins", m)
        object.__setattr__(self, "perturbation", float(self.perturbation))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_basis(cls, U, dims=None) -> "Flag":
        """The flag of an orthonormal basis: complete on its columns (dims = 1, 2, …, k) unless
        ``dims`` gives the type."""
        u, _ = as_float64(U, name="U")
        if u.shape[1] > u.shape[0]:
            raise InputError(f"U: a flag basis needs at most n columns, got shape {u.shape}")
        if dims is None:
            dims = tuple(range(1, u.shape[1] + 1))
        return cls(U, tuple(dims))

    # ------------------------------------------------------------------ derived
    @property
    def n(self) -> int:
        """Ambient dimension."""
        return int(self.basis.shape[0])

    @property
    def type(self) -> tuple[int, ...]:
        """Alias of :attr:`dims`."""
        return self.dims

    @property
    def sizes(self) -> tuple[int, ...]:
        """Piece sizes n₁, …, n_p, n_{p+1} (the last one: the implicit complement)."""
        full = (0,) + self.dims + (self.n,)
        return tuple(b - a for a, b in zip(full, full[1:]))

    @property
    def is_complete(self) -> bool:
        """True for a complete flag (every piece one-dimensional, type 1, …, n−1)."""
        return self.dims == tuple(range(1, self.n))

    def piece(self, i: int) -> np.ndarray:
        """Orthonormal basis of piece i (0-based, i < p; the complement is not stored)."""
        full = (0,) + self.dims
        return self.basis[:, full[i] : full[i + 1]]

    def member(self, i: int) -> np.ndarray:
        """Orthonormal basis of the i-th member Fᵢ (0-based: dims[i] columns)."""
        return self.basis[:, : self.dims[i]]

    @property
    def sine_bounds(self) -> np.ndarray:
        """Wedin bound on how far each member can move under the perturbation δ (eq. (63)):
        sin Θ(Fᵢ, F̃ᵢ) ≤ δ/(gᵢ − δ) = 1/(marginᵢ − 1); 0 for exactly given flags."""
        m = self.margins
        with np.errstate(divide="ignore"):
            return np.where(m > 1, 1.0 / (m - 1.0), np.inf)

    @property
    def uncertainty(self) -> float:
        """Largest of :attr:`sine_bounds` (0 for an exact or trivial flag)."""
        return float(np.max(self.sine_bounds)) if self.dims else 0.0

    def coarsen(self, dims) -> "Flag":
        """The same flag forgetting some members: ``dims`` must be a subset of the type."""
        dims = tuple(sorted(int(d) for d in dims))
        if not set(dims) <= set(self.dims):
            raise InputError(f"cannot coarsen a flag of type {self.dims} to {dims}")
        keep = [self.dims.index(d) for d in dims]
        return Flag(self.basis, dims, self.margins[keep], self.perturbation, self.values)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"Flag(n={self.n}, dims={self.dims}, margins={np.round(self.margins, 3).tolist()})"


def as_flag(X, name: str = "F") -> Flag:
    """A :class:`Flag` as is, or the complete flag of an orthonormal basis."""
    if isinstance(X, Flag):
        return X
    try:
        return Flag.from_basis(X)
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
