"""The records every loader produces and every trainer consumes.

A benchmark is a table of graphs (by id) and a list of measurements that point into it, so a
graph measured on 27 devices is stored once. Training and evaluation code never touch raw files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledgformer.graph.ir import ArchGraph


@dataclass(frozen=True)
class Record:
    """One measured target: ``graph_id`` on ``device`` (a hardware card name, None for accuracy)."""

    graph_id: str
    target: float
    kind: str  # "latency_ms" or "accuracy" (percent)
    device: str | None = None
    #: grouping keys for splits and reports: family, data set, arch index ...
    tags: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class BenchmarkData:
    """Graphs by id, the records measured on them, and what could not be built (with why)."""

    name: str
    graphs: dict[str, ArchGraph]
    records: list[Record]
    meta: dict[str, Any] = field(default_factory=dict)
    #: graph_id -> reason it could not be built: listed and reported, never silently dropped
    failures: dict[str, str] = field(default_factory=dict)

    def devices(self) -> list[str]:
        return sorted({r.device for r in self.records if r.device is not None})

    def by_device(self, device: str) -> list[Record]:
        return [r for r in self.records if r.device == device]
