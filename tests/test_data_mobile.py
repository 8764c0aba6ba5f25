"""mobile-ml-benchmark loader: units, cards, families, failures, FLOPS agreement on a few real models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ledgformer.data.hf_vits import VITS, build_vit, fold_patches, unfold_patches
from ledgformer.data.mobile import FOLDER, family_of, flops_agreement, load_mobile, read_e2e
from ledgformer.data.registry import get_benchmark
from ledgformer.errors import LedgformerError

HEADER = ("model,FLOPS,size,pixel4|1large|float|mean,pixel4|1large|float|std,"
          "s10|gpu|float|mean,s10|gpu|float|std")


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _write(root: Path, name: str, rows: list[str], header: str = HEADER) -> Path:
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_microseconds_become_ms_and_missing_cells_are_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "torch_cnn_e2e.csv", ["resnet18,3630673968,46734984,109347.16,165.25,,",
                                                  "mobilenetv2_wd4,1000,10,2500,10,1200,5"])
    records, ids, missing = read_e2e(path, "torch", "cnn")
    assert missing == 1
    assert ids == {"resnet18": "mmb/cnn/resnet18", "mobilenetv2_wd4": "mmb/cnn/mobilenetv2_wd4"}
    first = records[0]
    assert first.target == pytest.approx(109.34716) and first.kind == "latency_ms"
    assert first.device == "mmb/torch/pixel4|1large|float"
    assert first.tags == {"family": "resnet", "model": "resnet18", "framework": "torch",
                          "std_ms": pytest.approx(0.16525), "flops": 3630673968.0}
    assert [r.device for r in records[1:]] == ["mmb/torch/pixel4|1large|float", "mmb/torch/s10|gpu|float"]
    assert records[2].target == pytest.approx(1.2)


def test_malformed_tables_name_the_column(tmp_path: Path) -> None:
    bad = _write(tmp_path, "tflite_cnn_e2e.csv", ["a,1,1,5,1"],
                 header="model,FLOPS,size,pixel4|1large|float|mean,x")
    with pytest.raises(LedgformerError, match=r"column 'pixel4\|1large\|float\|mean' has no matching"):
        read_e2e(bad, "tflite", "cnn")
    odd = _write(tmp_path, "tflite_cnn_e2e.csv", ["a,1,1,5"], header="model,FLOPS,size,pixel4|1large")
    with pytest.raises(LedgformerError, match=r"column 'pixel4\|1large' is not"):
        read_e2e(odd, "tflite", "cnn")
    neg = _write(tmp_path, "tflite_cnn_e2e.csv", ["a,1,1,-5,1,3,1"])
    with pytest.raises(LedgformerError, match="expected > 0"):
        read_e2e(neg, "tflite", "cnn")


@pytest.mark.parametrize(("name", "family"), [
    ("resnet18_wd4", "resnet"), ("preresnetbc26b", "resnet"), ("sepreresnet10", "seresnet"),
    ("mobilenetv3_small_w7d20", "mobilenetv3"), ("fdmobilenet_wd2", "mobilenet"),
    ("mobilenetb_w1", "mobilenet"), ("efficientnet_edge_small_b", "efficientnet"), ("regnety016", "regnet"),
    ("squeezeresnet_v1_0", "squeezenet"),
    ("mit-b3", "segformer"), ("mobilevitv2-1.0-imagenet1k-256", "mobilevitv2"), ("vit-msn-small", "vit-msn"),
    ("swinv2-tiny-patch4-window8-256", "swinv2"), ("newnet42", "newnet"),
])
def test_family_tags(name: str, family: str) -> None:
    assert family_of(name) == family


def test_real_tables_units_and_counts(data_root: Path) -> None:
    records, ids, missing = read_e2e(data_root / FOLDER / "tflite_cnn_e2e.csv", "tflite", "cnn")
    assert len(ids) == 102 and missing == 0
    card = "mmb/tflite/pixel4|1large|float"
    r18 = [r for r in records if r.tags["model"] == "resnet18" and r.device == card]
    assert len(r18) == 1 and r18[0].target == pytest.approx(122.48)  # 122,480 us: ResNet-18 on one A76 core
    _, torch_ids, torch_missing = read_e2e(data_root / FOLDER / "torch_cnn_e2e.csv", "torch", "cnn")
    assert set(torch_ids) < set(ids) and torch_missing > 0


def test_every_vit_in_the_tables_has_a_spec(data_root: Path) -> None:
    import pandas as pd

    names = set()
    for fw in ("tflite", "torch"):
        names |= set(pd.read_csv(data_root / FOLDER / f"{fw}_transformer_e2e.csv").iloc[:, 0])
    assert names <= set(VITS), sorted(names - set(VITS))


@pytest.mark.slow
def test_small_cnns_build_cache_and_match_flops(data_root: Path, tmp_path: Path) -> None:
    """5 small real CNNs build; FLOPS = 2 x Conv+Gemm MACs (median within 1%, each within 5%)."""
    import shutil

    root = tmp_path / "root"
    (root / FOLDER).mkdir(parents=True)
    for fw in ("tflite", "torch"):
        shutil.copy(data_root / FOLDER / f"{fw}_cnn_e2e.csv", root / FOLDER)
    models = ["mobilenetv2_wd4", "squeezenet_v1_1", "regnetx002", "mobilenetv3_small_w7d20", "resnet10"]
    data = load_mobile(root, models=models, show_progress=False)
    assert sorted(data.graphs) == sorted(f"mmb/cnn/{m}" for m in models) and not data.failures
    agree = flops_agreement(data)
    assert agree["n"] == 10 and agree["median_rel_err"] < 0.01 and max(agree["per_model"].values()) < 0.05
    assert {r.tags["family"] for r in data.records} == {"mobilenetv2", "squeezenet", "regnet", "mobilenetv3",
                                                         "resnet"}
    again = load_mobile(root, models=models, show_progress=False)  # from the disk cache
    assert again.graphs.keys() == data.graphs.keys()


def test_unbuildable_models_are_listed_as_failures(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for fw in ("tflite", "torch"):
        _write(root, f"{fw}_cnn_e2e.csv", ["notapytorchcvnet,10,10,1000,1,2000,1"])
    _write(root, "tflite_transformer_e2e.csv", ["van-tiny,10,10,1000,1,2000,1", "bogus-vit,1,1,1,1,1,1"])
    cnn = load_mobile(root, show_progress=False)
    assert not cnn.graphs and "unknown pytorchcv model" in cnn.failures["mmb/cnn/notapytorchcvnet"]
    assert len(cnn.records) == 4  # the measurements stay, listed against the failed graph
    vit = load_mobile(root, kind="transformer", frameworks=("tflite",), show_progress=False)
    assert "removed from transformers" in vit.failures["mmb/vit/van-tiny"]
    assert "no config written out" in vit.failures["mmb/vit/bogus-vit"]


def test_fold_as_reshape_matches_torch() -> None:
    import torch
    import torch.nn.functional as F

    x = torch.randn(2, 3, 8, 6)
    patches = unfold_patches(x, 2, 3)
    assert torch.equal(patches, F.unfold(x, (2, 3), stride=(2, 3)))
    assert torch.equal(fold_patches(patches, (8, 6), 2, 3), F.fold(patches, (8, 6), (2, 3), stride=(2, 3)))


def test_mobilevitv2_withreshape_folds_gives_the_same_outputs() -> None:
    import copy

    import torch
    import transformers

    from ledgformer.data.hf_vits import reshape_folds

    torch.manual_seed(0)
    cfg = transformers.MobileViTV2Config(image_size=64, width_multiplier=0.5, num_labels=3)
    model = transformers.MobileViTV2ForImageClassification(cfg).eval()
    patched = copy.deepcopy(model)
    reshape_folds(patched)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=x).logits, patched(pixel_values=x).logits, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit-tiny-distilled-patch16-224",
                                  "cvt-13",  # Einsum attention
                                  "beit-base-patch16-224"])  # resize targets via shared initializers
def test_vit_config_matches_published_flops(data_root: Path, name: str) -> None:
    import pandas as pd

    table = pd.read_csv(data_root / FOLDER / "torch_transformer_e2e.csv").set_index("model")
    graph = build_vit(name)
    ours = 2 * sum(n.macs for n in graph.nodes if n.op in ("conv", "gemm", "matmul"))
    assert math.isclose(ours, table.loc[name, "flops"], rel_tol=0.01)
    assert list(graph.meta["input_shape"]) == [1, 3, 224, 224]


def test_registered_benchmarks() -> None:
    assert get_benchmark("mobile-cnn").kwargs == {"kind": "cnn"}
    assert get_benchmark("mobile-cnn-torch").kwargs["frameworks"] == ("torch",)
    assert get_benchmark("mobile-vit").kwargs == {"kind": "transformer"}
    assert get_benchmark("nnlqp").loader.endswith(":load_nnlqp_benchmark")
