"""Model sources → one :class:`~flagalign.models.network.Network` with true adjacency.

``load`` reads any source (docs/formats.md); ``aliases`` lists the packaged real models.
"""

from . import aliases
from .aliases import list_aliases
from .gauge import balanced_network, gauge_plan, pair_gauge_dependent
from .loader import load, open_source
from .module import linear_module_pairs, module_pairs
from .network import AttentionLayer, MatrixInfo, Network, Pair
from .symmetry import SYMMETRIES, pair_symmetry

__all__ = [
    "AttentionLayer",
    "MatrixInfo",
    "Network",
    "Pair",
    "load",
    "module_pairs",
    "linear_module_pairs",
    "open_source",
    "aliases",
    "list_aliases",
    "balanced_network",
    "gauge_plan",
    "pair_gauge_dependent",
    "pair_symmetry",
    "SYMMETRIES",
]
