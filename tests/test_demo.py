"""The demo, reduced (few graphs, one epoch, onehot texts, a tiny ONNX model), run in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from ledgformer.cli.main import main
from ledgformer.graph.torch_import import export_onnx
from ledgformer.train.demo import run_demo

torch.set_num_threads(1)
QUICK = ["data.max_graphs=36", "data.valid_fraction=0.25", "features.encoder=onehot", "train.epochs=1",
         "train.progress=false", "train.threads=1", "model.d_model=8", "model.n_layers=1", "model.n_heads=1"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def tiny_onnx(tmp_path: Path) -> Path:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(export_onnx(model, (1, 3, 16, 16)).SerializeToString())
    return path


@pytest.mark.parametrize("elsewhere", [True, False], ids=["trained-elsewhere", "trained-here"])
def test_reduced_demo_trains_compares_and_predicts(tmp_path: Path, tiny_onnx: Path,
                                                   monkeypatch: pytest.MonkeyPatch, elsewhere: bool) -> None:
    # the embedded set measured on another machine (or here): the demo says when its predictions
    # for this machine are zero-shot
    from ledgformer.measure import detect_card

    here = detect_card("onnxruntime", 1, "fp32").to_text()
    monkeypatch.setattr("ledgformer.train.demo.embedded_machine_text",
                        lambda: "Another Machine, CPU" if elsewhere else here)
    buf = io.StringIO()
    res = run_demo(tmp_path / "demo", overrides=QUICK, model_spec=str(tiny_onnx), runtimes=("onnxruntime",),
                   repeat=8, console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert "held-out family 'resnet'" in text and "LeDG-Former" in text and "Acc(10%)" in text
    out = tmp_path / "demo"
    for f in ("metrics.json", "test_scatter_ledgformer.png", "test_scatter_flops.png", "model.pt",
              "config.yaml", "split.json"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["split"]["test_family"] == "resnet" and saved["split"]["n_test_graphs"] == 3
    for model in ("ledgformer", "flops"):
        fam_mape = saved[model]["test.per_family.resnet.mape"]
        assert fam_mape == pytest.approx(saved[model]["test.mape"], rel=1e-4)
        assert 0 <= saved[model]["test.acc@10%"] <= 1
    # the table prints the run's own figures
    assert f"{res.metrics['flops']['test.mape']:.1f}%" in text
    (local,) = res.local
    assert local.platform.endswith("/ort-1t-fp32")
    assert set(local.predicted_ms) == {"LeDG-Former", "FLOPs"} and min(local.predicted_ms.values()) > 0
    assert (local.measured_ms or 0) > 0 or local.note.startswith("not measured")
    assert saved["local"]["platforms"][0]["platform"] == local.platform
    assert ("measured on another machine (Another Machine, CPU)" in text) == elsewhere


def test_cli_demo_without_measuring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--out", str(tmp_path / "d"), "--no-measure", "--baselines", "flops,gbdt", *QUICK]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "held-out family" in text and "GBDT" in text
    saved = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert "local" not in saved and saved["gbdt"]["test.n"] == saved["flops"]["test.n"]
    assert (tmp_path / "d" / "test_scatter_gbdt.png").is_file()
    assert main(["demo", "--no-measure", "--baselines", "xgb"]) == 2
    assert "unknown demo baseline(s) xgb; known: flops, gbdt" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "e"), "--no-measure", "data.test_family=nope"]) == 2
    assert "known families: alexnet" in capsys.readouterr().err
