"""NAS-Bench-101: pruning, channel splitting, official parameter counts."""

from __future__ import annotations

import json

import pytest

from ledgformer.spaces import nb101
from ledgformer.spaces.nb101 import CONV1X1, CONV3X3, INPUT, MAXPOOL3X3, OUTPUT

# the Inception-like cell of the nasbench README
INCEPTION = (
    [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT],
)


def test_prune_hand_checked():
    # vertex 2 has no input path (dangling source), vertex 4 reaches no output (dead end)
    matrix = [[0, 1, 0, 0, 0, 0, 0],
              [0, 0, 0, 1, 1, 0, 0],
              [0, 0, 0, 1, 0, 0, 0],
              [0, 0, 0, 0, 0, 1, 0],
              [0, 0, 0, 0, 0, 0, 0],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0, 0, 0]]
    ops = [INPUT, CONV3X3, MAXPOOL3X3, CONV1X1, CONV3X3, MAXPOOL3X3, OUTPUT]
    m, pops = nb101.prune(matrix, ops)
    assert pops == [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT]
    assert m == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    g = nb101.cell_graph(matrix, ops)
    assert [n.op for n in g.nodes] == ["input", "conv", "conv", "maxpool", "output"]
    assert g.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_invalid_cells_raise():
    with pytest.raises(nb101.CellSpecError):  # output unreachable
        nb101.prune([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT])
    with pytest.raises(nb101.CellSpecError):  # bad op
        nb101.prune([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT])
    with pytest.raises(nb101.CellSpecError):  # not upper triangular
        nb101.prune([[0, 1, 0], [1, 0, 1], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT])


def test_vertex_channels_split_like_official():
    # three vertices concatenated into 128 output channels: 43 + 43 + 42; vertex 3 feeds vertex 4
    m, _ = nb101.prune(*INCEPTION)
    assert nb101.vertex_channels(128, 128, m) == [128, 32, 32, 32, 32, 32, 128]
    three = [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    assert nb101.vertex_channels(64, 128, three) == [64, 43, 43, 42, 128]


def test_inception_cell_trainable_parameters():
    # nasbench API query of this cell reports trainable_parameters: 2694282
    g = nb101.network_graph(*INCEPTION)
    assert g.params == 2_694_282
    assert g.meta["input_shape"] == (1, 3, 32, 32) and g.meta["source"] == "nb101"
    assert g.nodes[-1].output_shapes[0] == (1, 10)


def test_truncation_becomes_slice():
    # vertex 1 (wide, feeds vertex 2 and output) is truncated to vertex 2's width
    matrix = [[0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    g = nb101.network_graph(matrix, [INPUT, CONV3X3, CONV3X3, OUTPUT])
    assert g.op_counts().get("slice", 0) == 0  # both 64-wide: no slice needed
    matrix = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    g = nb101.network_graph(matrix, [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT])
    assert g.op_counts()["slice"] == 9  # 43-wide vertex 1 truncated to 42 for vertex 3, per cell


def test_params_match_naslib_zero_cost_file(data_root):
    zc = json.loads((data_root / "naslib" / "zc_nasbench101.json").read_text())["nasbench101"]["cifar10"]
    for key, row in list(zc.items())[:200]:
        matrix, ops = nb101.decode_naslib(key)
        assert ops[0] == INPUT and ops[-1] == OUTPUT
        assert nb101.network_graph(matrix, ops).params == round(row["params"] * 1e6), key
