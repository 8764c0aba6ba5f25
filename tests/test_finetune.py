"""K-shot adaptation recipes (``finetune`` section): defaults, which parameters move, valid-device scoring."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ledgformer.errors import LedgformerError
from ledgformer.model.reference import ReferenceBlend
from ledgformer.model.registry import create_model
from ledgformer.train.checkpoint import read_checkpoint, save_checkpoint
from ledgformer.train.config import DEFAULTS, ConfigError, finetune_settings, load_config
from ledgformer.train.finetune import few_shot_metrics, kshot_task
from ledgformer.train.recipes import READOUT_PARAMS, ROOFLINE_PARAMS, adapt
from ledgformer.train.trainer import Trainer, model_kwargs
from test_trainer import SMALL, TCFG, synthetic_task


def _setup(hw_layers: int = 0, **model_kw) -> tuple[Trainer, torch.nn.Module, np.ndarray]:
    torch.set_num_threads(1)
    data = synthetic_task("latency")
    torch.manual_seed(0)
    name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL, "hw_layers": hw_layers, **model_kw}},
                            data)
    model = create_model(name, **kw)
    model.set_target_stats(0.5, 0.3)
    train = data.parts["train"]
    shots = train[data.device_row[train] == 1][:5]
    return Trainer(model, data, TCFG, seed=0), model, shots


def test_defaults_are_the_committed_recipe() -> None:
    """100 AdamW steps, lr 1e-3, MSE, whole model: committed NB201 K-shot numbers stay valid."""
    want = {"steps": 100, "lr": 1e-3, "weight_decay": 1e-4, "loss": "mse", "rank_weight": 1.0,
            "params": "all", "keep": 0.0, "folds": 2}
    assert DEFAULTS["finetune"] == want and DEFAULTS["data"]["shots_part"] == "test"
    assert finetune_settings({}) == want  # a checkpoint config from before the section
    assert finetune_settings({"finetune": {"lr": "1e-2"}}, steps=7, params=None) == {**want, "lr": 0.01,
                                                                                     "steps": 7}


def test_default_adapt_matches_the_old_loop() -> None:
    trainer, model, shots = _setup()
    old = copy.deepcopy(model)
    y = torch.as_tensor(np.log(trainer.data.target[shots]), dtype=torch.float32)
    opt = torch.optim.AdamW(old.parameters(), lr=1e-3, weight_decay=1e-4)
    old.train()
    for _ in range(100):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(trainer._forward(shots, old), y).backward()
        opt.step()
    adapt(trainer, model, shots)
    for (name, a), b in zip(model.state_dict().items(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("params", ["all", "readout", "scale"])
@pytest.mark.parametrize("loss", ["mse", "mse+rank"])
def test_each_mode_moves_only_its_parameters(params: str, loss: str) -> None:
    trainer, model, shots = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pred0 = trainer.predict(trainer.data.parts["test"])
    y = np.log(trainer.data.target[shots])
    err0 = np.mean((np.log(trainer.predict(shots)) - y) ** 2)
    adapt(trainer, model, shots, {"steps": 30, "lr": 0.05, "loss": loss, "params": params})
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    readout = {k for k in moved if k.split(".")[0] in READOUT_PARAMS}
    if params == "all":
        assert readout and moved - readout - {"y_loc", "y_scale"}
    elif params == "readout":
        assert readout and moved == readout
    else:
        assert moved == {"y_loc", "y_scale"}
        pred1 = trainer.predict(trainer.data.parts["test"])
        assert model.y_scale > 0 and np.array_equal(np.argsort(pred0), np.argsort(pred1))
    assert all(p.requires_grad for p in model.parameters())
    if loss == "mse":
        assert np.mean((np.log(trainer.predict(shots)) - y) ** 2) < err0


@pytest.mark.parametrize("params", ["all", "readout"])
def test_keep_interpolates_between_zero_shot_and_fine_tuned_weights(params: str) -> None:
    """keep = w: every trained weight ends at w * before + (1 - w) * plainly fine-tuned, then only
    the output scale and shift are refit (the ranking of the interpolated weights stays)."""
    trainer, model, shots = _setup()
    before = copy.deepcopy(model.state_dict())
    tuned, kept = copy.deepcopy(model), copy.deepcopy(model)
    recipe = {"steps": 20, "lr": 0.01, "params": params}
    adapt(trainer, tuned, shots, recipe)
    adapt(trainer, kept, shots, {**recipe, "keep": 0.25})
    after, mixed = tuned.state_dict(), kept.state_dict()
    moved = [k for k in before if not torch.equal(after[k], before[k])]
    assert moved
    rescaled = {"y_loc", "y_scale"}
    for k in set(moved) - rescaled:
        torch.testing.assert_close(mixed[k], 0.25 * before[k] + 0.75 * after[k])
    assert all(torch.equal(mixed[k], before[k]) for k in before if k not in moved and k not in rescaled)
    assert not torch.equal(mixed["y_scale"], before["y_scale"])
    lerped = copy.deepcopy(model)  # the interpolated weights without the refit rank the same
    lerped.load_state_dict({k: 0.25 * before[k] + 0.75 * after[k] if k in moved else before[k]
                            for k in before})
    test = trainer.data.parts["test"]
    pred_kept = Trainer(kept, trainer.data, TCFG).predict(test)
    pred_lerped = Trainer(lerped, trainer.data, TCFG).predict(test)
    assert np.array_equal(np.argsort(pred_kept), np.argsort(pred_lerped))


def test_a_keep_list_is_chosen_by_cross_validation_on_the_k_samples() -> None:
    """keep: [a, b]: each fold's model is the recipe with that keep fitted on the other folds; the
    keep with the lowest out-of-fold log-latency squared error wins, and the device's model is then
    the recipe with that keep on all K samples."""
    trainer, model, shots = _setup()
    recipe = {"steps": 20, "lr": 0.01}
    y = np.log(trainer.data.target[shots])
    folds = np.array_split(np.random.default_rng(trainer.seed).permutation(len(shots)), 2)
    err = []
    for keep in (0.0, 0.5):
        e = 0.0
        for held in folds:
            m = copy.deepcopy(model)
            adapt(trainer, m, shots[np.setdiff1d(np.arange(len(shots)), held)], {**recipe, "keep": keep})
            e += float(np.sum((np.log(Trainer(m, trainer.data, TCFG).predict(shots[held])) - y[held]) ** 2))
        err.append(e)
    assert err[0] != pytest.approx(err[1])  # the choice means something here
    want = (0.0, 0.5)[int(np.argmin(err))]
    plain = copy.deepcopy(model)
    adapt(trainer, plain, shots, {**recipe, "keep": want})
    assert adapt(trainer, model, shots, {**recipe, "keep": [0.0, 0.5], "folds": 2}).keep == want
    for (name, a), b in zip(model.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(LedgformerError, match="needs at least 2 samples"):
        adapt(trainer, model, shots[:1], {**recipe, "keep": [0.0, 0.5]})


def test_scale_recipe_rescales_a_roofline_model() -> None:
    """The roofline readout is in log ms, not standardised: the scale recipe must still move its
    level and spread (and keep the ranking)."""
    trainer, model, shots = _setup(roofline=True)
    test = trainer.data.parts["test"]
    pred0 = trainer.predict(test)
    y = np.log(trainer.data.target[shots])
    err0 = np.mean((np.log(trainer.predict(shots)) - y) ** 2)
    adapt(trainer, model, shots, {"steps": 30, "lr": 0.05, "params": "scale"})
    # before the fix only the small graph term moved
    assert np.mean((np.log(trainer.predict(shots)) - y) ** 2) < 0.8 * err0
    assert np.array_equal(np.argsort(pred0), np.argsort(trainer.predict(test)))


def test_roofline_recipe_moves_only_the_devices_throughputs() -> None:
    """params: roofline trains the layers that read P, B and O from the hardware token and nothing
    else: the K samples move where the device sits on the roofline, the graph encoder stays; a
    model without a roofline prior says so."""
    trainer, model, shots = _setup(roofline=True, roofline_overhead=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    y = np.log(trainer.data.target[shots])
    err0 = np.mean((np.log(trainer.predict(shots)) - y) ** 2)
    adapt(trainer, model, shots, {"steps": 30, "lr": 0.05, "params": "roofline"})
    moved = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {"roofline", "roofline_overhead"} and moved <= set(ROOFLINE_PARAMS)
    assert np.mean((np.log(trainer.predict(shots)) - y) ** 2) < err0
    trainer, plain, shots = _setup()
    with pytest.raises(LedgformerError, match="params=roofline: LeDGFormer has none of the parameters"):
        adapt(trainer, plain, shots, {"params": "roofline"})


def test_bad_recipe_is_named() -> None:
    with pytest.raises(ConfigError, match=r"finetune\.params"):
        load_config(None, ["finetune.params=encoder"])
    with pytest.raises(ConfigError, match=r"finetune\.stpes"):
        load_config(None, ["finetune.stpes=3"])
    with pytest.raises(ConfigError, match="lr > 0"):
        finetune_settings({}, lr=0.0)
    with pytest.raises(ConfigError, match=r"keep must be in \[0, 1\)"):
        finetune_settings({}, keep=1.0)
    with pytest.raises(ConfigError, match="params=scale trains none"):
        finetune_settings({}, keep=0.5, params="scale")
    with pytest.raises(ConfigError, match="params=reference trains none"):
        finetune_settings({}, keep=[0.0, 0.5], params="reference")
    with pytest.raises(ConfigError, match=r"keep must be in \[0, 1\)"):
        finetune_settings({}, keep=[0.0, 1.0])
    with pytest.raises(ConfigError, match=r"keep must be in \[0, 1\)"):
        finetune_settings({}, keep=[])
    assert finetune_settings({}, keep=[0.25])["keep"] == 0.25  # one value: fixed, nothing to choose
    with pytest.raises(ConfigError, match="folds must be >= 2"):
        finetune_settings({}, keep=[0.0, 0.5], folds=1)


def _reference_setup(name: str) -> tuple[Trainer, torch.nn.Module, np.ndarray, np.ndarray]:
    """Device a is the training device (the reference), device b the new one whose truth is made
    2x the model's prediction on a's card: (trainer, model, b's shots, b's other examples)."""
    torch.set_num_threads(1)
    data = synthetic_task("latency")
    data.split_json = '{"devices": {"train": ["dev/a"], "test": ["dev/b"]}}'
    torch.manual_seed(0)
    arch = {**SMALL, "hw_layers": 0} if name == "ledgformer" else {"d_model": 16, "n_layers": 2}
    model_name, kw = model_kwargs({"model": {"name": name, **arch}}, data)
    model = create_model(model_name, **kw)
    model.set_target_stats(0.5, 0.3)
    on_b = np.flatnonzero(data.device_row == 1)
    as_a = dataclasses.replace(data, device_row=np.zeros_like(data.device_row))
    data.target[on_b] = 2.0 * Trainer(model, as_a, TCFG).predict(on_b)
    return Trainer(model, data, TCFG, seed=0), model, on_b[:5], on_b[5:]


@pytest.mark.parametrize("name", ["ledgformer", "gin"])
def test_reference_recipe_mixes_the_training_devices_predictions(name: str) -> None:
    """params: reference moves no weight: a device whose latency is 2x the model's prediction on
    the training device's card is recovered exactly on networks outside its K samples, by a
    ReferenceBlend the trainer then predicts with (graphs shared across cards or not)."""
    trainer, model, shots, rest = _reference_setup(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted, keep, params = adapt(trainer, model, shots, {"params": "reference"})
    assert isinstance(adapted, ReferenceBlend) and adapted.base is model and keep is None and params is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert adapted.references == ["dev/a"] and trainer.eval_model is adapted
    torch.testing.assert_close(adapted.mix, torch.tensor([1.0, 0.0]), atol=1e-4, rtol=0)
    assert adapted.y_loc.item() == pytest.approx(np.log(2.0), abs=1e-4)
    np.testing.assert_allclose(trainer.predict(rest), trainer.data.target[rest], rtol=1e-4)
    # adapting the blend again blends its base, not a blend of a blend
    again = adapt(trainer, adapted, shots, {"params": "reference"}).model
    assert again.base is model


def test_reference_recipe_falls_back_to_the_own_card_when_no_column_fits() -> None:
    """Samples that no column explains (here: all the same latency) give the zero-shot prediction
    with its level moved to the samples' mean, not a constant that would rank nothing."""
    trainer, model, shots, rest = _reference_setup("ledgformer")
    own = trainer.predict(rest)
    trainer.data.target[shots] = 3.0
    adapted = adapt(trainer, model, shots, {"params": "reference"}).model
    assert adapted.mix.tolist() == [0.0, 1.0]
    shift = np.log(3.0) - np.mean(np.log(Trainer(model, trainer.data, TCFG).predict(shots)))
    np.testing.assert_allclose(trainer.predict(rest), own * np.exp(shift), rtol=1e-5)
    trainer.data.split_json = "{}"
    with pytest.raises(LedgformerError, match="params=reference blends the training devices"):
        adapt(trainer, model, shots, {"params": "reference"})


def _out_of_fold_error(trainer: Trainer, model: torch.nn.Module, shots: np.ndarray, recipe: dict) -> float:
    """The 2-fold out-of-fold log-latency squared error of one recipe, each fold adapting a copy."""
    y = np.log(trainer.data.target[shots])
    err = 0.0
    for held in np.array_split(np.random.default_rng(trainer.seed).permutation(len(shots)), 2):
        t = Trainer(copy.deepcopy(model), trainer.data, TCFG, seed=trainer.seed)
        adapt(t, t.model, shots[np.setdiff1d(np.arange(len(shots)), held)], recipe)
        err += float(np.sum((np.log(t.predict(shots[held])) - y[held]) ** 2))
    return err


@pytest.mark.parametrize("reference_wins", [True, False])
def test_a_params_list_is_chosen_by_cross_validation(reference_wins: bool) -> None:
    """params: [all, reference] with keep [0, 0.5]: the device takes whichever of the three recipes
    has the lowest out-of-fold error on its K samples, then that recipe on all K. A device that is
    2x a training device takes the blend; one whose latencies no training device explains (a
    function of the graph unrelated to the predictions) takes a fine-tuned model."""
    trainer, model, shots, rest = _reference_setup("ledgformer")
    if not reference_wins:
        trainer.data.target[:] = np.exp(np.sin(7.0 * np.arange(trainer.data.target.size)))
    recipe = {"steps": 20, "lr": 0.01}
    candidates = [{**recipe, "params": "all", "keep": 0.0}, {**recipe, "params": "all", "keep": 0.5},
                  {"params": "reference"}]
    errors = [_out_of_fold_error(trainer, model, shots, c) for c in candidates]
    want = candidates[int(np.argmin(errors))]
    assert (want["params"] == "reference") == reference_wins
    alone = Trainer(copy.deepcopy(model), trainer.data, TCFG, seed=0)
    adapt(alone, alone.model, shots, want)
    chosen = adapt(trainer, model, shots, {**recipe, "params": ["all", "reference"], "keep": [0.0, 0.5]})
    assert chosen.params == want["params"]
    assert chosen.keep == (None if reference_wins else want["keep"])
    assert isinstance(chosen.model, ReferenceBlend) == reference_wins
    np.testing.assert_allclose(trainer.predict(rest), alone.predict(rest), rtol=1e-5)


def test_a_params_list_is_checked() -> None:
    ft = finetune_settings({"finetune": {"params": ["all", "reference"], "keep": [0, 0.5]}})
    assert ft["params"] == ["all", "reference"] and ft["keep"] == [0.0, 0.5]
    assert finetune_settings({}, params=["scale"])["params"] == "scale"  # one value: fixed
    with pytest.raises(ConfigError, match="params must be one of"):
        finetune_settings({}, params=["all", "everything"])
    with pytest.raises(ConfigError, match="params must be one of"):
        finetune_settings({}, params=["all", "all"])
    with pytest.raises(ConfigError, match="trains none"):
        finetune_settings({}, params=["scale", "reference"], keep=0.5)
    with pytest.raises(ConfigError, match="folds must be >= 2"):
        finetune_settings({}, params=["all", "reference"], folds=1)


def test_few_shot_on_valid_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """part="valid": K samples of each validation device, scored on its evaluation set (valid.k<K>.*)."""
    seen: list[str] = []

    def task(cfg: dict):
        seen.append(cfg["data"]["shots_part"])
        data = synthetic_task("latency")
        data.devices = ["help/titanx_1", "help/gold_6240"]
        data.parts["valid"] = np.arange(data.device_row.size)[1::2]
        train = data.parts["train"]
        data.parts["shots"] = np.concatenate([train[data.device_row[train] == d][:3] for d in (0, 1)])
        return data

    monkeypatch.setattr("ledgformer.train.finetune.build_task", task)
    trainer, model, _ = _setup()
    cfg = load_config(None, ["task=help-latency", "data.benchmark=help-fbnet", "finetune.params=scale",
                             "finetune.lr=0.05"])
    name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL, "hw_layers": 0}}, trainer.data)
    path = save_checkpoint(tmp_path / "model.pt", model, config=cfg, model_name=name, model_config=kw,
                           encoder_id="test-encoder", data_version={"benchmark": "synthetic"})
    m = few_shot_metrics(path, [3], part="valid")
    assert seen == ["valid"]
    per = [m[f"valid.k3.per_device.{d}.spearman"] for d in ("titanx_1", "gold_6240")]
    assert m["valid.k3.mean_device_spearman"] == pytest.approx(np.mean(per))
    assert not any(k.startswith("k3.") for k in m)
    zero = Trainer(model, task(cfg), TCFG).evaluate(("valid",))[0]  # scale keeps each device's ranking
    assert per == pytest.approx([zero[f"valid.per_device.{d}.spearman"] for d in ("titanx_1", "gold_6240")])
    chosen = few_shot_metrics(path, [3], part="valid", params="all", steps=5, keep=[0.0, 0.5])
    assert {chosen[f"valid.k3.per_device.{d}.keep"] for d in ("titanx_1", "gold_6240")} <= {0.0, 0.5}
    with pytest.raises(Exception, match="part must be"):
        few_shot_metrics(path, [3], part="train")


def test_kshot_task_builds_the_shots_of_the_asked_devices(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The K-shot task: K samples of the part's devices (or only those asked), the trained weights,
    and a clear error for a checkpoint of another task, naming the caller."""
    seen: list[dict] = []

    def task(cfg: dict):
        seen.append(dict(cfg["data"]))
        data = synthetic_task("latency")
        train = data.parts["train"]
        data.parts["shots"] = np.concatenate([train[data.device_row[train] == d][:4] for d in (0, 1)])
        return data

    monkeypatch.setattr("ledgformer.train.finetune.build_task", task)
    trainer, model, _ = _setup()
    cfg = load_config(None, ["task=help-latency", "data.benchmark=help-fbnet", "train.threads=1"])
    name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL, "hw_layers": 0}}, trainer.data)
    path = save_checkpoint(tmp_path / "model.pt", model, config=cfg, model_name=name, model_config=kw,
                           encoder_id="test-encoder", data_version={"benchmark": "synthetic"})
    torch.set_num_threads(2)
    got = kshot_task(path, 4, seed=3, part="valid", devices=["titanx_1"])
    assert torch.get_num_threads() == int(got.cfg["train"]["threads"]) == 1  # repeatable fine-tuning
    assert {k: seen[-1][k] for k in ("shots", "shots_part", "valid_devices", "n_train_archs")} == {
        "shots": 4, "shots_part": "valid", "valid_devices": ["titanx_1"], "n_train_archs": 0}
    assert got.cfg["seed"] == 3 and not got.cfg["train"]["progress"]
    shots = got.shots_of(1)
    assert shots.size == 4 and (got.data.device_row[shots] == 1).all()
    for p, q in zip(got.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)
    # a checkpoint already read is not read again (the path is only named in messages)
    again = kshot_task(tmp_path / "not-there.pt", 4, seed=3, part="valid", devices=["titanx_1"],
                       ckpt=read_checkpoint(path))
    assert np.array_equal(again.shots_of(1), shots)
    acc = load_config(None, ["task=nb201-accuracy"])
    other = save_checkpoint(tmp_path / "acc.pt", model, config=acc, model_name=name, model_config=kw,
                            encoder_id="test-encoder", data_version={"benchmark": "synthetic"})
    with pytest.raises(LedgformerError, match="nb201-accuracy model; my tool needs task help-latency"):
        kshot_task(other, 4, what="my tool")


@pytest.mark.parametrize("params", ["readout", "scale"])
def test_an_ensemble_adapts_its_members_readouts_or_its_own_scale(params: str) -> None:
    data = synthetic_task("latency")
    torch.manual_seed(0)
    spec = {"name": "ledgformer", **SMALL}
    model = create_model("ensemble", **model_kwargs({"model": {"name": "ensemble", "members": [spec, spec]}},
                                                    data)[1])
    for m in model.members:
        m.set_target_stats(0.5, 0.3)
    trainer = Trainer(model, data, TCFG, seed=0)
    train = data.parts["train"]
    shots = train[data.device_row[train] == 1][:5]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pred0 = trainer.predict(data.parts["test"])
    adapt(trainer, model, shots, {"steps": 30, "lr": 0.05, "params": params})
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    if params == "readout":
        assert {k.split(".")[1] for k in moved} == {"0", "1"}
        assert all(k.split(".")[2] in READOUT_PARAMS for k in moved)
    else:
        assert moved == {"y_loc", "y_scale"}
        assert np.array_equal(np.argsort(pred0), np.argsort(trainer.predict(data.parts["test"])))
