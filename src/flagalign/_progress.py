"""The one progress bar of flagalign: ``tqdm.auto`` (a widget in notebooks, text on stderr)."""

from __future__ import annotations

import sys

__all__ = ["progress_bar", "progress_iter", "cut"]


def progress_bar(total: int, enabled: bool = True, label: str = "", **kw):
    """A tqdm bar on stderr counting to ``total``, or None when disabled or stderr is not a TTY
    (and not a notebook). Callers use ``bar.update()``, ``bar.set_postfix_str()``, ``bar.close()``.
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm  # deferred: tqdm.auto probes for IPython/ipywidgets at import

    if not sys.stderr.isatty() and "notebook" not in tqdm.__module__:
        return None
    kw.setdefault("mininterval", 0)  # items are slow (pairs, checkpoints): show every step
    return tqdm(total=total, desc=label, file=sys.stderr, leave=False, **kw)


def cut(text: str, width: int = 50) -> str:
    """``text`` cut at the *right* to ``width`` characters, with ``…`` where it was cut: a
    pair name keeps its start (``encoder.layer.3.…``), which says where in the model it is."""
    text = str(text)
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def progress_iter(items, enabled: bool = True, label: str = ""):
    """Iterate over ``items`` with a :func:`progress_bar` that advances per item and is closed at
    the end (also when the loop is left early)."""
    items = list(items)
    bar = progress_bar(len(items), enabled, label)
    try:
        for item in items:
            yield item
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
