"""Per-matrix flag rotation between two checkpoints of one architecture.

For every matrix present in both networks with the same shape: principal angles
(docs/theory.md, eq. (1)) between A's and B's top-k left singular subspaces (output flag, eq. (13))
and between their top-k right singular subspaces (input flag), the mean cos² overlaps (eq. (2))
and the relative change ‖B − A‖_F / ‖A‖_F; and for each of the two flags, split at the gaps the
stored dtype resolves (eq. (63)), the chordal flag distance between A's and B's (eq. (66),
:mod:`flagalign.diagnostics.flag_drift`). Used by ``flagalign compare``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._progress import cut, progress_bar
from .._threads import blas_threads
from .._validate import check_k
from ..errors import ShapeMismatchError
from ..geometry import default_k, principal_angles, top_subspaces
from .flag_drift import DRIFT_COLUMNS, drift_values, matrix_flags

__all__ = ["compare_networks", "COMPARE_COLUMNS"]

COMPARE_COLUMNS = [
    "matrix", "shape", "k", "out_max_angle_deg", "out_overlap", "in_max_angle_deg", "in_overlap",
    "rel_change", *DRIFT_COLUMNS,
]  # fmt: skip


def compare_networks(net_a, net_b, k: int | None = None, *, threads: int | None = 1,
                     progress: bool = False, angles: dict | None = None):
    """Per-matrix flag rotation between two :class:`~flagalign.models.Network` objects.

    ``threads``: BLAS threads while computing (default 1, see :mod:`flagalign._threads`;
    None: the BLAS default). ``progress``: a progress bar on stderr (one step per matrix).
    ``angles``: a dict to fill with ``{matrix: (output-flag angles, input-flag angles)}`` in
    degrees (ascending), what the compare report draws.

    Returns
    -------
    (pandas.DataFrame, list[str])
        Table with :data:`COMPARE_COLUMNS` (angles in degrees) and the names skipped (missing in
        one network or of different shape).

    Raises
    ------
    ShapeMismatchError
        No matrix of the same name and shape in both networks.
    """
    if k is not None:
        k = check_k(k, "--k")
    rows, skipped = [], []
    todo = [n for n, i in net_a.matrices.items() if not i.derived]
    bar = progress_bar(len(todo), progress, "compare")
    with blas_threads(threads):  # many SVDs: one thread per process is fastest on shared CPUs
        for name in todo:
            info = net_a.matrices[name]
            if bar is not None:
                bar.set_postfix_str(cut(name, 50), refresh=False)
                bar.update()
            other = net_b.matrices.get(name)
            if other is None or tuple(other.shape) != tuple(info.shape):
                skipped.append(name)
                continue
            a, b = net_a.matrix(name), net_b.matrix(name)
            n = min(a.shape)
            kk = min(k, n) if k is not None else default_k(n, n)
            fa = top_subspaces(a, kk, method="auto")
            fb = top_subspaces(b, kk, method="auto")
            if not (np.any(a) and np.any(b)):  # an all-zero matrix has no flag: NaN, not angle 0
                ang_out = ang_in = np.zeros(0)
            else:
                ang_out = principal_angles(fa.U, fb.U)
                ang_in = principal_angles(fa.V, fb.V)
            if angles is not None:
                angles[name] = (np.degrees(ang_out), np.degrees(ang_in))
            na = float(np.linalg.norm(a))
            rows.append((
                name, "x".join(map(str, info.shape)), kk,
                float(np.degrees(ang_out.max())) if ang_out.size else float("nan"),
                float(np.mean(np.cos(ang_out) ** 2)) if ang_out.size else float("nan"),
                float(np.degrees(ang_in.max())) if ang_in.size else float("nan"),
                float(np.mean(np.cos(ang_in) ** 2)) if ang_in.size else float("nan"),
                float(np.linalg.norm(b - a) / na) if na > 0 else float("nan"),
                *drift_values(matrix_flags(fa, a, info.dtype), matrix_flags(fb, b, other.dtype)),
            ))  # fmt: skip
    if bar is not None:
        bar.close()
    skipped += [n for n in net_b.matrices if n not in net_a.matrices and not net_b.matrices[n].derived]
    if not rows:
        raise ShapeMismatchError(
            f"compare: {net_a.name} and {net_b.name} share no matrix of the same name and shape; "
            "compare two checkpoints of the same architecture"
        )
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS), skipped
