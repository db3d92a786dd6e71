"""PyTorch Lightning callback recording alignment metrics during ``trainer.fit`` (docs/theory.md §2).

::

    from flagalign.integrations.lightning import AlignmentCallback
    cb = AlignmentCallback(every=50, log="run/align.jsonl")
    pl.Trainer(callbacks=[cb], logger=CSVLogger("logs"), ...).fit(model)
    cb.tracker.fit_rates()

Every record also goes to the trainer's loggers (TensorBoard, W&B, CSVLogger, ...) as
``flagalign/<pair>/<metric>`` at the trainer's global step, and the fitted rates at the end of
training as ``flagalign/<pair>/<metric>/rate`` (plus ``/predicted`` where the law predicts one).

Importing this module imports ``pytorch_lightning`` (or ``lightning.pytorch``); it raises
:class:`~flagalign.errors.MissingDependencyError` when neither is installed.
"""

from __future__ import annotations

from ..errors import MissingDependencyError
from ._metrics import rate_metrics, record_metrics

try:  # the standalone package first: its Trainer only accepts its own Callback class
    import pytorch_lightning as _pl
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import lightning.pytorch as _pl
    except ImportError as exc:
        raise MissingDependencyError(
            "flagalign.integrations.lightning needs pytorch-lightning; "
            "pip install 'flagalign[train]'"
        ) from exc

__all__ = ["AlignmentCallback"]


class AlignmentCallback(_pl.Callback):
    """Attach an :class:`~flagalign.AlignmentTracker` to the LightningModule at fit start.

    Parameters
    ----------
    every, k, pairs, log, method :
        Passed to :class:`~flagalign.AlignmentTracker` (``log`` gets the crash-safe JSONL log).
    module : str, optional
        Dotted attribute of the LightningModule to track (e.g. ``"net"``); default: the
        LightningModule itself (pairs are then named ``net.0 -> net.2`` etc.).
    log_metrics : bool
        Send every record (and the fitted rates at train end) to ``trainer.loggers`` (default
        True); names from :func:`~flagalign.integrations.metric_key`.
    threads : int or None
        BLAS threads of the tracker's measurements (default 1, see
        :class:`~flagalign.AlignmentTracker`).

    Attributes
    ----------
    tracker : AlignmentTracker or None
        Available from ``on_train_start``; holds ``history`` and ``fit_rates()``.

    Notes
    -----
    Records after every ``every``-th optimiser step (``trainer.global_step``) in
    ``on_train_batch_end``; the optimiser handed to the tracker is ``trainer.optimizers[0]``,
    so the predicted rate follows from its hyper-parameters (None for Adam/AdamW).
    """

    def __init__(self, every: int = 1, k: int | None = None, pairs=None, log=None,
                 module: str | None = None, method: str = "auto", *, log_metrics: bool = True,
                 threads: int | None = 1):  # fmt: skip
        super().__init__()
        self.every, self.k, self.pairs, self.log_path = every, k, pairs, log
        self.module, self.method = module, method
        self.log_metrics, self.threads = log_metrics, threads
        self.tracker = None

    def on_train_start(self, trainer, pl_module) -> None:
        from ..diagnostics.dynamics import AlignmentTracker

        target = pl_module
        for part in (self.module or "").split(".") if self.module else []:
            target = getattr(target, part)
        opts = getattr(trainer, "optimizers", None) or [None]
        self.tracker = AlignmentTracker(
            target, every=self.every, k=self.k, pairs=self.pairs, optimizer=opts[0],
            log=self.log_path, method=self.method, threads=self.threads,
        )  # fmt: skip
        if self.tracker.last_record is not None:  # the initial record (step 0)
            self._send(trainer, record_metrics(self.tracker.last_record[1]), 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.tracker is not None and self.tracker.step(step=int(trainer.global_step)):
            step, values = self.tracker.last_record
            self._send(trainer, record_metrics(values), step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self._send(trainer, rate_metrics(self.tracker.fit_rates()), int(trainer.global_step))
            self.tracker.close()

    def _send(self, trainer, metrics: dict[str, float], step: int) -> None:
        """``logger.log_metrics`` on every logger of the trainer (rank zero only), at ``step``.

        ``LightningModule.log`` is not used: it forwards on-step values only every
        ``log_every_n_steps`` steps, which would drop records taken in between.
        """
        if not self.log_metrics or not metrics or not getattr(trainer, "is_global_zero", True):
            return
        for logger in getattr(trainer, "loggers", None) or []:
            logger.log_metrics(metrics, step=step)
