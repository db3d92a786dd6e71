"""Streaming float64 class statistics for Neural Collapse (docs/theory.md, eqs. (30)–(31)).

:class:`Accumulator` consumes penultimate features batch by batch (numpy arrays or torch
tensors, any float dtype) and keeps only O(C·d + d²) numbers: per-class counts, per-class means,
per-class total within-class scatter (a scalar per class, for the CDNV) and the pooled
within-class scatter matrix (d×d, for Σ_W). Batches are merged with the pairwise update of
Chan, Golub & LeVeque (1979), which never forms raw second moments, so the result equals the
one-shot two-pass computation to rounding error even when features carry a large common offset.

The nearest-class-centre agreement NC4 (eq. (35)) needs the *final* class means, so it is a
second pass: call :meth:`Accumulator.freeze` after the first pass, then
:meth:`Accumulator.update_decisions` with the classifier's logits (or weights) per batch.
"""

from __future__ import annotations

import numpy as np

from ..._arrays import as_float64
from ...errors import InputError, ShapeMismatchError

__all__ = ["Accumulator"]


def _labels(y, n: int, num_classes: int) -> np.ndarray:
    if type(y).__module__.startswith("torch"):
        y = y.detach().cpu().numpy()
    lab = np.asarray(y)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ShapeMismatchError(
            f"labels: expected a 1-D array of {n} class indices, got shape {lab.shape}"
        )
    if lab.dtype.kind not in "iu":
        if lab.dtype.kind == "f" and np.all(lab == np.round(lab)):
            lab = lab.astype(np.int64)
        else:
            raise InputError(f"labels: expected integer class indices, got dtype {lab.dtype}")
    if n and (lab.min() < 0 or lab.max() >= num_classes):
        raise InputError(
            f"labels: class indices must lie in [0, {num_classes}), got range "
            f"[{lab.min()}, {lab.max()}]; pass the right num_classes"
        )
    return lab.astype(np.int64, copy=False)


class Accumulator:
    """Streaming class means and within-class covariance in float64 (docs/theory.md, eq. (30)).

    Parameters
    ----------
    num_classes : int
        C, the number of classes (labels are integers in ``[0, C)``).
    dim : int
        d, the feature dimension.

    Examples
    --------
    >>> acc = Accumulator(3, 5)
    >>> for h, y in batches:            # doctest: +SKIP
    ...     acc.update(h, y)
    >>> report = metrics(acc, classifier=W)   # doctest: +SKIP
    """

    def __init__(self, num_classes: int, dim: int):
        if int(num_classes) < 2:
            raise InputError(f"num_classes: need at least 2 classes, got {num_classes}")
        if int(dim) < 1:
            raise InputError(f"dim: need a positive feature dimension, got {dim}")
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self._means = np.zeros((self.num_classes, self.dim))
        self._class_scatter = np.zeros(self.num_classes)  # Σ_{i∈c} ‖h_i − μ_c‖²
        self._scatter = np.zeros((self.dim, self.dim))  # Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ
        self._frozen = False
        self._ncc_total = 0
        self._ncc_disagree = 0

    # -- first pass ------------------------------------------------------------------------
    def update(self, features, labels) -> "Accumulator":
        """Add a batch: ``features`` (B, d) numpy/torch, ``labels`` (B,) integer classes."""
        if self._frozen:
            raise InputError("Accumulator.update: the accumulator is frozen (second pass started)")
        h, _ = as_float64(features, name="features", ndim=2)
        if h.shape[1] != self.dim:
            raise ShapeMismatchError(
                f"features: expected {self.dim} columns (the accumulator's dim), got {h.shape[1]}"
            )
        if not np.all(np.isfinite(h)):
            raise InputError("features: contain NaN or inf; check the model's forward pass")
        y = _labels(labels, h.shape[0], self.num_classes)
        if h.shape[0] == 0:
            return self
        nb = np.bincount(y, minlength=self.num_classes)
        present = np.nonzero(nb)[0]
        sums = np.zeros((self.num_classes, self.dim))
        np.add.at(sums, y, h)
        mb = np.zeros_like(sums)
        mb[present] = sums[present] / nb[present, None]
        centred = h - mb[y]
        self._scatter += centred.T @ centred
        sq = np.zeros(self.num_classes)
        np.add.at(sq, y, np.einsum("ij,ij->i", centred, centred))
        # Chan et al. merge of (n_a, μ_a) with (n_b, μ_b): extra scatter n_a n_b/(n_a+n_b) δδᵀ.
        na = self.counts[present].astype(np.float64)
        nbp = nb[present].astype(np.float64)
        delta = mb[present] - self._means[present]
        w = na * nbp / (na + nbp)
        self._scatter += (delta * w[:, None]).T @ delta
        self._class_scatter[present] += sq[present] + w * np.einsum("ij,ij->i", delta, delta)
        self._means[present] += delta * (nbp / (na + nbp))[:, None]
        self.counts[present] += nb[present]
        return self

    # -- results of the first pass ---------------------------------------------------------
    @property
    def total(self) -> int:
        """N, the number of samples seen."""
        return int(self.counts.sum())

    def _check_filled(self) -> None:
        empty = np.nonzero(self.counts == 0)[0]
        if self.total == 0:
            raise InputError("Accumulator: no samples were added; call update(features, labels)")
        if len(empty):
            raise InputError(
                f"Accumulator: classes {empty.tolist()[:10]} have no samples; every class needs at "
                "least one (or pass a smaller num_classes)"
            )

    def class_means(self) -> np.ndarray:
        """μ_c, shape (C, d) (eq. (30))."""
        self._check_filled()
        return self._means.copy()

    def global_mean(self) -> np.ndarray:
        """μ_G = (1/C) Σ_c μ_c, the mean of class means (eq. (30); equals the sample mean for
        balanced classes)."""
        return self.class_means().mean(axis=0)

    def centred_means(self) -> np.ndarray:
        """M with rows μ_c − μ_G, shape (C, d); its rows sum to zero, so rank M ≤ C − 1."""
        mu = self.class_means()
        return mu - mu.mean(axis=0)

    def within_cov(self) -> np.ndarray:
        """Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ, shape (d, d) (eq. (30))."""
        self._check_filled()
        s = self._scatter / self.total
        return 0.5 * (s + s.T)

    def between_cov(self) -> np.ndarray:
        """Σ_B = (1/C) Mᵀ M, shape (d, d) (eq. (30))."""
        m = self.centred_means()
        return m.T @ m / self.num_classes

    def class_variances(self) -> np.ndarray:
        """Var_c = (1/n_c) Σ_{i∈c} ‖h_i − μ_c‖² (total variance per class, eq. (31))."""
        self._check_filled()
        return self._class_scatter / self.counts

    # -- second pass: nearest-class-centre agreement (NC4) ------------------------------------
    def freeze(self) -> "Accumulator":
        """End the first pass; afterwards :meth:`update_decisions` may be called."""
        self._check_filled()
        self._frozen = True
        return self

    def ncc_predict(self, features) -> np.ndarray:
        """Nearest-class-centre decisions argmin_c ‖h − μ_c‖ for a batch (eq. (35))."""
        h, _ = as_float64(features, name="features", ndim=2)
        mu = self.class_means()
        d2 = (h * h).sum(1)[:, None] - 2.0 * h @ mu.T + (mu * mu).sum(1)[None, :]
        return np.argmin(d2, axis=1)

    def update_decisions(self, features, logits) -> "Accumulator":
        """Second pass: count disagreements between argmax ``logits`` (B, C) and the
        nearest-class-centre rule on ``features`` (B, d). Requires :meth:`freeze` first."""
        if not self._frozen:
            raise InputError("Accumulator.update_decisions: call freeze() after the first pass")
        z, _ = as_float64(logits, name="logits", ndim=2)
        if z.shape[1] != self.num_classes:
            raise ShapeMismatchError(
                f"logits: expected {self.num_classes} columns, got shape {z.shape}"
            )
        ncc = self.ncc_predict(features)
        if ncc.shape[0] != z.shape[0]:
            raise ShapeMismatchError(
                f"logits: {z.shape[0]} rows but features have {ncc.shape[0]}; pass the same batch"
            )
        self._ncc_total += int(z.shape[0])
        self._ncc_disagree += int(np.sum(np.argmax(z, axis=1) != ncc))
        return self

    def nc4(self) -> float:
        """Fraction of second-pass samples where classifier and NCC disagree (NaN if none)."""
        if self._ncc_total == 0:
            return float("nan")
        return self._ncc_disagree / self._ncc_total

    def __repr__(self) -> str:
        return f"Accumulator(num_classes={self.num_classes}, dim={self.dim}, total={self.total})"
