"""Model sources → one :class:`~flagalign.models.network.Network` with true adjacency."""

from .network import AttentionLayer, MatrixInfo, Network, Pair

__all__ = ["AttentionLayer", "MatrixInfo", "Network", "Pair"]
