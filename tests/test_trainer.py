"""Trainer, config and checkpoint: selection on valid only, outputs, overrides, version checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model import HardwareBatch, TextTable, create_model, graph_tensors
from ledgformer.train.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from ledgformer.train.config import DEFAULTS, load_config
from ledgformer.train.tasks import TaskData
from ledgformer.train.trainer import Trainer, model_kwargs, pairwise_rank_loss

torch.set_num_threads(1)


def _graph(width: int, depth: int):
    b = GraphBuilder()
    x = b.input((1, 3, 8, 8))
    for _ in range(depth):
        x = b.act(b.conv(x, width, 3))
    b.linear(b.flatten(b.global_pool(x)), 10)
    return b.build()


def synthetic_task(kind: str = "latency", n_graphs: int = 24, seed: int = 0) -> TaskData:
    """Latency ~ MACs scaled per device (2 devices), or accuracy ~ depth; tiny and fast."""
    table = TextTable()
    graphs = [_graph(4 * (1 + i % 4), 1 + (i // 4) % 6) for i in range(n_graphs)]
    items = [graph_tensors(g, table, texts=lambda g: [n.op for n in g.nodes]) for g in graphs]
    emb = torch.randn(len(table.texts()), 8, generator=torch.Generator().manual_seed(seed))
    macs = np.asarray([g.macs for g in graphs], float)
    if kind == "latency":
        graph_row = np.concatenate([np.arange(n_graphs), np.arange(n_graphs)])
        device_row = np.repeat([0, 1], n_graphs)
        target = np.where(device_row == 0, 1e-4 * macs[graph_row] + 1, 3e-4 * macs[graph_row] + 0.5)
        gen = torch.Generator().manual_seed(seed + 1)
        text = torch.randn(2, 8, generator=gen)
        hw = HardwareBatch(text, torch.randn(2, len(FEATURE_NAMES), generator=gen))
        devices = ["dev/a", "dev/b"]
    else:
        graph_row, device_row = np.arange(n_graphs), np.full(n_graphs, -1)
        target = np.asarray([50 + 5 * (1 + (i // 4) % 6) + i % 4 for i in range(n_graphs)], float)
        hw, devices = None, []
    m = graph_row.size
    parts = {"train": np.arange(0, m, 2), "valid": np.arange(1, m, 4), "test": np.arange(3, m, 4)}
    return TaskData(kind, items, [str(i) for i in range(n_graphs)], emb, graph_row, device_row, target,
                    devices, hw, parts, "test-encoder", macs, {"benchmark": "synthetic"}, "{}")


TCFG = {**DEFAULTS["train"], "epochs": 25, "batch_size": 16, "lr": 3e-3, "progress": False, "patience": 100,
        "eval_batch_size": 64}
SMALL = {"d_model": 16, "n_layers": 2, "n_heads": 2}


def _trainer(kind: str, **tcfg) -> Trainer:
    data = synthetic_task(kind)
    torch.manual_seed(0)
    name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL}}, data)
    return Trainer(create_model(name, **kw), data, {**TCFG, **tcfg}, seed=0)


def test_fit_learns_latency_and_reports_per_device() -> None:
    tr = _trainer("latency", rank_weight=0.5, epochs=60)
    summary = tr.fit()
    assert summary["best_epoch"] >= 0 and tr.history[-1]["loss"] < tr.history[0]["loss"]
    metrics, raw = tr.evaluate()
    assert metrics["test.spearman"] > 0.8
    assert {"test.per_device.a.spearman", "test.per_device.b.flops_spearman", "valid.mape"} <= set(metrics)
    pred = raw["test"][1]
    assert (pred > 0).all()


def test_grid_batches_cover_each_record_once_and_mix_graphs() -> None:
    """batch_graphs: every train record once per epoch, <= G graphs x D devices per batch, and a
    device sees several graphs in one batch (the per-device rank loss gets pairs)."""
    tr = _trainer("latency", batch_graphs=4, batch_size=8)
    d, train = tr.data, tr.data.parts["train"]
    for epoch in (0, 1):
        batches = tr._epoch_batches(epoch)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.sort(train))
        assert all(len(np.unique(d.graph_row[b])) <= 4 and len(np.unique(d.device_row[b])) <= 2
                   for b in batches)
        assert max(np.bincount(d.device_row[b]).max() for b in batches) > 1
    first, second = tr._epoch_batches(0), tr._epoch_batches(1)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=False))
    plain = _trainer("latency")  # default: consecutive records of one graph
    assert max(len(np.unique(d.graph_row[b])) for b in plain._epoch_batches(0)) > 4
    summary = _trainer("latency", batch_graphs=4, batch_size=8, epochs=3).fit()
    assert summary["epochs_run"] == 3


@pytest.mark.parametrize(("overrides", "message"), [
    (["task=accuracy", "train.batch_graphs=4"], "applies to latency tasks only"),
    (["task=latency", "train.batch_graphs=16", "train.batch_size=8"], "exceeds train.batch_size=8"),
    (["task=latency", "train.batch_graphs=-1"], "integer >= 0"),
])
def test_grid_batches_config_errors(overrides: list[str], message: str) -> None:
    """batch_graphs where it cannot apply is an error that says why, never silently ignored."""
    with pytest.raises(LedgformerError, match=message):
        load_config(None, overrides)
    load_config(None, ["task=latency", "train.batch_graphs=8"])


def test_selection_uses_valid_only() -> None:
    """Scrambling the test targets changes nothing about training or the chosen epoch."""
    a = _trainer("accuracy", epochs=10)
    b = _trainer("accuracy", epochs=10)
    test = b.data.parts["test"]
    b.data.target[test] = np.random.default_rng(1).permutation(b.data.target[test])
    sa, sb = a.fit(), b.fit()
    assert sa["best_epoch"] == sb["best_epoch"]
    assert np.allclose(a.predict(a.data.parts["test"]), b.predict(b.data.parts["test"]))


def test_ema_selects_averaged_weights() -> None:
    """With train.ema the validated weights are the moving average, and they end up in the model."""
    tr = _trainer("latency", epochs=4, eval_every=4, ema=0.5)  # validated once, at the end
    summary = tr.fit()
    assert tr.eval_model is tr.model and summary["best_epoch"] == 3
    assert np.isclose(tr.valid_score(), summary["best_valid_score"])
    plain = _trainer("latency", epochs=4, eval_every=4)
    plain.fit()
    assert not np.allclose(tr.predict(tr.data.parts["test"]), plain.predict(plain.data.parts["test"]))


def test_rank_loss_hand_checked() -> None:
    pred = torch.tensor([0.0, 1.0, 5.0])
    y = torch.tensor([0.0, 2.0, 1.0])
    grp = torch.tensor([0, 0, 1])
    # one same-group pair with y1 > y0: softplus(-(1 - 0))
    assert pairwise_rank_loss(pred, y, grp, 0.0).item() == pytest.approx(float(np.log1p(np.exp(-1.0))))


def test_config_overrides_and_unknown_keys(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: help-latency\ntrain:\n  epochs: 3\nmodel:\n  d_model: 8\n")
    cfg = load_config(path, ["seed=4", "train.lr=1e-2", "model.n_layers=1", "data.eval_all=false"])
    assert cfg["seed"] == 4 and cfg["train"]["lr"] == 0.01 and cfg["train"]["epochs"] == 3
    assert cfg["model"] == {"name": "ledgformer", "d_model": 8, "n_layers": 1}
    assert cfg["data"]["eval_all"] is False and cfg["config_name"] == "c"
    with pytest.raises(LedgformerError, match=r"train\.epoch"):
        load_config(path, ["train.epoch=3"])
    with pytest.raises(LedgformerError, match="key=value"):
        load_config(path, ["seed"])
    with pytest.raises(LedgformerError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_checkpoint_round_trip_and_mismatch(tmp_path) -> None:
    tr = _trainer("latency", epochs=2)
    tr.fit()
    idx = tr.data.parts["test"]
    before = tr.predict(idx)
    kw = model_kwargs({"model": {"name": "ledgformer", **SMALL}}, tr.data)[1]
    path = save_checkpoint(tmp_path / "m.pt", tr.model, config={"seed": 0}, model_name="ledgformer",
                           model_config=kw, encoder_id="test-encoder", data_version={"split": "abc"})
    model, _ = load_checkpoint(path, encoder_id="test-encoder", data_version={"split": "abc"})
    tr2 = Trainer(model, tr.data, TCFG)
    assert np.array_equal(tr2.predict(idx), before)
    with pytest.raises(LedgformerError, match=r"encoder_id.*other-encoder"):
        load_checkpoint(path, encoder_id="other-encoder")
    with pytest.raises(LedgformerError, match=r"data\.split"):
        load_checkpoint(path, encoder_id="test-encoder", data_version={"split": "xyz"})
    ckpt = read_checkpoint(path)
    ckpt["versions"]["ir_version"] = -1
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(LedgformerError, match="ir_version"):
        load_checkpoint(tmp_path / "old.pt")


def test_shared_graph_encoding_equals_plain_forward() -> None:
    """Encoding a graph once and reading it out per device equals one forward per example."""
    tr = _trainer("latency", epochs=1)
    tr.model.eval()
    idx = np.arange(tr.data.graph_row.size)
    shared = tr.predict(idx)
    tr.shares = False
    assert np.allclose(shared, tr.predict(idx), rtol=1e-5)


def test_run_experiment_writes_outputs(tmp_path, monkeypatch) -> None:
    from ledgformer.train import experiment

    monkeypatch.setattr("ledgformer.train.experiment.build_task", lambda cfg: synthetic_task("latency"))
    cfg = load_config(None, ["task=help-latency", f"out={tmp_path / 'run'}", "train.epochs=2",
                             "train.progress=false", "train.threads=1", "model.d_model=16",
                             "model.n_layers=1", "model.n_heads=2"])
    metrics = experiment.run_experiment(cfg)
    out = tmp_path / "run"
    for f in ("metrics.json", "config.yaml", "split.json", "model.pt", "test_scatter.png",
              "test_per_device_spearman.png"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test.spearman"] == pytest.approx(metrics["test.spearman"], rel=1e-4)
    assert load_config(out / "config.yaml")["train"]["epochs"] == 2


def test_min_steps_stretches_epochs_patience_and_eval_interval() -> None:
    """accuracy task: 12 train graphs / batch 16 = 1 step an epoch; 25 epochs = 25 steps."""
    assert len(_trainer("accuracy")._epoch_batches(0)) == 1
    assert _trainer("accuracy")._schedule(1) == (25, 100, 1)
    assert _trainer("accuracy", min_steps=20)._schedule(1) == (25, 100, 1)  # already enough
    assert _trainer("accuracy", min_steps=60, eval_every=2)._schedule(1) == (75, 300, 6)  # x3
    tr = _trainer("accuracy", min_steps=60, patience=6, epochs=4)  # x15: 60 epochs, patience 90
    tr.fit()
    assert len(tr.history) == 60  # unstretched, patience 6 could stop it after 7


def test_select_last_keeps_the_final_weights_and_never_stops_early() -> None:
    """train.select=last: every epoch runs (patience 1 would stop "best" early) and the model keeps
    the weights of the last epoch, whatever the validation score did."""
    best = _trainer("accuracy", epochs=12, patience=1)
    best.fit()
    last = _trainer("accuracy", epochs=12, patience=1, select="last")
    summary = last.fit()
    assert len(last.history) == 12 and summary["best_epoch"] == 11
    assert len(best.history) < 12  # the same run with "best" stopped on its patience
    assert np.isclose(last.valid_score(), summary["best_valid_score"])
    with pytest.raises(LedgformerError, match=r"train\.select"):
        _trainer("accuracy", epochs=1, select="final").fit()


def test_select_last_trains_without_a_valid_part() -> None:
    """train.select=last with an empty valid part (data.valid_fraction 0): the same weights as the
    run that validated every epoch (validation only reports), no valid score; "best" refuses."""
    with_valid = _trainer("accuracy", epochs=6, select="last")
    with_valid.fit()
    none = _trainer("accuracy", epochs=6, select="last")
    none.data.parts["valid"] = np.empty(0, np.int64)
    summary = none.fit()
    assert summary["best_valid_score"] is None and summary["best_epoch"] == 5
    assert all("valid_score" not in row for row in none.history)
    test = none.data.parts["test"]
    np.testing.assert_allclose(none.predict(test), with_valid.predict(test), rtol=1e-6)
    metrics, _ = none.evaluate()
    assert "test.kendall_tau" in metrics and not any(k.startswith("valid.") for k in metrics)
    best = _trainer("accuracy", epochs=1)
    best.data.parts["valid"] = np.empty(0, np.int64)
    with pytest.raises(LedgformerError, match=r"data\.valid_fraction > 0, or train\.select: last"):
        best.fit()


def test_select_metric_mape_picks_the_epoch_of_lowest_valid_mape() -> None:
    """train.select_metric=mape: the kept weights are those of the epoch whose valid MAPE was lowest
    (the rho-selected run may keep another); its valid score is minus that MAPE."""
    from ledgformer.train.metrics import mape

    tr = _trainer("latency", epochs=8, select_metric="mape")
    summary = tr.fit()
    scores = [row["valid_score"] for row in tr.history]
    assert summary["best_epoch"] == int(np.argmax(scores)) and max(scores) < 0
    valid = tr.data.parts["valid"]
    assert np.isclose(-mape(tr.data.target[valid], tr.predict(valid)), summary["best_valid_score"])
    with pytest.raises(LedgformerError, match=r"train\.select_metric"):
        _trainer("latency", epochs=1, select_metric="rmse").fit()


def test_cell_options_only_for_nb201_cells() -> None:
    from ledgformer.train.tasks import accuracy_task

    cfg = load_config(None, ["data.benchmark=nb101-cifar10", "data.live_cells=true"])
    with pytest.raises(LedgformerError, match="live_cells applies to NAS-Bench-201"):
        accuracy_task(cfg, 0)
    cfg = load_config(None, ["data.benchmark=nb101-cifar10", "data.none_edges=false"])
    with pytest.raises(LedgformerError, match="none_edges applies to NAS-Bench-201"):
        accuracy_task(cfg, 0)


def test_holdout_part_comes_from_the_test_pool(data_root) -> None:
    """data.holdout: seeded archs moved from test to a scored, never-selected part; train and
    valid are those of the plain protocol, and the split file says what was tested."""
    from ledgformer.train.tasks import accuracy_task

    base = ["data.n_train=60", "features.encoder=onehot", f"data.data_root={data_root}"]
    plain = accuracy_task(load_config(None, base), 3)
    held = accuracy_task(load_config(None, [*base, "data.holdout=100"]), 3)
    for part in ("train", "valid"):
        assert np.array_equal(plain.parts[part], held.parts[part])
    hold, test = held.parts["holdout"], held.parts["test"]
    assert hold.size == 100 and test.size == plain.parts["test"].size - 100
    assert np.array_equal(np.sort(np.concatenate([hold, test])), plain.parts["test"])
    assert json.loads(held.split_json)["holdout"] == hold.tolist()
    assert held.data_version["holdout"] == 100 and "holdout" not in plain.data_version
    with pytest.raises(LedgformerError, match=r"data\.holdout must be"):
        accuracy_task(load_config(None, [*base, "data.holdout=20000"]), 3)


def test_ensemble_run_holds_its_single_model_and_averages(tmp_path, monkeypatch) -> None:
    """Member 0 of an ensemble whose first entry is {} is exactly the single-model run; the
    ensemble predicts the mean of its members, and its checkpoint predicts the same after loading."""
    from ledgformer.train import experiment

    monkeypatch.setattr("ledgformer.train.experiment.build_task", lambda cfg: synthetic_task("accuracy"))
    base = ["task=accuracy", "train.epochs=3", "train.progress=false", "train.threads=1",
            "model.d_model=16", "model.n_layers=1", "model.n_heads=2"]
    single = experiment.run_experiment(load_config(None, [*base, f"out={tmp_path / 'one'}"]))
    gin = "{model: {name: gin, d_model: 16, n_layers: 2}, train: {lr: 0.005}}"
    ens = experiment.run_experiment(load_config(None, [*base, f"out={tmp_path / 'ens'}",
                                                        f"ensemble=[{{}}, {gin}]"]))
    assert ens["members.0.test.kendall_tau"] == single["test.kendall_tau"]
    assert ens["members.0.test.mape"] == single["test.mape"]
    assert "members.1.test.kendall_tau" in ens
    model, ckpt = load_checkpoint(tmp_path / "ens" / "model.pt", encoder_id="test-encoder")
    assert ckpt["model_name"] == "ensemble" and [m["name"] for m in ckpt["model_config"]["members"]] == \
        ["ledgformer", "gin"]
    data = synthetic_task("accuracy")
    tr = Trainer(model, data, TCFG)
    idx = data.parts["test"]
    members = [Trainer(m, data, TCFG).predict(idx) for m in model.members]
    assert np.allclose(tr.predict(idx), np.mean(members, 0), atol=1e-5)
    assert tr.predict(idx) == pytest.approx(
        Trainer(load_checkpoint(tmp_path / "ens" / "model.pt")[0], data, TCFG).predict(idx))


@pytest.mark.parametrize(("entry", "message"), [
    ("[{data: {n_train: 5}}]", "only 'model' and 'train'"),
    ("[{train: {lrr: 0.1}}]", r"ensemble\[0\]\.train\.lrr"),
    ("[3]", "member 0 must be a mapping"),
    ("[{model: {name: ensemble}}]", "cannot itself be"),
    ("{a: 1}", "must be a list"),
])
def test_ensemble_config_errors(entry: str, message: str) -> None:
    with pytest.raises(LedgformerError, match=message):
        load_config(None, [f"ensemble={entry}"])


def test_ensemble_member_overrides_merge_or_replace() -> None:
    from ledgformer.train.config import ensemble_members

    members = "[{}, {model: {dropout: 0.0}}, {model: {name: gin}, train: {lr: 0.005}}]"
    cfg = load_config(None, ["model.d_model=32", "train.lr=0.002", f"ensemble={members}"])
    a, b, c = ensemble_members(cfg)
    assert a["model"] == cfg["model"] and a["train"] == cfg["train"] and a["ensemble"] == []
    assert b["model"] == {**cfg["model"], "dropout": 0.0}
    assert c["model"] == {"name": "gin"} and c["train"]["lr"] == 0.005 and c["train"]["epochs"] == 100
