"""Node text templates: hand-built nodes give the documented phrasings; every op has a text."""

from __future__ import annotations

import pytest

from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import Node
from ledgformer.graph.ops import OP_TYPES
from ledgformer.text import TEMPLATE_VERSION, fmt_shape, graph_texts, node_text


def _resnet_block() -> list[str]:
    b = GraphBuilder()
    x = b.input((1, 64, 56, 56))
    c = b.conv(x, 128, 3, stride=2)
    d = b.conv(c, 128, 5, groups=128)
    bn = b.batchnorm(x)
    r = b.act(bn)
    a = b.eltwise([r, bn])
    p = b.pool(a, "maxpool", 3, 2, padding=1)
    g = b.global_pool(d)
    f = b.flatten(g)
    b.linear(f, 1000)
    b.concat([c, d])
    b.pool(p, "avgpool", 2, 2)
    return graph_texts(b.build())


def test_builder_graph_texts() -> None:
    texts = _resnet_block()
    assert texts[:3] == [
        "input 1x64x56x56",
        "Conv 3x3 stride 2 groups 1, 64->128 ch, in 1x64x56x56, out 1x128x28x28",
        "Depthwise conv 5x5 stride 1, 128 ch, in 1x128x28x28, out 1x128x28x28",
    ]
    assert "Batch norm 64 ch, 1x64x56x56" in texts
    assert "ReLU, 1x64x56x56" in texts
    assert "Add of 2 inputs, 1x64x56x56" in texts
    assert "Max pool 3x3 stride 2, in 1x64x56x56, out 1x64x28x28" in texts
    assert "Global avg pool, in 1x128x28x28" in texts
    assert "Linear 128->1000" in texts
    assert "Concat of 2 inputs, out 1x256x28x28" in texts
    assert "Avg pool 2x2 stride 2, in 1x64x28x28, out 1x64x14x14" in texts


def test_graph_texts_one_per_node_in_order() -> None:
    b = GraphBuilder()
    x = b.input((1, 3, 32, 32))
    b.act(b.conv(x, 16, 3), "hardswish")
    g = b.build()
    texts = graph_texts(g)
    assert len(texts) == len(g)
    assert texts[0] == "input 1x3x32x32"
    assert texts[2] == "Hard swish, 1x16x32x32"


def test_matmul_linear_tokens_and_dilation() -> None:
    mm = Node(op="matmul", input_shapes=[(1, 3, 197, 64), (1, 3, 64, 197)], output_shapes=[(1, 3, 197, 197)])
    assert node_text(mm) == "MatMul 1x3x197x64 x 1x3x64x197"
    fc = Node(op="gemm", attrs={"in_features": 768, "out_features": 3072},
              input_shapes=[(1, 197, 768)], output_shapes=[(1, 197, 3072)])
    assert node_text(fc) == "Linear 768->3072, in 1x197x768"
    b = GraphBuilder()
    conv = b.conv(b.input((1, 8, 16, 16)), 8, 3, dilation=2)
    assert node_text(b.build().nodes[conv.node]).startswith("Conv 3x3 stride 1 groups 1 dilation 2, 8->8 ch")


def test_cell_ops_by_raw_name() -> None:
    assert node_text(Node(op="conv", raw_op="nor_conv_3x3")) == "ReLU-Conv 3x3-BN (NAS-Bench-201 cell op)"
    assert node_text(Node(op="identity", raw_op="skip_connect")) == "Skip connection"
    assert node_text(Node(op="zero", raw_op="none")) == "Zero (none)"
    # ops from other sources (no cell raw name) fall back to their op type
    assert node_text(Node(op="identity")) == "Skip connection"
    assert node_text(Node(op="zero")) == "Zero (none)"
    macro = Node(op="avgpool", raw_op="avg_pool_3x3", output_shapes=[(1, 16, 32, 32)])
    assert node_text(macro) == "Avg pool 3x3 (NAS-Bench-201 cell op), 16 ch, 1x16x32x32"


@pytest.mark.parametrize("op", OP_TYPES)
def test_every_vocab_op_has_text(op: str) -> None:
    bare = node_text(Node(op=op))
    shaped = node_text(Node(op=op, raw_op="Foo", input_shapes=[(1, 8, 4, 4), (1, 8, 4, 4)],
                            output_shapes=[(1, 8, 4, 4)]))
    assert bare.strip() and shaped.strip()
    assert len(shaped) < 120
    if op not in ("identity", "zero"):
        assert "4" in shaped, "shapes should be described when known"


def test_vocab_texts_are_distinct() -> None:
    texts = {node_text(Node(op=op, output_shapes=[(1, 8, 4, 4)])) for op in OP_TYPES}
    assert len(texts) == len(OP_TYPES)


def test_unknown_names_raw_op_and_helpers() -> None:
    node = Node(op="unknown", raw_op="NonMaxSuppression", input_shapes=[(1, 100, 4)], output_shapes=[(5, 3)])
    assert node_text(node) == "Unknown op NonMaxSuppression, in 1x100x4, out 5x3"
    assert node_text(Node(op="elementwise", raw_op="Neg", output_shapes=[(2, 3)])) == "Element-wise Neg, 2x3"
    assert fmt_shape(()) == "scalar"
    assert isinstance(TEMPLATE_VERSION, int)
