"""Experiment registry and result container (shared by every ``flagalign reproduce`` run)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError

__all__ = ["EXPERIMENTS", "ExperimentResult", "register", "get"]


@dataclass
class ExperimentResult:
    """What an experiment produced.

    Attributes
    ----------
    name : str
    table_markdown : str
        The result table with a pass/fail column, as committed to docs/results.md.
    passed : bool
        True when every pass criterion held.
    files : list[Path]
        Everything written under the output folder (tables, figures, logs).
    """

    name: str
    table_markdown: str
    passed: bool
    files: list[Path] = field(default_factory=list)


Runner = Callable[..., ExperimentResult]

# name -> module that registers it (imported lazily so torch is only needed when run)
_MODULES = {"ridge": "flagalign.experiments.ridge", "collapse": "flagalign.experiments.neural_collapse",
            "hierarchy": "flagalign.experiments.hierarchy",
            "resnet": "flagalign.experiments.resnet",
            "lm-heads": "flagalign.experiments.lm_heads"}
EXPERIMENTS: dict[str, Runner] = {}


def register(name: str) -> Callable[[Runner], Runner]:
    """Decorator: make ``run(out_dir, quick=False, progress=True)`` available as ``name``."""

    def deco(fn: Runner) -> Runner:
        EXPERIMENTS[name] = fn
        return fn

    return deco


def get(name: str) -> Runner:
    """The runner registered as ``name`` (imports its module on first use)."""
    if name not in EXPERIMENTS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise InputError(
            f"unknown experiment {name!r}; choose one of: {', '.join(sorted(_MODULES))}"
        ) from None


def names() -> list[str]:
    return sorted(_MODULES)
