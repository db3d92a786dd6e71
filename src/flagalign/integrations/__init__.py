"""Training-framework callbacks that attach an :class:`~flagalign.AlignmentTracker`.

* :mod:`flagalign.integrations.lightning` — ``AlignmentCallback`` for PyTorch Lightning;
* :mod:`flagalign.integrations.transformers` — ``AlignmentCallback`` for the HF ``Trainer``.

Import the submodule you need; importing this package (or :mod:`flagalign`) imports neither
torch, Lightning nor transformers.
"""
