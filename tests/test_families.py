"""Model-family generator: determinism, exportable ONNX without unknown ops, MAC bookkeeping, the
`ledgformer families` command, and the embedded data set builder + loader."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import onnx
import pytest
import torch

from ledgformer.cli.main import main
from ledgformer.errors import LedgformerError
from ledgformer.families import FAMILIES, generate, list_families
from ledgformer.hardware import load_card
from ledgformer.spaces.nb201 import network_graph

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {"resnet", "vgg", "mobilenetv2", "mobilenetv3", "mnasnet", "efficientnet", "squeezenet",
            "googlenet", "alexnet", "densenet", "shufflenet", "nb201"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # exports trace a forward pass: one thread, no contention on a shared machine
    yield
    torch.set_num_threads(threads)


def test_family_list():
    assert set(list_families()) >= REQUIRED and len(FAMILIES) >= 10


def test_configs_deterministic_and_seed_dependent():
    for family in list_families():
        a, b = generate(family, 1, seed=7), generate(family, 1, seed=7)
        assert [m.to_dict() for m in a] == [m.to_dict() for m in b]
        assert [m.name for m in a] == [f"{family}-s7-000"]
    for family in ("nb201", "squeezenet", "vgg"):
        seven, eight = generate(family, 3, seed=7), generate(family, 3, seed=8)
        assert [m.config for m in seven] != [m.config for m in eight]


@pytest.mark.parametrize("family", ["mobilenetv3", "densenet"])
def test_same_seed_same_onnx_bytes_and_graph_hash(family):
    a, b = generate(family, 1, seed=3, max_macs=150e6)[0], generate(family, 1, seed=3, max_macs=150e6)[0]
    pa, pb = a.to_onnx(), b.to_onnx()
    assert hashlib.sha256(pa.SerializeToString()).digest() == hashlib.sha256(pb.SerializeToString()).digest()
    assert a.graph(pa).content_hash() == b.graph(pb).content_hash()


@pytest.mark.parametrize("family", sorted(REQUIRED))
def test_each_family_exports_clean_onnx(family):
    model = generate(family, 1, seed=1, max_macs=200e6)[0]
    proto = model.to_onnx()
    onnx.checker.check_model(proto)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == model.input_shape  # the drawn batch is fixed in the file
    graph = model.graph(proto)
    assert graph.unknown_ops() == {}
    # the forward-hook count and the IR's cost formulas are independent: they must agree
    assert graph.macs == model.macs <= 200e6
    assert graph.meta["family"] == family and graph.meta["batch_size"] == model.input_shape[0]


def test_nb201_module_matches_network_graph():
    model = generate("nb201", 1, seed=2)[0]
    cfg = model.config
    ref = network_graph(cfg["arch"], num_classes=cfg["num_classes"], input_size=cfg["resolution"],
                        batch_size=model.input_shape[0])
    assert model.macs == ref.macs
    assert sum(p.numel() for p in model.build().parameters()) == ref.params


def test_mac_budget_and_errors():
    assert all(m.macs <= 20e6 for m in generate("nb201", 4, seed=0, max_macs=20e6))
    with pytest.raises(LedgformerError, match="no variant under"):
        generate("nb201", 1, seed=0, max_macs=1000)
    with pytest.raises(LedgformerError, match="unknown model family 'lenet'"):
        generate("lenet", 1)


def test_cli_families(tmp_path, capsys):
    assert main(["families", "list"]) == 0
    assert "shufflenet" in capsys.readouterr().out
    out = tmp_path / "models"
    assert main(["families", "generate", "--family", "nb201", "--count", "2", "--seed", "4",
                 "--out", str(out), "--max-macs", "100e6"]) == 0
    listing = json.loads((out / "configs.json").read_text())["models"]
    assert len(listing) == 2
    for entry in listing:
        blob = (out / entry["onnx"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"] and entry["macs"] <= 100e6
    assert main(["families", "generate", "--family", "lenet", "--count", "1", "--out", str(out)]) == 2
    assert "unknown family 'lenet'" in capsys.readouterr().err


def _builder():
    spec = importlib.util.spec_from_file_location("build_embedded", REPO / "benchmarks" / "build_embedded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_embedded_tiny_and_load(tmp_path, monkeypatch):
    from ledgformer.embedded import cards_dir, load_embedded, load_embedded_card

    out = tmp_path / "emb"
    assert _builder().main(["--families", "nb201,squeezenet", "--count", "3", "--platforms", "onnxruntime",
                            "--warmup", "1", "--repeat", "8", "--max-spread", "0.5", "--max-macs", "50e6",
                            "--out", str(out)]) == 0
    data = load_embedded(out)
    assert len(data.graphs) == 6
    assert len(data.records) + len(data.failures) == 6  # every variant is either kept or listed as failed
    assert {r.tags["family"] for r in data.records} <= {"nb201", "squeezenet"}
    for name in data.devices():
        assert name.startswith("embedded/") and "/ort-1t-fp32" in name
        card = load_embedded_card(name, out)
        assert card.name == name and card.threads == 1 and card.runtime == "ONNX Runtime"
        monkeypatch.setenv("LEDGFORMER_CARDS", str(cards_dir(out)))
        assert load_card(name) == card  # the existing user-card hook finds nested card names
    for r in data.records:
        assert r.target > 0 and r.kind == "latency_ms" and r.graph_id in data.graphs
    readme = (out / "README.md").read_text()
    assert "build_embedded.py --families nb201,squeezenet" in readme and "load average" in readme
    with pytest.raises(LedgformerError, match="no embedded platform card"):
        load_embedded_card("embedded/nope/ort-1t-fp32", out)


def test_packaged_embedded_data_loads():
    from ledgformer.embedded import EMBEDDED_DIR, load_embedded

    if not (EMBEDDED_DIR / "measurements.json").is_file():
        pytest.skip("the embedded data set has not been built (benchmarks/build_embedded.py)")
    data = load_embedded()
    families = {r.tags["family"] for r in data.records}
    runtimes = {r.tags["runtime"] for r in data.records}
    assert len(families) >= 10 and {"onnxruntime", "onnxruntime-noopt", "torch"} <= runtimes
    assert all(r.graph_id in data.graphs and r.target > 0 for r in data.records)
