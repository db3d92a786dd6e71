"""Reproducible experiments behind ``flagalign reproduce NAME [--quick] [--out DIR]``.

An experiment is a function ``run(out_dir: pathlib.Path, quick: bool, progress: bool) ->
ExperimentResult`` registered with :func:`register` (``hierarchy``, ``resnet`` and ``lm-heads``
also take ``seeds``; ``hierarchy`` takes ``jobs`` and ``loss``; ``lm-heads`` takes ``models``)
and writes ``verdict.json`` (all five: ridge, collapse, hierarchy, resnet, lm-heads)
(:mod:`flagalign.experiments.verdict`). See :mod:`flagalign.experiments.framework`.
"""

from .framework import EXPERIMENTS, ExperimentResult, get, register

__all__ = ["EXPERIMENTS", "ExperimentResult", "get", "register"]
