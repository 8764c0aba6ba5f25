"""ledgformer: language-embedded dynamic graph transformers for network latency and accuracy."""

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph, Node

__version__ = "0.1.0"

__all__ = ["ArchGraph", "LedgformerError", "Node", "Predictor", "__version__"]


def __getattr__(name: str) -> object:
    """``ledgformer.Predictor`` on first use: plain ``import ledgformer`` stays free of torch."""
    if name == "Predictor":
        from ledgformer.api import Predictor

        return Predictor
    raise AttributeError(f"module 'ledgformer' has no attribute {name!r}")
