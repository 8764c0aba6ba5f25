"""ledgformer: language-embedded dynamic graph transformers for network latency and accuracy."""

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph, Node

__version__ = "0.1.0"

__all__ = ["ArchGraph", "LedgformerError", "Node", "__version__"]
