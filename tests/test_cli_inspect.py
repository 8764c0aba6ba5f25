"""`ledgformer inspect` in-process: tables, JSON, options and one-line errors (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ledgformer.cli.main import main
from ledgformer.graph import ArchGraph
from ledgformer.graph.torch_import import export_onnx


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    path.write_bytes(export_onnx(model, (1, 3, 16, 16)).SerializeToString())
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))


def test_table_lists_ops_and_totals(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_onnx)]) == 0
    out = capsys.readouterr().out
    assert "conv" in out and "batchnorm" in out and "total" in out
    # conv MACs: 16*16*8*3*9 = 55,296 -> "55.30K"
    assert "55.30K" in out


def test_json_is_the_ir(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_onnx), "--json", "--batch", "4"]) == 0
    graph = ArchGraph.from_dict(json.loads(capsys.readouterr().out))
    conv = next(n for n in graph.nodes if n.op == "conv")
    assert conv.macs == 4 * 16 * 16 * 8 * 3 * 9
    assert graph.params == sum(p.numel() for p in nn.Conv2d(3, 8, 3).parameters()) + 16 + 36


def test_nodes_view_and_input_shape(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_onnx), "--nodes", "--input-shape", "2x3x32x32"]) == 0
    out = capsys.readouterr().out
    assert "2x8x32x32" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["inspect", "missing.onnx"], "missing.onnx: file not found"),
        (["inspect", "pytorchcv:no_such_net"], "unknown pytorchcv model"),
        (["inspect", "x.onnx", "--input-shape", "1,3,a"], "not a list of integers"),
        (["inspect", "x.onnx", "--batch", "0"], "--batch must be a positive integer"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_corrupt_file_and_debug_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 3)
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.onnx" in err and "Traceback" not in err
    assert main(["inspect", str(bad), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--help"])
    assert exit_info.value.code == 0
    assert "ledgformer inspect pytorchcv:resnet18" in capsys.readouterr().out


def test_dynamic_input_needs_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).eval()
    path = tmp_path / "dyn.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    assert main(["inspect", str(path)]) == 2
    assert "--input-shape" in capsys.readouterr().err
    assert main(["inspect", str(path), "--input-shape", "1,3,8,8"]) == 0
