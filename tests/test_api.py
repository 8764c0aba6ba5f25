"""The user API (``ledgformer.Predictor``) on tiny untrained / quickly fitted models (onehot encoder)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import ledgformer
from ledgformer.api import Predictor, shipped_predictors
from ledgformer.api.inputs import default_arch_form
from ledgformer.embed.encoders import OneHotEncoder
from ledgformer.errors import LedgformerError
from ledgformer.graph.torch_import import export_onnx
from ledgformer.spaces import nb201
from ledgformer.train.checkpoint import read_checkpoint

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = {"d_model": 16, "n_layers": 2, "n_heads": 2, "dyn_rank": 4}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    path.write_bytes(export_onnx(tiny_net(), (1, 3, 16, 16)).SerializeToString())
    return path


def latency_predictor(hw_layers: int = 0, **kw) -> Predictor:
    torch.manual_seed(0)
    return Predictor.create("ledgformer", task="latency", encoder="onehot", hw_layers=hw_layers, **TINY, **kw)


@pytest.fixture
def lat() -> Predictor:
    return latency_predictor()


def test_predicts_every_input_kind(lat: Predictor, onnx_file: Path) -> None:
    graph = nb201.network_graph(ARCH)
    from_graph = lat.predict(graph, "help/pixel3")
    from_string = lat.predict(ARCH, "help/pixel3")
    from_tuple = lat.predict(nb201.str_to_naslib(ARCH), "help/pixel3")
    from_onnx = lat.predict(str(onnx_file), "help/pixel3")
    from_module = lat.predict(tiny_net(), "help/pixel3", input_shape=(1, 3, 16, 16))
    for v in (from_graph, from_string, from_onnx, from_module):
        assert isinstance(v, float) and v > 0 and np.isfinite(v)
    # the same network by three routes, and the module that the ONNX file was exported from
    assert from_graph == pytest.approx(from_string, rel=1e-6) == pytest.approx(from_tuple, rel=1e-6)
    assert from_onnx == pytest.approx(from_module, rel=1e-6)


def test_list_equals_singles_and_rank_follows_predict(lat: Predictor) -> None:
    archs = nb201.all_arch_strings()[:12]
    batch = lat.predict(archs, "help/pixel3")
    fresh = latency_predictor()  # no cache: every single call featurises and encodes again
    singles = np.array([fresh.predict(a, "help/pixel3") for a in archs])
    assert batch.shape == (12,) and np.all(batch > 0)
    np.testing.assert_allclose(batch, singles, rtol=1e-5)
    order = lat.rank(archs, "help/pixel3")
    assert sorted(order.tolist()) == list(range(12))
    assert np.all(np.diff(batch[order]) >= 0)  # fastest first


def test_several_cards_encode_each_graph_once(lat: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    archs = nb201.all_arch_strings()[:5]
    cards = ["help/pixel3", "help/1080ti_32", "help/eyeriss"]
    calls = []
    encode = lat.model.encode
    monkeypatch.setattr(lat.model, "encode", lambda batch: calls.append(len(batch)) or encode(batch))
    table = lat.predict(archs, cards)
    assert table.shape == (5, 3) and sum(calls) == 5
    for j, card in enumerate(cards):  # another device: readout only, same numbers
        np.testing.assert_allclose(lat.predict(archs, card), table[:, j], rtol=1e-6)
    assert sum(calls) == 5
    assert lat.predict(archs[0], cards).shape == (3,)


def test_hardware_blocks_keep_graph_tensors() -> None:
    """hw_layers > 0: the card token joins the last block, so decode needs the graph structure."""
    p = latency_predictor(hw_layers=1)
    archs = nb201.all_arch_strings()[:4]
    both = p.predict(archs, ["help/pixel3", "help/raspi4"])
    fresh = latency_predictor(hw_layers=1)
    np.testing.assert_allclose(both[:, 1], [fresh.predict(a, "help/raspi4") for a in archs], rtol=1e-5)


def test_hardware_as_dict_file_and_card(lat: Predictor, tmp_path: Path) -> None:
    from ledgformer.hardware import load_card

    card = load_card("help/pixel3")
    path = tmp_path / "phone.yaml"
    path.write_text("base: help/pixel3\nname: my-phone\n")
    ref = lat.predict(ARCH, card)
    assert lat.predict(ARCH, card.to_dict()) == pytest.approx(ref)
    assert lat.predict(ARCH, str(path)) == pytest.approx(ref)  # same card fields: name is not read


def test_breakdown_shares_sum_to_one(lat: Predictor) -> None:
    graph = nb201.network_graph(ARCH)
    rows = lat.breakdown(graph, "help/pixel3")
    assert len(rows) == len(graph)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert sum(r["ms"] for r in rows) == pytest.approx(lat.predict(graph, "help/pixel3"), rel=1e-5)
    assert rows[0]["share"] == max(r["share"] for r in rows)
    assert {r["index"] for r in rows} == set(range(len(graph)))


def test_clear_errors(lat: Predictor) -> None:
    with pytest.raises(LedgformerError, match="pass hardware="):
        lat.predict(ARCH)
    with pytest.raises(LedgformerError, match="unknown hardware card 'help/no_such_device'"):
        lat.predict(ARCH, "help/no_such_device")
    with pytest.raises(LedgformerError, match="hardware must be a card name"):
        lat.predict(ARCH, 42)
    with pytest.raises(LedgformerError, match="input_shape"):
        lat.predict(tiny_net(), "help/pixel3")
    with pytest.raises(LedgformerError, match="cannot predict for a float"):
        lat.predict(1.5, "help/pixel3")
    with pytest.raises(LedgformerError, match="NAS-Bench-201"):
        lat.predict("|nor_conv_3x3~0|+|bogus~0|", "help/pixel3")
    with pytest.raises(LedgformerError, match="single hardware card"):
        lat.rank([ARCH], ["help/pixel3", "help/raspi4"])


def test_unknown_predictor_lists_the_shipped_ones() -> None:
    with pytest.raises(LedgformerError, match="unknown predictor 'no-such-predictor'") as err:
        Predictor.load("no-such-predictor")
    for name in shipped_predictors():
        assert name in str(err.value)


def test_accuracy_fit_query_rank_and_hardware_refused() -> None:
    archs = nb201.all_arch_strings()[:40]
    # a learnable target: accuracy grows with the number of 3x3 convolutions in the cell
    y = np.array([50 + 8 * nb201.arch_str_to_ops(a).count("nor_conv_3x3") for a in archs], float)
    torch.manual_seed(0)
    p = Predictor.create("ledgformer", task="accuracy", encoder="onehot", **TINY)
    p.fit(archs, y, epochs=60, lr=3e-3, batch_size=16, eval_every=5)
    pred = p.query(archs)
    assert pred.shape == (40,)
    assert np.corrcoef(pred, y)[0, 1] > 0.9
    order = p.rank(archs)
    assert np.all(np.diff(pred[order]) <= 0)  # most accurate first
    with pytest.raises(LedgformerError, match="does not depend on hardware"):
        p.predict(ARCH, hardware="help/pixel3")
    with pytest.raises(LedgformerError, match="unknown training option"):
        p.fit(archs, y, epochz=3)
    # NAS-Bench-101 cells are accepted too (as cell graphs, like the NB201 ones here)
    cell = {"matrix": [[0, 1, 1], [0, 0, 1], [0, 0, 0]], "ops": ["input", "conv3x3-bn-relu", "output"]}
    assert np.isfinite(p.predict(cell))


def test_an_ensemble_fits_each_member_and_predicts_their_mean(tmp_path) -> None:
    archs = nb201.all_arch_strings()[:40]
    y = np.array([50 + 8 * nb201.arch_str_to_ops(a).count("nor_conv_3x3") for a in archs], float)
    torch.manual_seed(0)
    spec = {"name": "ledgformer", **TINY}
    p = Predictor.create("ensemble", task="accuracy", encoder="onehot",
                         members=[spec, {"name": "gin", "d_model": 16, "n_layers": 2}])
    p.fit(archs, y, epochs=60, lr=3e-3, batch_size=16, eval_every=5)
    pred = p.query(archs)
    assert np.corrcoef(pred, y)[0, 1] > 0.9
    alone = []
    for m in p.model.members:  # each member learned the target on its own (untrained: ~0)
        one = Predictor(m, name="member", encoder=p.encoder, model_name="x", model_config={}, config=p.config)
        alone.append(one.query(archs))
        assert np.corrcoef(alone[-1], y)[0, 1] > 0.8
    assert np.allclose(pred, np.mean(alone, 0), atol=1e-4)
    assert np.allclose(Predictor.load(p.save(tmp_path / "ens.pt")).query(archs), pred, atol=1e-5)


def test_live_cell_predictor_gives_functionally_identical_cells_one_prediction(tmp_path) -> None:
    """A checkpoint trained with data.live_cells reads NB201 archs as live cells: two archs that
    differ only in a dead op (0->1 is 'none', so 1->2 only sees zeros) get the same prediction."""
    a = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    b = "|none~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    torch.manual_seed(0)
    p = Predictor.create("ledgformer", task="accuracy", encoder="onehot", **TINY)
    assert p.arch_form == "cell" and p.predict(a) != p.predict(b)
    live = Predictor(p.model, name="live", encoder=p.encoder, model_name=p.model_name,
                     model_config=p.model_config, config={**p.config, "data": {"live_cells": True}})
    assert live.arch_form == "live-cell"  # as a training run's checkpoint says it
    live = Predictor.load(live.save(tmp_path / "live.pt"))
    assert live.arch_form == "live-cell"
    assert live.predict(a) == live.predict(b) == live.predict(nb201.live_arch(a))
    # data.none_edges false: the live cell without the edges of its 'none' ops
    flow = Predictor(p.model, name="flow", encoder=p.encoder, model_name=p.model_name,
                     model_config=p.model_config,
                     config={**p.config, "data": {"live_cells": True, "none_edges": False}})
    flow = Predictor.load(flow.save(tmp_path / "flow.pt"))
    assert flow.arch_form == "live-flow-cell"
    wired = nb201.cell_graph(nb201.live_arch(a), none_edges=False)
    assert flow.predict(a) == flow.predict(b) == flow.predict(wired) != live.predict(a)


def test_latency_fit_per_example_cards() -> None:
    # small graphs (cells) keep it fast; latency = (1 + number of 3x3 convs) x a per-card factor
    archs = nb201.all_arch_strings()[:24]
    graphs = [nb201.cell_graph(a) for a in archs]
    base = np.array([1.0 + nb201.arch_str_to_ops(a).count("nor_conv_3x3") for a in archs])
    cards = ["help/pixel3"] * 24 + ["help/1080ti_32"] * 24
    y = np.concatenate([3 * base, base])
    p = latency_predictor()
    p.fit(graphs * 2, y, hardware=cards, epochs=150, lr=3e-3, batch_size=48, valid_fraction=0)
    fast, slow = p.predict(graphs, "help/1080ti_32"), p.predict(graphs, "help/pixel3")
    assert np.mean(slow / fast) > 2  # it learned which card is slower (truth: 3x)
    assert np.corrcoef(np.log(slow), np.log(3 * base))[0, 1] > 0.9
    with pytest.raises(LedgformerError, match="one per arch"):
        p.fit(archs, base, hardware=["help/pixel3", "help/raspi4"])
    with pytest.raises(LedgformerError, match="positive"):
        p.fit(archs, -base, hardware="help/pixel3")


def test_save_load_round_trip_and_version_check(lat: Predictor, tmp_path: Path) -> None:
    lat.devices = {"train": ["help/pixel3"], "test": ["help/pixel2"]}
    path = lat.save(tmp_path / "tiny.pt")
    back = Predictor.load(path)
    assert back.task == "latency" and back.devices == lat.devices
    assert back.predict(ARCH, "help/raspi4") == pytest.approx(lat.predict(ARCH, "help/raspi4"), rel=1e-6)
    ckpt = read_checkpoint(path)
    ckpt["versions"]["template_version"] = -1
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(LedgformerError, match="template_version: checkpoint -1"):
        Predictor.load(tmp_path / "old.pt")


def test_checkpoint_of_an_older_card_feature_prefix_still_loads(lat: Predictor, tmp_path: Path) -> None:
    """A version-1 checkpoint (card features = the first 47 of today's) loads with zero weights for
    the new columns and predicts as before; a classical model reading stored cards is refused."""
    from ledgformer.hardware.card import FEATURE_NAMES, FEATURE_PREFIXES

    with torch.no_grad():
        lat.model.hw_mlp[0].weight[:, FEATURE_PREFIXES[1]:] = 0.0  # as if trained without them
    path = lat.save(tmp_path / "now.pt")
    ckpt = read_checkpoint(path)
    ckpt["versions"]["card_feature_version"] = 1
    key = "hw_mlp.0.weight"
    ckpt["state_dict"][key] = ckpt["state_dict"][key][:, :FEATURE_PREFIXES[1]]
    torch.save(ckpt, tmp_path / "v1.pt")
    back = Predictor.load(tmp_path / "v1.pt")
    assert back.model.hw_mlp[0].weight.shape[1] == len(FEATURE_NAMES)
    assert back.predict(ARCH, "help/raspi4") == pytest.approx(lat.predict(ARCH, "help/raspi4"), rel=1e-5)
    ckpt["versions"]["card_feature_version"], ckpt["model_name"] = 1, "flops"
    ckpt["model_config"], ckpt["state_dict"] = {"task": "latency"}, {}
    torch.save(ckpt, tmp_path / "flops_v1.pt")
    with pytest.raises(LedgformerError, match="card_feature_version: checkpoint 1"):
        Predictor.load(tmp_path / "flops_v1.pt")


def test_cached_texts_never_run_the_encoder(lat: Predictor, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    encode = OneHotEncoder.encode
    monkeypatch.setattr(OneHotEncoder, "encode",
                        lambda self, texts: calls.append(len(texts)) or encode(self, texts))
    path = lat.save(tmp_path / "tiny.pt")
    first = Predictor.load(path).predict(ARCH, "help/pixel3")
    assert calls  # node texts and the card text were embedded once
    calls.clear()
    again = Predictor.load(path)  # a new process would start like this: empty memory, warm disk
    assert again.predict(ARCH, "help/pixel3") == pytest.approx(first)
    assert calls == []


def test_nearest_platforms_and_measured_error(lat: Predictor) -> None:
    lat.devices = {"train": ["help/pixel3", "help/1080ti_32", "help/silver_4114"],
                   "test": ["help/pixel2", "help/titan_rtx_256"]}
    lat.metrics = {"test.per_device.pixel2.mape": 12.0, "test.per_device.pixel2.spearman": 0.8,
                   "test.per_device.titan_rtx_256.mape": 30.0, "test.mape": 21.0}
    near = lat.nearest_platforms("help/samsung_s7", k=2)
    assert near[0]["card"] == "help/pixel3"  # a phone is closest to a phone
    assert near[0]["similarity"] >= near[1]["similarity"]
    err = lat.measured_error("help/samsung_s7")
    assert err is not None and "mobile-soc" in err["scope"] and err["metrics"]["mape"] == 12.0
    assert lat.measured_error("help/pixel2")["metrics"]["mape"] == 12.0


def test_lazy_top_level_export() -> None:
    assert ledgformer.Predictor is Predictor


def test_shipped_predictors_load() -> None:
    """Every shipped checkpoint passes the version check against this code (no text embedded)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("the shipped predictors use the minilm encoder (sentence-transformers not installed)")
    for name, entry in shipped_predictors().items():
        p = Predictor.load(name)
        assert p.task == entry["task"] and p.metrics == entry["metrics"]
        assert p.arch_form == default_arch_form(p.task, p.config)  # archs read as in training


def test_roofline_model_predicts_and_ranks_through_the_late_fusion_cache() -> None:
    """A roofline readout needs each node's MACs and bytes per device: they travel in the
    late-fusion parts, and the batch path gives what single calls give."""
    p = latency_predictor(roofline=True)
    assert p._store.late
    archs = nb201.all_arch_strings()[:4]
    both = p.predict(archs, ["help/pixel3", "help/raspi4"])
    fresh = latency_predictor(roofline=True)
    np.testing.assert_allclose(both[:, 1], [fresh.predict(a, "help/raspi4") for a in archs], rtol=1e-5)
    assert np.all(both > 0) and sorted(p.rank(archs, "help/pixel3").tolist()) == list(range(4))


@pytest.mark.parametrize(("roofline", "card"), [(False, "help/pixel3"), (True, "help/pixel3"),
                                               ("card", "mmb/tflite/pixel4|2med|float"),
                                               ("overhead", "help/pixel3"), ("token", "help/pixel3")])
def test_late_fusion_split_equals_decode(roofline: bool | str, card: str) -> None:
    """The cached late-fusion readout is the model's own decode, rearranged (same numbers), also
    from parts stored in float16 as the disk cache does (roofline: MACs / bytes kept exact;
    "card": P from the card's peak figure; "overhead": a per-node overhead read from the card;
    "token": node costs read from the input tokens)."""
    from ledgformer.hardware import load_card
    from ledgformer.model.features import collate

    lat = latency_predictor(roofline=bool(roofline), roofline_card=roofline == "card",
                            roofline_overhead=roofline == "overhead",
                            node_cost="token" if roofline == "token" else "context")
    if roofline:  # the card's throughput must matter in this check, not stay at its init
        torch.nn.init.normal_(lat.model.roofline.weight, std=0.5)
    if roofline == "overhead":
        torch.nn.init.normal_(lat.model.roofline_overhead.weight, std=0.5)
    if roofline == "card":
        assert load_card(card).peak_tflops_fp32 is not None
        torch.nn.init.normal_(lat.model.roofline_card.weight, std=0.5)
    graphs = [nb201.network_graph(a) for a in nb201.all_arch_strings()[:3]] + [nb201.cell_graph(ARCH)]
    batch = collate(lat._feat.tensors(graphs), lat._feat.table())
    hw = lat._feat.hardware([load_card(card)])
    with torch.no_grad():
        x = lat.model.encode(batch)
        graph, node = lat.model.late_fusion_parts(x, batch)
        split = lat.model.late_fusion_readout(graph, node, batch.mask, hw)  # one card row, broadcast
        full = lat.model.decode(x, batch, hw.index(torch.zeros(len(graphs), dtype=torch.long)))
        half = lat.model.late_fusion_readout(graph.half().float(), node.half().float(), batch.mask, hw)
    torch.testing.assert_close(split, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(half, full, rtol=0, atol=2e-3)  # log ms: 0.2 %


def test_default_predictor_by_task_and_input(tmp_path) -> None:
    from ledgformer.api.shipped import default_predictor

    entries = {n: {"task": t} for n, t in [("nb201-acc", "accuracy"), ("help-nb201-latency", "latency"),
                                           ("latency-all", "latency")]}
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "predictors": entries}))
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert default_predictor("latency", tmp_path, model=arch) == "help-nb201-latency"
    assert default_predictor("latency", tmp_path, model="model.onnx") == "latency-all"
    assert default_predictor("accuracy", tmp_path, model=arch) == "nb201-acc"
    del entries["latency-all"]
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "predictors": entries}))
    assert default_predictor("latency", tmp_path, model="model.onnx") == "help-nb201-latency"
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "predictors": {}}))
    with pytest.raises(LedgformerError, match="no shipped latency predictor"):
        default_predictor("latency", tmp_path)


class _FoldNet(nn.Module):
    """aten::col2im (F.fold) has no ONNX export at opset 17."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.fold(self.conv(x).flatten(2), (4, 4), 2, stride=2)


def test_failed_torch_export_is_one_line_not_an_ir_dump(capfd: pytest.CaptureFixture[str]) -> None:
    """The exporter prints the Torch IR on failure; the user gets our one line only."""
    with pytest.raises(LedgformerError, match=r"_FoldNet: torch.onnx.export failed on input shape"):
        export_onnx(_FoldNet(), (1, 4, 2, 2))
    out = capfd.readouterr()
    assert "Torch IR graph" not in out.out + out.err


def test_adapt_to_a_device_from_measured_networks(tmp_path: Path) -> None:
    """K measured networks move the predictor's level to the device (held-out archs too); the scale
    recipe keeps the ranking exactly; the adaptation is recorded and survives save/load."""
    archs = nb201.all_arch_strings()[:24]
    truth = 5.0 * np.array([1.0 + nb201.arch_str_to_ops(a).count("nor_conv_3x3") for a in archs])
    p = latency_predictor()
    p.metrics = {"test.mape": 1.0}
    before = p.predict(archs[12:], "help/raspi4")
    assert p.adapt(archs[:12], truth[:12], "help/raspi4", params="scale", keep=0, lr=0.05, steps=200) is p
    after = p.predict(archs[12:], "help/raspi4")
    mape = [float(np.mean(np.abs(x / truth[12:] - 1))) for x in (before, after)]
    assert mape[1] < 0.5 * mape[0]
    assert (np.argsort(before, kind="stable") == np.argsort(after, kind="stable")).all()  # monotone map
    done = p.extra["adapted"]
    assert (done["hardware"], done["n"], done["recipe"]["params"]) == ("help/raspi4", 12, "scale")
    assert done["sample_mape_after"] < done["sample_mape_before"] and p.metrics == {}
    back = Predictor.load(p.save(tmp_path / "adapted.pt"))
    assert back.extra["adapted"]["n"] == 12
    assert back.predict(archs[12:], "help/raspi4") == pytest.approx(after, rel=1e-5)
    # the default recipe trains the weights (a few steps here)
    q = latency_predictor().adapt(archs[:12], truth[:12], "help/raspi4", steps=5)
    assert q.extra["adapted"]["recipe"]["params"] == "all"


def test_adapt_by_reference_mixes_the_training_devices(tmp_path: Path) -> None:
    """params=reference: a device whose latency is 2x the predictor's on a training device is
    recovered on held-out networks; the blend saves, loads back (also from a card-feature version
    1 checkpoint) and adapts again from its base; without training devices it says so."""
    from ledgformer.hardware.card import FEATURE_NAMES, FEATURE_PREFIXES

    archs = nb201.all_arch_strings()[:24]
    p = latency_predictor()
    p.devices = {"train": ["help/pixel3", "help/1080ti_1"]}
    truth = 2.0 * p.predict(archs, "help/pixel3")
    p.adapt(archs[:12], truth[:12], "help/raspi4", params="reference", keep=0)
    assert p.model_name == "reference-blend" and p.model.references == ["help/pixel3", "help/1080ti_1"]
    after = p.predict(archs[12:], "help/raspi4")
    np.testing.assert_allclose(after, truth[12:], rtol=1e-4)
    assert p.extra["adapted"]["recipe"]["params"] == "reference"
    assert p._store.late  # the base's late-fusion split (and its disk cache) serves every card
    back = Predictor.load(p.save(tmp_path / "blend.pt"))
    assert back.model_name == "reference-blend"
    np.testing.assert_allclose(back.predict(archs[12:], "help/raspi4"), after, rtol=1e-6)
    back.adapt(archs[:12], truth[:12], "help/raspi4", params="reference", keep=0)
    assert back.model_config["base"]["name"] == "ledgformer"  # a blend of the base, not of a blend
    with torch.no_grad():
        p.model.base.hw_mlp[0].weight[:, FEATURE_PREFIXES[1]:] = 0.0  # as if trained without them
    now = p.predict(archs[12:], "help/raspi4")
    ckpt = read_checkpoint(p.save(tmp_path / "now.pt"))
    ckpt["versions"]["card_feature_version"] = 1
    for key in ("base.hw_mlp.0.weight", "ref_feat"):
        ckpt["state_dict"][key] = ckpt["state_dict"][key][:, :FEATURE_PREFIXES[1]]
    torch.save(ckpt, tmp_path / "v1.pt")
    old = Predictor.load(tmp_path / "v1.pt")
    assert old.model.ref_feat.shape[1] == len(FEATURE_NAMES)
    np.testing.assert_allclose(old.predict(archs[12:], "help/raspi4"), now, rtol=1e-5)
    with pytest.raises(LedgformerError, match="params=reference mixes the predictor's training devices"):
        latency_predictor().adapt(archs[:12], truth[:12], "help/raspi4", params="reference", keep=0)


def test_adapt_that_diverges_raises_and_keeps_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fine-tuning that ends in non-finite predictions is an error naming the device, and the
    predictor keeps the weights it had (adapt works in place)."""
    import ledgformer.train.recipes as recipes

    def diverge(trainer: Any, model: torch.nn.Module, idx: Any, settings: Any, references: Any) -> Any:
        with torch.no_grad():
            for w in model.parameters():
                w.fill_(float("nan"))
        return recipes.Adapted(model, None)

    monkeypatch.setattr(recipes, "adapt", diverge)
    archs = nb201.all_arch_strings()[:6]
    p = latency_predictor()
    before = {k: v.clone() for k, v in p.model.state_dict().items()}
    with pytest.raises(LedgformerError, match=r"non-finite latencies on help/raspi4.*left as they were"):
        p.adapt(archs[:4], [1.0, 2.0, 3.0, 4.0], "help/raspi4")
    after = p.model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert np.isfinite(p.predict(archs, "help/raspi4")).all() and "adapted" not in p.extra


def test_adapt_errors(lat: Predictor) -> None:
    archs = nb201.all_arch_strings()[:4]
    with pytest.raises(LedgformerError, match="4 archs but latencies of shape"):
        lat.adapt(archs, [1.0, 2.0], "help/raspi4")
    with pytest.raises(LedgformerError, match="the one hardware card"):
        lat.adapt(archs, [1.0] * 4, ["help/raspi4", "help/pixel3"])
    with pytest.raises(LedgformerError, match=r"finetune\.stepz"):
        lat.adapt(archs, [1.0] * 4, "help/raspi4", stepz=3)
    with pytest.raises(LedgformerError, match="positive"):
        lat.adapt(archs, [1.0, -1.0, 1.0, 1.0], "help/raspi4")
    acc = Predictor.create("ledgformer", task="accuracy", encoder="onehot", **TINY)
    with pytest.raises(LedgformerError, match="predicts accuracy"):
        acc.adapt(archs, [1.0] * 4, "help/raspi4")
