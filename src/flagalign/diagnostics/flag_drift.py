"""How far a matrix's gap-chosen flags move between checkpoints (docs/theory.md, eqs. (62)–(67),
(69)).

A matrix's *output flag* (left singular vectors) and *input flag* (right singular vectors) are
taken from its top-k factors and split only at the gaps its stored dtype resolves (eq. (63);
splits d < k). Two checkpoints' flags of one matrix are compared by the chordal flag distance
(eq. (66)) on the type both contain; over many checkpoints each flag is also compared with the
flag mean (eq. (67)) of all of them at the type all of them contain. Used by ``flagalign compare``
(:func:`drift_values`) and ``flagalign trajectory`` (:class:`FlagHistory`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..geometry import default_k, flag_distance, flag_distance_baseline, flag_mean, top_subspaces
from ..geometry.pair_flags import _perturbation, format_flag_type
from ..geometry.partial_flag import Flag
from ..geometry.spectral_flag import flag_from_spectrum

__all__ = ["matrix_flags", "drift_values", "DRIFT_COLUMNS", "FlagHistory", "FLAG_HISTORY_COLUMNS"]

#: Columns :func:`drift_values` adds to ``compare.csv``.
DRIFT_COLUMNS = ["out_flag_type", "out_flag_distance", "out_flag_baseline",
                 "in_flag_type", "in_flag_distance", "in_flag_baseline"]

#: Columns of ``flags.csv`` written by ``flagalign trajectory``.
FLAG_HISTORY_COLUMNS = ["step", "checkpoint", "matrix", "side", "flag_type", "common_type",
                        "distance_prev", "distance_mean", "baseline"]


def matrix_flags(factors, matrix: np.ndarray, dtype: str) -> tuple[Flag, Flag] | None:
    """(output flag, input flag) of a matrix from its top-k factors (no further SVD): eq. (63)
    at δ of eq. (62) for the stored ``dtype``; None for an all-zero matrix (it has no flag)."""
    s = np.asarray(factors.s, dtype=np.float64)
    if s.size == 0 or not s[0] > 0:
        return None
    delta = _perturbation(matrix, dtype, float(s[0]))
    return (flag_from_spectrum(factors.U, s, delta), flag_from_spectrum(factors.V, s, delta))


def _common(flags) -> tuple[int, ...]:
    dims = set(flags[0].dims)
    for f in flags[1:]:
        dims &= set(f.dims)
    return tuple(sorted(dims))


def _distance(f: Flag, g: Flag, dims) -> float:
    return flag_distance(f, g, metric="chordal", dims=dims) if dims else math.nan


def drift_values(flags_a, flags_b) -> tuple:
    """The :data:`DRIFT_COLUMNS` values of one matrix: for its output and its input flag, the
    common type of A's and B's flags, their chordal distance on it (eq. (66); 0 = the same flag)
    and the random-flag RMS distance at that type. NaN where a side has no flag or the types
    share no dim."""
    out = []
    for side in (0, 1):
        if flags_a is None or flags_b is None:
            out += [math.nan, math.nan, math.nan]
            continue
        f, g = flags_a[side], flags_b[side]
        dims = _common([f, g])
        out += [format_flag_type(dims), _distance(f, g, dims),
                flag_distance_baseline(dims, f.n) if dims else math.nan]
    return tuple(out)


class FlagHistory:
    """Each matrix's output and input flags over checkpoints, for ``flagalign trajectory``.

    :meth:`add` computes the flags of a checkpoint's matrices (one top-k SVD each, k =
    ``default_k`` of the smaller side or the given k); :meth:`table` compares every flag with the
    previous checkpoint's and with the flag mean of all checkpoints (eq. (67)), all on the type
    every checkpoint's flag of that matrix and side contains. Holds the n×k bases of every
    checkpoint (k ≤ 64 columns per side and matrix) until :meth:`table`.
    """

    def __init__(self, k: int | None = None, seed: int = 0):
        self.k = k
        self.seed = seed
        self._flags: dict[tuple[str, str], list] = {}

    def add(self, step: int, checkpoint: str, net, names=None) -> None:
        """Record the flags of ``names`` (default: every matrix of ``net``'s pairs)."""
        if names is None:
            names = list(dict.fromkeys(n for p in net.pairs for n in (p.left, p.right)))
        for name in names:
            info = net.matrices[name]
            m = net.matrix(name)
            kk = min(self.k, min(m.shape)) if self.k else default_k(min(m.shape), min(m.shape))
            flags = None
            if np.all(np.isfinite(m)) and np.any(m):
                flags = matrix_flags(top_subspaces(m, kk, method="auto", seed=self.seed), m,
                                     str(info.dtype))
            for side, idx in (("out", 0), ("in", 1)):
                self._flags.setdefault((name, side), []).append(
                    (step, checkpoint, None if flags is None else flags[idx]))

    def add_flags(self, step: int, checkpoint: str, flags: dict) -> None:
        """Record precomputed ``{matrix: (output flag, input flag) or None}`` (what :meth:`add`
        computes; ``trajectory`` gets them from its checkpoint tasks)."""
        for name, fl in flags.items():
            for side, idx in (("out", 0), ("in", 1)):
                self._flags.setdefault((name, side), []).append(
                    (step, checkpoint, None if fl is None else fl[idx]))

    def table(self) -> pd.DataFrame:
        """One row per (checkpoint, matrix, side): :data:`FLAG_HISTORY_COLUMNS`."""
        rows = []
        for (name, side), hist in self._flags.items():
            have = [f for _, _, f in hist if f is not None]
            dims = _common(have) if have else ()  # checkpoints with an all-zero matrix: NaN
            mean = flag_mean([f.coarsen(dims) for f in have], dims=dims) if dims else None
            base = flag_distance_baseline(dims, have[0].n) if dims else math.nan
            prev = None
            for step, ckpt, f in hist:
                d_prev = _distance(f, prev, dims) if f is not None and prev is not None else math.nan
                d_mean = _distance(f, mean, dims) if f is not None and mean is not None else math.nan
                rows.append((step, ckpt, name, side,
                             format_flag_type(f.dims) if f is not None else math.nan,
                             format_flag_type(dims), d_prev, d_mean, base))
                prev = f
        return pd.DataFrame(rows, columns=FLAG_HISTORY_COLUMNS)
