"""The ArchGraph IR: hand-checked costs, ordering, hashing and serialisation."""

from __future__ import annotations

import random

import pytest

from ledgformer.graph import ArchGraph, GraphBuilder, GraphError, Node
from ledgformer.graph.cost import annotate, conv_output_hw


def small_net(kernel: int = 3) -> ArchGraph:
    b = GraphBuilder(name="small", source="test")
    x = b.input((1, 64, 56, 56))
    y = b.act(b.batchnorm(b.conv(x, 128, kernel)))
    z = b.act(b.batchnorm(b.conv(x, 128, 1)))
    s = b.eltwise([y, z], "add")
    p = b.global_pool(s)
    b.linear(b.flatten(p), 10)
    return b.build()


def test_conv3x3_costs_hand_checked() -> None:
    b = GraphBuilder()
    x = b.input((1, 64, 56, 56))
    b.conv(x, 128, 3)
    conv = b.build().nodes[1]
    assert conv.output_shapes == [(1, 128, 56, 56)]
    assert conv.macs == 56 * 56 * 128 * 64 * 3 * 3 == 231_211_008
    assert conv.params == 128 * 64 * 9 == 73_728
    assert conv.flops == 2 * conv.macs
    assert conv.mem_bytes == 4 * (64 * 56 * 56 + 73_728 + 128 * 56 * 56)


def test_depthwise_and_strided_conv() -> None:
    b = GraphBuilder()
    x = b.input((1, 32, 112, 112))
    b.conv(x, 32, 3, stride=2, groups=32)
    dw = b.build().nodes[1]
    assert dw.output_shapes == [(1, 32, 56, 56)]
    assert dw.macs == 56 * 56 * 32 * 9
    assert dw.params == 32 * 9


def test_linear_batchnorm_pool_costs() -> None:
    b = GraphBuilder()
    x = b.input((4, 512))
    b.linear(x, 1000)
    fc = b.build().nodes[1]
    assert fc.macs == 4 * 512 * 1000
    assert fc.params == 512 * 1000 + 1000
    assert fc.flops == 2 * fc.macs + 4 * 1000

    b = GraphBuilder()
    x = b.input((1, 8, 10, 10))
    bn = b.batchnorm(x)
    b.pool(bn, "maxpool", 3, 2, 1)
    g = b.build()
    assert g.nodes[1].params == 16 and g.nodes[1].macs == 0
    assert g.nodes[1].mem_bytes == 4 * (800 + 16 + 16 + 800)
    assert g.nodes[2].output_shapes == [(1, 8, 5, 5)]
    assert g.nodes[2].flops == 8 * 5 * 5 * 9


def test_batched_matmul_macs() -> None:
    node = annotate(Node("matmul", input_shapes=[(2, 3, 197, 64), (2, 3, 64, 197)],
                         output_shapes=[(2, 3, 197, 197)]))
    assert node.macs == 2 * 3 * 197 * 197 * 64
    assert node.params == 0


def test_conv_output_size_formula() -> None:
    assert conv_output_hw((224, 224), (7, 7), (2, 2), (3, 3, 3, 3), (1, 1)) == (112, 112)
    assert conv_output_hw((56, 56), (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)) == (56, 56)


def test_totals_and_op_counts() -> None:
    g = small_net()
    assert g.macs == sum(n.macs for n in g.nodes)
    assert g.op_counts()["conv"] == 2
    assert g.unknown_ops() == {}
    assert g.meta["input_shape"] == (1, 64, 56, 56)


def test_nodes_are_topologically_sorted() -> None:
    nodes = [Node("relu", name="b"), Node("input", name="a"), Node("relu", name="c")]
    g = ArchGraph(nodes, [(1, 0), (0, 2)])
    assert [n.name for n in g.nodes] == ["a", "b", "c"]
    assert g.edges == [(0, 1), (1, 2)]
    assert g.parents() == [[], [0], [1]]
    assert g.children() == [[1], [2], []]


def test_cycle_and_bad_edges_are_errors() -> None:
    with pytest.raises(GraphError, match="cycle"):
        ArchGraph([Node("relu"), Node("relu")], [(0, 1), (1, 0)])
    with pytest.raises(GraphError, match="invalid"):
        ArchGraph([Node("relu")], [(0, 3)])
    with pytest.raises(GraphError, match="vocabulary"):
        ArchGraph([Node("Conv")], [])


def test_unknown_ops_are_counted_not_dropped() -> None:
    g = ArchGraph([Node("input"), Node("unknown", raw_op="MyOp"), Node("unknown", raw_op="MyOp")],
                  [(0, 1), (1, 2)])
    assert len(g) == 3
    assert g.unknown_ops() == {"MyOp": 2}


def test_json_round_trip_is_lossless() -> None:
    g = small_net()
    g2 = ArchGraph.from_json(g.to_json())
    assert g2.to_dict() == g.to_dict()
    assert g2.nodes[1].attrs["kernel"] == (3, 3)
    assert g2.content_hash() == g.content_hash()


def test_json_version_mismatch_is_clear() -> None:
    d = small_net().to_dict()
    d["ir_version"] = 999
    with pytest.raises(GraphError, match="version 999"):
        ArchGraph.from_dict(d)


def test_hash_ignores_names_and_node_order() -> None:
    g = small_net()
    order = list(range(len(g)))
    random.Random(0).shuffle(order)
    pos = {old: new for new, old in enumerate(order)}
    renamed = [Node(**{**vars(g.nodes[i]), "name": f"n{k}"}) for k, i in enumerate(order)]
    shuffled = ArchGraph(renamed, [(pos[s], pos[d]) for s, d in g.edges], g.meta)
    assert shuffled.content_hash() == g.content_hash()


def test_hash_changes_with_kernel_and_wiring() -> None:
    g = small_net()
    assert small_net(kernel=5).content_hash() != g.content_hash()
    rewired = ArchGraph(g.nodes, [*g.edges, (0, len(g) - 1)], g.meta)
    assert rewired.content_hash() != g.content_hash()


def test_networkx_export() -> None:
    g = small_net()
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == len(g)
    assert nxg.number_of_edges() == len(g.edges)
    assert nxg.nodes[1]["op"] == "conv"
    assert nxg.graph["name"] == "small"
