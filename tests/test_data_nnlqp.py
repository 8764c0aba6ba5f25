"""NNLQP format: write_nnlqp -> load_nnlqp round trip, label parsing, the real label file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from ledgformer.data.nnlqp import NNLQPItem, load_nnlqp, load_nnlqp_labels, write_nnlqp
from ledgformer.errors import LedgformerError
from ledgformer.graph.torch_import import export_onnx


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))


def _tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "convnet": torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                       torch.nn.Linear(8, 10)),
        "mlp": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 16), torch.nn.GELU(),
                                   torch.nn.Linear(16, 4)),
        "bnnet": torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Sigmoid()),
    }


def _folder(tmp_path: Path) -> Path:
    items = []
    for k, (name, module) in enumerate(_tiny_models().items()):
        proto = export_onnx(module, (1, 3, 8, 8))
        items.append(NNLQPItem(proto, name, 0.5 + k, family=("cnn" if k != 1 else "mlp"), platform="cpu_ort",
                               split="test" if k == 2 else "train", batch=1 if k else 4))
    write_nnlqp(tmp_path / "nn", items)
    return tmp_path / "nn"


def test_round_trip(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    lines = (folder / "gt.txt").read_text().splitlines()
    assert lines[0] == "00001 onnx/cnn/convnet.onnx 4 0.5 cnn cpu_ort train"
    data = load_nnlqp(folder, show_progress=False)
    assert not data.failures
    assert sorted(data.graphs) == ["nnlqp/onnx/cnn/bnnet", "nnlqp/onnx/cnn/convnet@4", "nnlqp/onnx/mlp/mlp"]
    assert [r.target for r in data.records] == [0.5, 1.5, 2.5]
    assert {r.device for r in data.records} == {"nnlqp/cpu_ort"}
    assert Counter(r.tags["family"] for r in data.records) == {"cnn": 2, "mlp": 1}
    assert [r.tags["split"] for r in data.records] == ["train", "train", "test"]
    conv = data.graphs["nnlqp/onnx/cnn/convnet@4"]
    assert conv.meta["batch_size"] == 4  # the label's batch overrides the file's
    assert conv.macs == 4 * (8 * 3 * 9 * 6 * 6 + 8 * 10)
    assert sorted(n.op for n in data.graphs["nnlqp/onnx/cnn/bnnet"].nodes if n.op != "input") == [
        "batchnorm", "conv", "sigmoid"]
    again = load_nnlqp(folder, show_progress=False)  # cached by content
    assert again.graphs.keys() == data.graphs.keys()


def test_missing_onnx_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "onnx" / "mlp" / "mlp.onnx").unlink()
    data = load_nnlqp(folder, show_progress=False)
    assert "ONNX file not found" in data.failures["nnlqp/onnx/mlp/mlp"] and len(data.graphs) == 2
    labels_only = tmp_path / "labels"
    labels_only.mkdir()
    (labels_only / "gt.txt").write_text((folder / "gt.txt").read_text())
    with pytest.raises(LedgformerError, match=r"none of the 3 ONNX files.*labels only"):
        load_nnlqp(labels_only)
    assert len(load_nnlqp(labels_only, with_graphs=False).records) == 3


@pytest.mark.parametrize(("line", "match"), [
    ("00001 a.onnx 1 2.0 fam 1", "expected 7 fields"),
    ("00001 a.onnx x 2.0 fam 1 train", "batch 'x'"),
    ("00001 a.onnx 1 fast fam 1 train", "latency 'fast'"),
    ("00001 a.onnx 1 -2 fam 1 train", "latency > 0"),
])
def test_bad_label_lines(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "gt.txt"
    path.write_text(line + "\n")
    with pytest.raises(LedgformerError, match=f"gt.txt:1: .*{match}"):
        load_nnlqp_labels(path)


def test_write_rejects_spaces(tmp_path: Path) -> None:
    with pytest.raises(LedgformerError, match="family 'my fam'"):
        write_nnlqp(tmp_path, [NNLQPItem(export_onnx(torch.nn.ReLU(), (1, 2)), "r", 1.0, "my fam", "1")])


def test_real_label_file(data_root: Path) -> None:
    labels = load_nnlqp_labels(data_root / "nnlqp" / "gt_stage.txt")
    assert len(labels) == 20_000
    per_family = Counter(lab.family for lab in labels)
    assert len(per_family) == 10 and set(per_family.values()) == {2000}
    assert {"alexnet", "resnet18", "nasbench201", "vgg16"} <= set(per_family)
    assert Counter(lab.split for lab in labels) == {"train": 18_000, "test": 2_000}
    assert {lab.platform for lab in labels} == {"1"} and {lab.batch for lab in labels} == {1}
    assert labels[0].onnx_path == "onnx/nnmeter_alexnet/nnmeter_alexnet_transform_0000.onnx"
    assert labels[0].latency_ms == pytest.approx(2.06137)
    data = load_nnlqp(data_root / "nnlqp", with_graphs=False)
    assert data.devices() == ["nnlqp/1"] and len(data.records) == 20_000
    with pytest.raises(LedgformerError, match=r"ONNX files named in gt_stage\.txt exist"):
        load_nnlqp(data_root / "nnlqp")
