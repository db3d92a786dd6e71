"""Training-framework callbacks that attach an :class:`~flagalign.AlignmentTracker`.

* :mod:`flagalign.integrations.lightning` — ``AlignmentCallback`` for PyTorch Lightning;
* :mod:`flagalign.integrations.transformers` — ``AlignmentCallback`` for the HF ``Trainer``.

Import the submodule you need; importing this package (or :mod:`flagalign`) imports neither
torch, Lightning nor transformers.

Both send every record to the framework's loggers under the names of :func:`metric_key`.
"""

from ._metrics import metric_key

__all__ = ["metric_key"]
