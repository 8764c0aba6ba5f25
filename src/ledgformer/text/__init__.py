"""Operator nodes as short texts for the language encoders (``ledgformer.embed``)."""

from ledgformer.text.templates import CELL_OPS, TEMPLATE_VERSION, fmt_shape, graph_texts, node_text

__all__ = ["CELL_OPS", "TEMPLATE_VERSION", "fmt_shape", "graph_texts", "node_text"]
