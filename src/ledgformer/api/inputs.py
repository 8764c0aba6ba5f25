"""What users hand to ``Predictor.predict``: resolve models to graphs and hardware to cards.

A model is an ``ArchGraph``, an ONNX (or IR JSON) path, a ``pytorchcv:``/``timm:``/
``torchvision:`` name, a ``torch.nn.Module`` (with ``input_shape``), a NAS-Bench-201 arch string
or NASLib op tuple, or a NAS-Bench-101 cell (``{"matrix", "ops"}`` or ``(matrix, ops)``). NAS
archs become the 8-node cell graph (accuracy predictors), that of the NB201 arch's live cell
(``live-cell``: dead ops as ``none``, for predictors trained with ``data.live_cells``;
``flow-cell`` / ``live-flow-cell``: the same without the edges of ``none`` ops, for
``data.none_edges: false``; NB101 cells are pruned in every cell form) or the whole CIFAR network
(latency predictors): the predictor's ``arch_form`` says which, as it was trained.

Each input gets a *key* that identifies its featurised graph: NAS archs are keyed by their
canonical string (no graph is built when the key is already cached); other graphs by their
content hash plus what the hash leaves out but the features read (raw op names, costs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import HardwareCard, load_card

ARCH_FORMS = ("cell", "live-cell", "flow-cell", "live-flow-cell", "network")


@dataclass
class ModelRef:
    """One resolved model: its cache key, a label for messages, and its graph (built on demand)."""

    key: str
    label: str
    build: Callable[[], ArchGraph] = field(repr=False)
    _graph: ArchGraph | None = field(default=None, repr=False)
    #: the NAS-Bench-201 arch string (canonical) when the model is one: its zero-cost proxies
    arch: str | None = None

    def graph(self) -> ArchGraph:
        if self._graph is None:
            self._graph = self.build()
        return self._graph

    def release(self) -> None:
        """Forget the built graph once it is featurised (15,625 NB201 networks would hold ~2 GB)."""
        self._graph = None


def graph_key(graph: ArchGraph) -> str:
    """Content hash + the node fields the hash leaves out but features read (raw op, costs)."""
    extra = sorted((n.raw_op, n.macs, n.flops, n.params, n.mem_bytes) for n in graph.nodes)
    digest = hashlib.sha256(json.dumps(extra).encode()).hexdigest()[:16]
    return f"graph:{graph.content_hash()}:{digest}"


def _of_graph(graph: ArchGraph, label: str) -> ModelRef:
    return ModelRef(graph_key(graph), label, lambda: graph, graph)


def default_arch_form(task: str, config: Mapping[str, Any]) -> str:
    """How NAS archs become graphs for a model of ``task`` trained with run ``config``."""
    if task == "latency":
        return "network"
    data = config.get("data") or {}
    return ("live-" if data.get("live_cells") else "") + \
        ("cell" if data.get("none_edges", True) else "flow-cell")


def is_nb201_string(text: str) -> bool:
    return text.startswith("|") and "~" in text and text.endswith("|")


def _nb201(arch: str, form: str) -> ModelRef:
    from ledgformer.spaces import nb201

    ops = nb201.arch_str_to_ops(arch)  # validates (clear error naming the string)
    canon = nb201.ops_to_arch_str(ops)
    if form == "network":
        return ModelRef(f"nb201:{form}:{canon}", canon, lambda: nb201.network_graph(canon), arch=canon)
    # live forms: functionally identical cells share one key and one graph
    arch = nb201.live_arch(canon) if form.startswith("live-") else canon
    none_edges = not form.endswith("flow-cell")
    return ModelRef(f"nb201:{form}:{arch}", canon, lambda: nb201.cell_graph(arch, none_edges=none_edges),
                    arch=canon)


def _nb101(matrix: Any, ops: Any, form: str) -> ModelRef:
    from ledgformer.spaces import nb101

    m, pops = nb101.prune(matrix, ops)
    name = nb101.spec_name(m, pops)
    form = "network" if form == "network" else "cell"  # pruned cells are live and have no none op
    build = (lambda: nb101.cell_graph(m, pops)) if form == "cell" else (lambda: nb101.network_graph(m, pops))
    return ModelRef(f"nb101:{form}:{name}", name, build)


def _is_nb101_pair(x: Any) -> bool:
    return (isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], (list, tuple))
            and bool(x[0]) and isinstance(x[0][0], (list, tuple)))


def resolve_model(x: Any, *, arch_form: str, input_shape: Sequence[int] | None = None,
                  batch_size: int | None = None) -> ModelRef:
    """One model input -> ModelRef (see the module docstring for what is accepted)."""
    if arch_form not in ARCH_FORMS:
        raise LedgformerError(f"arch_form must be one of {ARCH_FORMS}, got {arch_form!r}")
    if isinstance(x, ModelRef):
        return x
    if isinstance(x, ArchGraph):
        return _of_graph(x, str(x.meta.get("name") or "graph"))
    if isinstance(x, (Path, str)):
        return _resolve_text(str(x), arch_form, input_shape, batch_size)
    if isinstance(x, Mapping) and "matrix" in x and "ops" in x:
        return _nb101(x["matrix"], x["ops"], arch_form)
    if _is_nb101_pair(x):
        return _nb101(x[0], x[1], arch_form)
    if isinstance(x, tuple) and len(x) == 6 and all(isinstance(v, int) for v in x):
        from ledgformer.spaces import nb201

        return _nb201(nb201.naslib_to_str(x), arch_form)
    import torch

    if isinstance(x, torch.nn.Module):
        return _resolve_module(x, input_shape)
    raise LedgformerError(
        f"cannot predict for a {type(x).__name__}: give an ArchGraph, an .onnx / IR .json path, a "
        "pytorchcv:/timm:/torchvision: name, a torch.nn.Module (with input_shape=), a NAS-Bench-201 "
        "arch string ('|nor_conv_3x3~0|+|...|') or NASLib tuple, or a NAS-Bench-101 "
        "{'matrix': ..., 'ops': ...}")


def _resolve_text(text: str, form: str, input_shape: Sequence[int] | None,
                  batch_size: int | None) -> ModelRef:
    if is_nb201_string(text):
        return _nb201(text, form)
    path = Path(text).expanduser()
    if text.lower().endswith(".json"):
        if not path.is_file():
            raise LedgformerError(f"{text}: no such IR JSON file")
        try:
            graph = ArchGraph.from_json(path.read_text())
        except (ValueError, KeyError, TypeError) as err:
            raise LedgformerError(f"{text}: not a valid IR JSON graph ({err})") from err
        return _of_graph(graph, path.name)
    from ledgformer.graph.zoo import load_model

    shape = tuple(int(d) for d in input_shape) if input_shape else None
    graph = load_model(text, input_shape=shape, batch_size=batch_size)
    return _of_graph(graph, path.name if path.is_file() else text)


def _resolve_module(module: Any, input_shape: Sequence[int] | None) -> ModelRef:
    if not input_shape:
        raise LedgformerError(f"{type(module).__name__}: a torch.nn.Module needs input_shape= "
                              "(batch included), e.g. input_shape=(1, 3, 224, 224)")
    from ledgformer.graph.torch_import import from_torch

    return _of_graph(from_torch(module, tuple(int(d) for d in input_shape)), type(module).__name__)


def resolve_models(models: Any, *, arch_form: str, input_shape: Sequence[int] | None = None,
                   batch_size: int | None = None) -> tuple[list[ModelRef], bool]:
    """(refs, was a single model): a list is a batch, anything else one model."""
    single = not isinstance(models, list)
    items = [models] if single else models
    if not items:
        raise LedgformerError("no models given: pass a model or a non-empty list of models")
    refs = [resolve_model(m, arch_form=arch_form, input_shape=input_shape, batch_size=batch_size)
            for m in items]
    return refs, single


def resolve_card(x: Any) -> HardwareCard:
    """A hardware card from a card name, a card YAML path, a dict of card fields or a HardwareCard."""
    if isinstance(x, HardwareCard):
        return x
    if isinstance(x, (str, Path, Mapping)):
        return load_card(x)
    raise LedgformerError(f"hardware must be a card name (`ledgformer hardware list`), a card YAML "
                          f"path, a dict of card fields or a HardwareCard, got {type(x).__name__}")


def resolve_cards(hardware: Any) -> tuple[list[HardwareCard], bool]:
    """(cards, was a single card): a list/tuple of cards is several devices."""
    single = not isinstance(hardware, (list, tuple))
    items = [hardware] if single else list(hardware)
    if not items:
        raise LedgformerError("hardware: an empty list of cards")
    return [resolve_card(h) for h in items], single


__all__ = ["ARCH_FORMS", "ModelRef", "default_arch_form", "graph_key", "is_nb201_string", "resolve_card",
           "resolve_cards", "resolve_model", "resolve_models"]
