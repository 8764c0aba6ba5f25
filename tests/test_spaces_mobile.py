"""FBNet (HW-NAS-Bench/HELP), OFA MobileNetV3 (HELP) and Accel-NASBench (MnasNet) networks."""

from __future__ import annotations

import json
import statistics
import tarfile

import pytest

from ledgformer.errors import LedgformerError
from ledgformer.graph.cost import numel
from ledgformer.spaces import fbnet, make_divisible, mnasnet, ofa


def _torch_fbnet_params(names: list[str]) -> int:
    """Reference parameter count of HW-NAS-Bench's FBNet_Infer (CIFAR setting)."""
    from torch import nn

    def block(ci, co, name, stride):
        if name == "skip":
            return nn.Sequential(nn.Conv2d(ci, co, 1, stride, bias=False), nn.BatchNorm2d(co)) \
                if stride != 1 or ci != co else nn.Identity()
        k, e, g = fbnet.parse_block(name)
        m = ci * e
        return nn.Sequential(nn.Conv2d(ci, m, 1, groups=g, bias=False), nn.BatchNorm2d(m),
                             nn.Conv2d(m, m, k, stride, k // 2, groups=m, bias=False), nn.BatchNorm2d(m),
                             nn.Conv2d(m, co, 1, groups=g, bias=False), nn.BatchNorm2d(co))

    layers, c, i = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)], 16, 0
    for stage, (n, co) in enumerate(zip(fbnet.STAGE_LAYERS, fbnet.STAGE_CHANNELS, strict=True)):
        for j in range(n):
            layers.append(block(c, co, names[i], fbnet.SETTINGS["cifar100"][1][stage] if j == 0 else 1))
            c, i = co, i + 1
    layers += [nn.Conv2d(352, 1504, 1, bias=False), nn.BatchNorm2d(1504), nn.Linear(1504, 100)]
    return sum(p.numel() for p in nn.ModuleList(layers).parameters())


def test_fbnet_metainfo_and_reference_params(data_root):
    import torch

    meta = torch.load(data_root / "help" / "fbnet" / "metainfo.pt")
    assert meta["dataset"] == "cifar100" and meta["num_classes"] == 100
    archs = torch.load(data_root / "help" / "fbnet" / "arch.pt")
    for entry, idx in zip(meta["arch"][:3], archs[:3], strict=True):
        assert entry["op_idx_list"] == idx
        assert [fbnet.LAYER_CHOICES[i] for i in idx] == entry["arch_str"]
        g = fbnet.network_graph(idx)
        assert g.params == _torch_fbnet_params(entry["arch_str"])
        assert fbnet.network_graph(entry["arch_str"]).macs == g.macs
    macs = [fbnet.network_graph(a).macs / 1e6 for a in archs[:100]]
    assert min(macs) > 20 and max(macs) < 150, (min(macs), max(macs))


def test_fbnet_shapes_and_errors():
    g = fbnet.network_graph([8] * 22)  # all skip: stride/channel changes become 1x1 convs
    assert g.meta["input_shape"] == (1, 3, 32, 32) and g.meta["source"] == "fbnet"
    assert g.op_counts()["conv"] == 1 + 6 + 1  # stem, 6 channel-changing stage entries, header
    g = fbnet.network_graph(["k3_e1_g2"] * 22, dataset="imagenet")
    assert g.nodes[-1].output_shapes[0] == (1, 1000) and g.op_counts()["transpose"] == 22
    with pytest.raises(LedgformerError):
        fbnet.network_graph([9] * 22)
    with pytest.raises(LedgformerError):
        fbnet.network_graph([0] * 21)


def test_make_divisible_matches_mobilenet_rounding():
    assert [make_divisible(v * 1.2) for v in (16, 24, 40, 80, 112, 160, 960, 1280)] == \
        [24, 32, 48, 96, 136, 192, 1152, 1536]
    assert make_divisible(32 * 6) == 192 and make_divisible(3) == 8


def test_ofa_subnets_sane(data_root):
    import torch

    meta = torch.load(data_root / "help" / "ofa" / "ofa_archs.pt", weights_only=False)
    assert meta["dataset"] == "imagenet" and len(meta["arch"]) == 5000
    graphs = [ofa.network_graph(c) for c in meta["arch"][:60]]
    macs = [g.macs / 1e6 for g in graphs]
    assert min(macs) > 100 and max(macs) < 700 and 200 < statistics.median(macs) < 400, macs
    for cfg, g in zip(meta["arch"], graphs, strict=False):
        r = int(cfg["r"])
        assert g.meta["input_shape"] == (1, 3, r, r)
        final = next(n for n in g.nodes if n.name == "final_expand.conv")
        assert final.output_shapes[0] == (1, 1152, -(-r // 32), -(-r // 32))
        se_stages = sum(cfg["d"][s] for s in (1, 3, 4))
        assert sum(n.name.endswith(".se.mul") for n in g.nodes) == se_stages


def test_ofa_largest_subnet_width_1_0_matches_published_size():
    # OFA paper / model zoo: the largest w1.0 subnet has 7.7 M parameters
    big = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
    assert round(ofa.network_graph(big, width_mult=1.0).params / 1e6, 1) == 7.7
    with pytest.raises(LedgformerError):
        ofa.network_graph({"ks": [9] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224})


def _anb_rows(data_root, n: int) -> list[dict]:
    rows = []
    with tarfile.open(data_root / "accel_nasbench" / "anb_dataset_jsons.tar.gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                rows.append(json.load(tar.extractfile(member)))
                if len(rows) == n:
                    break
    return rows


def test_mnasnet_agrees_with_accel_nasbench_fields(data_root):
    rel_macs = []
    for row in _anb_rows(data_root, 300):
        g = mnasnet.network_graph(row)
        assert g.params == round(row["model_info"]["params"] * 1e6)
        # the stored "macs" also count 4 per BN output element, 1 per sigmoid output and 1 per
        # global-pool input element (their counter); with those added the figures agree
        extra = sum(4 * numel(n.output_shapes[0]) for n in g.nodes if n.op == "batchnorm") \
            + sum(numel(n.output_shapes[0]) for n in g.nodes if n.op == "sigmoid") \
            + sum(numel(n.input_shapes[0]) for n in g.nodes if n.op == "global_avgpool")
        stored = row["model_info"]["macs"] * 1e6
        assert abs(g.macs + extra - stored) / stored < 1e-4
        rel_macs.append(g.macs / stored - 1)
    med = statistics.median(rel_macs)
    print(f"Accel-NASBench: pure conv/linear MACs vs stored: median rel. error {med:+.4f}")
    assert -0.15 < med < 0


def test_mnasnet_efficientnet_b0_and_errors():
    b0 = {f"block{i}_{k}": v for i, (e, kk, n) in enumerate(
        [(1, 3, 1), (6, 3, 2), (6, 5, 2), (6, 3, 3), (6, 5, 3), (6, 5, 4), (6, 3, 1)])
        for k, v in (("e", e), ("k", kk), ("l", n), ("se", True))}
    g = mnasnet.network_graph(b0)
    assert g.params == 5_288_548  # torchvision efficientnet_b0
    assert round(g.macs / 1e6) == 386  # EfficientNet-B0: 0.39 B FLOPs
    assert "relu" in mnasnet.network_graph(b0, platform="fpga").op_counts()
    with pytest.raises(LedgformerError):
        mnasnet.network_graph({"block0_e": 1})
