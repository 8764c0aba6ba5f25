"""`ledgformer predict` and `ledgformer models list` in-process, on a tiny checkpoint in a tmp dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ledgformer.api import Predictor, shipped_predictors
from ledgformer.cli.main import main
from ledgformer.graph.torch_import import export_onnx

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny latency checkpoint (with training/test devices and test metrics) and an ONNX model."""
    folder = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    p = Predictor.create("ledgformer", task="latency", encoder="onehot", d_model=16, n_layers=2, n_heads=2,
                         dyn_rank=4, hw_layers=0)
    p.devices = {"train": ["help/pixel3", "help/1080ti_32", "help/silver_4114"],
                 "test": ["help/pixel2", "help/titan_rtx_256"]}
    p.metrics = {"test.per_device.pixel2.mape": 12.5, "test.per_device.pixel2.spearman": 0.81,
                 "test.per_device.titan_rtx_256.mape": 30.0, "test.mape": 21.0}
    ckpt = p.save(folder / "model.pt")
    torch.manual_seed(0)
    acc = Predictor.create("ledgformer", task="accuracy", encoder="onehot", d_model=16, n_layers=1, n_heads=2)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 4)).eval()
    onnx_path = folder / "tiny.onnx"
    onnx_path.write_bytes(export_onnx(net, (1, 3, 16, 16)).SerializeToString())
    return {"latency": ckpt, "accuracy": acc.save(folder / "acc.pt"), "onnx": onnx_path}


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(["predict", str(files["onnx"]), "--hardware", "help/samsung_s7", "--predictor",
                    str(files["latency"])], capsys)
    assert out["task"] == "latency" and out["unit"] == "ms" and out["estimate"] > 0
    assert out["hardware"]["name"] == "help/samsung_s7"
    assert out["nearest_platforms"][0]["card"] == "help/pixel3"  # the phone among the training devices
    assert "mobile-soc" in out["test_error"]["scope"] and out["test_error"]["metrics"]["mape"] == 12.5
    # the same number as the Python API
    api = Predictor.load(files["latency"]).predict(str(files["onnx"]), "help/samsung_s7")
    assert out["estimate"] == pytest.approx(api, rel=1e-6)


def test_predict_breakdown(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", ARCH, "--hardware", "help/raspi4", "--predictor", str(files["latency"]), "--breakdown"]
    out = run_json([*argv, "--top", "1000"], capsys)
    rows = out["breakdown"]
    assert len(rows) == out["breakdown_nodes"] > 100  # the whole NB201 network
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert sum(r["ms"] for r in rows) == pytest.approx(out["estimate"], rel=1e-5)
    assert main([*argv, "--top", "5"]) == 0
    text = capsys.readouterr().out
    assert "top 5 of" in text and "share" in text and "ms" in text
    assert "nearest training platforms" in text and "measured test error" in text


def test_predict_input_shape_and_batch(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = ["predict", str(files["onnx"]), "--hardware", "help/pixel3", "--predictor", str(files["latency"])]
    small = run_json(base, capsys)["estimate"]
    big = run_json([*base, "--input-shape", "1,3,64,64"], capsys)["estimate"]
    assert small > 0 and big > 0 and big != small


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", ARCH, "--predictor", "no-such-predictor"], "unknown predictor 'no-such-predictor'"),
        (["predict", ARCH, "--predictor", "{acc}", "--hardware", "help/pixel3"],
         "does not depend on hardware"),
        (["predict", ARCH, "--predictor", "{lat}"], "pass hardware="),
        (["predict", ARCH, "--predictor", "{lat}", "--hardware", "help/nope"], "unknown hardware card"),
        (["predict", ARCH, "--predictor", "{acc}", "--breakdown"], "--breakdown needs a latency predictor"),
        (["predict", "missing.onnx", "--predictor", "{lat}", "--hardware", "help/pixel3"], "file not found"),
        (["predict", ARCH, "--predictor", "{lat}", "--hardware", "help/pixel3", "--top", "0"], "--top"),
    ],
)
def test_errors_are_one_line(argv: list[str], expected: str, files: dict[str, Path],
                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(acc=files["accuracy"], lat=files["latency"]) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_accuracy_predictor_without_hardware(files: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(["predict", ARCH, "--predictor", str(files["accuracy"])], capsys)
    assert out["task"] == "accuracy" and out["unit"] == "%" and out["hardware"] is None


def test_models_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries == shipped_predictors()
    for entry in entries.values():
        assert {"task", "checkpoint", "training_data", "command", "metrics"} <= set(entry)
    assert main(["models", "list"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in entries)


@pytest.mark.parametrize("argv", [["predict", "--help"], ["models", "list", "--help"]])
def test_help_has_an_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out


def test_query_with_a_trained_predictor(files: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`query --predictor CKPT` answers with the trained model (same number as predict) and records it."""
    db = f"sqlite:///{tmp_path / 'lat.db'}"
    out = run_json(["query", str(files["onnx"]), "--platform", "help/pixel2", "--db", db,
                    "--predictor", str(files["latency"])], capsys)
    assert out["source"] == "predicted" and out["predictor"].startswith("ledgformer:")
    api = Predictor.load(files["latency"]).predict(str(files["onnx"]), "help/pixel2")
    assert out["latency_ms"] == pytest.approx(api, rel=1e-6)
    assert main(["query", str(files["onnx"]), "--platform", "help/pixel2", "--db", db, "--predictor",
                 str(files["accuracy"])]) == 2  # an accuracy model is refused with a clear error
    assert "predicts accuracy, not latency" in capsys.readouterr().err
