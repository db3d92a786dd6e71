"""Hugging Face ``Trainer`` callback recording alignment metrics (docs/theory.md §2).

::

    from flagalign.integrations.transformers import AlignmentCallback
    cb = AlignmentCallback(every=50, log="run/align.jsonl")
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    cb.tracker.fit_rates()   # the HF default optimiser is AdamW: "law not applicable"

Every record goes through ``Trainer.log`` as ``flagalign/<pair>/<metric>``, so it lands in
``trainer.state.log_history`` and in every ``report_to`` integration (TensorBoard, W&B, ...);
the fitted rates follow at the end of training (``flagalign/<pair>/<metric>/rate``).

Importing this module imports ``transformers``; it raises
:class:`~flagalign.errors.MissingDependencyError` when it is not installed.
"""

from __future__ import annotations

import logging

from ..errors import InputError, MissingDependencyError
from ._metrics import rate_metrics, record_metrics

try:
    from transformers import TrainerCallback as _TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "flagalign.integrations.transformers needs transformers; pip install 'flagalign[train]'"
    ) from exc

__all__ = ["AlignmentCallback"]

_log = logging.getLogger(__name__)


class AlignmentCallback(_TrainerCallback):
    """Attach an :class:`~flagalign.AlignmentTracker` to the Trainer's model at train start.

    Parameters
    ----------
    every, k, pairs, log, method :
        Passed to :class:`~flagalign.AlignmentTracker`. Without ``pairs`` the tracker takes the
        whole-``nn.Linear`` pairs of the layer graph that :func:`flagalign.load` builds for a
        recognised architecture (BERT, GPT-2-like, Llama, ...); for an unrecognised model it falls
        back to consecutive ``nn.Linear`` modules in registration order (activation "unknown"),
        so pass the pairs you mean there, e.g.
        ``[("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense")]``.

    log_metrics : bool
        Send every record (and the fitted rates at train end) through ``Trainer.log`` (default
        True); names from :func:`~flagalign.integrations.metric_key`.
    threads : int or None
        BLAS threads of the tracker's measurements (default 1, see
        :class:`~flagalign.AlignmentTracker`).

    Attributes
    ----------
    tracker : AlignmentTracker or None
        Created in ``on_train_begin``.
    trainer : transformers.Trainer or None
        The Trainer whose ``log`` receives the metrics: :meth:`bind`-ed, or found at
        ``on_train_begin`` (callbacks are not handed the Trainer: it is the caller of the
        callback hook). Without one, records are appended to ``state.log_history`` only.
    """

    def __init__(self, every: int = 1, k: int | None = None, pairs=None, log=None,
                 method: str = "auto", *, log_metrics: bool = True,
                 threads: int | None = 1):  # fmt: skip
        self.every, self.k, self.pairs, self.log_path, self.method = every, k, pairs, log, method
        self.log_metrics, self.threads = log_metrics, threads
        self.tracker = None
        self.trainer = None

    def bind(self, trainer) -> "AlignmentCallback":
        """Send the metrics through ``trainer.log`` (needed only if the Trainer cannot be found
        from the hook's caller, e.g. a custom training loop calling the hooks itself)."""
        self.trainer = trainer
        return self

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        from ..diagnostics.dynamics import AlignmentTracker

        if model is None:
            raise InputError("AlignmentCallback: the Trainer passed no model to on_train_begin")
        self.tracker = AlignmentTracker(
            model, every=self.every, k=self.k, pairs=self.pairs, optimizer=optimizer,
            log=self.log_path, method=self.method, threads=self.threads,
        )  # fmt: skip
        if self.trainer is None:
            self.trainer = _calling_trainer()
            if self.trainer is None and self.log_metrics:
                _log.warning("AlignmentCallback: no Trainer found calling on_train_begin; metrics "
                             "go to state.log_history only (cb.bind(trainer) for report_to)")
        if self.tracker.last_record is not None:  # the initial record (step 0)
            self._send(state, record_metrics(self.tracker.last_record[1]))
        return control

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.tracker is not None:
            if optimizer is not None and self.tracker.optimizer is None:
                self.tracker.optimizer = optimizer
            if self.tracker.step(step=int(state.global_step)):
                self._send(state, record_metrics(self.tracker.last_record[1]))
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self._send(state, rate_metrics(self.tracker.fit_rates()))
            self.tracker.close()
        return control

    def _send(self, state, metrics: dict[str, float]) -> None:
        """``Trainer.log(metrics)`` (log_history + report_to), or, without a Trainer, append
        to ``state.log_history`` as ``Trainer.log`` does."""
        if not self.log_metrics or not metrics:
            return
        if self.trainer is not None:
            self.trainer.log(dict(metrics))
        else:
            state.log_history.append({**metrics, "step": state.global_step})


def _calling_trainer(max_depth: int = 12):
    """The ``transformers.Trainer`` whose hook is running: the ``self`` of a calling frame.

    The HF callback protocol hands callbacks args/state/control and the model, never the
    Trainer; ``Trainer.train`` calls ``callback_handler.on_train_begin`` itself, so the Trainer
    is a few frames up. None if no frame holds one (then :meth:`AlignmentCallback._send` falls
    back to ``state.log_history``).
    """
    import inspect

    from transformers import Trainer

    frame = inspect.currentframe()
    try:
        for _ in range(max_depth):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return None
            obj = frame.f_locals.get("self")
            if isinstance(obj, Trainer):
                return obj
        return None
    finally:
        del frame
