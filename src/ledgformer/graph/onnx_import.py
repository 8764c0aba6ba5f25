"""Import an ONNX model (opset 7 or newer) into the ArchGraph IR.

Which graph the IR shows: **the model as authored**, at the operator level a framework user
wrote. BatchNormalization stays its own node (runtimes fuse it into the preceding convolution
differently on each device; the latency predictor learns that per hardware), and onnxruntime's
graph optimisations are never applied. What is removed or folded:

* weights (initializers and ``Constant`` nodes) become node attributes: channel counts, kernel
  sizes, ``weight_shapes`` (trainable tensors, so ``params`` equals ``sum(p.numel())`` of the
  PyTorch model) and ``buffer_shapes`` (BN running statistics);
* shape plumbing (``Shape``/``Gather``/``Unsqueeze``/``Concat``/``Cast``/... feeding ``Reshape``,
  ``Expand``, ``Resize``, ``Slice``) is constant-folded once the input shape is fixed;
* ``Dropout`` and ``Identity`` are removed and their edges rewired;
* decomposed LayerNorm, GELU, hard-swish/hard-sigmoid, swish and MatMul+bias chains become single
  ``layernorm`` / ``gelu`` / ``hardswish`` / ``hardsigmoid`` / ``swish`` / ``gemm`` nodes, and
  ``Clip(0, 6)`` becomes ``relu6`` (see ``onnx_patterns``).

Shapes come from ONNX shape inference (run on a copy without the large weights, with the input
shape fixed) and, where it leaves one unknown, from our own inference (``onnx_fold``). Operators
outside the vocabulary become ``unknown`` nodes (raw op kept); they are never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from ledgformer.errors import LedgformerError
from ledgformer.graph.cost import annotate
from ledgformer.graph.ir import ArchGraph, Node
from ledgformer.graph.onnx_fold import constant_value, fold, infer_shapes
from ledgformer.graph.onnx_ops import (
    REMOVED_OPS,
    WEIGHT_PREP_OPS,
    PNode,
    input_role,
    ir_op_and_attrs,
    node_attrs,
    sorted_nodes,
)
from ledgformer.graph.onnx_patterns import fuse_patterns

Shape = tuple[int, ...]
#: bump when the importer's output changes for the same model (the zoo cache keys on it)
IMPORTER_VERSION = 2
#: constant inputs up to this size have their values read (bounds, scales, shape vectors)
_SMALL = 4096
#: ops never evaluated at import time even when their inputs are constant
_NO_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                      "Multinomial", "Bernoulli", "If", "Loop", "Scan"})


class OnnxImportError(LedgformerError):
    """An ONNX file or model that cannot be turned into an ArchGraph (with what to do about it)."""


def _load(src: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str, str]:
    """The model, the label error messages use (the path) and its default name."""
    if isinstance(src, onnx.ModelProto):
        return src, src.graph.name or "model", src.graph.name or "model"
    path = Path(src)
    if not path.is_file():
        raise OnnxImportError(f"{path}: file not found; give the path of an .onnx model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as err:
        raise OnnxImportError(
            f"{path}: not a readable ONNX file (truncated or corrupt: {type(err).__name__}); "
            "re-export or re-download it") from err
    if not model.graph.node or not model.opset_import:
        raise OnnxImportError(f"{path}: not an ONNX model (no graph nodes or opset); "
                              "give a file written by torch.onnx.export or onnx.save")
    return model, str(path), path.stem


def _opset(model: onnx.ModelProto, label: str) -> int:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 7:
        raise OnnxImportError(f"{label}: opset {opset} is older than 7; convert it with "
                              "onnx.version_converter.convert_version(model, 13)")
    return opset


def _input_shapes(
    graph: onnx.GraphProto, label: str, batch_size: int | None, input_shape: Sequence[int] | None,
) -> dict[str, tuple[Shape, int]]:
    """Static shape and element type of each real graph input after the user's overrides."""
    inits = {t.name for t in graph.initializer}
    out: dict[str, tuple[Shape, int]] = {}
    for k, vi in enumerate(v for v in graph.input if v.name not in inits):
        tt = vi.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in tt.shape.dim]
        if not tt.HasField("shape"):  # rank unknown: only the user can say
            dims = ["?"] * (len(input_shape) if k == 0 and input_shape is not None else 1)
        if k == 0 and input_shape is not None:
            if len(input_shape) != len(dims):
                raise OnnxImportError(
                    f"{label}: input '{vi.name}' has rank {len(dims)} but --input-shape "
                    f"{tuple(input_shape)} has rank {len(input_shape)}; give {len(dims)} dims")
            dims = [int(d) for d in input_shape]
        if dims and (batch_size is not None or not isinstance(dims[0], int) or dims[0] <= 0):
            # a dynamic batch axis alone is the common export; it means batch 1 unless overridden
            dims[0] = int(batch_size or 1)
        bad = [(i, d) for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
        if bad:
            axis, dim = bad[0]
            raise OnnxImportError(
                f"{label}: input '{vi.name}' has a dynamic dim '{dim}' at axis {axis} "
                f"(shape {[str(d) for d in dims]}); pass --input-shape (input_shape=) with static dims")
        out[vi.name] = (tuple(int(d) for d in dims), tt.elem_type)
    if not out:
        raise OnnxImportError(f"{label}: the model has no inputs besides its weights")
    return out


def _onnx_shapes(model: onnx.ModelProto, inputs: dict[str, tuple[Shape, int]]) -> dict[str, Shape]:
    """ONNX shape inference on a light copy (big weights become typed inputs; fixed input shape)."""
    g = model.graph
    small, value_infos = [], []
    for t in g.initializer:
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) or math.prod(t.dims) <= _SMALL:
            small.append(t)
        else:
            value_infos.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    init_names = {t.name for t in g.initializer}
    graph_inputs = [helper.make_tensor_value_info(n, et, list(s)) for n, (s, et) in inputs.items()]
    graph_inputs += [v for v in g.input if v.name in init_names and v.name not in inputs]
    listed = {v.name for v in graph_inputs}
    graph_inputs += [v for v in value_infos if v.name not in listed]
    light = helper.make_graph(list(g.node), g.name or "g", graph_inputs, list(g.output), initializer=small)
    light_model = helper.make_model(light, opset_imports=list(model.opset_import),
                                    ir_version=max(model.ir_version, 4))
    try:
        inferred = onnx.shape_inference.infer_shapes(light_model, data_prop=True)
    except Exception:  # inference is best effort: our own inference fills what it cannot
        return {}
    shapes: dict[str, Shape] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


class _Importer:
    """One conversion: tensor tables plus the intermediate nodes, filled in a single pass."""

    def __init__(self, model: onnx.ModelProto, label: str, opset: int,
                 inputs: dict[str, tuple[Shape, int]]) -> None:
        self.label, self.opset, self.inputs = label, opset, inputs
        self.inits = {t.name: t for t in model.graph.initializer if t.name not in inputs}
        self.shapes: dict[str, Shape] = {n: s for n, (s, _) in inputs.items()}
        self.shapes.update({n: tuple(int(d) for d in t.dims) for n, t in self.inits.items()})
        self.values: dict[str, np.ndarray] = {}  # folded or small constant values
        self.dtypes: dict[str, np.dtype] = {
            n: helper.tensor_dtype_to_np_dtype(t.data_type) for n, t in self.inits.items()}
        self.source: dict[str, str] = {n: n for n in self.inits}  # weight tensor -> source id
        self.alias: dict[str, str] = {}
        self.origin: dict[str, str] = {}  # de-duplicated weight -> the tensor holding its values
        self.pnodes: list[PNode] = []

    # ---- tensor tables ------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def is_const(self, name: str) -> bool:
        return name in self.values or name in self.source

    def value(self, name: str) -> np.ndarray | None:
        """The constant's value when it is small (weights are never materialised), following
        exporter de-duplication (``Identity`` copies of an initializer, integer ones included:
        BEiT's resize targets come through them)."""
        while name in self.origin:
            name = self.origin[name]
        if name in self.values:
            return self.values[name]
        t = self.inits.get(name)
        if t is not None and math.prod(t.dims) <= _SMALL:
            self.values[name] = numpy_helper.to_array(t)
            return self.values[name]
        return None

    def _set_const(self, name: str, value: np.ndarray) -> None:
        self.values[name] = value
        self.shapes[name] = tuple(int(d) for d in value.shape)
        self.dtypes[name] = value.dtype

    # ---- the pass -----------------------------------------------------------------------
    def visit(self, node: onnx.NodeProto, inferred: dict[str, Shape]) -> None:
        op = node.op_type
        ins = [self.resolve(i) if i else "" for i in node.input]
        if op == "Constant":
            value = constant_value(node)
            self._set_const(node.output[0], value)
            if value.dtype.kind == "f" and value.size > 1:
                self.source[node.output[0]] = node.output[0]  # a weight stored as a Constant node
            return
        if op in REMOVED_OPS and ins and ins[0]:
            self.alias[node.output[0]] = ins[0]
            if ins[0] in self.source and op == "Identity":
                # exporters de-duplicate equal initializers through Identity: a distinct weight
                self.source[node.output[0]] = node.output[0]
                self.origin[node.output[0]] = ins[0]
                self.shapes[node.output[0]] = self.shapes[ins[0]]
                self.dtypes[node.output[0]] = self.dtypes[ins[0]]
                del self.alias[node.output[0]]
            return
        roles = [input_role(op, k, self.dtypes.get(t, np.dtype("float32")),
                            math.prod(self.shapes.get(t, (2,)))) if t and self.is_const(t) else ""
                 for k, t in enumerate(ins)]
        attrs = node_attrs(node)
        if op == "Shape" and ins[0] in self.shapes:
            shape = np.array(self.shapes[ins[0]], dtype=np.int64)
            self._set_const(node.output[0], shape[attrs.get("start", 0):attrs.get("end")])
            return
        if op == "Size" and ins[0] in self.shapes:
            self._set_const(node.output[0], np.array(math.prod(self.shapes[ins[0]]), dtype=np.int64))
            return
        if ins and all(not t or self.is_const(t) for t in ins) and op not in _NO_FOLD:
            has_weight = any(r in ("weight", "buffer") and t in self.source
                             for t, r in zip(ins, roles, strict=True))
            if has_weight and op in WEIGHT_PREP_OPS and len(node.output) == 1:
                self._weight_view(node, ins, attrs)
                return
            if not has_weight:
                vals = [self.value(t) if t else None for t in ins]
                if all(v is not None for t, v in zip(ins, vals, strict=False) if t):
                    outs = fold(node, attrs, vals, self.opset)
                    if outs is not None:
                        for name, v in zip(node.output, outs, strict=False):
                            self._set_const(name, v)
                        return
        self._add_pnode(node, ins, roles, attrs, inferred)

    def _weight_view(self, node: onnx.NodeProto, ins: list[str], attrs: dict[str, Any]) -> None:
        """Transpose/Reshape/... of a weight: still the same trainable tensor, new layout."""
        src = ins[0]
        in_shape = self.shapes[src]
        shapes = [in_shape] + [self.shapes.get(t) if t else None for t in ins[1:]]
        vals = [None] + [self.value(t) if t else None for t in ins[1:]]
        # shape-only inference: a big weight (DINOv2-base's 1,370 x 768 position table) is over
        # the fold limit, and keeping its old shape would break every shape after it
        outs = infer_shapes(node.op_type, attrs, shapes, vals)
        out = node.output[0]
        self.shapes[out] = outs[0] if outs else in_shape
        self.dtypes[out] = self.dtypes[src]
        self.source[out] = self.source[src]

    def _add_pnode(self, node: onnx.NodeProto, ins: list[str], roles: list[str],
                   attrs: dict[str, Any], inferred: dict[str, Shape]) -> None:
        op = node.op_type
        in_shapes = [self.shapes.get(t) if t else None for t in ins]
        p = PNode(op_type=op, name=node.name or node.output[0], attrs=attrs, act=[], act_pos=[],
                  act_shapes=[], outputs=[o for o in node.output if o], out_shapes=[],
                  in_shapes=in_shapes, raw_op=op)
        for k, (t, role) in enumerate(zip(ins, roles, strict=False)):
            if not t:
                continue
            if role == "":
                if in_shapes[k] is None:
                    raise OnnxImportError(f"{self.label}: node '{p.name}' ({op}): the shape of "
                                          f"input '{t}' is unknown")
                p.act.append(t)
                p.act_pos.append(k)
                p.act_shapes.append(in_shapes[k])  # type: ignore[arg-type]
            elif role == "weight" and t in self.source:
                p.weights.append((self.source[t], self.shapes[t]))
            elif role == "buffer":
                p.buffers.append(self.shapes[t])
            else:
                p.consts[k] = self.value(t)
        out_shapes = [inferred.get(o) for o in p.outputs]
        if any(s is None for s in out_shapes):
            vals = [p.consts.get(k) for k in range(len(ins))]
            own = infer_shapes(op, attrs, in_shapes, vals, len(p.outputs))
            if own is not None:
                out_shapes = [s if s is not None else o for s, o in zip(out_shapes, own, strict=False)]
        for o, s in zip(p.outputs, out_shapes, strict=False):
            if s is not None:
                self.shapes[o] = s
        p.out_shapes = [s if s is not None else () for s in out_shapes]
        p.raw_op = op if not node.domain or node.domain == "ai.onnx" else f"{node.domain}.{op}"
        if any(s is None for s in out_shapes[:1]):
            p.out_shapes = []
        self.pnodes.append(p)


def _to_graph(imp: _Importer, graph_outputs: list[str], dtype_bytes: int, meta: dict[str, Any]) -> ArchGraph:
    """Intermediate nodes -> ArchGraph: IR ops, cost attributes, edges, each weight counted once."""
    nodes: list[Node] = []
    producer: dict[str, int] = {}
    for name, (shape, _) in imp.inputs.items():
        producer[name] = len(nodes)
        nodes.append(annotate(Node(op="input", name=name, output_shapes=[shape], raw_op="input"),
                              dtype_bytes))
    counted: set[str] = set()
    edges: list[tuple[int, int]] = []
    for p in imp.pnodes:
        if not p.alive:
            continue
        if not p.out_shapes:
            raise OnnxImportError(f"{imp.label}: node '{p.name}' ({p.raw_op}): output shape unknown, "
                                  "so its cost cannot be computed; check --input-shape")
        try:
            op, attrs = ir_op_and_attrs(p, imp.opset)
        except (KeyError, IndexError, TypeError, ValueError, AssertionError) as err:
            raise OnnxImportError(f"{imp.label}: node '{p.name}' ({p.raw_op}): cannot compute its "
                                  f"cost attributes ({type(err).__name__}: {err})") from err
        weights = []
        for src, shape in p.weights:
            if src not in counted:
                counted.add(src)
                weights.append(shape)
        if weights:
            attrs["weight_shapes"] = weights
        if p.buffers:
            attrs["buffer_shapes"] = list(p.buffers)
        idx = len(nodes)
        nodes.append(annotate(Node(op=op, name=p.name, attrs=attrs, input_shapes=list(p.act_shapes),
                                   output_shapes=list(p.out_shapes), raw_op=p.raw_op), dtype_bytes))
        edges.extend((producer[t], idx) for t in dict.fromkeys(p.act) if t in producer)
        for o in p.outputs:
            producer[o] = idx
    return ArchGraph(nodes, edges, meta)


def load_onnx(
    src: str | Path | onnx.ModelProto,
    *,
    batch_size: int | None = None,
    input_shape: Sequence[int] | None = None,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ArchGraph:
    """Parse an ONNX model (path or ``ModelProto``) into an ArchGraph with per-node costs.

    ``input_shape`` fixes the first input's shape (needed when it has dynamic dims other than
    the batch axis, which defaults to 1); ``batch_size`` replaces dim 0 of every input and
    shapes are re-inferred. ``progress(done, total)`` is called while nodes are converted.
    """
    model, label, default_name = _load(src)
    if isinstance(src, onnx.ModelProto) and name:
        label = name
    opset = _opset(model, label)
    inputs = _input_shapes(model.graph, label, batch_size, input_shape)
    inferred = _onnx_shapes(model, inputs)
    imp = _Importer(model, label, opset, inputs)
    nodes = sorted_nodes(model.graph, set(inputs) | set(imp.inits))
    total = len(nodes)
    step = max(1, total // 100)
    for k, node in enumerate(nodes):
        imp.visit(node, inferred)
        if progress is not None and (k % step == 0 or k == total - 1):
            progress(k + 1, total)
    graph_outputs = [imp.resolve(o.name) for o in model.graph.output]
    fuse_patterns(imp.pnodes, graph_outputs, imp.value)
    first_shape, elem = next(iter(inputs.values()))
    dtype = helper.tensor_dtype_to_np_dtype(elem) if elem else np.dtype("float32")
    meta = {"source": "onnx", "name": name or default_name, "input_shape": first_shape,
            "batch_size": first_shape[0] if first_shape else 1, "opset": opset, "dtype": str(dtype)}
    if len(inputs) > 1:
        meta["inputs"] = {n: list(s) for n, (s, _) in inputs.items()}
    return _to_graph(imp, graph_outputs, np.dtype(dtype).itemsize, meta)


__all__ = ["IMPORTER_VERSION", "OnnxImportError", "load_onnx"]
