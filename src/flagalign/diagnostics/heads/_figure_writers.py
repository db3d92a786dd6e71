"""Where :meth:`HeadOverlap.save` and :meth:`Composition.save` find their figure writer.

``diagnostics`` never imports ``report`` (report sits above it), yet ``save(figures=True)``
writes PNGs. The figures are drawn by :func:`flagalign.report.heads_figures.save_figures`;
``flagalign/__init__.py`` (above both) registers a function that imports it when first called,
as it does for the HTML renderer of :class:`~flagalign.diagnostics.Analysis`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...errors import FlagalignError

__all__ = ["register_figure_writer", "write_figures"]

_WRITER: Callable[..., list[Path]] | None = None


def register_figure_writer(writer: Callable[..., list[Path]]) -> None:
    """Set ``writer(result, out_dir, **options) -> list[Path]``, which draws a
    :class:`HeadOverlap`'s or a :class:`Composition`'s figures into ``out_dir``."""
    global _WRITER
    _WRITER = writer


def write_figures(result, out_dir: Path, **options) -> list[Path]:
    """Write ``result``'s figures into ``out_dir`` with the registered writer; the written paths."""
    if _WRITER is None:
        raise FlagalignError("no figure writer registered: import flagalign (or pass "
                             "figures=False)")
    return _WRITER(result, out_dir, **options)
