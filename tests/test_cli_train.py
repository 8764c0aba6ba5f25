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


@pytest.mark.parametrize(("extra", "message"), [
    (["--device", "help/eyeriss", "--shots", "-1"], "--shots must be >= 0"),
    (["--device", "mmb/tflite/pixel4|1large|float"], "only HELP cards"),
    (["--device", "help/eyeriss", "--keep", "0", "1.5"], "keep must be in [0, 1)"),
])
def test_finetune_errors_are_one_line(help_checkpoint: Path, extra: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", str(help_checkpoint), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
