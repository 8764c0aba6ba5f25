"""NNLQP's data format (Liu et al., 2022; also used by NAR-Former V2): ONNX files plus a label file.

A folder holds a label file (``gt.txt``; the unseen-structure set calls it ``gt_stage.txt``) and
the ONNX graphs it names. Each label line has 7 whitespace-separated fields::

    <id> <onnx path, relative to the folder> <batch> <latency ms> <family> <platform> <split>
    00001 onnx/nnmeter_alexnet/nnmeter_alexnet_transform_0000.onnx 1 2.06137 alexnet 1 train

``platform`` is NNLQP's platform key (``1`` = GTX 1660, TensorRT, FP32): card
``card_name("nnlqp", platform)``. ``split`` is NNLQP's own train/test assignment.

NNLQP distributes the ONNX files as a separate release archive; with only the label file,
``load_nnlqp_labels`` (or ``load_nnlqp(..., with_graphs=False)``) still reads every measurement,
and ``load_nnlqp`` with graphs says which files are missing. ``write_nnlqp`` writes our own
measurements in this format, so NNLQP-compatible tools can read them.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph

LABEL_FILES = ("gt.txt", "gt_stage.txt")


@dataclass(frozen=True)
class NNLQPLabel:
    """One label line: a latency of ``onnx_path`` at ``batch`` on ``platform``."""

    id: str
    onnx_path: str
    batch: int
    latency_ms: float
    family: str
    platform: str
    split: str

    @property
    def graph_id(self) -> str:
        """Graph id: the ONNX path without ``.onnx``, plus ``@<batch>`` when the batch is not 1."""
        stem = self.onnx_path[:-5] if self.onnx_path.endswith(".onnx") else self.onnx_path
        return f"nnlqp/{stem}" + (f"@{self.batch}" if self.batch != 1 else "")

    def line(self) -> str:
        return (f"{self.id} {self.onnx_path} {self.batch} {self.latency_ms!r} {self.family} "
                f"{self.platform} {self.split}")


@dataclass(frozen=True)
class NNLQPItem:
    """One measurement to write: the model (ONNX proto or file) and its label fields."""

    model: Any  # onnx.ModelProto, or the path of an .onnx file
    name: str
    latency_ms: float
    family: str
    platform: str
    split: str = "train"
    batch: int = 1


def load_nnlqp_labels(path: str | Path) -> list[NNLQPLabel]:
    """Every label line of an NNLQP label file (errors name the file, line and field)."""
    path = Path(path)
    if not path.is_file():
        raise LedgformerError(f"{path}: NNLQP label file not found")
    labels: list[NNLQPLabel] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{path}:{lineno}"
        if len(fields) != 7:
            raise LedgformerError(f"{where}: expected 7 fields 'id onnx_path batch latency_ms family "
                                  f"platform split', got {len(fields)}")
        ident, onnx_path, batch, latency, family, platform, split = fields
        try:
            batch_n = int(batch)
        except ValueError:
            raise LedgformerError(f"{where}: batch '{batch}' is not an integer") from None
        try:
            ms = float(latency)
        except ValueError:
            raise LedgformerError(f"{where}: latency '{latency}' is not a number (ms)") from None
        if batch_n < 1 or not ms > 0:
            raise LedgformerError(f"{where}: expected batch >= 1 and latency > 0, got {batch_n} and {ms}")
        if ident in seen:
            raise LedgformerError(f"{where}: duplicate id '{ident}'")
        seen.add(ident)
        labels.append(NNLQPLabel(ident, onnx_path, batch_n, ms, family, platform, split))
    if not labels:
        raise LedgformerError(f"{path}: no label lines")
    return labels


def label_file(folder: Path) -> Path:
    for name in LABEL_FILES:
        if (folder / name).is_file():
            return folder / name
    raise LedgformerError(f"{folder}: no NNLQP label file ({' or '.join(LABEL_FILES)}) in it")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(item: tuple[str, int, str]) -> ArchGraph:
    from ledgformer.graph.onnx_import import load_onnx

    path, batch, _digest = item
    return load_onnx(path, batch_size=batch)


def load_nnlqp(folder: str | Path, label_path: str | Path | None = None, with_graphs: bool = True,
               show_progress: bool = True) -> BenchmarkData:
    """Records and graphs of an NNLQP-format folder (graphs cached by ONNX content and batch)."""
    from ledgformer.hardware import card_name

    folder = Path(folder)
    labels_at = Path(label_path) if label_path is not None else label_file(folder)
    labels = load_nnlqp_labels(labels_at)
    records = [Record(lab.graph_id, lab.latency_ms, "latency_ms", card_name("nnlqp", lab.platform),
                      {"family": lab.family, "split": lab.split, "batch": lab.batch, "nnlqp_id": lab.id})
               for lab in labels]
    wanted = {lab.graph_id: (folder / lab.onnx_path, lab.batch) for lab in labels}
    meta: dict[str, Any] = {"source": str(labels_at), "unit": "ms", "models": len(wanted),
                            "families": sorted({lab.family for lab in labels})}
    graphs: dict[str, ArchGraph] = {}
    failures: dict[str, str] = {}
    if with_graphs:
        present = {gid: (str(p), b, _sha256(p)) for gid, (p, b) in wanted.items() if p.is_file()}
        absent = {gid: p for gid, (p, _) in wanted.items() if gid not in present}
        if not present:
            first = next(iter(absent.values()))
            raise LedgformerError(
                f"{folder}: none of the {len(absent)} ONNX files named in {labels_at.name} exist "
                f"(first: {first}); NNLQP ships them as a release archive: unpack it into {folder}, "
                "or load the labels only (with_graphs=False / load_nnlqp_labels)")
        failures = {gid: f"ONNX file not found: {p}" for gid, p in absent.items()}
        from ledgformer.data.graph_cache import cached_graphs
        from ledgformer.graph import onnx_fold, onnx_import, onnx_ops, onnx_patterns

        key = f"nnlqp-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]}"
        built, failed = cached_graphs(key, [onnx_import, onnx_ops, onnx_patterns, onnx_fold], present,
                                      _build, show_progress)
        graphs, failures = built, {**failures, **failed}
    return BenchmarkData("nnlqp", graphs, records, meta=meta, failures=failures)


def load_nnlqp_benchmark(root: Path, folder: str | Path | None = None, with_graphs: bool = True,
                         show_progress: bool = True) -> BenchmarkData:
    """Registry entry: ``folder`` if given, else ``<root>/nnlqp``."""
    return load_nnlqp(Path(folder) if folder is not None else root / "nnlqp", with_graphs=with_graphs,
                      show_progress=show_progress)


def write_nnlqp(folder: str | Path, items: Iterable[NNLQPItem], label_name: str = "gt.txt") -> Path:
    """Write ``items`` as an NNLQP folder: ``onnx/<family>/<name>.onnx`` plus the label file."""
    import onnx

    folder = Path(folder)
    lines: list[str] = []
    names: set[str] = set()
    for k, item in enumerate(items, 1):
        for field, value in (("name", item.name), ("family", item.family), ("platform", item.platform),
                             ("split", item.split)):
            if not str(value) or any(c.isspace() for c in str(value)):
                raise LedgformerError(f"NNLQP item {k}: {field} '{value}' must be non-empty, without spaces")
        if item.batch < 1 or not item.latency_ms > 0:
            raise LedgformerError(f"NNLQP item {k} ({item.name}): expected batch >= 1 and latency > 0")
        rel = f"onnx/{item.family}/{item.name}.onnx"
        if rel in names:
            raise LedgformerError(f"NNLQP item {k}: duplicate model file {rel}")
        names.add(rel)
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(item.model, onnx.ModelProto):
            onnx.save(item.model, str(dest))
        else:
            shutil.copyfile(item.model, dest)
        label = NNLQPLabel(f"{k:05d}", rel, int(item.batch), float(item.latency_ms), item.family,
                           str(item.platform), item.split)
        lines.append(label.line())
    if not lines:
        raise LedgformerError("write_nnlqp: no items to write")
    out = folder / label_name
    out.write_text("\n".join(lines) + "\n")
    return out


__all__ = ["LABEL_FILES", "NNLQPItem", "NNLQPLabel", "label_file", "load_nnlqp", "load_nnlqp_benchmark",
           "load_nnlqp_labels", "write_nnlqp"]
