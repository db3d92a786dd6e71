"""Hook-based recording of Neural Collapse metrics from a live torch model (docs/theory.md, §3).

:func:`record` makes two passes over a loader: the first streams the penultimate features
(captured by a forward hook on ``feature_module``) into an :class:`~.accumulator.Accumulator`;
the second counts classifier/nearest-class-centre disagreements (NC4, eq. (35)). It is the
"feature hook and a loader" interface a training loop or tracker calls every N steps.
"""

from __future__ import annotations

from ...errors import InputError
from .accumulator import Accumulator
from .metrics import CollapseReport, metrics

__all__ = ["record", "CollapseRecorder"]


def _flatten(t):
    if isinstance(t, (tuple, list)):
        t = t[0]
    return t.detach().reshape(t.shape[0], -1)


def record(model, feature_module, loader, classifier, *, num_classes=None, **tolerances) -> CollapseReport:
    """Collapse metrics of ``model`` on ``loader`` (eqs. (30)–(38)).

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode under ``torch.no_grad()``; its train/eval mode is restored afterwards.
    feature_module : torch.nn.Module
        Sub-module whose *output* (flattened per sample) is the penultimate feature h ∈ ℝ^d.
    loader : iterable of (inputs, labels)
        Iterated twice (a DataLoader or a list of batches, not a one-shot generator).
    classifier : torch.nn.Linear or array_like (C, d)
        The last layer; decisions for NC4 are argmax(W h + b).
    num_classes : int, optional
        Defaults to the classifier's number of rows.
    **tolerances
        ``tol_nc1``, ``tol_sine``, ``tol_commutator`` passed to :func:`metrics`.
    """
    import torch

    from ..._arrays import as_float64

    weight = classifier.weight if hasattr(classifier, "weight") else classifier
    W, _ = as_float64(weight, name="classifier", ndim=2)
    b = getattr(classifier, "bias", None)
    b = None if b is None else as_float64(b, name="bias", ndim=1)[0]
    C = int(num_classes or W.shape[0])
    captured = []
    handle = feature_module.register_forward_hook(lambda m, i, o: captured.append(_flatten(o)))
    was_training = model.training
    model.eval()
    acc = None
    try:
        with torch.no_grad():
            for second in (False, True):
                n_batches = 0
                for xb, yb in loader:
                    captured.clear()
                    model(xb)
                    if not captured:
                        raise InputError(
                            "record: feature_module was not called by model's forward; pass a "
                            "sub-module on the forward path"
                        )
                    h = captured[-1]
                    if acc is None:
                        acc = Accumulator(C, int(h.shape[1]))
                    if second:
                        hf = as_float64(h, name="features")[0]
                        acc.update_decisions(hf, hf @ W.T + (0.0 if b is None else b))
                    else:
                        acc.update(h, yb)
                    n_batches += 1
                if n_batches == 0:
                    raise InputError("record: the loader yielded no batches")
                if not second:
                    acc.freeze()
    finally:
        handle.remove()
        model.train(was_training)
    return metrics(acc, classifier=W, bias=b, **tolerances)


class CollapseRecorder:
    """Record :func:`record` every ``every`` steps of a training loop.

    Call :meth:`step` after each optimiser step (e.g. ``train(..., on_step=lambda s, l:
    recorder.step(s))`` from :mod:`flagalign.experiments.training`); :meth:`history` returns one
    DataFrame row per recorded step (the :meth:`CollapseReport.to_dict` fields plus ``step``).
    """

    def __init__(self, model, feature_module, loader, classifier, every: int = 1, **tolerances):
        if int(every) < 1:
            raise InputError(f"every: must be a positive number of steps, got {every}")
        self.model, self.feature_module, self.loader = model, feature_module, loader
        self.classifier, self.every, self.tolerances = classifier, int(every), tolerances
        self.reports: list[tuple[int, CollapseReport]] = []
        self._count = 0

    def step(self, step: int | None = None) -> bool:
        """Advance one step; record when the step number is a multiple of ``every``."""
        self._count = self._count + 1 if step is None else int(step)
        if self._count % self.every:
            return False
        self.record(self._count)
        return True

    def record(self, step: int | None = None) -> CollapseReport:
        """Record now (``step`` defaults to the current step count)."""
        rep = record(self.model, self.feature_module, self.loader, self.classifier,
                     **self.tolerances)  # fmt: skip
        self.reports.append((self._count if step is None else int(step), rep))
        return rep

    def history(self):
        """One row per record: ``step`` and the scalar CollapseReport fields."""
        import pandas as pd

        return pd.DataFrame([{"step": s, **r.to_dict()} for s, r in self.reports])
