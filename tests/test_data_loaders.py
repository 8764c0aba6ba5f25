"""Benchmark loaders on the real data: sizes, ids, hand-checked values, cache, and a sanity check
that whole-network MACs rank HELP's GPU latencies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from ledgformer.data.graph_cache import build_graphs, cached_graphs
from ledgformer.data.help import help_archs, torch_load
from ledgformer.data.records import BenchmarkData
from ledgformer.data.registry import HELP_DEVICES, load_benchmark
from ledgformer.graph.ir import ArchGraph
from ledgformer.spaces import nb201

N201 = 15625
HELP_SLICE = 1500  # whole-network graphs built in the tests (all 15,625: see the report timings)


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("ledgformer-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEDGFORMER_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def nb201_acc(data_root: Path, cache: Path) -> dict[str, BenchmarkData]:
    return {ds: load_benchmark(f"nb201-{ds}", data_root, show_progress=False)
            for ds in ("cifar10", "cifar100", "imagenet16")}


@pytest.fixture(scope="session")
def help_nb201(data_root: Path, cache: Path) -> BenchmarkData:
    return load_benchmark("help-nb201", data_root, limit=HELP_SLICE, show_progress=False)


def test_nb201_accuracies(nb201_acc: dict[str, BenchmarkData], data_root: Path) -> None:
    ids = {f"nb201/{i}" for i in range(N201)}
    for data in nb201_acc.values():
        assert len(data.records) == N201 and {r.graph_id for r in data.records} == ids
        assert set(data.graphs) == ids and not data.failures
        assert all(r.kind == "accuracy" and r.device is None and 0 < r.target < 100 for r in data.records)
    # hand check against the raw NASLib chunk: entry idx 500 of the CIFAR-10 run
    chunk = data_root / "naslib/nb201_zen_run/benchmark--nasbench201--cifar10--500.json"
    raw = json.loads(chunk.read_text())[0]
    assert raw["arch"] == "(2, 4, 3, 4, 1, 3)" and raw["val_accuracy"] == 87.98
    # by hand: edges 1-2, 1-3, 1-4, 2-3, 2-4, 3-4 = conv3x3, pool, conv1x1, pool, none, conv1x1
    arch = "|nor_conv_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_1x1~2|"
    index = nb201.all_arch_strings().index(arch)
    rec = next(r for r in nb201_acc["cifar10"].records if r.graph_id == f"nb201/{index}")
    assert rec.target == 87.98 and rec.tags["naslib_idx"] == 500
    best = max(r.target for r in nb201_acc["cifar10"].records)
    assert 91 < best < 92  # NB201's best CIFAR-10 validation accuracy is ~91.6 %
    g = nb201_acc["cifar10"].graphs[f"nb201/{index}"]
    assert len(g) == 8 and g.to_dict() == nb201_acc["cifar100"].graphs[f"nb201/{index}"].to_dict()


def test_nb201_live_cells(nb201_acc: dict[str, BenchmarkData], data_root: Path) -> None:
    """live_cells: same records, each arch's graph is that of its live arch (9,445 distinct)."""
    live = load_benchmark("nb201-cifar10", data_root, live_cells=True, show_progress=False)
    plain = nb201_acc["cifar10"]
    assert [r.target for r in live.records] == [r.target for r in plain.records]
    assert live.meta["live_cells"] and len({g.content_hash() for g in live.graphs.values()}) == 9445
    archs = nb201.all_arch_strings()
    for i in (0, 1, 500, 15624):
        g = live.graphs[f"nb201/{i}"]
        assert g.meta["name"] == archs[i]
        assert g.to_dict()["nodes"] == nb201.cell_graph(nb201.live_arch(archs[i])).to_dict()["nodes"]
    flow = load_benchmark("nb201-cifar10", data_root, live_cells=True, none_edges=False, show_progress=False)
    assert flow.meta["none_edges"] is False and "none ops without edges" in flow.meta["graphs"]
    for i in (0, 1, 500, 15624):
        want = nb201.cell_graph(nb201.live_arch(archs[i]), none_edges=False)
        assert flow.graphs[f"nb201/{i}"].edges == want.edges


def test_ids_consistent_between_naslib_help_and_mini(nb201_acc: dict[str, BenchmarkData],
                                                     help_nb201: BenchmarkData, data_root: Path) -> None:
    str2idx = torch_load(data_root / "help/nasbench201/str_arch2idx.pt")
    assert nb201.all_arch_strings() == sorted(str2idx, key=str2idx.get)
    arch_of = {f"nb201/{i}": s for s, i in str2idx.items()}
    assert help_archs("nasbench201", data_root / "help/nasbench201") == (list(arch_of), arch_of)
    for gid, g in help_nb201.graphs.items():  # HELP's networks: id = official index of the arch
        assert g.meta["graph_id"] == gid and g.meta["name"] == arch_of[gid] and g.meta["kind"] == "network"
    naslib_archs = json.loads((data_root / "naslib/archs_nasbench201.json").read_text())
    for r in nb201_acc["cifar100"].records:  # NASLib's own idx -> tuple lands on the same id
        assert naslib_archs[str(r.tags["naslib_idx"])] == str(nb201.str_to_naslib(arch_of[r.graph_id]))
    mini = load_benchmark("mini-nb201-cifar10", data_root, show_progress=False)
    assert [r.graph_id for r in mini.records] == [f"nb201/{i}" for i in range(N201)]
    assert mini.graphs["nb201/42"].to_dict() == nb201_acc["cifar10"].graphs["nb201/42"].to_dict()
    assert mini.records[1].target == pytest.approx(82.834)  # README example row 1, cifar10-val


def test_help_nb201(help_nb201: BenchmarkData, data_root: Path) -> None:
    full = load_benchmark("help-nb201", data_root, with_graphs=False)
    assert len(full.devices()) == 27 and len(full.records) == N201 * 27
    assert {r.graph_id for r in full.records} == {f"nb201/{i}" for i in range(N201)}
    assert full.devices() == sorted(f"help/{d}" for d in HELP_DEVICES["nasbench201"])
    assert set(full.meta["integer_ms"]) == {"help/pixel2", "help/samsung_a50", "help/samsung_s7",
                                            "help/essential_ph_1"}
    assert full.meta["batch_size"]["help/1080ti_256"] == 256 and full.meta["batch_size"]["help/raspi4"] == 1
    first = next(r for r in full.records if r.device == "help/1080ti_1" and r.graph_id == "nb201/0")
    assert first.target == pytest.approx(10.75437068939209) and first.tags["index"] == 0
    # the data trap behind the `output_cut_off` tag: constant-folded on raspi4, full cost on 1080ti_1
    cut = [r for r in full.records if r.tags["output_cut_off"]]
    assert len(cut) == 341 * 27
    assert sum(r.target < 1.0 for r in cut if r.device == "help/raspi4") == 276
    assert min(r.target for r in cut if r.device == "help/1080ti_1") > 4.0
    assert len(help_nb201.graphs) == HELP_SLICE and not help_nb201.failures
    for device in ("help/titan_rtx_256", "help/1080ti_256"):
        recs = help_nb201.by_device(device)
        rho = spearmanr([help_nb201.graphs[r.graph_id].macs for r in recs], [r.target for r in recs])[0]
        assert rho > 0.5, (device, rho)


def test_help_cards_resolve(help_nb201: BenchmarkData, data_root: Path) -> None:
    from ledgformer.hardware import load_card

    ofa = load_benchmark("help-ofa", data_root, with_graphs=False)
    fb = load_benchmark("help-fbnet", data_root, with_graphs=False)
    anb = load_benchmark("accel-nasbench", data_root, with_graphs=False)
    for device in {*ofa.devices(), *fb.devices(), *anb.devices()}:
        load_card(device)
    for device, batch in help_nb201.meta["batch_size"].items():  # the card carries the batch
        assert (load_card(device).batch_size or 1) == batch, device


def test_help_fbnet_and_ofa(data_root: Path, cache: Path) -> None:
    for name, n_dev in (("help-fbnet", 27), ("help-ofa", 12)):
        full = load_benchmark(name, data_root, with_graphs=False)
        assert len(full.devices()) == n_dev and len({r.graph_id for r in full.records}) == 5000
        assert len(full.records) == 5000 * n_dev
        part = load_benchmark(name, data_root, limit=200, show_progress=False)
        assert len(part.graphs) == 200 and not part.failures
        big = max(d for d in part.devices() if d.endswith("_64"))
        recs = part.by_device(big)
        rho = spearmanr([part.graphs[r.graph_id].macs for r in recs], [r.target for r in recs])[0]
        assert rho > 0.4, (name, big, rho)
    ofa = load_benchmark("help-ofa", data_root, limit=3, show_progress=False)
    # OFA configs carry their own resolution r (numpy ints in the file, plain ints here)
    assert ofa.graphs["ofa/0"].meta["input_shape"][2] == 204


def test_nb101_cells(data_root: Path, cache: Path) -> None:
    data = load_benchmark("nb101-cifar10", data_root, show_progress=False)
    assert len(data.records) == 500 and not data.failures
    assert all(r.graph_id.startswith("nb101/") and len(r.graph_id) == 6 + 32 for r in data.records)
    assert set(data.graphs) == {r.graph_id for r in data.records}
    # NASLib's 500 keys hold isomorphic duplicates: one official hash, at most 3 repeat accuracies
    targets: dict[str, set[float]] = {}
    for r in data.records:
        targets.setdefault(r.graph_id, set()).add(r.target)
    assert len(targets) < 500 and max(len(v) for v in targets.values()) <= 3


def test_accel_nasbench(data_root: Path, cache: Path) -> None:
    data = load_benchmark("accel-nasbench", data_root, limit=150, show_progress=False)
    assert len(data.graphs) == 150 and not data.failures
    full = load_benchmark("accel-nasbench", data_root, with_graphs=False)
    acc = [r for r in full.records if r.kind == "accuracy"]
    assert len(acc) == 5138 and len(full.devices()) == 8
    unmeasured = sum(len(v) for v in full.meta["unmeasured"].values())
    assert len(full.records) == 5138 * 9 - unmeasured and full.meta["unmeasured"]["anb/throughput_tpuv3"]
    rec = next(r for r in full.records if r.graph_id == "anb/1710" and r.device == "anb/throughput_a100")
    assert rec.target == pytest.approx(1000 / 11102.789495589122) and rec.tags["throughput"] > 11000
    recs = data.by_device("anb/latency_zcu102")
    assert spearmanr([data.graphs[r.graph_id].macs for r in recs], [r.target for r in recs])[0] > 0.5


def test_graph_cache_warm_load_and_failures(nb201_acc: dict[str, BenchmarkData], data_root: Path,
                                            cache: Path) -> None:
    t0 = time.perf_counter()
    again = load_benchmark("nb201-cifar10", data_root, show_progress=False)
    assert time.perf_counter() - t0 < 5
    assert again.graphs["nb201/123"].content_hash() == nb201_acc["cifar10"].graphs["nb201/123"].content_hash()
    items = {"ok": "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "bad": "|nope~0|"}
    graphs, failures = build_graphs(items, nb201.cell_graph, "test", show_progress=False)
    assert set(graphs) == {"ok"} and set(failures) == {"bad"} and failures["bad"]
    calls: list[str] = []

    def counting(s: str) -> ArchGraph:
        calls.append(s)
        return nb201.cell_graph(s)

    for _ in range(2):
        graphs, failures = cached_graphs("test-key", [nb201], items, counting, show_progress=False)
    assert len(calls) == 2 and set(failures) == {"bad"}  # second call read the cache
    cached_graphs("test-key", [nb201], {"ok": items["ok"]}, counting, show_progress=False)
    assert len(calls) == 3  # other items -> other key -> rebuilt
    assert len(list((cache / "graphs").glob("test-key-*.pkl"))) == 1  # stale entry replaced
