"""mobile-ml-benchmark (qed-usc, EdgeSys 2024): end-to-end latency of real CNNs and ViTs on phones.

Files under ``<root>/mobile_ml_benchmark/``: ``<framework>_<family>_e2e.csv`` with
``framework`` in ``tflite`` / ``torch`` and ``family`` in ``cnn`` (102 real CNNs, named by their
``pytorchcv`` names), ``transformer`` (Hugging Face ViTs, named by the last part of their hub id)
and ``nas``. Columns: ``model, FLOPS, size`` then ``<device>|<config>|<dtype>|mean`` and ``|std``.

Unit: **microseconds** (ResNet-18 on one Pixel 4 big core reads 122,480 and 109,347: 122 / 109 ms,
as published for TFLite / PyTorch Mobile; read as ms it would be two minutes, as ns 0.1 ms). Records
are in ms (``/ 1000``). One setting column pair = one hardware card,
``card_name("mmb", "<device>|<config>|<dtype>", framework)``.

Graphs: CNNs are built with ``pytorchcv`` at 1x3x224x224, ViTs from the configs in ``hf_vits`` at
their own image size; both frameworks' records point to the same graph (``mmb/cnn/<model>``,
``mmb/vit/<model>``). The ``FLOPS`` column is ``2 x`` the Conv+Gemm MACs of that graph
(``flops_agreement`` measures it); each record carries its file's value in ``tags["flops"]``.

The ``*_nas_e2e.csv`` files are *not* loaded: their rows are ``NAS0 .. NAS999`` with FLOPS and
size only. The synthetic CNNs were sampled from the authors' own space and neither these files
nor the upstream repository (no generator, no per-model config) say which network each row is, so
no graph can be built for them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph

FOLDER = "mobile_ml_benchmark"
FRAMEWORKS = ("tflite", "torch")
#: the CSV latencies are microseconds (see the module doc)
US_PER_MS = 1000.0
CNN_INPUT = (1, 3, 224, 224)
#: model-name prefix -> family, first match wins (longer prefixes first), for leave-one-family-out
_FAMILIES = (
    ("bagnet", "bagnet"), ("bninception", "inception"), ("densenet", "densenet"),
    ("diracnet", "diracnet"), ("dla", "dla"), ("efficientnet", "efficientnet"), ("fbnet", "fbnet"),
    ("fdmobilenet", "mobilenet"), ("ghostnet", "ghostnet"), ("hardnet", "hardnet"),
    ("hrnet", "hrnet"), ("mnasnet", "mnasnet"), ("mobilenetv3", "mobilenetv3"),
    ("mobilenetv2", "mobilenetv2"), ("mobilenet", "mobilenet"), ("peleenet", "peleenet"),
    ("proxylessnas", "proxylessnas"), ("regnet", "regnet"), ("resnext", "resnext"),
    ("sepreresnet", "seresnet"), ("seresnet", "seresnet"), ("preresnet", "resnet"),
    ("resnet", "resnet"), ("spnasnet", "spnasnet"), ("squeeze", "squeezenet"),
    ("vovnet", "vovnet"),
    # ViTs (hub id tails)
    ("beit", "beit"), ("cvt", "cvt"), ("deit", "deit"), ("dinov2", "dinov2"),
    ("efficientformer", "efficientformer"), ("focalnet", "focalnet"), ("levit", "levit"),
    ("mit-", "segformer"), ("mobilevitv2", "mobilevitv2"), ("mobilevit", "mobilevit"),
    ("poolformer", "poolformer"), ("pvt", "pvt"), ("swiftformer", "swiftformer"),
    ("swinv2", "swinv2"), ("swin", "swin"), ("van-", "van"), ("vit-hybrid", "vit-hybrid"),
    ("vit-msn", "vit-msn"), ("vit", "vit"),
)


def family_of(model: str) -> str:
    """Architecture family of a model name (prefix table; otherwise the name without digits/width)."""
    low = model.lower()
    for prefix, family in _FAMILIES:
        if low.startswith(prefix):
            return family
    return re.sub(r"[\d_-].*$", "", low) or low


def setting_columns(columns: list[str], path: Path) -> list[str]:
    """The ``<device>|<config>|<dtype>`` settings of a header; every ``|mean`` needs its ``|std``."""
    head = [c.lower() for c in columns[:3]]
    if head != ["model", "flops", "size"]:
        raise LedgformerError(f"{path}: expected the columns to start with model, FLOPS, size; "
                              f"got {columns[:3]}")
    settings = []
    for col in columns[3:]:
        parts = col.split("|")
        if len(parts) != 4 or parts[3] not in ("mean", "std"):
            raise LedgformerError(f"{path}: column '{col}' is not <device>|<config>|<dtype>|mean or |std")
        if parts[3] == "mean":
            key = "|".join(parts[:3])
            if f"{key}|std" not in columns:
                raise LedgformerError(f"{path}: column '{col}' has no matching '{key}|std' column")
            settings.append(key)
    return settings


def _number(value: Any) -> float:
    """A cell as float; empty / NaN cells -> NaN (a missing measurement)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def read_e2e(path: Path, framework: str, kind: str) -> tuple[list[Record], dict[str, str], int]:
    """Records (ms) of one e2e CSV, graph id by model name, and the number of missing cells."""
    import pandas as pd

    if framework not in FRAMEWORKS:
        raise LedgformerError(f"unknown mobile-ml-benchmark framework '{framework}'; "
                              "expected tflite or torch")
    from ledgformer.hardware import card_name

    if not path.is_file():
        raise LedgformerError(f"{path}: file not found (mobile-ml-benchmark {framework} {kind} table)")
    table = pd.read_csv(path)
    settings = setting_columns(list(table.columns), path)
    records: list[Record] = []
    ids: dict[str, str] = {}
    missing = 0
    for row in table.itertuples(index=False):
        model, flops = str(row[0]).strip(), _number(row[1])
        if not model or model == "nan":
            raise LedgformerError(f"{path}: a row has an empty model name")
        gid = ids.setdefault(model, f"mmb/{kind}/{model}")
        values = dict(zip(table.columns, row, strict=True))
        for key in settings:
            mean, std = _number(values[f"{key}|mean"]), _number(values[f"{key}|std"])
            if math.isnan(mean):
                missing += 1
                continue
            if mean <= 0:
                raise LedgformerError(f"{path}: model {model}, column {key}|mean = {mean}; expected > 0 us")
            tags = {"family": family_of(model), "model": model, "framework": framework,
                    "std_ms": std / US_PER_MS, "flops": flops}
            records.append(Record(gid, mean / US_PER_MS, "latency_ms",
                                  card_name("mmb", key, framework=framework), tags))
    return records, ids, missing


def _require_known_ops(graph: ArchGraph, label: str) -> ArchGraph:
    unknown = sorted({n.raw_op or "?" for n in graph.nodes if n.op == "unknown"})
    if unknown:
        raise LedgformerError(f"{label}: operators outside the vocabulary: {', '.join(unknown)}")
    return graph


def build_cnn(model: str) -> ArchGraph:
    """The pytorchcv CNN ``model`` at 1x3x224x224 (per-model disk cache of ``graph.zoo``)."""
    from ledgformer.graph.zoo import load_model

    return _require_known_ops(load_model(f"pytorchcv:{model}", input_shape=CNN_INPUT), model)


def _builder_modules() -> list[Any]:
    from ledgformer.graph import onnx_fold, onnx_import, onnx_ops, onnx_patterns, torch_import, zoo

    return [zoo, torch_import, onnx_import, onnx_ops, onnx_patterns, onnx_fold]


def load_mobile(root: Path, kind: str = "cnn", frameworks: tuple[str, ...] | list[str] = FRAMEWORKS,
                with_graphs: bool = True, models: list[str] | None = None,
                show_progress: bool = True) -> BenchmarkData:
    """Records (ms) of ``<framework>_<kind>_e2e.csv`` for ``kind`` in cnn / transformer, with graphs.

    ``models`` keeps only those model names (a quick subset). Models that cannot be built are in
    ``failures`` with the reason (their records stay, pointing to no graph).
    """
    if kind not in ("cnn", "transformer"):
        raise LedgformerError(f"unknown mobile-ml-benchmark table '{kind}'; expected cnn or transformer")
    gkind = "cnn" if kind == "cnn" else "vit"
    records: list[Record] = []
    names: dict[str, str] = {}
    missing: dict[str, int] = {}
    for fw in frameworks:
        recs, ids, n_missing = read_e2e(root / FOLDER / f"{fw}_{kind}_e2e.csv", fw, gkind)
        records += recs
        names.update(ids)
        missing[fw] = n_missing
    if models is not None:
        unknown = sorted(set(models) - set(names))
        if unknown:
            raise LedgformerError(f"models not in the {kind} tables: {', '.join(unknown)}")
        keep = set(models)
        records = [r for r in records if r.tags["model"] in keep]
        names = {m: g for m, g in names.items() if m in keep}
    meta: dict[str, Any] = {
        "source": str(root / FOLDER), "unit": "ms (CSV microseconds / 1000)", "frameworks": list(frameworks),
        "models": len(names), "missing_measurements": missing,
        "input": "1x3x224x224" if kind == "cnn" else "each ViT's own image size (hf_vits)",
    }
    graphs: dict[str, ArchGraph] = {}
    failures: dict[str, str] = {}
    if with_graphs:
        from ledgformer.data.graph_cache import cached_graphs

        build: Callable[[str], ArchGraph]
        if kind == "cnn":
            modules, build = _builder_modules(), build_cnn
        else:
            from ledgformer.data import hf_vits

            modules, build = [*_builder_modules(), hf_vits], hf_vits.build_vit
        items = {gid: model for model, gid in sorted(names.items())}
        graphs, failures = cached_graphs(f"mmb-{gkind}", modules, items, build, show_progress)
    return BenchmarkData(f"mobile-{gkind}", graphs, records, meta=meta, failures=failures)


def flops_agreement(data: BenchmarkData) -> dict[str, Any]:
    """Relative error of ``2 x`` Conv+Gemm+MatMul MACs of each graph against the CSV FLOPS column.

    One value per (model, framework) (``per_model``, keyed ``model|framework``; ``flops`` the pair
    compared: ours, the CSV's); ``median_rel_err`` over all.
    """
    per_model: dict[str, float] = {}
    pairs: dict[str, tuple[float, float]] = {}
    errors: list[float] = []
    for r in data.records:
        graph = data.graphs.get(r.graph_id)
        flops = r.tags.get("flops")
        key = f"{r.tags['model']}|{r.tags['framework']}"
        if graph is None or flops is None or math.isnan(flops) or key in per_model:
            continue
        ours = 2.0 * sum(n.macs for n in graph.nodes if n.op in ("conv", "gemm", "matmul"))
        per_model[key] = abs(ours - flops) / flops
        pairs[key] = (ours, flops)
        errors.append(per_model[key])
    if not errors:
        raise LedgformerError(f"{data.name}: no graph with a FLOPS value to compare")
    return {"median_rel_err": median(errors), "n": len(errors),
            "within_5pct": sum(e <= 0.05 for e in errors), "per_model": per_model,
            "flops": pairs}


__all__ = ["CNN_INPUT", "FOLDER", "FRAMEWORKS", "US_PER_MS", "build_cnn", "family_of", "flops_agreement",
           "load_mobile", "read_e2e", "setting_columns"]
