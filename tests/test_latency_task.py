"""Task ``latency``: family / device / random splits at graph level, seeded, with clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.train.config import load_config
from ledgformer.train.latency_task import Examples, collect_examples, latency_split, split_summary
from ledgformer.train.tasks import TASKS, build_task

torch.set_num_threads(1)
FAMS = ("alpha", "beta", "gamma", "delta")
DEVS = ("dev/a", "dev/b", "dev/c")


def _examples(n_per_family: int = 10) -> Examples:
    """4 families x n graphs, each measured on all 3 devices except every 5th graph missing dev/c."""
    ids = [f"{f}-{i}" for f in FAMS for i in range(n_per_family)]
    fams = [g.split("-")[0] for g in ids]
    rows, devs = [], []
    for k in range(len(ids)):
        for d in range(len(DEVS)):
            if d == 2 and k % 5 == 0:
                continue
            rows.append(k)
            devs.append(d)
    return Examples(ids, fams, list(DEVS), np.asarray(rows), np.asarray(devs),
                    np.linspace(1.0, 9.0, len(rows)))


def _graphs_of(ex: Examples, idx: list[int]) -> set[int]:
    return {int(ex.graph_row[i]) for i in idx}


def _check_partition(ex: Examples, split) -> None:
    every = sorted(split.train + split.valid + split.test)
    assert every == list(range(ex.target.size))  # every example used once


def test_family_split_holds_out_the_family_and_is_seeded() -> None:
    ex = _examples()
    s = latency_split(ex, "family", seed=0, test_family="beta", valid_fraction=0.2)
    _check_partition(ex, s)
    fam = np.asarray(ex.graph_family)
    assert set(fam[ex.graph_row[s.test]]) == {"beta"}
    assert "beta" not in set(fam[ex.graph_row[s.train]]) | set(fam[ex.graph_row[s.valid]])
    # graph-level: one network on several devices never sits in both train and valid
    assert not _graphs_of(ex, s.train) & _graphs_of(ex, s.valid)
    # valid_fraction of each training family (2 of 10 graphs)
    assert len(_graphs_of(ex, s.valid)) == 3 * 2
    again = latency_split(ex, "family", seed=0, test_family="beta", valid_fraction=0.2)
    assert again.fingerprint() == s.fingerprint() and again.to_json() == s.to_json()
    other = latency_split(ex, "family", seed=1, test_family="beta", valid_fraction=0.2)
    assert other.test == s.test and other.valid != s.valid
    params = json.loads(s.to_json())["params"]
    assert params["test_family"] == "beta" and len(params["graphs"]["test"]) == 10


def test_family_split_with_a_validation_family() -> None:
    ex = _examples()
    s = latency_split(ex, "family", seed=0, test_family="alpha", valid_family="delta")
    fam = np.asarray(ex.graph_family)
    assert set(fam[ex.graph_row[s.valid]]) == {"delta"}
    assert set(fam[ex.graph_row[s.train]]) == {"beta", "gamma"}
    with pytest.raises(LedgformerError, match=r"valid_family 'alpha'.*beta, delta, gamma"):
        latency_split(ex, "family", seed=0, test_family="alpha", valid_family="alpha")


def test_device_split_is_zero_shot() -> None:
    ex = _examples()
    s = latency_split(ex, "device", seed=3, test_device="dev/c", valid_fraction=0.25)
    _check_partition(ex, s)
    assert set(ex.device_row[s.test]) == {2} and len(s.test) == int((ex.device_row == 2).sum())
    assert 2 not in set(ex.device_row[s.train]) | set(ex.device_row[s.valid])
    assert not _graphs_of(ex, s.train) & _graphs_of(ex, s.valid)
    assert len(_graphs_of(ex, s.valid)) == 10  # 25 % of the 40 graphs
    assert latency_split(ex, "device", seed=3, test_device="dev/c", valid_fraction=0.25).fingerprint() \
        == s.fingerprint()


def test_device_split_can_validate_on_an_unseen_device() -> None:
    """data.valid_device: every record of that card is valid and none is trained on."""
    ex = _examples()
    s = latency_split(ex, "device", seed=3, test_device="dev/c", valid_device="dev/[b]")
    _check_partition(ex, s)
    assert set(ex.device_row[s.valid]) == {1} and len(s.valid) == 40
    assert set(ex.device_row[s.train]) == {0} and set(ex.device_row[s.test]) == {2}
    assert s.params["valid_devices"] == ["dev/b"]
    assert split_summary(s.to_json())["valid_device"] == "dev/[b]"
    with pytest.raises(LedgformerError, match="neither test"):
        latency_split(ex, "device", seed=3, test_device="dev/c", valid_device="dev/c")
    with pytest.raises(LedgformerError, match="neither test"):
        latency_split(ex, "device", seed=3, test_device="dev/c", valid_device="dev/[ab]")
    with pytest.raises(LedgformerError, match=r"data\.valid_device 'dev/x' not found"):
        latency_split(ex, "device", seed=3, test_device="dev/c", valid_device="dev/x")


def test_device_split_by_glob_holds_out_every_matching_card() -> None:
    """``dev/[bc]`` holds out two cards (e.g. every setting of one phone); no match or all -> error."""
    ex = _examples()
    s = latency_split(ex, "device", seed=3, test_device="dev/[bc]", valid_fraction=0.25)
    _check_partition(ex, s)
    assert set(ex.device_row[s.test]) == {1, 2} and set(ex.device_row[s.train]) == {0}
    assert s.params["test_devices"] == ["dev/b", "dev/c"]
    with pytest.raises(LedgformerError, match="matches no device"):
        latency_split(ex, "device", seed=3, test_device="phone/*")
    with pytest.raises(LedgformerError, match="matches every device"):
        latency_split(ex, "device", seed=3, test_device="dev/*")


def test_random_split_is_graph_level_and_seeded() -> None:
    ex = _examples()
    s = latency_split(ex, "random", seed=5, test_fraction=0.25, valid_fraction=0.1)
    _check_partition(ex, s)
    tr, va, te = _graphs_of(ex, s.train), _graphs_of(ex, s.valid), _graphs_of(ex, s.test)
    assert not (tr & va or tr & te or va & te)
    assert len(te) == 10 and len(va) == 3
    assert latency_split(ex, "random", seed=5, test_fraction=0.25).to_json() == s.to_json()
    assert latency_split(ex, "random", seed=6, test_fraction=0.25).test != s.test


@pytest.mark.parametrize(
    ("mode", "kw", "message"),
    [
        ("family", {"test_family": "resnet"}, r"test_family 'resnet' not found.*alpha, beta, delta, gamma"),
        ("family", {}, r"needs data\.test_family; known families: alpha, beta"),
        ("device", {"test_device": "help/eyeriss"}, r"test_device 'help/eyeriss'.*dev/a, dev/b, dev/c"),
        ("loo", {}, r"unknown data\.split 'loo'; expected one of: family, device, random"),
    ],
)
def test_unknown_family_device_or_mode_names_the_known_ones(mode: str, kw: dict, message: str) -> None:
    with pytest.raises(LedgformerError, match=message):
        latency_split(_examples(), mode, seed=0, **kw)


def _graph(width: int):
    b = GraphBuilder()
    x = b.input((1, 3, 8, 8))
    b.linear(b.flatten(b.global_pool(b.act(b.conv(x, width, 3)))), 10)
    return b.build()


def test_collect_examples_filters_devices_and_balances_families() -> None:
    graphs = {f"g{i}": _graph(4 + i) for i in range(12)}
    recs = [Record(f"g{i}", 1.0 + i, "latency_ms", dev, {"family": FAMS[i % 3]})
            for i in range(12) for dev in DEVS[:2]]
    recs.append(Record("g0", 80.0, "accuracy", None, {}))  # not a latency record: ignored
    recs.append(Record("missing", 1.0, "latency_ms", "dev/a", {"family": "alpha"}))  # no graph: ignored
    graphs["dead"] = _graph(3)  # a network whose output ignores its input: left out, counted
    recs.append(Record("dead", 0.01, "latency_ms", "dev/b", {"family": "alpha", "output_cut_off": True}))
    bench = BenchmarkData("toy", graphs, recs)
    ex, kept = collect_examples([bench], devices=["dev/b"])
    assert ex.devices == ["dev/b"] and ex.target.size == 12 and set(kept) == set(graphs) - {"dead"}
    assert ex.n_without_graph == 1 and ex.n_output_cut_off == 1
    ex, kept = collect_examples([bench], max_graphs=6, seed=0)
    assert sorted(ex.graph_family).count("alpha") == 2 and len(kept) == 6  # 2 per family
    assert collect_examples([bench], max_graphs=6, seed=0)[0].graph_ids == ex.graph_ids
    with pytest.raises(LedgformerError, match=r"data\.devices: dev/z not in toy; known: dev/a, dev/b"):
        collect_examples([bench], devices=["dev/z"])
    assert collect_examples([bench], devices=["dev/[b-z]"])[0].devices == ["dev/b"]  # a glob
    with pytest.raises(LedgformerError, match=r"data\.devices: gpu/\* not in toy"):
        collect_examples([bench], devices=["dev/a", "gpu/*"])
    ex, kept = collect_examples([bench], drop_families=[FAMS[0]])
    assert FAMS[0] not in ex.graph_family and len(kept) == 8 and ex.target.size == 16
    with pytest.raises(LedgformerError, match=rf"data\.drop_families: zeta not in toy; families: {FAMS[0]}"):
        collect_examples([bench], drop_families=["zeta"])


def test_task_on_the_embedded_set_with_per_family_metrics() -> None:
    """The registered task end to end (onehot encoder, few graphs), evaluated with the FLOPs baseline."""
    from ledgformer.model.registry import create_model
    from ledgformer.train.trainer import Trainer, model_kwargs

    assert "latency" in TASKS
    cfg = load_config(None, ["task=latency", "data.benchmark=embedded", "data.test_family=resnet",
                             "data.max_graphs=48", "data.valid_fraction=0.25", "features.encoder=onehot",
                             "train.progress=false"])
    data = build_task(cfg)
    assert len(data.graph_ids) == 48 and len(data.devices) == 3
    assert set(data.families(data.parts["test"])) == {"resnet"}
    assert "resnet" not in set(data.families(data.parts["train"])) | set(data.families(data.parts["valid"]))
    assert split_summary(data.split_json)["test_family"] == "resnet"
    for baseline in ("flops", "gbdt"):  # the closed-form baselines run in the same harness
        name, kw = model_kwargs({"model": {"name": baseline}}, data)
        tr = Trainer(create_model(name, **kw), data, cfg["train"])
        tr.fit()
        metrics, _ = tr.evaluate(("valid", "test"))
        assert metrics["test.per_family.resnet.mape"] == pytest.approx(metrics["test.mape"])
        assert metrics["test.per_device.amd-epyc/ort-1t-fp32.n"] > 0
        valid_fams = {k.split(".")[2] for k in metrics if k.startswith("valid.per_family.")}
        assert valid_fams and "resnet" not in valid_fams
    with pytest.raises(LedgformerError, match=r"test_family 'resnet50'.*alexnet.*vgg"):
        build_task({**cfg, "data": {**cfg["data"], "test_family": "resnet50"}})
