"""NAS-Bench-201: string/tuple/index round trips, cell wiring, network costs vs published figures."""

from __future__ import annotations

import json
import time

import pytest

from ledgformer.spaces import nb201

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_round_trips_and_official_index_order(data_root):
    import torch

    str2idx = torch.load(data_root / "help" / "nasbench201" / "str_arch2idx.pt")
    archs = nb201.all_arch_strings()
    assert len(archs) == len(set(archs)) == 15625
    assert all(str2idx[a] == i for i, a in enumerate(archs))
    for a in archs:
        assert nb201.ops_to_arch_str(nb201.arch_str_to_ops(a)) == a
        assert nb201.naslib_to_str(nb201.str_to_naslib(a)) == a
    # NASLib's own arch list: every tuple maps onto an official string
    naslib = json.loads((data_root / "naslib" / "archs_nasbench201.json").read_text())
    assert {nb201.naslib_to_str(eval(t)) for t in naslib.values()} <= set(str2idx)


def test_naslib_tuple_hand_checked():
    # NASLib edge order 1->2, 1->3, 1->4, 2->3, 2->4, 3->4; ops 0 skip, 1 none, 2 conv3, 3 conv1, 4 pool
    assert nb201.naslib_to_str((2, 3, 0, 1, 4, 2)) == MIXED
    assert nb201.str_to_naslib(MIXED) == (2, 3, 0, 1, 4, 2)


@pytest.mark.parametrize("bad", ["", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_strings_raise(bad):
    with pytest.raises(nb201.ArchStringError):
        nb201.arch_str_to_ops(bad)


def test_cell_graph_adjacency_hand_checked():
    g = nb201.cell_graph(MIXED)
    ops = ["input", "conv", "conv", "zero", "identity", "avgpool", "conv", "output"]
    assert [n.op for n in g.nodes] == ops
    assert [n.raw_op for n in g.nodes[1:7]] == list(nb201.arch_str_to_ops(MIXED))
    assert g.nodes[1].attrs["kernel"] == (3, 3) and g.nodes[2].attrs["kernel"] == (1, 1)
    # NAR-Former / TNASP wiring
    assert g.edges == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)]
    assert g.meta["source"] == "nb201" and g.meta["name"] == MIXED
    # without the edges of the 'none' op (node 3, edge 1->2): the wiring of the real data flow
    flow = nb201.cell_graph(MIXED, none_edges=False)
    assert [n.op for n in flow.nodes] == ops
    assert flow.edges == [(0, 1), (0, 2), (0, 4), (1, 5), (2, 6), (4, 7), (5, 7), (6, 7)]
    empty = nb201.cell_graph("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", none_edges=False)
    assert len(empty) == 8 and empty.edges == []


def _torch_tiny_network(num_classes: int = 10):
    """Reference: the official TinyNetwork for the all-nor_conv_3x3 cell (parameters only)."""
    from torch import nn

    def rcb(ci, co, k, s):
        return nn.Sequential(nn.ReLU(), nn.Conv2d(ci, co, k, s, k // 2, bias=False), nn.BatchNorm2d(co))

    layers = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)]
    c_prev = 16
    for c in (16, 32, 64):
        if c != c_prev:
            shortcut = [nn.AvgPool2d(2, 2), nn.Conv2d(c_prev, c, 1, bias=False)]
            layers += [rcb(c_prev, c, 3, 2), rcb(c, c, 3, 1), *shortcut]
        layers += [rcb(c, c, 3, 1) for _ in range(5 * 6)]
        c_prev = c
    layers += [nn.BatchNorm2d(64), nn.Linear(64, num_classes)]
    return nn.ModuleList(layers)


def test_all_conv3x3_costs_match_published_and_reference():
    g = nb201.network_graph(ALL_CONV3)
    ref = sum(p.numel() for p in _torch_tiny_network().parameters())
    assert g.params == ref == 1_531_546  # NAS-Bench-201: 1.53 M
    # NAS-Bench-201 paper: FLOPs range 7.78 M .. 220.11 M on CIFAR-10 (conv + linear MACs)
    assert int(g.macs / 1e4) / 100 == 220.11
    none = nb201.network_graph(nb201.ops_to_arch_str(["none"] * 6))
    assert int(none.macs / 1e4) / 100 == 7.78
    assert g.meta["input_shape"] == (1, 3, 32, 32) and g.meta["batch_size"] == 1
    assert g.meta["source"] == "nb201" and g.meta["name"] == ALL_CONV3
    # ImageNet16-120 variant: 16x16 input, 120 classes
    small = nb201.network_graph(ALL_CONV3, num_classes=120, input_size=16)
    assert small.params == ref + 110 * 65 and small.nodes[-1].output_shapes[0] == (1, 120)


def test_params_match_naslib_for_all_stored_archs(data_root):
    zc = json.loads((data_root / "naslib" / "zc_nasbench201.json").read_text())["nasbench201"]
    for dataset, classes, size in [("cifar10", 10, 32), ("ImageNet16-120", 120, 16)]:
        for key, row in list(zc[dataset].items())[:150]:
            g = nb201.network_graph(nb201.naslib_to_str(eval(key)), num_classes=classes, input_size=size)
            assert g.params == round(row["params"] * 1e6), (dataset, key)


def test_none_edges_are_zero_nodes_or_dropped():
    kept = nb201.network_graph(MIXED)
    dropped = nb201.network_graph(MIXED, drop_none=True)
    assert kept.op_counts()["zero"] == 15 and "zero" not in dropped.op_counts()
    assert kept.macs == dropped.macs and kept.params == dropped.params
    assert len(kept) == len(dropped) + 15 * 2  # each none edge: one zero node and one add
    # all-none cells: the dropped graph keeps one zero node per cell as the cell output
    dead = nb201.network_graph(nb201.ops_to_arch_str(["none"] * 6), drop_none=True)
    assert dead.op_counts()["zero"] == 15
    # a chain of skips: each cell is three identities, no adds and no zeros once none is dropped
    chain = "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    counts = nb201.network_graph(chain, drop_none=True).op_counts()
    assert counts["identity"] == 45 and "zero" not in counts and counts["add"] == 2  # reductions only
    # node 2 only reads a none edge, so node 3 (skip from node 2) is dead: the cell outputs zeros
    dead3 = nb201.network_graph("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
                                drop_none=True)
    assert dead3.op_counts()["zero"] == 15


def test_output_cut_off_hand_checked():
    """Cell node 3 is reached only through live (non-``none``) edges from live nodes."""
    assert nb201.output_cut_off("|none~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|")
    assert not nb201.output_cut_off("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|")
    assert not nb201.output_cut_off("|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|")
    # every path must avoid `none`: 5^6 archs, of which the cut-off ones number 341
    assert sum(map(nb201.output_cut_off, nb201.all_arch_strings())) == 341


def test_batch_size_scales_macs_not_params():
    one, eight = nb201.network_graph(MIXED), nb201.network_graph(MIXED, batch_size=8)
    assert eight.macs == 8 * one.macs and eight.params == one.params
    assert eight.meta["input_shape"] == (8, 3, 32, 32)


def test_build_speed_reported():
    archs = nb201.all_arch_strings()[:300]
    t0 = time.perf_counter()
    for a in archs:
        nb201.network_graph(a)
    per_graph = (time.perf_counter() - t0) / len(archs)
    print(f"NB201 network_graph: {per_graph * 1e3:.2f} ms/arch -> {per_graph * 15625:.0f} s for 15,625")
    assert per_graph < 0.05  # loose: far from the seconds-per-arch of a torch export


@pytest.mark.parametrize(("arch", "live"), [
    # every path into node 3 is 'none': nothing reaches the output
    ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
     "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
    # 0->1 is 'none': node 1 only sees zeros, so the ops reading it (1->2, 1->3) are dead
    ("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|",
     "|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"),
    # 2->3 is 'none': nothing reads node 2, so the ops writing it (0->2, 1->2) are dead
    ("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
     "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"),
    (MIXED, MIXED),  # 1->2 'none' but node 2 has a live input and output: nothing dead
    (ALL_CONV3, ALL_CONV3),
])
def test_live_arch_hand_checked(arch: str, live: str) -> None:
    assert nb201.live_arch(arch) == live
    assert nb201.live_arch(live) == live  # idempotent


def test_live_arch_classes_of_the_space() -> None:
    """15,625 archs -> 9,445 functionally distinct cells; the 341 cut-off ones share one."""
    archs = nb201.all_arch_strings()
    live = {a: nb201.live_arch(a) for a in archs}
    assert len(set(live.values())) == 9445
    cut = [a for a in archs if nb201.output_cut_off(a)]
    assert len(cut) == 341 and {live[a] for a in cut} == {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"}
