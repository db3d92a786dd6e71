"""Tensor sources, one module per format (docs/formats.md, "Sources")."""

from .base import TensorEntry, TensorSource, natural_key

__all__ = ["TensorEntry", "TensorSource", "natural_key"]
