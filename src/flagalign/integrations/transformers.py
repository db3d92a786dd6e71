"""Hugging Face ``Trainer`` callback recording alignment metrics (docs/theory.md §2).

::

    from flagalign.integrations.transformers import AlignmentCallback
    cb = AlignmentCallback(every=50, log="run/align.jsonl")
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    cb.tracker.fit_rates()   # the HF default optimiser is AdamW: "law not applicable"

Importing this module imports ``transformers``; it raises
:class:`~flagalign.errors.MissingDependencyError` when it is not installed.
"""

from __future__ import annotations

from ..errors import InputError, MissingDependencyError

try:
    from transformers import TrainerCallback as _TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "flagalign.integrations.transformers needs transformers; pip install 'flagalign[train]'"
    ) from exc

__all__ = ["AlignmentCallback"]


class AlignmentCallback(_TrainerCallback):
    """Attach an :class:`~flagalign.AlignmentTracker` to the Trainer's model at train start.

    Parameters
    ----------
    every, k, pairs, log, method :
        Passed to :class:`~flagalign.AlignmentTracker`. Transformer blocks are not
        ``nn.Sequential``; without ``pairs`` the tracker falls back to consecutive ``nn.Linear``
        modules in registration order (activation "unknown"), so pass the pairs you mean, e.g.
        ``[("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense")]``.

    Attributes
    ----------
    tracker : AlignmentTracker or None
        Created in ``on_train_begin``.
    """

    def __init__(self, every: int = 1, k: int | None = None, pairs=None, log=None,
                 method: str = "auto"):  # fmt: skip
        self.every, self.k, self.pairs, self.log_path, self.method = every, k, pairs, log, method
        self.tracker = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        from ..diagnostics.dynamics import AlignmentTracker

        if model is None:
            raise InputError("AlignmentCallback: the Trainer passed no model to on_train_begin")
        self.tracker = AlignmentTracker(
            model, every=self.every, k=self.k, pairs=self.pairs, optimizer=optimizer,
            log=self.log_path, method=self.method,
        )  # fmt: skip
        return control

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.tracker is not None:
            if optimizer is not None and self.tracker.optimizer is None:
                self.tracker.optimizer = optimizer
            self.tracker.step(step=int(state.global_step))
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self.tracker.close()
        return control
