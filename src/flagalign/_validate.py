"""Validation of scalar API arguments (k, tolerances, seeds, kinds): refused, never coerced.

``int(2.5)`` would silently truncate a k, ``int("3")`` would accept a string, ``True`` is an int
to Python and NaN compares false with everything, so each check here accepts exactly the types
it documents and raises :class:`~flagalign.errors.InputError` naming the argument otherwise.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError

__all__ = ["check_k", "check_tol", "check_seed", "check_kinds", "is_int"]


def is_int(v) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_k(k, name: str = "k") -> int:
    """``k`` as a positive int; floats (even 3.0), bools, strings and NaN are refused."""
    if not is_int(k) or k < 1:
        raise InputError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def check_tol(tol, name: str = "tol", upper: float | None = None) -> float:
    """``tol`` as a finite real ≥ 0 (and < ``upper`` when given); NaN, inf, bools refused."""
    ok = isinstance(tol, numbers.Real) and not isinstance(tol, (bool, np.bool_)) and math.isfinite(tol)
    if not ok or tol < 0 or (upper is not None and tol >= upper):
        bound = f"[0, {upper:g})" if upper is not None else "[0, inf)"
        raise InputError(f"{name} must be a finite number in {bound}, got {tol!r}")
    return float(tol)


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int ≥ 0 (what numpy's generators accept)."""
    if not is_int(seed) or seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_kinds(kinds, name: str = "kinds") -> list[str] | None:
    """``kinds`` as a list of strings (a single string allowed); None stays None."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        return [kinds]
    try:
        out = list(kinds)
    except TypeError:
        raise InputError(f"{name} must be a pair kind or a list of them, got {kinds!r}") from None
    bad = [x for x in out if not isinstance(x, str)]
    if bad:
        raise InputError(f"{name} must hold pair-kind strings, got {bad[0]!r}")
    return out
