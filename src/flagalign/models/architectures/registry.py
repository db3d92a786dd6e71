"""One record per architecture family (the shape of TransformerLens' ``SUPPORTED_ARCHITECTURES``).

Each family module defines its :class:`Family` record next to its build function; the registry
in :mod:`flagalign.models.architectures` lists the records in detection order. Adding a family is
one file (rules + record) and one line (the record in that list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..graph import GraphBuilder
from ..sources.base import TensorSource

__all__ = ["Family", "Build"]

# build(builder, source, config, heads=..., kv_heads=...) adds the family's matrices and pairs
Build = Callable[..., None]


@dataclass(frozen=True)
class Family:
    """An architecture family: how to recognise it and how to build its layer graph.

    Attributes
    ----------
    name : str
        The value of ``Network.architecture`` and of ``load(..., architecture=)``.
    patterns : tuple of re.Pattern
        Characteristic tensor names; a family is detected (or accepted from metadata) only when
        some key matches one of them. Empty for the fallback families.
    example : str
        One characteristic key, quoted in the error when a forced family does not match.
    model_types : tuple of str
        config.json ``model_type`` / GGUF ``general.architecture`` values that name the family.
    build : callable
        ``build(b: GraphBuilder, src: TensorSource, cfg: dict, *, heads, kv_heads) -> None``.
    """

    name: str
    build: Build
    patterns: tuple[re.Pattern, ...] = field(default=())
    example: str = ""
    model_types: tuple[str, ...] = ()

    def matches(self, src: TensorSource) -> bool:
        """True when some key of ``src`` has this family's characteristic name."""
        return any(p.search(k) for p in self.patterns for k in src.entries)

    def __call__(self, b: GraphBuilder, src: TensorSource, cfg: dict, **opts) -> None:
        self.build(b, src, cfg, **opts)
