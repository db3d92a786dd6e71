"""Attention heads: subspace overlap between the heads of a layer, composition across layers,
and the seeded controls that give every score a null (docs/theory.md §4, eqs. (40)–(49);
docs/heads.md).

* :mod:`.overlap` — :func:`head_overlap` → :class:`HeadOverlap` (eqs. (40)–(43), (46));
* :mod:`.bases` — orthonormal bases of every head's q/k/v/o/qk/ov subspace (eqs. (3), (44), (45));
* :mod:`.stats` — Haar-null statistics of the overlap (eqs. (41)–(43), (46));
* :mod:`.composition` — :func:`composition` → :class:`Composition` (eqs. (48), (49));
* :mod:`.controls` — :func:`random_init` and :func:`mixed_heads` (eq. (47));
* :mod:`.hook` — :func:`analysis_hook`, the heads part of ``flagalign analyze``.

Figures are drawn by :mod:`flagalign.report.heads_figures` (registered from above with
:func:`flagalign.diagnostics._figures.register_drawer`; diagnostics never imports report).
"""


from .bases import SUBSPACES, factored_svd, head_slices, layer_head_bases, shared_mask
from .composition import KINDS, Composition, composition, composition_baseline
from .controls import mixed_heads, random_init
from .hook import analysis_hook, heads_table
from .overlap import CONTROLS, HeadOverlap, head_overlap

__all__ = [
    "HeadOverlap",
    "head_overlap",
    "CONTROLS",
    "SUBSPACES",
    "Composition",
    "composition",
    "composition_baseline",
    "KINDS",
    "random_init",
    "mixed_heads",
    "layer_head_bases",
    "head_slices",
    "factored_svd",
    "shared_mask",
    "analysis_hook",
    "heads_table",
]
