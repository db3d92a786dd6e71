"""Report sections: a registry of ``Section(key, title, render, order)`` (see :mod:`flagalign.report`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["Section", "SECTIONS", "register_section"]


@dataclass(frozen=True)
class Section:
    """One part of the report: ``render(analysis)`` returns HTML (a fragment) or None."""

    key: str
    title: str
    render: Callable[[object], "str | None"]
    order: int = 100


#: Registered sections by key (a later registration with the same key replaces the earlier).
SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> Section:
    """Add (or replace, by ``key``) a report section."""
    SECTIONS[section.key] = section
    return section
