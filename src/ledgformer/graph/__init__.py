"""Graph ingestion: the ArchGraph IR, cost formulas, and importers (ONNX, PyTorch, builders)."""

from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph, GraphError, Node

__all__ = ["ArchGraph", "GraphBuilder", "GraphError", "Node"]
