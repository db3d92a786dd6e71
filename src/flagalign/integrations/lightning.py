"""PyTorch Lightning callback recording alignment metrics during ``trainer.fit`` (docs/theory.md §2).

::

    from flagalign.integrations.lightning import AlignmentCallback
    cb = AlignmentCallback(every=50, log="run/align.jsonl")
    pl.Trainer(callbacks=[cb], ...).fit(model)
    cb.tracker.fit_rates()

Importing this module imports ``pytorch_lightning`` (or ``lightning.pytorch``); it raises
:class:`~flagalign.errors.MissingDependencyError` when neither is installed.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

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
                 module: str | None = None, method: str = "auto"):  # fmt: skip
        super().__init__()
        self.every, self.k, self.pairs, self.log_path = every, k, pairs, log
        self.module, self.method = module, method
        self.tracker = None

    def on_train_start(self, trainer, pl_module) -> None:
        from ..diagnostics.dynamics import AlignmentTracker

        target = pl_module
        for part in (self.module or "").split(".") if self.module else []:
            target = getattr(target, part)
        opts = getattr(trainer, "optimizers", None) or [None]
        self.tracker = AlignmentTracker(
            target, every=self.every, k=self.k, pairs=self.pairs, optimizer=opts[0],
            log=self.log_path, method=self.method,
        )  # fmt: skip

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.tracker is not None:
            self.tracker.step(step=int(trainer.global_step))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self.tracker.close()
