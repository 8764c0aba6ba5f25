"""Zero-cost proxies: synflow hand-checked on a linear net, on NB201 against NASLib's values, and
as a model input (data.proxies) from config to prediction."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.spaces.proxies import nb201_proxies, synflow, synflow_score

torch.set_num_threads(1)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_synflow_of_a_two_layer_linear_net_is_twice_its_output() -> None:
    """R = w2 . |W1| . 1 is linear in each layer, so each layer's sum of theta dR/dtheta is R
    (Euler), and synflow = 2 R; signs of the weights do not matter."""
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]]))
        net[1].weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
    r = 2 * (1 + 2) + 1 * 0.5 + 0.5 * (1 + 3)  # |w2| . |W1| . [1, 1] = 6 + 0.5 + 2 = 8.5
    assert synflow_score(net, (1, 2)) == pytest.approx(2 * r)


def test_nb201_synflow_zero_when_the_output_is_cut_off_and_seeded() -> None:
    assert synflow(ALL_NONE) == 0.0
    a = synflow(CONV)
    assert a > 1e10 and synflow(CONV) == a  # seeded init: the same score every call
    assert synflow(CONV, num_classes=100) > a  # a wider classifier sums more outputs


def test_nb201_proxies_cache_and_errors(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path))
    vals = nb201_proxies([CONV, ALL_NONE, CONV], workers=1, progress=False)
    assert vals[1] == [0.0] and vals[0] == vals[2] == [pytest.approx(math.log1p(synflow(CONV)))]
    (file,) = (tmp_path / "proxies").rglob("*.json")
    assert set(json.loads(file.read_text())) == {CONV, ALL_NONE}
    monkeypatch.setattr("ledgformer.spaces.proxies.synflow", lambda *a: pytest.fail("recomputed"))
    assert nb201_proxies([CONV], workers=1) == [vals[0]]  # read back, not recomputed
    with pytest.raises(LedgformerError, match="unknown zero-cost proxy"):
        nb201_proxies([CONV], ["snip"])
    with pytest.raises(LedgformerError, match="NAS-Bench-201 arch"):
        nb201_proxies(["|conv~0|"])


def test_synflow_matches_naslib_on_nb201(data_root) -> None:
    """NASLib's zero-cost file states synflow (log scale) for ~490 CIFAR-10 archs: ours ranks
    them the same (a different seed's initial weights moves values slightly)."""
    from ledgformer.spaces.nb201 import naslib_to_str

    zc = json.loads((data_root / "naslib" / "zc_nasbench201.json").read_text())["nasbench201"]["cifar10"]
    items = sorted(zc.items())[:40]
    ours = [math.log1p(synflow(naslib_to_str(json.loads(k.replace("(", "[").replace(")", "]")))))
            for k, _ in items]
    assert spearmanr(ours, [v["synflow"] for _, v in items])[0] > 0.98


def test_proxies_feed_the_model_and_change_its_prediction() -> None:
    from ledgformer.model import create_model
    from ledgformer.model.features import collate
    from ledgformer.train.trainer import model_kwargs
    from test_trainer import SMALL, synthetic_task

    data = synthetic_task("accuracy")
    _, plain_kw = model_kwargs({"model": {"name": "ledgformer", **SMALL}}, data)
    assert "n_extra" not in plain_kw
    data.items = [replace(it, extra=np.asarray([0.1 * i], np.float32)) for i, it in enumerate(data.items)]
    name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL}}, data)
    assert kw["n_extra"] == 1
    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    batch = collate(data.items[:4], data.text_table)
    with torch.no_grad():
        out = model(batch)
        batch.extra = batch.extra + 1.0
        assert not torch.allclose(model(batch), out)
        alone = model(collate(data.items[2:3], data.text_table))
    assert torch.allclose(alone, model(collate(data.items[:4], data.text_table))[2:3], atol=1e-5)
    with pytest.raises(LedgformerError, match="reads 1 proxy input"):
        model(collate([replace(it, extra=np.zeros(0, np.float32)) for it in data.items[:2]], data.text_table))
    with pytest.raises(LedgformerError, match="model 'gin' does not read proxy inputs"):
        model_kwargs({"model": {"name": "gin"}}, data)
    with pytest.raises(LedgformerError, match="different numbers of proxy inputs"):
        collate([data.items[0], replace(data.items[1], extra=np.zeros(0, np.float32))], data.text_table)


def test_accuracy_task_attaches_synflow(data_root, tmp_path, monkeypatch) -> None:
    from ledgformer.spaces.nb201 import all_arch_strings
    from ledgformer.spaces.proxies import _cache_file
    from ledgformer.train.config import load_config
    from ledgformer.train.tasks import accuracy_task

    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path))  # a cache of stand-in values: no compute
    stand_in = {a: math.log1p(i) for i, a in enumerate(all_arch_strings())}
    _cache_file("synflow", 10, 32).write_text(json.dumps(stand_in))
    base = ["data.n_train=60", "features.encoder=onehot", f"data.data_root={data_root}",
            "data.proxies=[synflow]"]
    task = accuracy_task(load_config(None, base), 0)
    for k in (0, 5, 1000):
        idx = int(task.graph_ids[k].rsplit("/", 1)[1])
        assert task.items[k].extra == pytest.approx([math.log1p(idx) / 100], rel=1e-6)
    assert task.data_version["proxies"] == ["synflow"]
    with pytest.raises(LedgformerError, match="zero-cost proxies are defined for"):
        accuracy_task(load_config(None, ["data.benchmark=nb101-cifar10", "data.proxies=[synflow]",
                                         f"data.data_root={data_root}"]), 0)


def test_predictor_with_proxies_fits_predicts_and_round_trips(tmp_path, monkeypatch) -> None:
    """Predictor.create(proxies=[...]) computes synflow for the archs it is given (fit and
    predict), saves the proxies with its config, and refuses a model that is no NB201 arch."""
    from ledgformer.api import Predictor
    from ledgformer.graph.builder import GraphBuilder
    from ledgformer.spaces.nb201 import all_arch_strings

    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))
    archs = all_arch_strings()[:16]
    acc = [60.0 + i for i in range(16)]
    pred = Predictor.create("ledgformer", task="accuracy", encoder="onehot", proxies=["synflow"],
                            d_model=16, n_layers=1, n_heads=2)
    pred.fit(archs, acc, epochs=2, batch_size=8, progress=False)
    out = pred.predict(archs[:4])
    pred.save(tmp_path / "p.pt")
    back = Predictor.load(tmp_path / "p.pt")
    assert np.allclose(back.predict(archs[:4]), out, atol=1e-5)
    assert back.model.config.n_extra == 1
    b = GraphBuilder()
    b.linear(b.flatten(b.input((1, 8))), 2)
    with pytest.raises(LedgformerError, match="not a NAS-Bench-201 arch"):
        back.predict(b.build())
