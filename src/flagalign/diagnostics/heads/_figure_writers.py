"""Where :meth:`HeadOverlap.save` and :meth:`Composition.save` find their figure writers.

``diagnostics`` never imports ``report`` (dependencies point downward), yet ``save(figures=True)``
writes PNGs. The figures are drawn in :mod:`flagalign.report.heads_figures`, which installs its
writers here with :func:`register_figure_writer` when it is imported; ``flagalign/__init__.py``
imports it, so the writers are present whenever any part of flagalign is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...errors import FlagalignError

__all__ = ["register_figure_writer", "write_figures"]

#: ``kind -> writer(result, out_dir, **options) -> list[Path]``
_WRITERS: dict[str, Callable[..., list[Path]]] = {}


def register_figure_writer(kind: str, writer: Callable[..., list[Path]]) -> None:
    """Install (or replace) the writer of ``kind``'s figures (``"head_overlap"``,
    ``"composition"``)."""
    _WRITERS[kind] = writer


def write_figures(kind: str, result, out_dir: Path, **options) -> list[Path]:
    """Write ``result``'s figures into ``out_dir`` with the installed writer; the written paths."""
    try:
        writer = _WRITERS[kind]
    except KeyError:
        raise FlagalignError(
            f"no figure writer for {kind!r}: import flagalign.report.heads_figures first "
            "(import flagalign does), or pass figures=False"
        ) from None
    return writer(result, out_dir, **options)
