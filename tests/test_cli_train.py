"""`ledgformer train | evaluate | finetune` in-process: outputs, printed metrics, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ledgformer.cli.main import main
from ledgformer.model.registry import create_model
from ledgformer.train.checkpoint import save_checkpoint
from ledgformer.train.config import load_config
from ledgformer.train.trainer import model_kwargs
from test_trainer import SMALL, synthetic_task

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-embedded.yaml"
TINY = ["features.encoder=onehot", "data.max_graphs=48", "data.valid_fraction=0.25", "train.epochs=1",
        "train.progress=false", "train.threads=1", "model.d_model=16", "model.n_layers=1", "seed=0"]


def _printed(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_train_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train writes the run folder and prints its test metrics; evaluate reproduces them from model.pt."""
    run = tmp_path / "run"
    assert main(["train", "--config", str(CONFIG), *TINY, f"out={run}"]) == 0
    printed = _printed(capsys)
    saved = json.loads((run / "metrics.json").read_text())
    assert printed["test.mape"] == pytest.approx(saved["test.mape"], abs=1e-4)
    assert load_config(run / "config.yaml")["features"]["encoder"] == "onehot"
    assert main(["evaluate", str(run / "model.pt"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["test.mape"] == pytest.approx(saved["test.mape"], rel=1e-4)
    assert _printed(capsys)["test.spearman"] == pytest.approx(saved["test.spearman"], abs=1e-4)


def test_train_bad_override_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(CONFIG), "train.epochz=1", f"out={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "epochz" in err and "Traceback" not in err


@pytest.fixture
def help_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A help-latency checkpoint whose task is a tiny synthetic one (no HELP data needed)."""
    def task(cfg: dict):
        data = synthetic_task("latency")
        data.devices = ["help/titanx_1", "help/eyeriss"]
        data.split_json = '{"devices": {"train": ["help/titanx_1"], "test": ["help/eyeriss"]}}'
        train = data.parts["train"]
        data.parts["shots"] = train[data.device_row[train] == 1][: int(cfg["data"]["shots"])]
        return data

    monkeypatch.setattr("ledgformer.train.finetune.build_task", task)
    data = synthetic_task("latency")
    torch.manual_seed(0)
    name, kw = model_kwargs({"model": {"name": "ledgformer", **SMALL, "hw_layers": 0}}, data)
    model = create_model(name, **kw)
    model.set_target_stats(0.5, 0.3)
    cfg = load_config(None, ["task=help-latency", "data.benchmark=help-nb201"])
    return save_checkpoint(tmp_path / "model.pt", model, config=cfg, model_name=name, model_config=kw,
                           encoder_id="test-encoder", data_version={"benchmark": "synthetic"})


def test_finetune(help_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ft"
    argv = ["finetune", str(help_checkpoint), "--device", "help/eyeriss", "--shots", "4", "--steps", "3",
            "--out", str(out)]
    assert main(argv) == 0
    printed = _printed(capsys)
    assert printed["shots"] == 4 and {"spearman", "mape", "zero_shot_spearman"} <= set(printed)
    assert (out / "model.pt").is_file()
    assert json.loads((out / "metrics.json").read_text())["mape"] == pytest.approx(printed["mape"], abs=1e-4)
    assert np.isfinite(printed["mape"])
    assert "keep" not in printed  # one fixed recipe: nothing chosen


def test_finetune_keep_list_reports_the_choice(help_checkpoint: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["finetune", str(help_checkpoint), "--device", "help/eyeriss", "--shots", "4", "--steps", "3",
            "--keep", "0", "0.5"]
    assert main(argv) == 0
    assert _printed(capsys)["keep"] in (0.0, 0.5)


def test_finetune_params_list_reports_the_choice(help_checkpoint: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--params all reference --keep 0 0.5: the K samples choose a recipe; the printout says which."""
    argv = ["finetune", str(help_checkpoint), "--device", "help/eyeriss", "--shots", "4", "--steps", "3",
            "--params", "all", "reference", "--keep", "0", "0.5"]
    assert main(argv) == 0
    printed = _printed(capsys)
    assert printed["params"] in ("all", "reference") and np.isfinite(printed["mape"])
    assert ("keep" in printed) == (printed["params"] == "all")


def test_finetune_params_scale_keeps_the_ranking(help_checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--params scale fits only the log-latency scale and shift: Spearman stays the zero-shot one;
    the saved checkpoint records the recipe it was adapted with."""
    from ledgformer.train.checkpoint import read_checkpoint

    out = tmp_path / "ft"
    argv = ["finetune", str(help_checkpoint), "--device", "help/eyeriss", "--shots", "4", "--steps", "20",
            "--params", "scale", "--lr", "0.05", "--keep", "0", "--out", str(out)]
    assert main(argv) == 0
    printed = _printed(capsys)
    assert printed["spearman"] == pytest.approx(printed["zero_shot_spearman"], abs=1e-4)
    assert printed["mape"] != pytest.approx(printed["zero_shot_mape"], abs=1e-3)
    assert read_checkpoint(out / "model.pt")["config"]["finetune"]["params"] == "scale"


def test_finetune_params_reference_saves_a_blend(help_checkpoint: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--params reference: the saved model is a reference blend of the base model over the
    checkpoint's training devices, which loads back and predicts what the run scored."""
    from ledgformer.train.checkpoint import load_checkpoint

    out = tmp_path / "ft"
    argv = ["finetune", str(help_checkpoint), "--device", "help/eyeriss", "--shots", "4",
            "--params", "reference", "--keep", "0", "--out", str(out)]
    assert main(argv) == 0
    printed = _printed(capsys)
    assert np.isfinite(printed["mape"]) and printed["mape"] != pytest.approx(printed["zero_shot_mape"])
    model, ckpt = load_checkpoint(out / "model.pt", "test-encoder")
    assert ckpt["model_name"] == "reference-blend" and model.references == ["help/titanx_1"]
    assert ckpt["model_config"]["base"]["name"] == "ledgformer" and model.mix.sum() > 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--device", "help/eyeriss", "--shots", "-1"], "--shots must be >= 0"),
    (["--device", "mmb/tflite/pixel4|1large|float"], "only HELP cards"),
    (["--device", "help/eyeriss", "--keep", "0", "1.5"], "keep must be in [0, 1)"),
    (["--device", "help/eyeriss", "--params", "all", "all"], "a list of distinct such"),
])
def test_finetune_errors_are_one_line(help_checkpoint: Path, extra: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", str(help_checkpoint), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _measured_csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "board" / "measured.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(["model,latency_ms", *rows]) + "\n")
    return path


def test_finetune_measured_adapts_and_saves_a_predictor(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--measured: the user's own (model, ms) rows, an ONNX file named relative to the CSV included;
    the adapted model.pt is a predictor that `predict` reads and says what it was adapted to."""
    from ledgformer.api import Predictor
    from ledgformer.graph.torch_import import export_onnx
    from ledgformer.spaces import nb201
    from test_api import TINY, tiny_net

    torch.manual_seed(0)
    ckpt = Predictor.create("ledgformer", task="latency", encoder="onehot", **TINY).save(tmp_path / "p.pt")
    archs = nb201.all_arch_strings()[:5]
    csv_path = _measured_csv(tmp_path, [f"{a},{2.0 + i}" for i, a in enumerate(archs)] + ["tiny.onnx,0.5"])
    (csv_path.parent / "tiny.onnx").write_bytes(export_onnx(tiny_net(), (1, 3, 16, 16)).SerializeToString())
    out = tmp_path / "adapted"
    assert main(["finetune", str(ckpt), "--device", "help/raspi4", "--measured", str(csv_path),
                 "--steps", "3", "--params", "scale", "--lr", "0.05", "--out", str(out)]) == 0
    out_text = capsys.readouterr().out
    printed = json.JSONDecoder().raw_decode(out_text[out_text.index("{"):])[0]
    assert printed["n"] == 6 and printed["hardware"] == "help/raspi4"
    assert f"--predictor {out / 'model.pt'}" in out_text  # how to use it
    recipe = json.loads((out / "adapted.json").read_text())["recipe"]
    assert (recipe["steps"], recipe["params"], recipe["lr"]) == (3, "scale", 0.05)
    assert main(["predict", archs[0], "--hardware", "help/pixel3", "--predictor", str(out / "model.pt")]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "adapted to help/raspi4 from 6 measured networks" in said and "not this card" in said


def test_finetune_measured_uses_the_training_thread_count(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--measured adapts with the predictor config's train.threads (as the suites' K-shot runs do),
    so that the adapted weights repeat bit for bit."""
    from ledgformer.api import Predictor
    from ledgformer.spaces import nb201
    from test_api import TINY

    pred = Predictor.create("ledgformer", task="latency", encoder="onehot", **TINY)
    pred.config["train"] = {"threads": 1}
    ckpt = pred.save(tmp_path / "p.pt")
    csv_path = _measured_csv(tmp_path, [f"{a},{2.0 + i}" for i, a in enumerate(nb201.all_arch_strings()[:3])])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["finetune", str(ckpt), "--device", "help/raspi4", "--measured", str(csv_path),
                     "--steps", "1", "--out", str(tmp_path / "a")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("rows", "extra", "message"), [
    (["x,1"], ["--shots", "3"], "with --measured, K is the CSV's rows"),
    (["x,1"], ["--no-out"], "--measured needs --out"),
    (None, [], "needs the columns model and latency_ms"),
    (["a,1", "b,zero", ",2", "c,-1"], [], "line 3: model 'b', latency_ms 'zero'"),
    (["only,1"], [], "needs at least 2 measured networks"),
])
def test_finetune_measured_errors_are_one_line(tmp_path: Path, rows: list[str] | None, extra: list[str],
                                               message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _measured_csv(tmp_path, rows or [])
    if rows is None:
        path.write_text("net,ms\nx,1\n")
    out = [] if "--no-out" in extra else ["--out", str(tmp_path / "o")]
    argv = ["finetune", "latency-all", "--device", "help/raspi4", "--measured", str(path), *out,
            *[e for e in extra if e != "--no-out"]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
